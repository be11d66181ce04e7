//! Body codecs: how a typed value becomes the bytes of a frame body, and back.
//!
//! (About a fifth of this file is its tests; the codec trait, the registry
//! and the section encoding they all go through are one concept.)
//!
//! A frame body starts with one byte naming its codec, chosen per message:
//!
//! | id  | codec    | values                                                   |
//! |-----|----------|----------------------------------------------------------|
//! | `j` | JSON     | any `serde` type (Go writes no trailing newline)          |
//! | `p` | protobuf | prost messages wrapped in [`Proto`]                       |
//! | `s` | string   | text: strings, numbers, booleans, unit enum variants      |
//! | `b` | bincode  | any `serde` type; ours, for Rust-to-Rust speed            |
//!
//! Any `serde` type implements [`Encode`] and [`Decode`] for the serde-based
//! codecs, including codecs you add with the [`Codec`] trait under an id of
//! your own. The sender picks the codec; a handler replies with the codec of
//! the pull unless it picks another.
//!
//! When a header's gzip level is not 0, the bytes after the codec id are a
//! gzip stream of the encoded value ([`gzip`]).
//!
//! Payloads that are already bytes travel as [`RawBody`]: written as they
//! are after the codec id, and received as a slice of the read buffer, with
//! no codec and no copy (its docs give the codec behaviour).
//!
//! A large `String` (bincode or string codec) or `Vec<u8>` (bincode) that
//! is given up, a handler's reply or the one argument of a generated
//! client's pull ([`Session::pull_owned`](crate::Session::pull_owned)),
//! is not encoded either: of 1 KiB or more and without gzip, its own
//! buffer is queued after the codec id (and for bincode the 8-byte length
//! bincode writes), the same bytes the codec would write; from 8 KiB it
//! reaches the socket with no copy, below that it is copied once into
//! the connection's write buffer.
//! Receiving one still decodes it (a `String` is checked for UTF-8 and
//! copied out of the read buffer); take [`RawBody`] for no copy at all.
//!
//! ```
//! use teleport::codec::{CodecId, Codecs, Decode, Encode};
//!
//! let codecs = Codecs::default();
//! let mut out = Vec::new();
//! [40i64, 2].encode_body(CodecId::JSON, &codecs, &mut out).unwrap();
//! assert_eq!(out, b"[40,2]");
//! let back = <[i64; 2]>::decode_body(CodecId::JSON, &codecs, &out).unwrap();
//! assert_eq!(back, [40, 2]);
//! ```

mod bincode;
pub mod gzip;
mod json;
mod protobuf;
mod raw;
mod string;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

pub use erased_serde;
pub use gzip::GzipLevel;
pub use protobuf::Proto;
pub use raw::RawBody;

/// The id byte of a body codec.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodecId(pub u8);

impl CodecId {
    /// `j`: JSON.
    pub const JSON: CodecId = CodecId(b'j');
    /// `p`: protobuf.
    pub const PROTOBUF: CodecId = CodecId(b'p');
    /// `s`: plain string.
    pub const STRING: CodecId = CodecId(b's');
    /// `b`: bincode (teleport for Rust only).
    pub const BINCODE: CodecId = CodecId(b'b');

    /// Whether this is one of the four built-in codecs.
    pub fn is_builtin(self) -> bool {
        matches!(
            self,
            Self::JSON | Self::PROTOBUF | Self::STRING | Self::BINCODE
        )
    }
}

impl fmt::Debug for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodecId({self})")
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}

/// A body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No codec with this id is built in or registered.
    #[error(
        "unknown body codec id {0}: register it with Codecs::register or use 'j', 'p', 's' or 'b'"
    )]
    UnknownCodec(CodecId),
    /// The codec exists but cannot carry this type.
    #[error("codec {codec} cannot carry this type: {reason}")]
    Unsupported {
        /// The codec asked for.
        codec: CodecId,
        /// Why not, and what to do instead.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("encoding the body with {codec} failed: {reason}")]
    Encode {
        /// Codec name.
        codec: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("decoding the body with {codec} failed: {reason}")]
    Decode {
        /// Codec name.
        codec: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The gzip stream is corrupt.
    #[error("gzip: {0}")]
    Gzip(String),
    /// A gzip level that is not 0, 1..=9, -1 or -2.
    #[error("invalid gzip level {0}: expected 0 (none), 1..=9, -1 (default) or -2 (huffman only)")]
    InvalidGzipLevel(i32),
    /// The encoded or decompressed body is larger than the frame limit.
    #[error("body of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size reached.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

impl CodecError {
    pub(crate) fn encode(codec: &'static str, e: impl fmt::Display) -> Self {
        CodecError::Encode {
            codec,
            reason: e.to_string(),
        }
    }
    pub(crate) fn decode(codec: &'static str, e: impl fmt::Display) -> Self {
        CodecError::Decode {
            codec,
            reason: e.to_string(),
        }
    }
}

/// A body codec of your own, for serde types, under an id byte of your choice.
///
/// ```
/// use teleport::codec::{erased_serde, Codec, CodecError, CodecId, Codecs, Decode, Encode};
///
/// /// JSON with a trailing newline, under id 'n'.
/// struct JsonLines;
///
/// impl Codec for JsonLines {
///     fn id(&self) -> CodecId { CodecId(b'n') }
///     fn name(&self) -> &'static str { "json-lines" }
///     fn encode(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         let mut ser = serde_json::Serializer::new(&mut *out);
///         value.erased_serialize(&mut <dyn erased_serde::Serializer>::erase(&mut ser))
///             .map_err(|e| CodecError::Encode { codec: "json-lines", reason: e.to_string() })?;
///         out.push(b'\n');
///         Ok(())
///     }
///     fn decode(
///         &self,
///         bytes: &[u8],
///         visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
///     ) -> Result<(), CodecError> {
///         let mut de = serde_json::Deserializer::from_slice(bytes);
///         visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de))
///             .map_err(|e| CodecError::Decode { codec: "json-lines", reason: e.to_string() })
///     }
/// }
///
/// let mut codecs = Codecs::default();
/// codecs.register(JsonLines).unwrap();
/// let mut out = Vec::new();
/// 42u32.encode_body(CodecId(b'n'), &codecs, &mut out).unwrap();
/// assert_eq!(out, b"42\n");
/// assert_eq!(u32::decode_body(CodecId(b'n'), &codecs, &out).unwrap(), 42);
/// ```
pub trait Codec: Send + Sync + 'static {
    /// The id byte this codec is known by on the wire.
    fn id(&self) -> CodecId;
    /// A name for logs and errors.
    fn name(&self) -> &'static str;
    /// Appends the encoding of `value` to `out`.
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;
    /// Builds a deserializer over `bytes` and hands it to `visit`.
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError>;
}

/// The body codecs a peer knows: the four built-ins plus any registered ones.
#[derive(Clone, Default)]
pub struct Codecs {
    custom: Arc<HashMap<CodecId, Arc<dyn Codec>>>,
}

impl fmt::Debug for Codecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.custom.keys().collect();
        ids.sort();
        f.debug_struct("Codecs").field("custom", &ids).finish()
    }
}

impl Codecs {
    /// Adds a codec of your own.
    ///
    /// # Errors
    ///
    /// [`CodecError::Unsupported`] if its id is a built-in one.
    pub fn register(&mut self, codec: impl Codec) -> Result<(), CodecError> {
        let id = codec.id();
        if id.is_builtin() {
            return Err(CodecError::Unsupported {
                codec: id,
                reason: "this id belongs to a built-in codec; pick another byte".into(),
            });
        }
        Arc::make_mut(&mut self.custom).insert(id, Arc::new(codec));
        Ok(())
    }

    /// Whether a body with this codec id can be decoded here.
    pub fn contains(&self, id: CodecId) -> bool {
        id.is_builtin() || self.custom.contains_key(&id)
    }

    /// The codec's name, for logs.
    pub fn name(&self, id: CodecId) -> Option<&'static str> {
        Some(match id {
            CodecId::JSON => "json",
            CodecId::PROTOBUF => "protobuf",
            CodecId::STRING => "string",
            CodecId::BINCODE => "bincode",
            other => return self.custom.get(&other).map(|c| c.name()),
        })
    }

    fn custom(&self, id: CodecId) -> Result<&Arc<dyn Codec>, CodecError> {
        self.custom.get(&id).ok_or(CodecError::UnknownCodec(id))
    }
}

/// A value that can be written as a body.
///
/// Implemented for every `serde::Serialize` type (codecs `j`, `s`, `b` and
/// registered ones) and for [`Proto`] messages (codec `p`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a teleport body",
    note = "derive `serde::Serialize` for it, or wrap a prost message in `teleport::codec::Proto`"
)]
pub trait Encode {
    /// Appends the encoding of `self` with `codec` to `out` (no codec id byte, no gzip).
    fn encode_body(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;

    /// Like [`Encode::encode_body`], but `out` may not grow past `limit`
    /// bytes: [`CodecError::TooLarge`] otherwise. The built-in codecs stop
    /// as soon as the limit is passed, so a value far over the limit costs
    /// neither the time nor the memory of encoding it whole; this default
    /// encodes whole, then checks.
    fn encode_body_within(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CodecError> {
        self.encode_body(codec, codecs, out)?;
        if out.len() > limit {
            return Err(CodecError::TooLarge {
                len: out.len(),
                limit,
            });
        }
        Ok(())
    }

    /// The payload as shared bytes, for a type that is its bytes
    /// ([`RawBody`]): the session then writes them without encoding or
    /// copying them into a body first. `None` (the default) encodes.
    #[doc(hidden)]
    fn as_payload(&self) -> Option<&Bytes> {
        None
    }
}

/// A writer into a `Vec` that refuses to grow it past a limit, so that an
/// encoder stops at the first byte over it.
pub(crate) struct Limited<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    /// The length the output would have reached, once a write was refused.
    reached: Option<usize>,
}

impl<'a> Limited<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, limit: usize) -> Self {
        Limited {
            out,
            limit,
            reached: None,
        }
    }

    /// Turns an encoder's error into [`CodecError::TooLarge`] when it was
    /// this writer that stopped it.
    pub(crate) fn explain(&self, e: CodecError) -> CodecError {
        match self.reached {
            Some(len) => CodecError::TooLarge {
                len,
                limit: self.limit,
            },
            None => e,
        }
    }
}

impl Limited<'_> {
    /// Appends all of `buf`, or refuses it whole if it would pass the limit.
    #[inline(always)]
    fn put(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let len = self.out.len() + buf.len();
        if len > self.limit {
            return Err(self.refuse(len));
        }
        // serde_json writes quotes, brackets and separators a byte at a
        // time: a push, not a `memcpy` call.
        if let [byte] = buf {
            self.out.push(*byte);
        } else {
            self.out.extend_from_slice(buf);
        }
        Ok(())
    }

    /// Records the length the output would have reached, for
    /// [`Limited::explain`], and stops the encoder.
    #[cold]
    fn refuse(&mut self, len: usize) -> std::io::Error {
        self.reached = Some(len);
        std::io::Error::other("over the frame size limit")
    }
}

impl std::io::Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    /// What encoders call (serde_json for every piece it writes): one
    /// check and one append, instead of `write_all`'s loop over `write`.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.put(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value that can be read from a body.
///
/// Implemented for every `serde::de::DeserializeOwned` type and for [`Proto`] messages.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be received as a teleport body",
    note = "derive `serde::Deserialize` for it, or wrap a prost message in `teleport::codec::Proto`"
)]
pub trait Decode: Sized {
    /// Decodes a value from `bytes` (no codec id byte, already decompressed).
    fn decode_body(codec: CodecId, codecs: &Codecs, bytes: &[u8]) -> Result<Self, CodecError>;

    /// Decodes a value from an uncompressed body section (codec id byte
    /// first) held in shared bytes: a type that can keep a slice of them
    /// instead of copying ([`RawBody`]) overrides this. The default decodes
    /// the payload with [`Decode::decode_body`].
    #[doc(hidden)]
    fn decode_section_bytes(
        codec: CodecId,
        codecs: &Codecs,
        section: &Bytes,
    ) -> Result<Self, CodecError> {
        Self::decode_body(codec, codecs, &section[1..])
    }

    /// The value of a frame with no body, when the type has its own (the
    /// default decodes JSON `null`, which fits `()` and `Option<T>`).
    #[doc(hidden)]
    fn decode_no_body() -> Option<Self> {
        None
    }
}

/// `bytes` as text, for the codecs that check UTF-8 themselves (bincode's
/// body of one string, the string codec): simdutf8 checks 64 bytes per
/// step where std's checker takes 16 (a 64 KiB string: about 28,000
/// instructions with std's). A failure is checked again by std, for the
/// error that says where the bad byte is.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes))
}

/// Lets an unsized `T: Serialize` be seen as `&dyn erased_serde::Serialize`.
pub(crate) struct Sized_<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Sized_<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Serialize + ?Sized> Encode for T {
    fn encode_body(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match codec {
            CodecId::JSON => json::encode(self, out),
            CodecId::BINCODE => bincode::encode(self, out),
            CodecId::STRING => string::encode(self, out),
            CodecId::PROTOBUF => Err(CodecError::Unsupported {
                codec,
                reason: "this is a serde type, not a protobuf message; wrap a prost message in teleport::codec::Proto or pick 'j', 's' or 'b'".into(),
            }),
            other => codecs.custom(other)?.encode(&Sized_(self), out),
        }
    }

    fn encode_body_within(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CodecError> {
        if codec == CodecId::BINCODE {
            return bincode::encode_within(self, out, limit);
        }
        let mut limited = Limited::new(out, limit);
        let encoded = match codec {
            CodecId::JSON => json::encode(self, &mut limited),
            _ => {
                // The string codec and registered codecs encode whole.
                self.encode_body(codec, codecs, out)?;
                if out.len() > limit {
                    return Err(CodecError::TooLarge {
                        len: out.len(),
                        limit,
                    });
                }
                return Ok(());
            }
        };
        encoded.map_err(|e| limited.explain(e))
    }
}

impl<T: DeserializeOwned> Decode for T {
    fn decode_body(codec: CodecId, codecs: &Codecs, bytes: &[u8]) -> Result<Self, CodecError> {
        match codec {
            CodecId::JSON => json::decode(bytes),
            CodecId::BINCODE => bincode::decode(bytes),
            CodecId::STRING => string::decode(bytes),
            CodecId::PROTOBUF => Err(CodecError::Unsupported {
                codec,
                reason: "the body is protobuf but the expected type is a serde type; receive it as teleport::codec::Proto<M>".into(),
            }),
            other => {
                let c = codecs.custom(other)?;
                let mut value = None;
                c.decode(bytes, &mut |de| {
                    value = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                })?;
                value.ok_or_else(|| CodecError::decode(c.name(), "the codec produced no value"))
            }
        }
    }
}

/// Encodes a body section: codec id byte, then the value, gzip-compressed
/// unless `gzip` is [`GzipLevel::NONE`].
///
/// # Errors
///
/// The codec's error, or [`CodecError::TooLarge`] when the section passes
/// `limit`.
pub fn encode_section<T: Encode + ?Sized>(
    value: &T,
    codec: CodecId,
    gzip: GzipLevel,
    codecs: &Codecs,
    limit: usize,
) -> Result<Bytes, CodecError> {
    let mut out = Vec::with_capacity(64);
    encode_section_into(value, codec, gzip, codecs, limit, &mut out)?;
    Ok(Bytes::from(out))
}

/// Values smaller than this are encoded as usual by [`take_payload`]'s
/// callers. Handing a buffer over costs a type check and, when the buffer
/// has spare capacity, an allocation for the [`Bytes`] that shares it; at
/// 1 KiB that already saves about 110 instructions per call (a 1 KiB
/// echo, `teleport-bench/percall.sh teleport/bincode 1024 1x64`), and
/// smaller values, encoded at once into a reused buffer, have less to
/// save.
const OWNED_PAYLOAD_MIN: usize = 1024;

/// The body section of a value whose encoding is its own bytes after a
/// short lead, taken out of it without encoding: a `String` in bincode or
/// the string codec, or a `Vec<u8>` in bincode, of [`OWNED_PAYLOAD_MIN`]
/// bytes or more and a section within `limit`. Its buffer becomes the
/// payload (the value is left empty) and is queued as it is: not encoded,
/// and from 8 KiB not copied before the socket either (the session's
/// outbox copies smaller payloads into its write buffer). The bytes are
/// those the codec writes (bincode: the length as a `u64`, little endian,
/// then the bytes).
/// `None`, and the value untouched, for anything else: encode it.
#[inline]
pub(crate) fn take_payload<T: 'static>(
    value: &mut T,
    codec: CodecId,
    limit: usize,
) -> Option<(crate::frame::Lead, Bytes)> {
    use crate::frame::Lead;
    let fits = |len: usize| len >= OWNED_PAYLOAD_MIN && len.saturating_add(9) <= limit;
    let lead = |len: usize| match codec {
        CodecId::BINCODE => Lead::with_prefix(codec.0, (len as u64).to_le_bytes()),
        _ => Lead::codec(codec.0),
    };
    let any: &mut dyn std::any::Any = value;
    if let Some(text) = any.downcast_mut::<String>() {
        if matches!(codec, CodecId::BINCODE | CodecId::STRING) && fits(text.len()) {
            let text = std::mem::take(text);
            return Some((lead(text.len()), Bytes::from(text.into_bytes())));
        }
    } else if let Some(bytes) = any.downcast_mut::<Vec<u8>>() {
        if codec == CodecId::BINCODE && fits(bytes.len()) {
            let bytes = std::mem::take(bytes);
            return Some((lead(bytes.len()), Bytes::from(bytes)));
        }
    }
    None
}

/// [`encode_section`] appended to `out` (which may already hold a frame
/// header): the section alone is held to `limit`. On error `out` holds
/// what it held before.
pub(crate) fn encode_section_into<T: Encode + ?Sized>(
    value: &T,
    codec: CodecId,
    gzip: GzipLevel,
    codecs: &Codecs,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    let result = encode_section_at(value, codec, gzip, codecs, limit, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_section_at<T: Encode + ?Sized>(
    value: &T,
    codec: CodecId,
    gzip: GzipLevel,
    codecs: &Codecs,
    limit: usize,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), CodecError> {
    // What the codecs check is the length of `out`, header included.
    let relative = |e: CodecError| match e {
        CodecError::TooLarge { len, limit } if start > 0 => CodecError::TooLarge {
            len: len.saturating_sub(start),
            limit: limit.saturating_sub(start),
        },
        other => other,
    };
    out.push(codec.0);
    if gzip.is_none() {
        // The codec id byte counts towards the section's size.
        value
            .encode_body_within(codec, codecs, out, limit.saturating_add(start))
            .map_err(relative)?;
    } else {
        // The receiver inflates at most `limit` bytes, so the plain body
        // has the same limit as the compressed one.
        let mut plain = Vec::with_capacity(64);
        value.encode_body_within(codec, codecs, &mut plain, limit)?;
        gzip::compress(gzip, &plain, out)?;
    }
    let len = out.len() - start;
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    Ok(())
}

/// Decodes a body section (codec id byte first; decompressed first when
/// `gzip` is not 0). An empty section (no body) decodes like JSON `null`,
/// so it fits `()` and `Option<T>`.
///
/// # Errors
///
/// [`CodecError::UnknownCodec`] for an id that is neither built in nor
/// registered; otherwise the codec's or gzip's error.
pub fn decode_section<T: Decode>(
    section: &[u8],
    gzip: i32,
    codecs: &Codecs,
    limit: usize,
) -> Result<T, CodecError> {
    let Some((&id, payload)) = section.split_first() else {
        if let Some(value) = T::decode_no_body() {
            return Ok(value);
        }
        return T::decode_body(CodecId::JSON, codecs, b"null");
    };
    let codec = CodecId(id);
    if !codecs.contains(codec) {
        return Err(CodecError::UnknownCodec(codec));
    }
    if gzip == 0 {
        T::decode_body(codec, codecs, payload)
    } else {
        let plain = gzip::decompress(payload, limit)?;
        T::decode_body(codec, codecs, &plain)
    }
}

/// [`decode_section`] of a section held in shared bytes: an uncompressed
/// [`RawBody`] keeps a slice of them instead of a copy.
///
/// `#[inline]`: every typed handler's argument comes through it, and as a
/// call of its own it cost about 40 instructions per call
/// (`percall.sh teleport/service 16 1x64`).
#[inline]
pub(crate) fn decode_section_bytes<T: Decode>(
    section: &Bytes,
    gzip: i32,
    codecs: &Codecs,
    limit: usize,
) -> Result<T, CodecError> {
    match section.first() {
        Some(&id) if gzip == 0 => {
            let codec = CodecId(id);
            if !codecs.contains(codec) {
                return Err(CodecError::UnknownCodec(codec));
            }
            T::decode_section_bytes(codec, codecs, section)
        }
        _ => decode_section(section, gzip, codecs, limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        y: String,
    }

    fn round<T: Encode + Decode + PartialEq + fmt::Debug>(v: T, codec: CodecId, gzip: i32) {
        let codecs = Codecs::default();
        let section =
            encode_section(&v, codec, GzipLevel::new(gzip).unwrap(), &codecs, 1 << 20).unwrap();
        assert_eq!(section[0], codec.0);
        let back: T = decode_section(&section, gzip, &codecs, 1 << 20).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn serde_codecs_round_trip_with_and_without_gzip() {
        for gzip in [0, 1, 5, 9] {
            round(
                Point {
                    x: 3,
                    y: "y".into(),
                },
                CodecId::JSON,
                gzip,
            );
            round(
                Point {
                    x: 3,
                    y: "y".into(),
                },
                CodecId::BINCODE,
                gzip,
            );
            round("plain text".to_string(), CodecId::STRING, gzip);
            round(42i64, CodecId::STRING, gzip);
        }
    }

    /// A large `String` or `Vec<u8>` handed over as its own bytes is the
    /// very section the codec would have encoded; anything else (small,
    /// another type or codec, over the limit) comes back to be encoded.
    #[test]
    fn owned_payloads_are_the_bytes_the_codec_would_write() {
        let codecs = Codecs::default();
        let text = "t".repeat(OWNED_PAYLOAD_MIN + 5);
        let bytes = vec![7u8; OWNED_PAYLOAD_MIN * 3];
        let section =
            |lead: crate::frame::Lead, payload: Bytes| [lead.as_slice(), &payload[..]].concat();
        for codec in [CodecId::BINCODE, CodecId::STRING] {
            let encoded = encode_section(&text, codec, GzipLevel::NONE, &codecs, 1 << 20).unwrap();
            let (lead, payload) = take_payload(&mut text.clone(), codec, 1 << 20).unwrap();
            assert_eq!(section(lead, payload), encoded, "String in {codec:?}");
        }
        let encoded =
            encode_section(&bytes, CodecId::BINCODE, GzipLevel::NONE, &codecs, 1 << 20).unwrap();
        let (lead, payload) = take_payload(&mut bytes.clone(), CodecId::BINCODE, 1 << 20).unwrap();
        assert_eq!(section(lead, payload), encoded, "Vec<u8> in bincode");

        /// What is left to encode after `take_payload`: `None` if it took the value.
        fn left<T: Clone + 'static>(value: &T, codec: CodecId, limit: usize) -> Option<T> {
            let mut value = value.clone();
            take_payload(&mut value, codec, limit)
                .is_none()
                .then_some(value)
        }
        let small = "s".repeat(OWNED_PAYLOAD_MIN - 1);
        assert_eq!(left(&small, CodecId::BINCODE, 1 << 20), Some(small));
        assert_eq!(
            left(&text, CodecId::JSON, 1 << 20).as_ref(),
            Some(&text),
            "JSON quotes and escapes"
        );
        assert_eq!(
            left(&bytes, CodecId::STRING, 1 << 20).as_ref(),
            Some(&bytes),
            "the string codec refuses sequences"
        );
        assert_eq!(
            left(&text, CodecId::BINCODE, text.len()).as_ref(),
            Some(&text),
            "over the limit: encoded, and refused with the sizes"
        );
        assert_eq!(left(&42u64, CodecId::BINCODE, 1 << 20), Some(42));
    }

    #[test]
    fn string_codec_writes_text_unquoted() {
        let mut out = Vec::new();
        "hello"
            .encode_body(CodecId::STRING, &Codecs::default(), &mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let err = Point {
            x: 1,
            y: "a".into(),
        }
        .encode_body(CodecId::STRING, &Codecs::default(), &mut out)
        .unwrap_err();
        assert!(matches!(
            err,
            CodecError::Encode {
                codec: "string",
                ..
            }
        ));
    }

    /// Text of every length around simdutf8's 64-byte step decodes, and
    /// bad text gets std's error, which says where the bad byte is.
    #[test]
    fn string_codec_checks_text_and_says_where_it_is_bad() {
        let codecs = Codecs::default();
        for len in [0, 1, 63, 64, 65, 200, 70_000] {
            let text = "é".repeat(len);
            let back: String =
                String::decode_body(CodecId::STRING, &codecs, text.as_bytes()).unwrap();
            assert_eq!(back, text, "{len} characters");
        }
        let mut bad = "x".repeat(200).into_bytes();
        bad[130] = 0xff;
        let err = String::decode_body(CodecId::STRING, &codecs, &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            CodecError::decode("string", std::str::from_utf8(&bad).unwrap_err()).to_string()
        );
        assert!(err.to_string().contains("index 130"), "{err}");
    }

    #[test]
    fn serde_types_refuse_protobuf_with_advice() {
        let err = encode_section(
            &1u8,
            CodecId::PROTOBUF,
            GzipLevel::NONE,
            &Codecs::default(),
            100,
        )
        .unwrap_err();
        assert!(err.to_string().contains("teleport::codec::Proto"));
    }

    #[test]
    fn unknown_codec_ids_are_reported() {
        let err = decode_section::<String>(b"zabc", 0, &Codecs::default(), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown body codec id 'z': register it with Codecs::register or use 'j', 'p', 's' or 'b'"
        );
    }

    #[test]
    fn empty_section_decodes_as_null() {
        let v: Option<u32> = decode_section(b"", 0, &Codecs::default(), 100).unwrap();
        assert_eq!(v, None);
        let () = decode_section(b"", 0, &Codecs::default(), 100).unwrap();
    }

    #[test]
    fn sections_over_the_limit_are_refused() {
        let err = encode_section(
            &vec![0u8; 100],
            CodecId::BINCODE,
            GzipLevel::NONE,
            &Codecs::default(),
            50,
        )
        .unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { limit: 50, .. }));
    }

    #[test]
    fn a_json_section_fills_its_limit_exactly_and_one_byte_less_is_refused() {
        fn check<T: Encode + Serialize>(value: &T) {
            let codecs = Codecs::default();
            let json = serde_json::to_vec(value).unwrap();
            let exact = 1 + json.len();
            let encode = |limit| {
                let mut out = b"head".to_vec();
                let result = encode_section_into(
                    value,
                    CodecId::JSON,
                    GzipLevel::NONE,
                    &codecs,
                    limit,
                    &mut out,
                );
                (result, out)
            };

            let (result, out) = encode(exact);
            result.unwrap();
            assert_eq!(out[..5], *b"headj");
            assert_eq!(out[5..], json[..], "the bytes serde_json writes");

            let (result, out) = encode(exact - 1);
            let err = result.unwrap_err();
            assert!(
                matches!(err, CodecError::TooLarge { limit, .. } if limit == exact - 1),
                "{err}"
            );
            assert_eq!(out, b"head", "nothing of a refused section is left");
        }
        // Escapes, a multi-byte character, separators and a number: the
        // encoder's one-byte and longer writes both.
        check(&(vec!["a\"b".to_owned(), "é\n".to_owned()], 12345, ()));
        // A string with nothing to escape: the JSON codec's short path.
        check(&"plain text".to_owned());
        check(&"needs \"escaping\"".to_owned());
    }
}
