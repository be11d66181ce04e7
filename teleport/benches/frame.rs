//! Frame encode/decode speed: a pull frame with a protobuf header and a 16 B
//! or 1 KiB body, and the decoding of a gzip body.
//!
//! `json_body` sets teleport's JSON body sections beside the same sections
//! made by serde_json alone (the codec byte, then `serde_json::to_writer`
//! into a buffer of the same start size; `from_slice` of what follows the
//! codec byte), for a plain string (which takes the codec's short path), a
//! string that needs escaping, a number and a small struct (which pay for
//! the short path's probe, then go to serde_json).
//!
//! Run with: `cargo bench -p teleport --bench frame`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_main};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
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

/// A small record, as JSON APIs carry them.
#[derive(Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
    active: bool,
}

/// One value's JSON body: teleport's section and serde_json's bytes,
/// encoded and decoded side by side.
fn json_case<T>(c: &mut Criterion, name: &str, value: &T)
where
    T: Serialize + DeserializeOwned,
{
    let codecs = Codecs::default();
    let section = encode_section(value, CodecId::JSON, GzipLevel::NONE, &codecs, usize::MAX)
        .expect("the value encodes");
    assert_eq!(
        section[1..],
        serde_json::to_vec(value).expect("the value encodes")[..],
        "{name}: a section is the codec byte, then serde_json's bytes"
    );
    let mut group = c.benchmark_group(format!("json_body_{name}"));
    group.bench_function("teleport_encode", |b| {
        b.iter(|| {
            encode_section(
                black_box(value),
                CodecId::JSON,
                GzipLevel::NONE,
                &codecs,
                usize::MAX,
            )
            .expect("the value encodes")
        })
    });
    group.bench_function("serde_json_encode", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(64);
            out.push(CodecId::JSON.0);
            serde_json::to_writer(&mut out, black_box(value)).expect("the value encodes");
            Bytes::from(out)
        })
    });
    group.bench_function("teleport_decode", |b| {
        b.iter(|| {
            let back: T =
                decode_section(black_box(&section), 0, &codecs, usize::MAX).expect("valid body");
            back
        })
    });
    group.bench_function("serde_json_decode", |b| {
        b.iter(|| {
            let back: T = serde_json::from_slice(black_box(&section[1..])).expect("valid body");
            back
        })
    });
    group.finish();
}

fn json_body(c: &mut Criterion) {
    json_case(c, "plain_string_16B", &"x".repeat(16));
    json_case(c, "escaped_string_15B", &"line\none \"two\"".to_owned());
    json_case(c, "number", &1_234_567_u64);
    json_case(
        c,
        "record",
        &Record {
            id: 42,
            name: "teleport".to_owned(),
            tags: vec!["rpc".to_owned(), "socket".to_owned()],
            score: 0.75,
            active: true,
        },
    );
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(
        benches,
        super::encode_decode,
        super::gzip_body,
        super::json_body
    );
}
criterion_main!(group::benches);
