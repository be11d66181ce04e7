//! Loads the Go Teleport v2.0 golden vectors from `tests/data/`.
//!
//! Two sources: `teleport-go-v2.0.json` (cases with decoded headers and
//! bodies) and `teleport-go-v2.0-captures/*.hex` (one packet per `c2s`/`s2c`
//! line, each preceded by `#` comments that decode it).

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// Which way a packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

/// The decoded header a vector states.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ExpectHeader {
    pub seq: u64,
    pub kind: i32,
    pub uri: String,
    pub gzip: i32,
    pub status_code: i32,
    pub status: String,
}

/// The decoded payload a vector states, when it states one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectPayload {
    /// The plain (decompressed) payload bytes after the codec id.
    Plain(Vec<u8>),
    /// A raw body (Go's `[]byte`): the whole body section, verbatim.
    Raw(Vec<u8>),
    /// No body at all (body_len 0).
    None,
    /// The vector does not say.
    Unknown,
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    pub case: String,
    pub dir: Dir,
    pub bytes: Vec<u8>,
    pub header: ExpectHeader,
    pub header_codec: u8,
    pub body_codec: Option<u8>,
    pub payload: ExpectPayload,
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn kind_of(name: &str) -> i32 {
    match name {
        "PULL" => 1,
        "REPLY" => 2,
        "PUSH" => 4,
        other => other
            .strip_prefix("TYPE")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unknown packet kind {other}")),
    }
}

/// Parses a Go `%q` string (as far as the vectors use it) starting at `s`;
/// returns the bytes and the rest after the closing quote.
fn go_quoted(s: &str) -> (Vec<u8>, &str) {
    let b = s.as_bytes();
    assert_eq!(b[0], b'"', "expected a quoted string in {s:?}");
    let mut out = Vec::new();
    let mut i = 1;
    while b[i] != b'"' {
        if b[i] == b'\\' {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                other => panic!("unsupported escape \\{}", other as char),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    (out, &s[i + 1..])
}

fn parse_header_line(line: &str) -> ExpectHeader {
    // e.g. `PULL seq=0 uri="/group/home/test" gzip=0 status_code=0 status=""`
    let (kind, mut rest) = line.split_once(' ').unwrap();
    let mut h = ExpectHeader {
        kind: kind_of(kind),
        ..ExpectHeader::default()
    };
    while !rest.is_empty() {
        rest = rest.trim_start();
        let (key, after) = rest.split_once('=').unwrap();
        if after.starts_with('"') {
            let (v, r) = go_quoted(after);
            let v = String::from_utf8(v).unwrap();
            match key {
                "uri" => h.uri = v,
                "status" => h.status = v,
                other => panic!("unexpected key {other}"),
            }
            rest = r;
        } else {
            let (v, r) = after.split_once(' ').unwrap_or((after, ""));
            match key {
                "seq" => h.seq = v.parse().unwrap(),
                "gzip" => h.gzip = v.parse().unwrap(),
                "status_code" => h.status_code = v.parse().unwrap(),
                other => panic!("unexpected key {other}"),
            }
            rest = r;
        }
    }
    h
}

/// Every packet of every `.hex` capture, in file order.
pub fn captures() -> Vec<Packet> {
    let dir = data_dir().join("teleport-go-v2.0-captures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/teleport-go-v2.0-captures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 27, "27 captured exchanges");
    let mut out = Vec::new();
    for file in files {
        let case = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut header = None;
        let mut payload = ExpectPayload::Unknown;
        let mut body_codec = None;
        let mut header_codec = b'p';
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# ") {
                if c.starts_with("PULL ")
                    || c.starts_with("REPLY ")
                    || c.starts_with("PUSH ")
                    || c.starts_with("TYPE")
                {
                    header = Some(parse_header_line(c));
                    payload = ExpectPayload::Unknown;
                    body_codec = None;
                }
                let c = c.trim_start();
                if let Some(rest) = c.strip_prefix("header_len=") {
                    let id = rest.split("header_codec=0x").nth(1).unwrap();
                    header_codec = u8::from_str_radix(&id[..2], 16).unwrap();
                }
                if c.starts_with("body_len=0 ") {
                    payload = ExpectPayload::None;
                } else if let Some(rest) = c.strip_prefix("body_len=") {
                    if let Some(id) = rest.split("body_codec=0x").nth(1) {
                        body_codec = Some(u8::from_str_radix(&id[..2], 16).unwrap());
                    }
                    if let Some(q) = rest.split("): ").nth(1).filter(|_| rest.contains("RAW")) {
                        payload = ExpectPayload::Raw(go_quoted(q).0);
                    }
                }
                if let Some(p) = c.strip_prefix("decoded payload: ") {
                    payload = if let Some(h) = p.strip_prefix("protobuf ") {
                        let h = h.split(' ').next().unwrap();
                        ExpectPayload::Plain(if h == "(empty)" { Vec::new() } else { hex(h) })
                    } else if p.starts_with('"') {
                        ExpectPayload::Plain(go_quoted(p).0)
                    } else {
                        ExpectPayload::Unknown
                    };
                }
            } else if let Some((dir, bytes)) = line.split_once(' ') {
                let dir = match dir {
                    "c2s" => Dir::ClientToServer,
                    "s2c" => Dir::ServerToClient,
                    other => panic!("bad direction {other} in {case}"),
                };
                out.push(Packet {
                    case: case.clone(),
                    dir,
                    bytes: hex(bytes.trim()),
                    header: header.take().expect("a header comment before each packet"),
                    header_codec,
                    body_codec,
                    payload: std::mem::replace(&mut payload, ExpectPayload::Unknown),
                });
            }
        }
    }
    out
}

/// Every packet of `teleport-go-v2.0.json`, case by case.
pub fn json_cases() -> Vec<Packet> {
    let text = std::fs::read_to_string(data_dir().join("teleport-go-v2.0.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (case, v) in doc["cases"].as_object().unwrap() {
        for (key, dir) in [
            ("client_to_server", Dir::ClientToServer),
            ("server_to_client", Dir::ServerToClient),
        ] {
            for f in v[key].as_array().unwrap() {
                let h = &f["header"];
                let int = |k: &str| h.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
                let text = |k: &str| h.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                let header = ExpectHeader {
                    seq: int("seq") as u64,
                    kind: int("type") as i32,
                    uri: text("uri"),
                    gzip: int("gzip") as i32,
                    status_code: int("status_code") as i32,
                    status: text("status"),
                };
                let body_codec = f["body_codec"].as_str().map(|s| s.as_bytes()[0]);
                let payload = match (body_codec, f["body_plain_hex"].as_str()) {
                    (None, _) => ExpectPayload::None,
                    (Some(_), Some(h)) => ExpectPayload::Plain(hex(h)),
                    (Some(_), None) => ExpectPayload::Unknown,
                };
                out.push(Packet {
                    case: case.clone(),
                    dir,
                    bytes: hex(f["hex"].as_str().unwrap()),
                    header,
                    header_codec: f["header_codec"].as_str().unwrap().as_bytes()[0],
                    body_codec,
                    payload,
                });
            }
        }
    }
    out
}
