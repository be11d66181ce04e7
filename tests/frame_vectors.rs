//! Every frame captured between real Go Teleport v2.0 peers decodes to what
//! the capture says, and re-encodes to the same bytes.

#[path = "support/vectors.rs"]
mod vectors;

use bytes::BytesMut;
use teleport::codec::gzip;
use teleport::frame::{Frame, FrameCodec, Kind};
use tokio_util::codec::{Decoder, Encoder};
use vectors::{ExpectPayload, Packet};

fn check(p: &Packet) -> Frame {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(&p.bytes[..]);
    let frame = codec
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", p.case))
        .unwrap_or_else(|| panic!("{}: incomplete frame", p.case));
    assert!(buf.is_empty(), "{}: exactly one frame per packet", p.case);

    let h = &frame.header;
    assert_eq!(
        frame.header_codec.id(),
        p.header_codec,
        "{}: header codec",
        p.case
    );
    assert_eq!(h.seq, p.header.seq, "{}: seq", p.case);
    assert_eq!(h.kind.to_wire(), p.header.kind, "{}: type", p.case);
    assert_eq!(h.uri, p.header.uri, "{}: uri", p.case);
    assert_eq!(h.gzip, p.header.gzip, "{}: gzip", p.case);
    assert_eq!(
        h.status_code, p.header.status_code,
        "{}: status code",
        p.case
    );
    assert_eq!(h.status, p.header.status, "{}: status", p.case);

    match &p.payload {
        ExpectPayload::None => assert!(frame.body.is_empty(), "{}: no body", p.case),
        ExpectPayload::Raw(raw) => assert_eq!(&frame.body[..], &raw[..], "{}: raw body", p.case),
        ExpectPayload::Plain(plain) => {
            assert_eq!(frame.body_codec(), p.body_codec, "{}: body codec", p.case);
            let payload = frame.payload();
            let got = if h.gzip != 0 {
                gzip::decompress(&payload, 1 << 20).unwrap_or_else(|e| panic!("{}: {e}", p.case))
            } else {
                payload.to_vec()
            };
            assert_eq!(got, *plain, "{}: payload", p.case);
        }
        ExpectPayload::Unknown => {}
    }

    // Re-encoding the decoded frame gives back the captured bytes: header
    // encoding (protobuf field order, JSON key order) is byte-identical.
    let mut out = BytesMut::new();
    codec.encode(&frame, &mut out).unwrap();
    assert_eq!(&out[..], &p.bytes[..], "{}: re-encoded bytes", p.case);
    frame
}

#[test]
fn every_json_vector_frame_decodes_and_reencodes_byte_for_byte() {
    let packets = vectors::json_cases();
    assert!(packets.len() >= 20, "{} packets", packets.len());
    for p in &packets {
        check(p);
    }
}

#[test]
fn every_captured_packet_decodes_and_reencodes_byte_for_byte() {
    let packets = vectors::captures();
    assert!(packets.len() >= 60, "{} packets", packets.len());
    let mut with_payload = 0;
    for p in &packets {
        check(p);
        if matches!(p.payload, ExpectPayload::Plain(_) | ExpectPayload::Raw(_)) {
            with_payload += 1;
        }
    }
    // The payload check above really ran on most packets.
    assert!(with_payload >= 50, "{with_payload} payloads checked");
}

#[test]
fn captures_cover_every_packet_kind_and_codec() {
    let packets = vectors::captures();
    let mut frames: Vec<Frame> = packets.iter().map(check).collect();
    let kinds: Vec<Kind> = frames.iter().map(|f| f.header.kind).collect();
    for k in [
        Kind::Pull,
        Kind::Reply,
        Kind::Push,
        Kind::Other(3),
        Kind::Other(0),
    ] {
        assert!(kinds.contains(&k), "missing {k:?}");
    }
    frames.retain(|f| !f.body.is_empty());
    let codecs: Vec<u8> = frames.iter().filter_map(Frame::body_codec).collect();
    for c in [b'j', b'p', b's'] {
        assert!(codecs.contains(&c), "missing body codec {}", c as char);
    }
}

#[test]
fn every_frame_decodes_when_fed_one_byte_at_a_time() {
    let mut stream = Vec::new();
    let packets = vectors::captures();
    for p in &packets {
        stream.extend_from_slice(&p.bytes);
    }
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut n = 0;
    for b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(_frame) = codec.decode(&mut buf).unwrap() {
            n += 1;
        }
    }
    assert_eq!(n, packets.len());
}
