//! The `j` body codec: JSON text through `serde_json`, no trailing newline (as Go writes it).

use serde::{Serialize, de::DeserializeOwned};

use super::CodecError;

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: impl std::io::Write,
) -> Result<(), CodecError> {
    serde_json::to_writer(out, value).map_err(|e| CodecError::encode("json", e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| CodecError::decode("json", e))
}
