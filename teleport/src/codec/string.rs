//! The `s` body codec: raw text, no quoting.
//!
//! Strings, characters, numbers, booleans and unit enum variants travel as
//! their plain text (through `serde_plain`); anything structured is refused
//! with a clear error, since text has no room for structure.

use serde::{Serialize, de::DeserializeOwned};

use super::CodecError;

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let text = serde_plain::to_string(&super::Sized_(value))
        .map_err(|e| CodecError::encode("string", e))?;
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let text = super::utf8(bytes).map_err(|e| CodecError::decode("string", e))?;
    serde_plain::from_str(text).map_err(|e| CodecError::decode("string", e))
}
