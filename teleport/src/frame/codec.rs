//! [`FrameCodec`]: a `tokio_util::codec` Decoder and Encoder for v2.0 frames.
//!
//! (Over 200 of its lines are tests that split frames at every byte.)

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::header::HeaderRef;
use super::{Frame, FrameError, Header, HeaderCodec};

/// The default maximum size of a frame's header and of its body: 8 MiB each.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// Reads and writes v2.0 frames.
///
/// Both length fields are checked against the limit as soon as they are read,
/// before any buffer is reserved for the bytes they announce, so a hostile
/// length never causes a large allocation. Bodies come out as [`Bytes`]
/// slices of the read buffer: no copy.
///
/// ```
/// use bytes::BytesMut;
/// use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new(1024);
/// let frame = Frame::new(HeaderCodec::Protobuf, Header::new(Kind::Push, 3, "/msg/note"), &b"shi"[..]);
/// let mut buf = BytesMut::new();
/// codec.encode(&frame, &mut buf).unwrap();
/// assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
/// ```
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max_frame_size: usize,
    /// No frame decoded yet: a bad first frame may be another protocol.
    first: bool,
    /// Bytes of an oversized body still to discard ([`FrameCodec::decode_next`]).
    skip: usize,
    /// The length of the frame being received, as far as its buffered
    /// bytes tell: its whole length once both length fields are in, its
    /// head's once the header length is; 0 when no frame is partly
    /// buffered ([`FrameCodec::awaiting`]).
    awaiting: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// What a session reads next: a frame, or the header of a frame whose body
/// is over the limit and is being skipped.
#[derive(Debug)]
pub(crate) enum Decoded {
    Frame(Frame),
    Oversized {
        header_codec: HeaderCodec,
        header: Header,
        body_len: usize,
        limit: usize,
    },
}

impl FrameCodec {
    /// A codec that refuses headers or bodies larger than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        FrameCodec {
            max_frame_size,
            first: true,
            skip: 0,
            awaiting: 0,
        }
    }

    /// The configured limit.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The length of the frame being received, when its first bytes are
    /// buffered but not all of it (the head's length until both length
    /// fields are in); 0 otherwise. What a reader sizes its next read by
    /// ([`Decoder::decode`] reserves it in the buffer).
    pub(crate) fn awaiting(&self) -> usize {
        self.awaiting
    }

    fn check(&self, part: &'static str, len: usize) -> Result<(), FrameError> {
        check_size(part, len, self.max_frame_size)
    }
}

fn be_u32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

impl FrameCodec {
    /// Decodes the next frame as a session does: like [`Decoder::decode`],
    /// except that a frame whose *body* is over the limit does not break the
    /// stream. Its header is returned as [`Decoded::Oversized`] and its body
    /// bytes are discarded as they arrive, never buffered. Only a header that
    /// cannot be read is an error.
    pub(crate) fn decode_next(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Decoded>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(src.len());
            src.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        self.decode_inner(src, true)
    }

    fn decode_inner(
        &mut self,
        src: &mut BytesMut,
        skip_oversized: bool,
    ) -> Result<Option<Decoded>, FrameError> {
        self.awaiting = 0;
        if src.len() < 4 {
            return Ok(None);
        }
        let header_len = be_u32(src);
        if header_len == 0 {
            return Err(self.not_teleport(src).unwrap_or(FrameError::EmptyHeader));
        }
        if let Err(e) = self.check("header", header_len) {
            return Err(self.not_teleport(src).unwrap_or(e));
        }
        let head = 4 + header_len + 4;
        if src.len() < head {
            if let Some(e) = self.not_teleport(src) {
                return Err(e);
            }
            self.awaiting = head;
            return Ok(None);
        }
        let header_codec = HeaderCodec::from_id(src[4]).ok_or_else(|| {
            self.not_teleport(src)
                .unwrap_or(FrameError::UnknownHeaderCodec(src[4]))
        })?;
        let body_len = be_u32(&src[4 + header_len..]);
        if let Err(e) = self.check("body", body_len) {
            if !skip_oversized {
                return Err(e);
            }
            let header = Header::decode(header_codec, &src[5..4 + header_len])?;
            src.advance(head);
            self.first = false;
            let n = body_len.min(src.len());
            src.advance(n);
            self.skip = body_len - n;
            return Ok(Some(Decoded::Oversized {
                header_codec,
                header,
                body_len,
                limit: self.max_frame_size,
            }));
        }
        let total = head + body_len;
        if src.len() < total {
            self.awaiting = total;
            return Ok(None);
        }
        // One split of the read buffer for the whole frame: the header's
        // strings are slices of it, and the body is what is left of it once
        // the head is skipped (a pointer moved, where a slice would count
        // one more reference, an atomic add and later an atomic sub).
        // Nothing is copied.
        let mut body = src.split_to(total).freeze();
        let header = Header::decode_shared(header_codec, &body, 5..4 + header_len)?;
        body.advance(head);
        self.first = false;
        Ok(Some(Decoded::Frame(Frame {
            header_codec,
            header,
            body,
        })))
    }

    /// Names the protocol the other side speaks, when the first bytes of a
    /// connection are not a teleport frame but look like a well-known one.
    fn not_teleport(&self, src: &[u8]) -> Option<FrameError> {
        if !self.first {
            return None;
        }
        let looks_like = match src {
            [0x14..=0x17, 0x03, 0x00..=0x04, ..] => {
                "a TLS record: the remote side expects TLS (dial it with `Peer::dial_tls`, feature `tls`)"
            }
            [b'H', b'T', b'T', b'P', ..] => "an HTTP response: the remote side is an HTTP server",
            [b'G', b'E', b'T', b' ', ..]
            | [b'P', b'O', b'S', b'T', ..]
            | [b'P', b'U', b'T', b' ', ..]
            | [b'H', b'E', b'A', b'D', ..]
            | [b'P', b'R', b'I', b' ', ..] => "an HTTP request: the remote side is an HTTP client",
            [b'S', b'S', b'H', b'-', ..] => "an SSH banner: the remote side is an SSH server",
            _ => return None,
        };
        Some(FrameError::NotTeleport { looks_like })
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode_inner(src, false)? {
            Some(Decoded::Frame(frame)) => Ok(Some(frame)),
            Some(Decoded::Oversized { .. }) => Ok(None),
            None => {
                src.reserve(self.awaiting.saturating_sub(src.len()));
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    /// Appends `frame` to `dst`, or nothing if its header or body is over
    /// the limit.
    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(
            frame.header_codec,
            frame.header.as_ref(),
            &frame.body,
            self.max_frame_size,
            dst,
        )
    }
}

/// Appends one frame to `dst`: header encoded with `header_codec`, then the
/// body section as given (its codec id byte first, or empty for no body).
///
/// This is the one place frames are written, so the size limit is checked
/// here: a header or body over `limit` leaves `dst` as it was and returns
/// [`FrameError::TooLarge`]. A length is never truncated to fit its `u32`.
pub(crate) fn encode_frame(
    header_codec: HeaderCodec,
    header: HeaderRef<'_>,
    body: &[u8],
    limit: usize,
    dst: &mut impl FrameBuf,
) -> Result<(), FrameError> {
    check_size("body", body.len(), limit.min(u32::MAX as usize))?;
    let body_at = begin_frame(header_codec, header, body.len(), limit, dst)?;
    dst.put_slice(body);
    end_frame(dst, body_at);
    Ok(())
}

/// [`encode_frame`] with a body section in two parts: its lead (the codec
/// id byte, and any prefix the codec writes before the payload, see
/// [`Lead`](super::Lead)) and its payload (a [`RawBody`](crate::codec::RawBody)'s
/// bytes, copied once, straight into `dst`).
pub(crate) fn encode_frame_parts(
    header_codec: HeaderCodec,
    header: HeaderRef<'_>,
    lead: &[u8],
    payload: &[u8],
    limit: usize,
    dst: &mut impl FrameBuf,
) -> Result<(), FrameError> {
    let len = lead.len() + payload.len();
    check_size("body", len, limit.min(u32::MAX as usize))?;
    let body_at = begin_frame(header_codec, header, len, limit, dst)?;
    dst.put_slice(lead);
    dst.put_slice(payload);
    end_frame(dst, body_at);
    Ok(())
}

/// A buffer frames are encoded into: the connection's write buffer, or the
/// vector a caller encodes its whole call into.
pub(crate) trait FrameBuf: BufMut + std::ops::DerefMut<Target = [u8]> {
    /// Drops everything after the first `len` bytes.
    fn truncate_to(&mut self, len: usize);
    /// Makes room for at least `additional` more bytes.
    fn reserve_more(&mut self, additional: usize);
}

impl FrameBuf for BytesMut {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl FrameBuf for Vec<u8> {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

/// Appends a frame's header and a placeholder for its body length, with
/// room reserved for a body of about `body_hint` bytes; returns where the
/// body length goes. Write the body section next, then [`end_frame`].
/// A header over `limit` leaves `dst` as it was.
pub(crate) fn begin_frame(
    header_codec: HeaderCodec,
    header: HeaderRef<'_>,
    body_hint: usize,
    limit: usize,
    dst: &mut impl FrameBuf,
) -> Result<usize, FrameError> {
    let limit = limit.min(u32::MAX as usize);
    let start = dst.len();
    // Header length, codec id, the header at its longest, body length.
    dst.reserve_more(4 + 1 + header.max_encoded_len() + 4 + body_hint);
    dst.put_u32(0);
    dst.put_u8(header_codec.id());
    header.encode(header_codec, &mut *dst);
    let header_len = dst.len() - start - 4;
    if let Err(e) = check_size("header", header_len, limit) {
        dst.truncate_to(start);
        return Err(e);
    }
    dst[start..start + 4].copy_from_slice(&(header_len as u32).to_be_bytes());
    let body_at = dst.len();
    dst.put_u32(0);
    Ok(body_at)
}

/// Appends a frame's header and the length of a body of `body_len` bytes
/// (codec id byte included) that the caller queues after it from
/// elsewhere: a payload that is not copied into `dst`. The size rule is
/// checked here, as by [`encode_frame`]; over it, `dst` is left as it was.
pub(crate) fn begin_frame_sized(
    header_codec: HeaderCodec,
    header: HeaderRef<'_>,
    body_len: usize,
    limit: usize,
    dst: &mut impl FrameBuf,
) -> Result<(), FrameError> {
    check_size("body", body_len, limit.min(u32::MAX as usize))?;
    let body_at = begin_frame(header_codec, header, 0, limit, dst)?;
    dst[body_at..body_at + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(())
}

/// Fills in the body length of a frame begun with [`begin_frame`]: the
/// body section is everything after it. Its size is the caller's to check.
pub(crate) fn end_frame(dst: &mut impl FrameBuf, body_at: usize) {
    let body_len = dst.len() - body_at - 4;
    dst[body_at..body_at + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
}

/// The frame size rule, for both directions: a header or a body (each with
/// its codec id byte) may be at most `limit` bytes.
pub(crate) fn check_size(part: &'static str, len: usize, limit: usize) -> Result<(), FrameError> {
    if len > limit {
        return Err(FrameError::TooLarge { part, len, limit });
    }
    Ok(())
}

impl Frame {
    /// A frame from its parts; `body` is the body section (codec id byte first).
    pub fn new(header_codec: HeaderCodec, header: Header, body: impl Into<Bytes>) -> Frame {
        Frame {
            header_codec,
            header,
            body: body.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Kind;

    /// A frame's buffer grows once, in `begin_frame`: an empty `Vec` is
    /// given exactly the room asked for, so any later growth (the header
    /// needing more than was reserved) would show in its capacity.
    #[test]
    fn begin_frame_reserves_room_for_the_longest_header_at_once() {
        let header = HeaderRef {
            seq: u64::MAX,
            kind: Kind::Reply,
            uri: "/a/rather/long/uri?with=a&query=string",
            gzip: -1,
            status_code: i32::MIN,
            status: "a status text of some length",
            timeout_ms: u64::MAX,
        };
        let mut dst = Vec::new();
        let body_at = begin_frame(HeaderCodec::Protobuf, header, 0, usize::MAX, &mut dst).unwrap();
        assert_eq!(dst.len(), body_at + 4);
        assert_eq!(dst.capacity(), 4 + 1 + header.max_encoded_len() + 4);
    }

    fn sample() -> Frame {
        Frame::new(
            HeaderCodec::Protobuf,
            Header::new(Kind::Pull, 1, "/home/add?x=1"),
            &b"j[40,2]"[..],
        )
    }

    #[test]
    fn encodes_the_go_bytes_of_pull_add() {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode(&sample(), &mut buf).unwrap();
        let go = "0000001470080110011a0d2f686f6d652f6164643f783d31000000076a5b34302c325d";
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, go);
    }

    #[test]
    fn decodes_a_frame_split_at_every_byte_boundary() {
        let mut whole = BytesMut::new();
        let mut codec = FrameCodec::default();
        codec.encode(&sample(), &mut whole).unwrap();
        codec.encode(&sample(), &mut whole).unwrap();
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&whole[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, vec![sample(), sample()], "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    /// What a session sizes its reads by: nothing while no length field is
    /// in, the head while only the header length is, then the whole frame;
    /// nothing again once it is decoded. The tokio-util decoder reserves it.
    #[test]
    fn awaiting_tells_the_length_of_the_frame_being_received() {
        let mut whole = BytesMut::new();
        let mut codec = FrameCodec::default();
        codec.encode(&sample(), &mut whole).unwrap();
        let header_len = be_u32(&whole);
        let head = 4 + header_len + 4;
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert!(codec.decode_next(&mut buf).unwrap().is_none());
            let expected = match cut {
                0..4 => 0,
                _ if cut < head => head,
                _ => whole.len(),
            };
            assert_eq!(codec.awaiting(), expected, "cut at {cut}");
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(
                buf.capacity() >= expected,
                "cut at {cut}: room for the rest"
            );
        }
        let mut buf = whole.clone();
        assert!(codec.decode_next(&mut buf).unwrap().is_some());
        assert_eq!(codec.awaiting(), 0);
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocating() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge {
                part: "header",
                len: 0xffff_ffff,
                limit: 1024
            }
        ));
        assert!(buf.capacity() < 1024);

        let mut buf = BytesMut::from(&b"\x00\x00\x00\x01p\x7f\xff\xff\xff"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame body of 2147483647 bytes exceeds the limit of 1024 bytes"
        );
    }

    #[test]
    fn zero_header_length_and_unknown_header_codec_are_errors() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x00\x00\x00\x00\x00"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::EmptyHeader)
        ));
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x01x\x00\x00\x00\x00"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::UnknownHeaderCodec(b'x'))
        ));
    }

    #[test]
    fn body_length_zero_means_no_body_and_one_is_an_empty_encoding() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x03p\x10\x02\x00\x00\x00\x00"[..]);
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert!(f.body.is_empty());
        assert_eq!(f.body_codec(), None);
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x03p\x10\x02\x00\x00\x00\x01p"[..]);
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.body_codec(), Some(b'p'));
        assert!(f.payload().is_empty());
    }

    #[test]
    fn oversized_headers_and_bodies_are_refused_on_write_without_writing() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&b"keep"[..]);
        let long_uri = Frame::new(
            HeaderCodec::Protobuf,
            Header::new(Kind::Pull, 1, "/a/very/long/uri/that/is/over/the/limit"),
            &b"j1"[..],
        );
        let err = codec.encode(&long_uri, &mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    part: "header",
                    limit: 16,
                    ..
                }
            ),
            "{err}"
        );
        let big_body = Frame::new(
            HeaderCodec::Protobuf,
            Header::new(Kind::Pull, 1, "/a"),
            vec![b'j'; 17],
        );
        let err = codec.encode(&big_body, &mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame body of 17 bytes exceeds the limit of 16 bytes"
        );
        assert_eq!(&buf[..], b"keep", "nothing was written");
    }

    #[test]
    fn an_oversized_body_is_skipped_and_the_next_frame_decodes() {
        let mut wire = BytesMut::new();
        let mut big = FrameCodec::new(usize::MAX);
        big.encode(
            &Frame::new(
                HeaderCodec::Protobuf,
                Header::new(Kind::Pull, 7, "/big"),
                vec![b'j'; 100],
            ),
            &mut wire,
        )
        .unwrap();
        big.encode(&sample(), &mut wire).unwrap();
        for cut in 0..wire.len() {
            let mut codec = FrameCodec::new(50);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(d) = codec.decode_next(&mut buf).unwrap() {
                got.push(d);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(d) = codec.decode_next(&mut buf).unwrap() {
                got.push(d);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert!(
                matches!(&got[0], Decoded::Oversized { header, body_len: 100, limit: 50, .. } if header.seq == 7 && header.uri == "/big"),
                "cut at {cut}: {:?}",
                got[0]
            );
            assert!(
                matches!(&got[1], Decoded::Frame(f) if *f == sample()),
                "cut at {cut}"
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn first_bytes_of_tls_http_or_ssh_are_named() {
        for (bytes, word) in [
            (&b"\x15\x03\x03\x00\x02\x02\x46"[..], "TLS"),
            (&b"\x16\x03\x01\x02\x00\x01\x00"[..], "TLS"),
            (&b"HTTP/1.1 400 Bad Request\r\n"[..], "HTTP response"),
            (&b"GET / HTTP/1.1\r\n"[..], "HTTP request"),
            (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], "SSH"),
        ] {
            let mut codec = FrameCodec::default();
            let err = codec.decode_next(&mut BytesMut::from(bytes)).unwrap_err();
            assert!(
                err.to_string().contains("not a teleport peer") && err.to_string().contains(word),
                "{err}"
            );
        }
        // After a good frame, a bad length is just a bad length.
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(&sample(), &mut buf).unwrap();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert!(codec.decode_next(&mut buf).unwrap().is_some());
        let err = codec.decode_next(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { part: "header", .. }),
            "{err}"
        );
    }

    #[test]
    fn eof_inside_a_frame_is_truncated() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x03p"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated { buffered: 5 })
        ));
    }
}
