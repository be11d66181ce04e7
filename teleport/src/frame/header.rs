//! The packet header: sequence number, kind, URI, gzip level and status.
//!
//! (A quarter of this file is its tests, which pin the bytes Go writes.)
//!
//! The header is encoded with its own codec, named by the byte in front of
//! it: `p` (protobuf, what Go Teleport's samples use) or `j` (JSON). Both
//! follow proto3 rules: fields holding their zero value are left out, so the
//! first pull of a session (seq 0) carries no `seq` field at all.
//!
//! | field         | proto | type   |
//! |---------------|-------|--------|
//! | `seq`         | 1     | uint64 |
//! | `type`        | 2     | int32  |
//! | `uri`         | 3     | string |
//! | `gzip`        | 4     | int32  |
//! | `status_code` | 5     | int32  |
//! | `status`      | 6     | string |
//! | `timeout_ms`  | 15    | uint64 | (teleport's extension: a pull's remaining time; Go v2.0 skips it)

use bytes::{BufMut, Bytes, BytesMut};
pub use bytestring::ByteString;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::FrameError;
use super::codec::FrameBuf;
use crate::router::uri;
use crate::status::Status;

/// What a packet is: a pull, its reply, or a one-way push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A request that expects a reply (wire value 1).
    Pull,
    /// The answer to a pull, matched to it by `seq` (wire value 2).
    Reply,
    /// A one-way message (wire value 4 in v2.0).
    Push,
    /// Any other wire value; answered with status 410.
    Other(i32),
}

impl Kind {
    /// The wire value of a pull.
    pub const PULL: i32 = 1;
    /// The wire value of a reply.
    pub const REPLY: i32 = 2;
    /// The wire value of a push in v2.0 (v2.1+ moved it to 3).
    pub const PUSH: i32 = 4;

    /// The kind for a wire value.
    pub fn from_wire(v: i32) -> Kind {
        match v {
            Self::PULL => Kind::Pull,
            Self::REPLY => Kind::Reply,
            Self::PUSH => Kind::Push,
            other => Kind::Other(other),
        }
    }

    /// The wire value of this kind.
    pub fn to_wire(self) -> i32 {
        match self {
            Kind::Pull => Self::PULL,
            Kind::Reply => Self::REPLY,
            Kind::Push => Self::PUSH,
            Kind::Other(v) => v,
        }
    }
}

/// A header codec: how the header bytes of a frame are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HeaderCodec {
    /// Protobuf (`p`), the default and what Go Teleport's samples configure.
    #[default]
    Protobuf,
    /// JSON (`j`), the Go socket layer's built-in default.
    Json,
}

impl HeaderCodec {
    /// The id byte in front of the header.
    pub fn id(self) -> u8 {
        match self {
            HeaderCodec::Protobuf => b'p',
            HeaderCodec::Json => b'j',
        }
    }

    /// The header codec for an id byte.
    pub fn from_id(id: u8) -> Option<HeaderCodec> {
        match id {
            b'p' => Some(HeaderCodec::Protobuf),
            b'j' => Some(HeaderCodec::Json),
            _ => None,
        }
    }
}

/// A packet header.
///
/// ```
/// use teleport::frame::{Header, Kind};
///
/// let h = Header::new(Kind::Pull, 7, "/home/add?x=1");
/// assert_eq!(h.path(), "/home/add");
/// assert_eq!(h.query(), "x=1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Sequence number chosen by the sender of a pull or push; a reply copies it.
    pub seq: u64,
    /// Pull, reply, push or an unknown type.
    pub kind: Kind,
    /// Path with optional query, e.g. `/home/add?x=1`. A [`ByteString`]
    /// (it derefs to `&str`): a received header's URI shares the bytes it
    /// was read in, so decoding a header copies no string.
    pub uri: ByteString,
    /// Gzip level of the body: 0 none, 1..=9, -1 default, -2 Huffman only.
    pub gzip: i32,
    /// Status code (replies only; 0 elsewhere).
    pub status_code: i32,
    /// Status text (replies only).
    pub status: ByteString,
    /// On a pull: how many milliseconds the caller will still wait for the
    /// reply; 0 for no deadline. Teleport's extension (protobuf field 15,
    /// JSON key `timeout_ms`), which Go v2.0 peers skip: see
    /// `docs/PROTOCOL.md`.
    pub timeout_ms: u64,
}

impl Default for Kind {
    fn default() -> Self {
        Kind::Other(0)
    }
}

impl Header {
    /// A header of a kind, seq and URI, with no gzip and no status.
    pub fn new(kind: Kind, seq: u64, uri: impl Into<ByteString>) -> Header {
        Header {
            seq,
            kind,
            uri: uri.into(),
            ..Header::default()
        }
    }

    /// The reply header for this pull: same seq, URI and gzip level, with a status.
    pub fn reply(&self, status: &Status) -> Header {
        Header {
            seq: self.seq,
            kind: Kind::Reply,
            uri: self.uri.clone(),
            gzip: self.gzip,
            status_code: status.code(),
            status: text(status.text()),
            timeout_ms: 0,
        }
    }

    /// The path part of the URI (before `?`).
    pub fn path(&self) -> &str {
        uri::split(&self.uri).0
    }

    /// The query part of the URI (after `?`, empty if none).
    pub fn query(&self) -> &str {
        uri::split(&self.uri).1
    }

    /// The status of a reply.
    pub fn status(&self) -> Status {
        Status::new(self.status_code, String::from(self.status.clone()))
    }

    /// Appends the header encoded with `codec` to `dst` (without the codec id byte).
    pub fn encode(&self, codec: HeaderCodec, dst: &mut BytesMut) {
        let header = self.as_ref();
        dst.reserve(header.max_encoded_len());
        header.encode(codec, dst);
    }

    /// The header as borrowed parts, to encode without copying its strings.
    pub(crate) fn as_ref(&self) -> HeaderRef<'_> {
        HeaderRef {
            seq: self.seq,
            kind: self.kind,
            uri: &self.uri,
            gzip: self.gzip,
            status_code: self.status_code,
            status: &self.status,
            timeout_ms: self.timeout_ms,
        }
    }

    /// Decodes a header encoded with `codec` (without the codec id byte).
    ///
    /// # Errors
    ///
    /// [`FrameError::MalformedHeader`] if the bytes are not a valid header,
    /// including a URI or status that is not UTF-8.
    pub fn decode(codec: HeaderCodec, src: &[u8]) -> Result<Header, FrameError> {
        let src = Bytes::copy_from_slice(src);
        Header::decode_shared(codec, &src, 0..src.len())
    }

    /// Decodes the header in `src[range]`, its URI and status sharing
    /// `src`'s bytes (no string is copied). What a session does with every
    /// frame it reads.
    pub(crate) fn decode_shared(
        codec: HeaderCodec,
        src: &Bytes,
        range: std::ops::Range<usize>,
    ) -> Result<Header, FrameError> {
        match codec {
            HeaderCodec::Protobuf => {
                if let Some(header) = decode_proto_fast(src, range.clone()) {
                    return Ok(header);
                }
                let p =
                    ProtoHeader::decode(&src[range]).map_err(|e| FrameError::MalformedHeader {
                        codec: 'p',
                        reason: e.to_string(),
                    })?;
                Ok(p.into())
            }
            HeaderCodec::Json => {
                let j: JsonHeaderOwned = serde_json::from_slice(&src[range]).map_err(|e| {
                    FrameError::MalformedHeader {
                        codec: 'j',
                        reason: e.to_string(),
                    }
                })?;
                Ok(Header {
                    seq: j.seq,
                    kind: Kind::from_wire(j.kind),
                    uri: j.uri.into(),
                    gzip: j.gzip,
                    status_code: j.status_code,
                    status: text(&j.status),
                    timeout_ms: j.timeout_ms,
                })
            }
        }
    }

    /// Copies this header's strings out of the buffer they were
    /// read in: for a header kept long (an incoming call's, held by its
    /// handler), so that it does not keep that whole read buffer alive.
    /// The URI is copied into `spare`'s storage when nobody else holds it
    /// (a finished call's URI), else into a new allocation.
    pub(crate) fn detach(&mut self, spare: ByteString) {
        self.uri = if spare == self.uri {
            // Calls on a session mostly repeat a few URIs: a spare that
            // holds this very URI is kept, with no copy and no UTF-8 check.
            spare
        } else {
            match spare.into_bytes().try_into_mut() {
                Ok(mut storage) => {
                    storage.clear();
                    storage.extend_from_slice(self.uri.as_bytes());
                    // Copied from a `str`: always UTF-8.
                    ByteString::try_from(storage.freeze()).unwrap_or_default()
                }
                Err(_) => ByteString::from(&*self.uri),
            }
        };
        if !self.status.is_empty() {
            self.status = text(&self.status);
        }
    }
}

/// A status text as a [`ByteString`]: the common "OK" without an allocation.
fn text(s: &str) -> ByteString {
    match s {
        "OK" => ByteString::from_static("OK"),
        "" => ByteString::new(),
        other => ByteString::from(other),
    }
}

// Splitting a URI into path and query is a URI rule: it lives in
// `router::uri` with the others. The old name stays for the frame module's
// re-export.
pub(crate) use crate::router::uri::split as split_uri;

/// Decodes the common protobuf header (only the six known fields, each with
/// its own wire type) without prost's generic field machinery: this runs
/// for every frame. Anything else (unknown fields, wrong wire types, bad
/// varints or UTF-8) returns `None`, and prost decodes it, errors included,
/// so the result is always the one prost gives.
fn decode_proto_fast(whole: &Bytes, range: std::ops::Range<usize>) -> Option<Header> {
    /// Most of a header's varints are one byte (tags, kind, gzip) or two
    /// or three (a status code, a sequence number, a timeout in ms): those
    /// are read inline; longer ones go to prost's decoder. `at` moves past it.
    #[inline(always)]
    fn varint(src: &[u8], at: &mut usize) -> Option<u64> {
        let i = *at;
        let b0 = *src.get(i)?;
        if b0 < 0x80 {
            *at = i + 1;
            return Some(u64::from(b0));
        }
        let b1 = *src.get(i + 1)?;
        if b1 < 0x80 {
            *at = i + 2;
            return Some(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
        }
        let b2 = *src.get(i + 2)?;
        if b2 < 0x80 {
            *at = i + 3;
            return Some(u64::from(b0 & 0x7f) | u64::from(b1 & 0x7f) << 7 | u64::from(b2) << 14);
        }
        let mut rest = &src[i..];
        let value = prost::encoding::decode_varint(&mut rest).ok()?;
        *at = src.len() - rest.len();
        Some(value)
    }
    /// A length-delimited field's range in `src`; `at` moves past it.
    #[inline(always)]
    fn field(src: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
        let len = usize::try_from(varint(src, at)?).ok()?;
        let start = *at;
        let end = start.checked_add(len).filter(|&end| end <= src.len())?;
        *at = end;
        Some(start..end)
    }
    let base = range.start;
    let src = whole.get(range)?;
    // The fields as they come (the last of a repeated one wins, as in
    // prost); the strings are sliced out of `whole` once, at the end.
    let (mut seq, mut kind, mut gzip, mut status_code, mut timeout_ms) = (0, 0i32, 0, 0, 0);
    let (mut uri, mut status) = (0..0, 0..0);
    let mut at = 0;
    while at < src.len() {
        // Field number << 3 | wire type (0 varint, 2 length-delimited): one
        // byte for every field here; anything else is left to prost.
        let key = src[at];
        at += 1;
        match key {
            0x08 => seq = varint(src, &mut at)?,
            0x10 => kind = varint(src, &mut at)? as i32,
            0x1a => uri = field(src, &mut at)?,
            0x20 => gzip = varint(src, &mut at)? as i32,
            0x28 => status_code = varint(src, &mut at)? as i32,
            0x32 => status = field(src, &mut at)?,
            0x78 => timeout_ms = varint(src, &mut at)?,
            _ => return None,
        }
    }
    Some(Header {
        seq,
        kind: Kind::from_wire(kind),
        uri: string(whole, base, src, uri)?,
        gzip,
        status_code,
        status: string(whole, base, src, status)?,
        timeout_ms,
    })
}

/// The string field at `range` of a header `src` that starts at `base` in
/// `whole`: a slice of `whole` (UTF-8 checked once, by `ByteString`), or the
/// static "OK" of every successful reply.
#[inline(always)]
fn string(
    whole: &Bytes,
    base: usize,
    src: &[u8],
    range: std::ops::Range<usize>,
) -> Option<ByteString> {
    match &src[range.clone()] {
        b"" => Some(ByteString::new()),
        b"OK" => Some(ByteString::from_static("OK")),
        _ => ByteString::try_from(whole.slice(base + range.start..base + range.end)).ok(),
    }
}

/// The protobuf form of the header, as Go Teleport's gogo-protobuf defines it.
#[derive(Clone, PartialEq, Message)]
struct ProtoHeader {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(int32, tag = "2")]
    r#type: i32,
    #[prost(string, tag = "3")]
    uri: String,
    #[prost(int32, tag = "4")]
    gzip: i32,
    #[prost(int32, tag = "5")]
    status_code: i32,
    #[prost(string, tag = "6")]
    status: String,
    #[prost(uint64, tag = "15")]
    timeout_ms: u64,
}

impl From<ProtoHeader> for Header {
    fn from(p: ProtoHeader) -> Header {
        Header {
            seq: p.seq,
            kind: Kind::from_wire(p.r#type),
            uri: p.uri.into(),
            gzip: p.gzip,
            status_code: p.status_code,
            status: text(&p.status),
            timeout_ms: p.timeout_ms,
        }
    }
}

/// A header whose strings are borrowed: what the session encodes, so that
/// a reply can reuse the URI of the pull it answers and a status text its
/// static form, without copying either per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderRef<'a> {
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
    pub(crate) uri: &'a str,
    pub(crate) gzip: i32,
    pub(crate) status_code: i32,
    pub(crate) status: &'a str,
    pub(crate) timeout_ms: u64,
}

impl HeaderRef<'_> {
    /// The most bytes the protobuf form of this header can take: the room
    /// a caller of [`HeaderRef::encode`] reserves, so that the encoder
    /// never grows the buffer (a JSON header grows it itself).
    pub(crate) fn max_encoded_len(&self) -> usize {
        /// The varints of five fields of 11 bytes (a key and a 10-byte
        /// varint) and two string keys with their lengths, at most.
        const FIXED: usize = 77;
        FIXED + self.uri.len() + self.status.len()
    }

    /// Appends the header encoded with `codec` to `dst` (without the codec id byte).
    pub(crate) fn encode(&self, codec: HeaderCodec, dst: &mut impl FrameBuf) {
        match codec {
            HeaderCodec::Protobuf => self.encode_proto(dst),
            HeaderCodec::Json => {
                let json = JsonHeader {
                    seq: self.seq,
                    kind: self.kind.to_wire(),
                    uri: self.uri,
                    gzip: self.gzip,
                    status_code: self.status_code,
                    status: self.status,
                    timeout_ms: self.timeout_ms,
                };
                // Serializing a struct of integers and strings into memory cannot fail.
                let _ = serde_json::to_writer(dst.writer(), &json);
            }
        }
    }

    /// Protobuf, zero values left out, as prost encodes it, byte by byte
    /// into `dst`, whose caller reserved room for the longest form
    /// ([`HeaderRef::max_encoded_len`]; each byte a store and a length
    /// update, each string copied once). This runs for every frame
    /// written; writing into zero-filled room and cutting off what was left
    /// over cost about 60 instructions more per header (the fill and a
    /// bounds check per byte).
    fn encode_proto(&self, dst: &mut impl FrameBuf) {
        #[inline(always)]
        fn varint(dst: &mut impl FrameBuf, mut v: u64) {
            while v >= 0x80 {
                dst.put_u8((v as u8) | 0x80);
                v >>= 7;
            }
            dst.put_u8(v as u8);
        }
        #[inline(always)]
        fn field(dst: &mut impl FrameBuf, key: u8, v: u64) {
            dst.put_u8(key);
            varint(dst, v);
        }
        #[inline(always)]
        fn string(dst: &mut impl FrameBuf, key: u8, text: &str) {
            field(dst, key, text.len() as u64);
            dst.put_slice(text.as_bytes());
        }
        // Keys are field number << 3 | wire type (0 varint, 2 bytes);
        // int32 values are sign-extended to 64 bits, as in prost.
        if self.seq != 0 {
            field(dst, 0x08, self.seq);
        }
        let kind = self.kind.to_wire();
        if kind != 0 {
            field(dst, 0x10, i64::from(kind) as u64);
        }
        if !self.uri.is_empty() {
            string(dst, 0x1a, self.uri);
        }
        if self.gzip != 0 {
            field(dst, 0x20, i64::from(self.gzip) as u64);
        }
        if self.status_code != 0 {
            field(dst, 0x28, i64::from(self.status_code) as u64);
        }
        if !self.status.is_empty() {
            string(dst, 0x32, self.status);
        }
        if self.timeout_ms != 0 {
            field(dst, 0x78, self.timeout_ms);
        }
    }
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// The JSON form, with Go's key names and order, zero values omitted.
#[derive(Serialize)]
struct JsonHeader<'a> {
    #[serde(skip_serializing_if = "is_zero_u64")]
    seq: u64,
    #[serde(rename = "type", skip_serializing_if = "is_zero_i32")]
    kind: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    uri: &'a str,
    #[serde(skip_serializing_if = "is_zero_i32")]
    gzip: i32,
    #[serde(skip_serializing_if = "is_zero_i32")]
    status_code: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    status: &'a str,
    #[serde(skip_serializing_if = "is_zero_u64")]
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct JsonHeaderOwned {
    #[serde(default)]
    seq: u64,
    #[serde(rename = "type", default)]
    kind: i32,
    #[serde(default)]
    uri: String,
    #[serde(default)]
    gzip: i32,
    #[serde(default)]
    status_code: i32,
    #[serde(default)]
    status: String,
    #[serde(default)]
    timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header decoded from a read buffer of 64 KiB, and where that
    /// buffer's bytes lie.
    fn read_header() -> (Header, std::ops::Range<usize>) {
        let mut buf = BytesMut::new();
        Header::new(Kind::Pull, 7, "/svc/echo?x=1").encode(HeaderCodec::Protobuf, &mut buf);
        let len = buf.len();
        buf.resize(64 * 1024, 0);
        let whole = buf.freeze();
        let at = whole.as_ptr() as usize;
        let header = Header::decode_shared(HeaderCodec::Protobuf, &whole, 0..len).unwrap();
        (header, at..at + whole.len())
    }

    #[test]
    fn a_detached_header_keeps_nothing_of_its_read_buffer() {
        let (header, read) = read_header();
        assert!(read.contains(&(header.uri.as_ptr() as usize)));
        // A free spare's storage is the one used: a spare holding the same
        // URI is kept as it is, one holding another URI gets this one.
        for spare in ["/svc/echo?x=1", "/other/uri/that/is/long"] {
            let (mut header, read) = read_header();
            let spare = ByteString::from(spare);
            let spare_at = spare.as_ptr();
            header.detach(spare);
            assert_eq!(&*header.uri, "/svc/echo?x=1");
            assert_eq!(header.uri.as_ptr(), spare_at);
            assert!(!read.contains(&(header.uri.as_ptr() as usize)));
        }
        // A spare someone else holds is left to them.
        let (mut header, read) = read_header();
        let held = ByteString::from("/held");
        header.detach(held.clone());
        assert_eq!(&*header.uri, "/svc/echo?x=1");
        assert_eq!(&*held, "/held");
        assert!(!read.contains(&(header.uri.as_ptr() as usize)));
    }

    #[test]
    fn protobuf_headers_are_the_bytes_prost_writes() {
        let values_u64 = [0, 1, 127, 128, 300, 1 << 21, u64::MAX];
        let values_i32 = [0, 1, -1, -2, 9, 200, 599, i32::MAX, i32::MIN];
        let long_uri = format!("/a/{}?q=1", "x".repeat(300));
        for (i, &seq) in values_u64.iter().enumerate() {
            for (j, &v) in values_i32.iter().enumerate() {
                let h = Header {
                    seq,
                    kind: Kind::from_wire(values_i32[(i + j) % values_i32.len()]),
                    uri: [&long_uri[..], "/home/echo", ""][j % 3].into(),
                    gzip: v,
                    status_code: values_i32[(j + 3) % values_i32.len()],
                    status: ["OK", "", "xerror: ü"][i % 3].into(),
                    timeout_ms: values_u64[(i + j) % values_u64.len()],
                };
                let mut ours = BytesMut::new();
                h.encode(HeaderCodec::Protobuf, &mut ours);
                let prost = ProtoHeader {
                    seq: h.seq,
                    r#type: h.kind.to_wire(),
                    uri: h.uri.to_string(),
                    gzip: h.gzip,
                    status_code: h.status_code,
                    status: h.status.to_string(),
                    timeout_ms: h.timeout_ms,
                }
                .encode_to_vec();
                assert_eq!(&ours[..], &prost[..], "{h:?}");
            }
        }
    }

    fn roundtrip(codec: HeaderCodec, h: &Header) -> Header {
        let mut buf = BytesMut::new();
        h.encode(codec, &mut buf);
        Header::decode(codec, &buf).unwrap()
    }

    /// Go v2.0's header schema: the six fields, nothing else.
    #[derive(Clone, PartialEq, Message)]
    struct V2Header {
        #[prost(uint64, tag = "1")]
        seq: u64,
        #[prost(int32, tag = "2")]
        r#type: i32,
        #[prost(string, tag = "3")]
        uri: String,
        #[prost(int32, tag = "4")]
        gzip: i32,
        #[prost(int32, tag = "5")]
        status_code: i32,
        #[prost(string, tag = "6")]
        status: String,
    }

    #[test]
    fn a_deadline_is_invisible_to_a_v2_decoder_and_absent_when_zero() {
        let mut h = Header::new(Kind::Pull, 3, "/home/echo");
        h.gzip = 5;
        let mut plain = BytesMut::new();
        h.encode(HeaderCodec::Protobuf, &mut plain);
        h.timeout_ms = 1500;
        let mut extended = BytesMut::new();
        h.encode(HeaderCodec::Protobuf, &mut extended);
        assert!(extended.starts_with(&plain), "the extension only appends");
        // proto3 decoders skip unknown fields: a v2.0 peer sees the same header.
        let v2 = V2Header::decode(&extended[..]).unwrap();
        assert_eq!(v2, V2Header::decode(&plain[..]).unwrap());
        assert_eq!(
            (v2.seq, v2.r#type, v2.uri.as_str(), v2.gzip),
            (3, 1, "/home/echo", 5)
        );
        assert_eq!(Header::decode(HeaderCodec::Protobuf, &extended).unwrap(), h);
        assert_eq!(roundtrip(HeaderCodec::Json, &h), h);
        // Go's encoding/json skips unknown keys the same way.
        let mut json = BytesMut::new();
        h.encode(HeaderCodec::Json, &mut json);
        assert!(
            std::str::from_utf8(&json)
                .unwrap()
                .ends_with(r#","timeout_ms":1500}"#)
        );
    }

    #[test]
    fn first_pull_has_no_seq_field_in_protobuf() {
        let h = Header::new(Kind::Pull, 0, "/home/echo");
        let mut buf = BytesMut::new();
        h.encode(HeaderCodec::Protobuf, &mut buf);
        // type=1, uri="/home/echo"; the bytes Go writes.
        assert_eq!(&buf[..], b"\x10\x01\x1a\x0a/home/echo");
    }

    #[test]
    fn json_header_uses_go_keys_and_omits_zeros() {
        let h = Header::new(Kind::Pull, 0, "/echo/str");
        let mut buf = BytesMut::new();
        h.encode(HeaderCodec::Json, &mut buf);
        assert_eq!(&buf[..], br#"{"type":1,"uri":"/echo/str"}"#);
    }

    #[test]
    fn both_codecs_round_trip_every_field() {
        let h = Header {
            seq: u64::MAX,
            kind: Kind::Reply,
            uri: "/a/b?c=d".into(),
            gzip: -2,
            status_code: 599,
            status: "xerror: ü".into(),
            timeout_ms: 1234,
        };
        assert_eq!(roundtrip(HeaderCodec::Protobuf, &h), h);
        assert_eq!(roundtrip(HeaderCodec::Json, &h), h);
    }

    #[test]
    fn fast_protobuf_decoding_agrees_with_prost() {
        let slow = |bytes: &[u8]| ProtoHeader::decode(bytes).map(Header::from);
        let full = Header {
            seq: u64::MAX,
            kind: Kind::Reply,
            uri: "/a/b?c=d".into(),
            gzip: -2,
            status_code: 599,
            status: "xerror: ü".into(),
            timeout_ms: 1234,
        };
        let mut buf = BytesMut::new();
        full.encode(HeaderCodec::Protobuf, &mut buf);
        // Every prefix, and a repeated field (the last one wins).
        let mut inputs: Vec<Vec<u8>> = (0..=buf.len()).map(|n| buf[..n].to_vec()).collect();
        inputs.push([&buf[..], b"\x10\x01"].concat());
        inputs.push(b"\x10\x01\x1a\x02\xff\xfe".to_vec());
        inputs.push(b"\x38\x01\x10\x01".to_vec());
        inputs.push([&b"\x08"[..], &[0xff; 9], b"\x02"].concat());
        for input in inputs {
            // Inside a larger buffer, as a frame's header is.
            let whole = Bytes::from([&b"head"[..], &input, b"tail"].concat());
            let fast = decode_proto_fast(&whole, 4..4 + input.len());
            match (fast, slow(&input)) {
                (Some(fast), Ok(slow)) => assert_eq!(fast, slow, "{input:?}"),
                (Some(fast), Err(e)) => panic!("fast {fast:?}, prost {e} for {input:?}"),
                (None, _) => {}
            }
        }
        let len = buf.len();
        assert_eq!(decode_proto_fast(&buf.freeze(), 0..len), Some(full));
    }

    #[test]
    fn non_utf8_uri_is_a_malformed_header() {
        let bytes = b"\x10\x01\x1a\x02\xff\xfe";
        let err = Header::decode(HeaderCodec::Protobuf, bytes).unwrap_err();
        assert!(matches!(
            err,
            FrameError::MalformedHeader { codec: 'p', .. }
        ));
    }

    #[test]
    fn unknown_kinds_are_kept() {
        assert_eq!(Kind::from_wire(7), Kind::Other(7));
        assert_eq!(Kind::from_wire(4), Kind::Push);
        assert_eq!(Kind::Other(3).to_wire(), 3);
    }
}
