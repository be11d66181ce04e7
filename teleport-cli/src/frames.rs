//! `-v`: a plugin that prints every frame this side sends and receives,
//! with its decoded header and sizes, on stderr.

use bytes::BytesMut;
use teleport::frame::{Frame, Kind};
use teleport::{HeaderCodec, Plugin, Session, Status};

use crate::body::codec_name;

/// Prints one line per frame: `>` for sent, `<` for received.
#[derive(Debug, Default)]
pub(crate) struct FrameLog;

impl FrameLog {
    pub(crate) fn new() -> FrameLog {
        FrameLog
    }
}

impl Plugin for FrameLog {
    fn name(&self) -> &str {
        "tp-frame-log"
    }

    fn before_write_pull(&self, _session: &Session, frame: &mut Frame) -> Result<(), Status> {
        eprintln!("{}", describe('>', frame));
        Ok(())
    }

    fn before_write_push(&self, _session: &Session, frame: &mut Frame) -> Result<(), Status> {
        eprintln!("{}", describe('>', frame));
        Ok(())
    }

    fn before_write_reply(&self, _session: &Session, frame: &mut Frame) -> Result<(), Status> {
        eprintln!("{}", describe('>', frame));
        Ok(())
    }

    fn after_read_body(&self, _session: &Session, frame: &mut Frame) -> Result<(), Status> {
        eprintln!("{}", describe('<', frame));
        Ok(())
    }
}

/// One line for a frame: direction, kind, the header's fields, and the
/// sizes of the header, the body and the whole frame on the wire.
pub(crate) fn describe(direction: char, frame: &Frame) -> String {
    let Frame {
        header_codec,
        header,
        body,
    } = frame;
    let mut encoded = BytesMut::new();
    header.encode(*header_codec, &mut encoded);
    let header_len = encoded.len() + 1;
    // u32 header length, codec byte + header, u32 body length, body section.
    let frame_len = 4 + header_len + 4 + body.len();
    let kind = kind_name(header.kind);
    let status = if header.kind == Kind::Reply {
        format!(" status={} {:?}", header.status_code, header.status)
    } else {
        String::new()
    };
    let line = format!(
        "{direction} {kind} seq={} uri={:?}{status} gzip={} header={}:{header_len}B body={}:{}B frame={frame_len}B",
        header.seq,
        header.uri,
        header.gzip,
        header_codec_name(*header_codec),
        codec_name(frame.body_codec()),
        body.len(),
    );
    console::style(line).dim().for_stderr().to_string()
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Pull => "PULL".into(),
        Kind::Reply => "REPLY".into(),
        Kind::Push => "PUSH".into(),
        Kind::Other(v) => format!("TYPE{v}"),
    }
}

fn header_codec_name(codec: HeaderCodec) -> &'static str {
    match codec {
        HeaderCodec::Protobuf => "protobuf",
        HeaderCodec::Json => "json",
    }
}
