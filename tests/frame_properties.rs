//! Property tests of the frame layer: any bytes give frames or an error
//! (never a panic or a large allocation), and encoding then decoding is the
//! identity for any header and body.

use bytes::BytesMut;
use proptest::prelude::*;
use teleport::codec::{CodecId, Codecs, decode_section, encode_section, gzip};
use teleport::frame::{Frame, FrameCodec, FrameError, Header, HeaderCodec, Kind};
use tokio_util::codec::{Decoder, Encoder};

const LIMIT: usize = 4096;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Pull),
        Just(Kind::Reply),
        Just(Kind::Push),
        any::<i32>().prop_map(Kind::from_wire),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        kind(),
        ".{0,40}",
        -2i32..=9,
        any::<i32>(),
        ".{0,40}",
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(seq, kind, uri, gzip, status_code, status, timeout_ms)| Header {
                seq,
                kind,
                uri: uri.into(),
                gzip,
                status_code,
                status: status.into(),
                timeout_ms,
            },
        )
}

fn header_codec() -> impl Strategy<Value = HeaderCodec> {
    prop_oneof![Just(HeaderCodec::Protobuf), Just(HeaderCodec::Json)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_decode_to_frames_or_an_error(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut codec = FrameCodec::new(LIMIT);
        let mut buf = BytesMut::from(&data[..]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    prop_assert!(frame.body.len() <= LIMIT);
                }
                Ok(None) => {
                    // Waiting for more bytes never reserves beyond the limit.
                    prop_assert!(buf.capacity() <= 2 * (LIMIT + 8) + data.len());
                    break;
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    break;
                }
            }
        }
        let mut buf = BytesMut::from(&data[..]);
        let _ = codec.decode_eof(&mut buf);
    }

    #[test]
    fn encode_then_decode_is_the_identity(
        header in header(),
        header_codec in header_codec(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let frame = Frame::new(header_codec, header, body);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        codec.encode(&frame, &mut buf).unwrap();
        let a = codec.decode(&mut buf).unwrap().unwrap();
        let b = codec.decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(&a, &frame);
        prop_assert_eq!(&b, &frame);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(
        header in header(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
    ) {
        let frame = Frame::new(HeaderCodec::Protobuf, header, body);
        let mut codec = FrameCodec::default();
        let mut whole = BytesMut::new();
        codec.encode(&frame, &mut whole).unwrap();
        let cut = cut.index(whole.len());
        let mut buf = BytesMut::from(&whole[..cut]);
        let early = codec.decode(&mut buf).unwrap();
        prop_assert!(early.is_none());
        buf.extend_from_slice(&whole[cut..]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
    }

    #[test]
    fn gzip_round_trips_any_data_at_any_level(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        level in prop_oneof![Just(-2), Just(-1), 1i32..=9],
    ) {
        let mut z = Vec::new();
        gzip::compress(teleport::GzipLevel::new(level).unwrap(), &data, &mut z).unwrap();
        prop_assert_eq!(gzip::decompress(&z, data.len()).unwrap(), data);
    }

    #[test]
    fn gzip_never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut input = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        input.extend_from_slice(&data);
        if let Ok(out) = gzip::decompress(&input, 1 << 16) {
            prop_assert!(out.len() <= 1 << 16);
        }
    }

    #[test]
    fn serde_bodies_round_trip_with_every_serde_codec(
        value in (any::<i64>(), ".{0,30}", proptest::collection::vec(any::<u8>(), 0..64)),
        gzip_level in prop_oneof![Just(0), 1i32..=9],
    ) {
        let codecs = Codecs::default();
        for codec in [CodecId::JSON, CodecId::BINCODE] {
            let level = teleport::GzipLevel::new(gzip_level).unwrap();
            let section = encode_section(&value, codec, level, &codecs, 1 << 20).unwrap();
            let back: (i64, String, Vec<u8>) = decode_section(&section, gzip_level, &codecs, 1 << 20).unwrap();
            prop_assert_eq!(&back, &value);
        }
        let level = teleport::GzipLevel::new(gzip_level).unwrap();
        let section = encode_section(&value.1, CodecId::STRING, level, &codecs, 1 << 20).unwrap();
        let back: String = decode_section(&section, gzip_level, &codecs, 1 << 20).unwrap();
        prop_assert_eq!(back, value.1);
    }

    #[test]
    fn garbage_bodies_are_decode_errors_not_panics(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        gzip_level in prop_oneof![Just(0), Just(5)],
    ) {
        let codecs = Codecs::default();
        let _ = decode_section::<(u64, String, Vec<String>)>(&body, gzip_level, &codecs, 1 << 16);
        let _ = decode_section::<teleport::Proto<Probe>>(&body, gzip_level, &codecs, 1 << 16);
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct Probe {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, repeated, tag = "2")]
    values: Vec<i64>,
}

#[test]
fn the_limit_error_names_both_numbers() {
    let mut codec = FrameCodec::new(LIMIT);
    let mut buf = BytesMut::from(&[0, 0, 0x10, 0x01][..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(
        err,
        FrameError::TooLarge {
            len: 4097,
            limit: 4096,
            ..
        }
    ));
}
