//! Bodies: what the user gives on the command line becomes a body section
//! on the wire, and what comes back is shown as text.
//!
//! Without a schema, `tp` cannot build a protobuf or bincode message from
//! JSON, so those codecs take the encoded bytes as they are (from a file or
//! stdin: `--codec protobuf @msg.bin`) and show replies in them as bytes.

use std::io::{IsTerminal, Read};

use bytes::Bytes;
use clap::Args;
use serde_json::{Map, Value};
use teleport::codec::{GzipLevel, gzip};
use teleport::frame::Frame;
use teleport::{CodecId, Ctx};

use crate::error::CliError;

/// How a body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyCodec(pub(crate) CodecId);

/// Parses `--codec`: a name, or one character for a codec id of your own.
pub(crate) fn parse_codec(s: &str) -> Result<BodyCodec, String> {
    let id = match s {
        "json" | "j" => CodecId::JSON,
        "string" | "s" => CodecId::STRING,
        "protobuf" | "p" => CodecId::PROTOBUF,
        "bincode" | "b" => CodecId::BINCODE,
        other if other.len() == 1 && other.is_ascii() => CodecId(other.as_bytes()[0]),
        other => {
            return Err(format!(
                "unknown codec `{other}`: use json, string, protobuf, bincode, or one character for a codec id of your own"
            ));
        }
    };
    Ok(BodyCodec(id))
}

/// The name of a body codec id, for output (`none` for no body).
pub(crate) fn codec_name(id: Option<u8>) -> String {
    match id {
        None => "none".into(),
        Some(b'j') => "json".into(),
        Some(b's') => "string".into(),
        Some(b'p') => "protobuf".into(),
        Some(b'b') => "bincode".into(),
        Some(c) if c.is_ascii_graphic() => (c as char).to_string(),
        Some(c) => format!("0x{c:02x}"),
    }
}

/// Body flags shared by the commands that send bodies.
#[derive(Clone, Debug, Args)]
pub(crate) struct BodyOpts {
    /// Body codec: json (BODY is JSON text), string (BODY is sent as is),
    /// protobuf or bincode (BODY is the already-encoded bytes, best given as
    /// @file or -), or one character for a codec id of your own (bytes as is).
    #[arg(long, value_name = "CODEC", default_value = "json", value_parser = parse_codec)]
    pub(crate) codec: BodyCodec,
    /// Gzip level of the body: 0 (none) to 9.
    #[arg(long, value_name = "LEVEL", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=9))]
    pub(crate) gzip: i32,
}

/// Reads a BODY argument: `-` is stdin, `@path` a file, anything else the
/// text itself. `None` means no body.
pub(crate) fn read_arg(arg: Option<&str>) -> Result<Option<Vec<u8>>, CliError> {
    let Some(arg) = arg else { return Ok(None) };
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|source| CliError::Io {
                what: "cannot read the body from stdin".into(),
                source,
            })?;
        return Ok(Some(buf));
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read(path)
            .map(Some)
            .map_err(|source| CliError::Io {
                what: format!("cannot read the body file {path}"),
                source,
            });
    }
    Ok(Some(arg.as_bytes().to_vec()))
}

/// Builds the body section for `input` (codec id byte, then the payload,
/// compressed at `level`), or an empty section for no body.
///
/// JSON bodies are checked to be valid JSON and sent as written (trimmed),
/// so numbers keep their exact text.
pub(crate) fn encode(
    codec: BodyCodec,
    input: Option<&[u8]>,
    level: i32,
) -> Result<Bytes, CliError> {
    let Some(input) = input else {
        return Ok(Bytes::new());
    };
    let payload: &[u8] = if codec.0 == CodecId::JSON {
        let trimmed = input.trim_ascii();
        serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).map_err(|e| {
            CliError::Input(format!(
                "the body is not valid JSON ({e}); give --codec string to send text as is"
            ))
        })?;
        trimmed
    } else {
        input
    };
    let mut section = Vec::with_capacity(payload.len() + 1);
    section.push(codec.0.0);
    let gzip_level =
        GzipLevel::new(level).map_err(|e| CliError::Input(format!("--gzip {level}: {e}")))?;
    if gzip_level.is_none() {
        section.extend_from_slice(payload);
    } else {
        gzip::compress(gzip_level, payload, &mut section)
            .map_err(|e| CliError::Input(format!("--gzip {level}: {e}")))?;
    }
    Ok(Bytes::from(section))
}

/// The payload of a frame's body, decompressed when its header says gzip.
pub(crate) fn payload(frame: &Frame, limit: usize) -> Result<Vec<u8>, CliError> {
    let raw = frame.payload();
    if frame.header.gzip == 0 || raw.is_empty() {
        return Ok(raw.to_vec());
    }
    gzip::decompress(&raw, limit).map_err(|e| {
        CliError::Input(format!(
            "cannot decompress the body of {} (gzip level {}): {e}",
            frame.header.uri, frame.header.gzip
        ))
    })
}

/// A body as a JSON value for a log line: JSON bodies as themselves, text
/// as a string, anything else as `{"hex": "..."}`.
pub(crate) fn to_json(codec: Option<u8>, payload: &[u8]) -> Value {
    match codec {
        None => Value::Null,
        Some(b'j') => serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned())),
        Some(b's') => match std::str::from_utf8(payload) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => serde_json::json!({ "hex": hex(payload) }),
        },
        Some(_) => serde_json::json!({ "hex": hex(payload) }),
    }
}

/// One incoming call as a JSON object for a log line: time, kind, URI,
/// body codec, gzip level and the body (decompressed, see [`to_json`]).
pub(crate) fn call_line(kind: &str, ctx: &Ctx, section: &Bytes) -> Map<String, Value> {
    let codec = section.first().copied();
    let raw = if section.is_empty() {
        Bytes::new()
    } else {
        section.slice(1..)
    };
    let gzip = ctx.header().gzip;
    let body = if gzip == 0 || raw.is_empty() {
        to_json(codec, &raw)
    } else {
        let limit = ctx.session().config().max_frame_size;
        match gzip::decompress(&raw, limit) {
            Ok(plain) => to_json(codec, &plain),
            Err(e) => {
                serde_json::json!({ "error": format!("cannot decompress: {e}"), "hex": hex(&raw) })
            }
        }
    };
    let mut line = Map::new();
    let time = humantime::format_rfc3339_micros(std::time::SystemTime::now());
    line.insert("time".into(), time.to_string().into());
    line.insert("kind".into(), kind.into());
    line.insert("uri".into(), ctx.uri().into());
    line.insert("codec".into(), codec_name(codec).into());
    line.insert("gzip".into(), gzip.into());
    line.insert("body".into(), body);
    line
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What `tp pull` prints on stdout for a reply body: pretty JSON for the
/// JSON codec, the text as is for the string codec, and the bytes as they
/// are for other codecs (as hex when stdout is a terminal).
pub(crate) fn render(codec: Option<u8>, payload: &[u8]) -> Vec<u8> {
    let terminal = std::io::stdout().is_terminal();
    let mut out = match codec {
        None => return Vec::new(),
        Some(b'j') => match serde_json::from_slice::<Value>(payload) {
            Ok(value) => {
                let mut text =
                    serde_json::to_vec_pretty(&value).unwrap_or_else(|_| payload.to_vec());
                text.push(b'\n');
                return text;
            }
            Err(e) => {
                tracing::warn!("the reply says JSON but does not parse ({e}); shown as it is");
                payload.to_vec()
            }
        },
        Some(b's') => payload.to_vec(),
        Some(_) if terminal => {
            let mut text = hex(payload).into_bytes();
            text.push(b'\n');
            return text;
        }
        Some(_) => return payload.to_vec(),
    };
    if terminal && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_checked_and_sent_as_written() {
        let codec = parse_codec("json").unwrap();
        let section = encode(codec, Some(b" {\"n\": 1.50} \n"), 0).unwrap();
        assert_eq!(&section[..], b"j{\"n\": 1.50}");
        let err = encode(codec, Some(b"{oops"), 0).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(encode(codec, None, 0).unwrap().is_empty());
    }

    #[test]
    fn other_codecs_send_the_bytes_as_they_are() {
        let section = encode(parse_codec("protobuf").unwrap(), Some(&[8, 1, 0xff]), 0).unwrap();
        assert_eq!(&section[..], &[b'p', 8, 1, 0xff]);
        let section = encode(parse_codec("x").unwrap(), Some(b"raw"), 0).unwrap();
        assert_eq!(&section[..], b"xraw");
        assert!(parse_codec("yaml").is_err());
    }

    #[test]
    fn gzip_bodies_round_trip() {
        let section = encode(
            parse_codec("string").unwrap(),
            Some(b"hello hello hello"),
            9,
        )
        .unwrap();
        assert_eq!(section[0], b's');
        let plain = gzip::decompress(&section[1..], 1 << 20).unwrap();
        assert_eq!(plain, b"hello hello hello");
    }

    #[test]
    fn log_lines_keep_json_as_json_and_bytes_as_hex() {
        assert_eq!(
            to_json(Some(b'j'), b"{\"a\":1}"),
            serde_json::json!({"a": 1})
        );
        assert_eq!(to_json(Some(b's'), b"hi"), serde_json::json!("hi"));
        assert_eq!(
            to_json(Some(b'p'), &[1, 0xab]),
            serde_json::json!({"hex": "01ab"})
        );
        assert_eq!(to_json(None, b""), Value::Null);
    }
}
