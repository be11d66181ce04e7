//! Instructions per JSON body section, teleport's codec against serde_json
//! alone, for callgrind (timings of these few hundred instructions are too
//! noisy on a shared machine; `cargo bench -p teleport --bench frame --
//! json_body` gives them side by side anyway).
//!
//! usage: `json-cost CASE OP N`: runs OP N times on CASE's value, where
//! CASE is `plain` (a 16-byte string with nothing to escape), `escaped`
//! (a 15-byte string with a newline and quotes), `number` or `record` (a
//! five-field struct), and OP is `encode` or `decode` through teleport's
//! body section, or `serde-encode` / `serde-decode`: the same section
//! made or read by serde_json alone (the codec byte, then `to_writer`
//! into a buffer of the same start size; `from_slice` after the codec
//! byte). Per operation, from two runs:
//!
//! ```text
//! cargo build --release --manifest-path teleport-bench/Cargo.toml
//! for n in 1000 11000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   teleport-bench/target/release/json-cost record decode $n; done
//! # (instructions at 11000 - instructions at 1000) / 10000
//! ```

use std::hint::black_box;

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use teleport::codec::{CodecId, Codecs, GzipLevel, decode_section, encode_section};

/// A small record, as JSON APIs carry them.
#[derive(Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
    active: bool,
}

fn run<T: Serialize + DeserializeOwned>(value: &T, op: &str, n: usize) -> Result<(), String> {
    let codecs = Codecs::default();
    let section = encode_section(value, CodecId::JSON, GzipLevel::NONE, &codecs, usize::MAX)
        .map_err(|e| e.to_string())?;
    for _ in 0..n {
        match op {
            "encode" => {
                let section = encode_section(
                    black_box(value),
                    CodecId::JSON,
                    GzipLevel::NONE,
                    &codecs,
                    usize::MAX,
                );
                black_box(section.map_err(|e| e.to_string())?);
            }
            "serde-encode" => {
                let mut out = Vec::with_capacity(64);
                out.push(CodecId::JSON.0);
                serde_json::to_writer(&mut out, black_box(value)).map_err(|e| e.to_string())?;
                black_box(Bytes::from(out));
            }
            "decode" => {
                let back: T = decode_section(black_box(&section), 0, &codecs, usize::MAX)
                    .map_err(|e| e.to_string())?;
                black_box(back);
            }
            "serde-decode" => {
                let back: T =
                    serde_json::from_slice(black_box(&section[1..])).map_err(|e| e.to_string())?;
                black_box(back);
            }
            other => {
                return Err(format!(
                    "unknown OP {other:?}: encode, decode, serde-encode or serde-decode"
                ));
            }
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [case, op, n] = &args[..] else {
        eprintln!("usage: json-cost CASE OP N (see the doc at the top of json-cost.rs)");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("json-cost: N must be a count of operations, not {n:?}");
        std::process::exit(2);
    };
    let result = match case.as_str() {
        "plain" => run(&"x".repeat(16), op, n),
        "escaped" => run(&"line\none \"two\"".to_owned(), op, n),
        "number" => run(&1_234_567_u64, op, n),
        "record" => run(
            &Record {
                id: 42,
                name: "teleport".to_owned(),
                tags: vec!["rpc".to_owned(), "socket".to_owned()],
                score: 0.75,
                active: true,
            },
            op,
            n,
        ),
        other => Err(format!(
            "unknown CASE {other:?}: plain, escaped, number or record"
        )),
    };
    if let Err(e) = result {
        eprintln!("json-cost: {e}");
        std::process::exit(1);
    }
}
