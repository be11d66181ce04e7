//! Frames: the unit of the v2.0 wire format.
//!
//! Every packet on a connection is one frame. Frames follow each other with
//! no padding or delimiter:
//!
//! ```text
//! +---------------+-----------+------------+-------------+---------+----------+
//! | header_len u32| codec u8  | header ... | body_len u32| codec u8| body ... |
//! +---------------+-----------+------------+-------------+---------+----------+
//!   big endian     'p' or 'j'               big endian   'j' 'p' 's' 'b' ...
//!   counts the codec byte and the header     counts the codec byte and the body
//! ```
//!
//! `body_len == 0` means no body and no body codec byte (a 404 reply);
//! `body_len == 1` is a codec id with an empty encoding. When the header's
//! `gzip` level is not 0, the bytes after the body codec id are a gzip stream.
//!
//! [`FrameCodec`] reads and writes frames over a `BytesMut`; [`Header`] is the
//! decoded header. Bodies stay undecoded [`Bytes`] here: decoding them into
//! typed values is the job of [`codec`](crate::codec).

mod codec;
mod error;
mod header;
pub(crate) mod spare;

pub use codec::{DEFAULT_MAX_FRAME_SIZE, FrameCodec};
pub(crate) use codec::{
    Decoded, begin_frame, begin_frame_sized, check_size, encode_frame, encode_frame_parts,
    end_frame,
};
pub use error::FrameError;
pub use header::{ByteString, Header, HeaderCodec, Kind};
pub(crate) use header::{HeaderRef, split_uri};

use bytes::Bytes;

/// One decoded packet: its header and its still-encoded body section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The codec the header was (or will be) encoded with.
    pub header_codec: HeaderCodec,
    /// The header.
    pub header: Header,
    /// The body section: codec id byte then payload, or empty for no body.
    pub body: Bytes,
}

impl Frame {
    /// The body codec id, or `None` when the frame has no body.
    pub fn body_codec(&self) -> Option<u8> {
        self.body.first().copied()
    }

    /// The body payload after the codec id (still gzip-compressed if the
    /// header says so).
    pub fn payload(&self) -> Bytes {
        if self.body.is_empty() {
            Bytes::new()
        } else {
            self.body.slice(1..)
        }
    }
}

/// A body section on its way out: shared bytes (a raw handler's reply, a
/// forwarded body), the vector it was just encoded into (written as it is
/// rather than wrapped in a [`Bytes`], which would allocate again), or a
/// [`Lead`] and a payload that is already bytes ([`RawBody`](crate::codec::RawBody),
/// or a large `String` or `Vec<u8>` reply: written without a copy into a
/// body first).
#[derive(Clone, Debug)]
pub(crate) enum Section {
    Bytes(Bytes),
    Vec(Vec<u8>),
    Parts(Lead, Bytes),
}

/// The bytes of a body section that come before a payload held as shared
/// bytes: the codec id, and for bincode the payload's length (a `u64`,
/// little endian), which is all bincode writes before a string's or a
/// byte vector's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lead {
    len: u8,
    bytes: [u8; 9],
}

impl Lead {
    /// Just the codec id.
    pub(crate) fn codec(id: u8) -> Lead {
        let mut bytes = [0; 9];
        bytes[0] = id;
        Lead { len: 1, bytes }
    }

    /// The codec id, then a length prefix of 8 bytes.
    pub(crate) fn with_prefix(id: u8, prefix: [u8; 8]) -> Lead {
        let mut bytes = [0; 9];
        bytes[0] = id;
        bytes[1..].copy_from_slice(&prefix);
        Lead { len: 9, bytes }
    }

    /// Its bytes, codec id first.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Section {
    /// No body.
    pub(crate) fn empty() -> Section {
        Section::Bytes(Bytes::new())
    }

    /// Its length, codec id byte included.
    pub(crate) fn len(&self) -> usize {
        match self {
            Section::Bytes(b) => b.len(),
            Section::Vec(v) => v.len(),
            Section::Parts(lead, payload) => lead.as_slice().len() + payload.len(),
        }
    }

    /// Whether there is no body.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The section as [`Bytes`] (for the plugin hooks, which see a [`Frame`]).
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Section::Bytes(b) => b,
            Section::Vec(v) => Bytes::from(v),
            Section::Parts(lead, payload) => {
                let mut v = Vec::with_capacity(lead.as_slice().len() + payload.len());
                v.extend_from_slice(lead.as_slice());
                v.extend_from_slice(&payload);
                Bytes::from(v)
            }
        }
    }
}
