//! The `b` body codec: bincode 1 (fixed-width integers, little endian), for
//! Rust-to-Rust speed. Not known to Go Teleport; Go peers answer it with 415.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

use super::CodecError;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: impl std::io::Write,
) -> Result<(), CodecError> {
    options()
        .serialize_into(out, value)
        .map_err(|e| CodecError::encode("bincode", e))
}

/// Encodes `value` onto `out` unless that would make `out` longer than
/// `limit`: bincode knows the size before writing (a pass that only adds
/// up lengths), so nothing over the limit is written and `out` grows once,
/// to the exact size, with no bounded writer in between.
pub(crate) fn encode_within<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CodecError> {
    let size = options()
        .serialized_size(value)
        .map_err(|e| CodecError::encode("bincode", e))?;
    let len = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(out.len());
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    out.reserve(len - out.len());
    options()
        .serialize_into(&mut *out, value)
        .map_err(|e| CodecError::encode("bincode", e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // A length prefix can never announce more than the bytes that are there.
    options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| CodecError::decode("bincode", e))
}
