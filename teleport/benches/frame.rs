//! Frame encode/decode speed: a pull frame with a protobuf header and a 16 B
//! or 1 KiB body, and the decoding of a gzip body.
//!
//! Run with: `cargo bench -p teleport --bench frame`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_main};
use teleport::codec::{CodecId, Codecs, GzipLevel, decode_section, encode_section};
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use tokio_util::codec::{Decoder, Encoder};

/// A pull frame as a session sends it: protobuf header, bincode body section.
fn pull_frame(payload: usize) -> Frame {
    let text = "x".repeat(payload);
    let body = encode_section(
        &text,
        CodecId::BINCODE,
        GzipLevel::NONE,
        &Codecs::default(),
        usize::MAX,
    )
    .expect("a string encodes");
    Frame::new(
        HeaderCodec::Protobuf,
        Header::new(Kind::Pull, 123_456, "/bench/echo"),
        body,
    )
}

fn encode_decode(c: &mut Criterion) {
    for (name, payload) in [("16B", 16), ("1KiB", 1024)] {
        let frame = pull_frame(payload);
        let mut wire = BytesMut::new();
        FrameCodec::default().encode(&frame, &mut wire).unwrap();
        let wire = wire.freeze();

        let mut group = c.benchmark_group(format!("pull_frame_{name}"));
        group.throughput(Throughput::Bytes(wire.len() as u64));
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut encoder = FrameCodec::default();
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                encoder.encode(black_box(&frame), &mut buf).unwrap();
                black_box(buf.len())
            })
        });
        let mut codec = FrameCodec::default();
        let mut src = BytesMut::with_capacity(64 * 1024);
        group.bench_function("decode", |b| {
            b.iter(|| {
                src.extend_from_slice(&wire);
                black_box(codec.decode(&mut src).expect("valid frame"))
            })
        });
        group.finish();
    }
}

fn gzip_body(c: &mut Criterion) {
    // 1 KiB of JSON-ish text, as a gzip level 5 body section.
    let text: String = (0..64)
        .map(|i| format!("{{\"k\":{i},\"v\":\"teleport\"}}"))
        .collect();
    let codecs = Codecs::default();
    let section = encode_section(&text, CodecId::JSON, GzipLevel::L5, &codecs, usize::MAX)
        .expect("a string encodes");
    let mut group = c.benchmark_group("gzip_body");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let back: String =
                decode_section(black_box(&section), 5, &codecs, 1 << 20).expect("valid body");
            black_box(back)
        })
    });
    group.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::encode_decode, super::gzip_body);
}
criterion_main!(group::benches);
