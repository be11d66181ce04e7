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

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // A length prefix can never announce more than the bytes that are there.
    options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| CodecError::decode("bincode", e))
}
