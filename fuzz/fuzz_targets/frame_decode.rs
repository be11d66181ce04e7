//! Any bytes on a connection: the frame decoder yields frames or an error,
//! never panics, and every frame it yields re-encodes to bytes that decode
//! to the same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use teleport::frame::FrameCodec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let mut out = BytesMut::new();
        codec.encode(&frame, &mut out).expect("a decoded frame re-encodes");
        let again = codec.decode(&mut out).expect("re-decodes").expect("whole");
        assert_eq!(again, frame);
    }
    let mut buf = BytesMut::from(data);
    let _ = codec.decode_eof(&mut buf);
});
