//! Any header bytes, with either header codec: an error or a header that
//! survives an encode/decode round trip.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use teleport::frame::{Header, HeaderCodec};

fuzz_target!(|data: &[u8]| {
    for codec in [HeaderCodec::Protobuf, HeaderCodec::Json] {
        if let Ok(header) = Header::decode(codec, data) {
            let mut out = BytesMut::new();
            header.encode(codec, &mut out);
            assert_eq!(Header::decode(codec, &out).expect("round trip"), header);
        }
    }
});
