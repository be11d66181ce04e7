//! [`RawBody`]: a body that is its bytes, carried without a copy.

use bytes::Bytes;

use super::{CodecError, CodecId, Codecs, Decode, Encode};

/// A body whose payload is these bytes, under any codec id: written as
/// they are and read as a slice of the connection's read buffer, so a
/// large payload is neither encoded, decoded nor copied on its way through
/// teleport (the socket writes it from the write buffer, one copy per side).
///
/// # Codec behaviour
///
/// The codec id of the call (`CallOptions::codec`, the handler's reply
/// codec) only *labels* the bytes: `RawBody` puts them after the id byte
/// unchanged, whatever the id, and takes the payload that arrives unchanged,
/// whatever its id. So the bytes must already be in the form the other side
/// expects for that id: text for `s`, a JSON document for `j`, an encoded
/// message for `p`, anything for a codec id of your own that both sides
/// treat as opaque. With gzip on, the bytes are compressed on the way out
/// and a received compressed payload is inflated into a new buffer (the
/// zero-copy path is the uncompressed one). A body-less reply reads as an
/// empty `RawBody`.
///
/// ```
/// use bytes::Bytes;
/// use teleport::codec::{CodecId, Codecs, Decode, Encode, RawBody};
///
/// let body = RawBody(Bytes::from_static(b"{\"already\":\"json\"}"));
/// let mut out = Vec::new();
/// body.encode_body(CodecId::JSON, &Codecs::default(), &mut out).unwrap();
/// assert_eq!(out, b"{\"already\":\"json\"}");
/// let back = RawBody::decode_body(CodecId::JSON, &Codecs::default(), &out).unwrap();
/// assert_eq!(back, body);
/// ```
///
/// A handler that echoes bytes without touching them:
///
/// ```
/// use teleport::codec::RawBody;
/// use teleport::{Ctx, Router, Status};
///
/// let mut router = Router::new();
/// router.pull("/blob/echo", |_ctx: Ctx, body: RawBody| async move { Ok::<_, Status>(body) });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawBody(pub Bytes);

impl From<Bytes> for RawBody {
    fn from(bytes: Bytes) -> Self {
        RawBody(bytes)
    }
}

impl From<Vec<u8>> for RawBody {
    fn from(bytes: Vec<u8>) -> Self {
        RawBody(Bytes::from(bytes))
    }
}

impl Encode for RawBody {
    fn encode_body(&self, _: CodecId, _: &Codecs, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.0);
        Ok(())
    }

    fn encode_body_within(
        &self,
        codec: CodecId,
        codecs: &Codecs,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CodecError> {
        let len = out.len() + self.0.len();
        if len > limit {
            return Err(CodecError::TooLarge { len, limit });
        }
        self.encode_body(codec, codecs, out)
    }

    fn as_payload(&self) -> Option<&Bytes> {
        Some(&self.0)
    }
}

impl Decode for RawBody {
    fn decode_body(_: CodecId, _: &Codecs, bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(RawBody(Bytes::copy_from_slice(bytes)))
    }

    fn decode_section_bytes(_: CodecId, _: &Codecs, section: &Bytes) -> Result<Self, CodecError> {
        Ok(RawBody(section.slice(1..)))
    }

    fn decode_no_body() -> Option<Self> {
        Some(RawBody::default())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::RawBody;
    use crate::codec::{CodecId, Codecs, Decode, decode_section_bytes};
    use crate::{CallOptions, Ctx, Peer, PeerConfig, Router, Status};

    #[test]
    fn an_uncompressed_section_is_sliced_not_copied() {
        let section = Bytes::from_static(b"sline of text");
        let body: RawBody = decode_section_bytes(&section, 0, &Codecs::default(), 1024).unwrap();
        assert_eq!(body.0, &b"line of text"[..]);
        assert_eq!(
            body.0.as_ptr(),
            section[1..].as_ptr(),
            "a slice of the section"
        );
        // No body at all reads as empty bytes.
        let empty: RawBody = decode_section_bytes(&Bytes::new(), 0, &Codecs::default(), 8).unwrap();
        assert!(empty.0.is_empty());
        // Whatever the codec id says, the payload is taken as it is.
        let json = RawBody::decode_body(CodecId::JSON, &Codecs::default(), b"[1,2]").unwrap();
        assert_eq!(json.0, &b"[1,2]"[..]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_bodies_cross_a_session_unchanged_and_interoperate_with_typed_ones() {
        let mut router = Router::new();
        router.pull("/raw/echo", |_ctx: Ctx, body: RawBody| async move {
            Ok::<_, Status>(body)
        });
        router.pull("/text/upper", |_ctx: Ctx, text: String| async move {
            Ok::<_, Status>(text.to_uppercase())
        });
        let server = Peer::new(PeerConfig::default(), router);
        let addr = server.listen("127.0.0.1:0").await.unwrap();
        let session = Peer::new(PeerConfig::default(), Router::new())
            .dial(addr)
            .await
            .unwrap();

        // 256 KiB of bytes that are not UTF-8, as they are, both ways.
        let payload: Bytes = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let back: RawBody = session
            .pull("/raw/echo", &RawBody(payload.clone()))
            .await
            .unwrap();
        assert_eq!(back.0, payload);

        // Compressed on the way out, inflated on the way in.
        let back: RawBody = session
            .pull_with(
                "/raw/echo",
                &RawBody(payload.clone()),
                CallOptions::default().gzip(crate::GzipLevel::L1),
            )
            .await
            .unwrap();
        assert_eq!(back.0, payload);

        // Labelled 's', raw bytes are text to a String handler, and its
        // reply comes back as the bytes of the text.
        let back: RawBody = session
            .pull_with(
                "/text/upper",
                &RawBody(Bytes::from_static(b"teleport")),
                CallOptions::default().codec(CodecId::STRING),
            )
            .await
            .unwrap();
        assert_eq!(back.0, &b"TELEPORT"[..]);
    }
}
