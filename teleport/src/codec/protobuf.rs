//! The `p` body codec: protobuf messages through `prost`.
//!
//! Protobuf needs a message type, not any serde value, so a prost message
//! travels wrapped in [`Proto`]: `Proto(MyMessage { .. })`.

use prost::Message;

use super::{CodecError, CodecId, Codecs, Decode, Encode};

/// A prost message as a body: encodes and decodes with the `p` codec.
///
/// ```
/// use teleport::codec::{CodecId, Codecs, Decode, Encode, Proto};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct PbTest {
///     #[prost(int32, tag = "1")]
///     a: i32,
///     #[prost(int32, tag = "2")]
///     b: i32,
/// }
///
/// let mut out = Vec::new();
/// Proto(PbTest { a: 10, b: 2 }).encode_body(CodecId::PROTOBUF, &Codecs::default(), &mut out).unwrap();
/// assert_eq!(out, [0x08, 10, 0x10, 2]);
/// let back = Proto::<PbTest>::decode_body(CodecId::PROTOBUF, &Codecs::default(), &out).unwrap();
/// assert_eq!(back.0.a, 10);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Proto<M>(pub M);

impl<M: Message> Encode for Proto<M> {
    fn encode_body(&self, codec: CodecId, _: &Codecs, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if codec != CodecId::PROTOBUF {
            return Err(CodecError::Unsupported {
                codec,
                reason: "a Proto message encodes only with the protobuf codec 'p'".into(),
            });
        }
        self.0
            .encode(out)
            .map_err(|e| CodecError::encode("protobuf", e))
    }

    fn encode_body_within(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CodecError> {
        // prost knows the size before encoding: refuse without encoding.
        let len = out.len() + self.0.encoded_len();
        if len > limit {
            return Err(CodecError::TooLarge { len, limit });
        }
        self.encode_body(codec, codecs, out)
    }
}

impl<M: Message + Default> Decode for Proto<M> {
    fn decode_body(codec: CodecId, _: &Codecs, bytes: &[u8]) -> Result<Self, CodecError> {
        if codec != CodecId::PROTOBUF {
            return Err(CodecError::Unsupported {
                codec,
                reason: "a Proto message decodes only from the protobuf codec 'p'".into(),
            });
        }
        M::decode(bytes)
            .map(Proto)
            .map_err(|e| CodecError::decode("protobuf", e))
    }
}
