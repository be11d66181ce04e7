//! The write side of a connection: frames queued for the socket.
//!
//! Every frame a session sends (its pulls and pushes, the replies of its
//! handlers) is encoded straight into one buffer, which the connection task
//! writes out in as few `write` calls as the socket allows. Encoding goes
//! through the frame layer, which owns the size limit: a frame over
//! `PeerConfig::max_frame_size` is refused before a byte of it is queued.
//!
//! A large payload (a big argument or reply, [`LARGE`] bytes or more) is
//! not copied into the buffer: it is queued as a segment of its own, in
//! order, and the segments and the buffer go out in vectored writes. So a
//! 64 KiB call costs no copy between its encoder and the socket.
//!
//! The queue is bounded by `PeerConfig::write_buffer`: past it, the
//! connection task takes no new outgoing calls and starts no new handlers
//! until the socket drains ([`Outbox::has_room`]), so a peer that stops
//! reading cannot grow our memory without bound.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::frame::{
    Frame, FrameError, Header, HeaderCodec, HeaderRef, Section, begin_frame_sized, encode_frame,
    encode_frame_parts, spare,
};
use crate::status::Status;

/// Told once a push is written (`Push::flushed`).
pub(crate) type FlushWaiter = oneshot::Sender<Result<(), Error>>;

/// A push whose caller waits until it is written.
struct Flush {
    uri: String,
    /// The stream offsets its frame starts and ends at.
    start: u64,
    end: u64,
    waiter: FlushWaiter,
}

/// Payloads of at least this many bytes are queued as segments, not
/// copied into the buffer.
pub(super) const LARGE: usize = 8 * 1024;
/// Most slices handed to one vectored write.
const MAX_SLICES: usize = 32;

pub(super) struct Outbox {
    /// What goes out first, in order: large payloads, and the buffered
    /// bytes that were queued before each of them.
    segments: VecDeque<Bytes>,
    /// Bytes in `segments`.
    queued: usize,
    /// What goes out after the segments.
    buf: BytesMut,
    /// Bytes written (and flushed) since the session started.
    written: u64,
    /// Pushes waiting to be written.
    flush_waiters: VecDeque<Flush>,
    /// `PeerConfig::max_frame_size`.
    max_frame_size: usize,
    /// `PeerConfig::write_buffer`.
    high_water: usize,
}

impl Outbox {
    pub(super) fn new(max_frame_size: usize, high_water: usize) -> Self {
        Outbox {
            segments: VecDeque::new(),
            queued: 0,
            buf: BytesMut::with_capacity(16 * 1024),
            written: 0,
            flush_waiters: VecDeque::new(),
            max_frame_size,
            high_water: high_water.max(1),
        }
    }

    /// Bytes queued and not yet written.
    pub(super) fn len(&self) -> usize {
        self.queued + self.buf.len()
    }

    /// Whether the queue is below its high-water mark.
    pub(super) fn has_room(&self) -> bool {
        self.len() < self.high_water
    }

    /// Whether everything queued has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.queued == 0 && self.buf.is_empty()
    }

    /// Writes what is queued, in one write (vectored when segments are
    /// queued); the number of bytes the socket took.
    pub(super) fn poll_write_to<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        let n = if self.segments.is_empty() {
            std::task::ready!(Pin::new(io).poll_write(cx, &self.buf))?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for segment in self.segments.iter().take(MAX_SLICES - 1) {
                slices[count] = IoSlice::new(segment);
                count += 1;
            }
            // The buffer comes after every segment: only with all of them.
            if !self.buf.is_empty() && count == self.segments.len() {
                slices[count] = IoSlice::new(&self.buf);
                count += 1;
            }
            std::task::ready!(Pin::new(io).poll_write_vectored(cx, &slices[..count]))?
        };
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    /// Marks `n` bytes as written to the socket (not yet flushed).
    fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                self.buf.advance(n);
                return;
            };
            let take = n.min(front.len());
            front.advance(take);
            self.queued -= take;
            n -= take;
            if front.is_empty() {
                self.segments.pop_front();
            }
        }
    }

    /// Queues `payload` after everything queued so far, as a segment of
    /// its own when it is large, else copied into the buffer.
    fn push_payload(&mut self, payload: &Bytes) {
        if payload.len() < LARGE {
            self.buf.extend_from_slice(payload);
            return;
        }
        if !self.buf.is_empty() {
            let before = self.buf.split().freeze();
            self.queued += before.len();
            self.segments.push_back(before);
        }
        self.queued += payload.len();
        self.segments.push_back(payload.clone());
    }

    /// Tells `waiter` once everything queued so far has been written and
    /// flushed: the frame queued last is then on the wire.
    pub(super) fn notify_when_written(&mut self, uri: String, start: u64, waiter: FlushWaiter) {
        let end = self.queued_end();
        self.flush_waiters.push_back(Flush {
            uri,
            start,
            end,
            waiter,
        });
    }

    /// The stream offset the next queued frame starts at.
    pub(super) fn queued_end(&self) -> u64 {
        self.written + self.len() as u64
    }

    /// The socket took and flushed everything written so far: tell the
    /// pushes that are now out.
    pub(super) fn flushed(&mut self) {
        while self
            .flush_waiters
            .front()
            .is_some_and(|f| f.end <= self.written)
        {
            if let Some(f) = self.flush_waiters.pop_front() {
                let _ = f.waiter.send(Ok(()));
            }
        }
    }

    /// The connection ended: pushes not known to be out learn why. One with
    /// no byte written was not sent at all.
    pub(super) fn fail_waiters(&mut self, reason: &str) {
        for f in self.flush_waiters.drain(..) {
            let err = if f.start >= self.written {
                Error::not_sent(f.uri, reason)
            } else {
                Error::closed(reason)
            };
            let _ = f.waiter.send(Err(err));
        }
    }

    /// Queues a pull or a push.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when its header or body is over the limit;
    /// nothing is queued then.
    pub(super) fn call(
        &mut self,
        header_codec: HeaderCodec,
        header: &Header,
        body: &[u8],
    ) -> Result<(), FrameError> {
        encode_frame(
            header_codec,
            header.as_ref(),
            body,
            self.max_frame_size,
            &mut self.buf,
        )
    }

    /// Queues a frame a caller encoded (its size was checked then): its
    /// bytes (taken, not copied, when they are large), then the payload it
    /// carries as shared bytes, if any.
    pub(super) fn push_encoded(&mut self, frame: &mut Vec<u8>, tail: &Bytes) {
        if frame.len() < LARGE {
            let copied_tail = if tail.len() < LARGE { tail.len() } else { 0 };
            self.buf.reserve(frame.len() + copied_tail);
            self.buf.extend_from_slice(frame);
        } else {
            self.push_payload(&Bytes::from(std::mem::take(frame)));
        }
        if !tail.is_empty() {
            self.push_payload(tail);
        }
    }

    /// [`Outbox::reply_ref`] for a reply whose body is owned: a large body
    /// is queued as a segment instead of being copied.
    pub(super) fn reply_owned(
        &mut self,
        header_codec: HeaderCodec,
        header: HeaderRef<'_>,
        body: Section,
    ) {
        if body.len() < LARGE {
            self.reply_ref(header_codec, header, &body);
            // Written: the buffer serves the next reply on this thread.
            if let Section::Vec(v) = body {
                spare::give(v);
            }
            return;
        }
        let (lead, payload) = match body {
            Section::Vec(v) => (None, Bytes::from(v)),
            Section::Bytes(b) => (None, b),
            Section::Parts(lead, payload) => (Some(lead), payload),
        };
        let len = lead.map_or(0, |l| l.as_slice().len()) + payload.len();
        if begin_frame_sized(
            header_codec,
            header,
            len,
            self.max_frame_size,
            &mut self.buf,
        )
        .is_err()
        {
            // Over the limit: the 500 that names the sizes, as for any reply.
            let section = match lead {
                Some(lead) => Section::Parts(lead, payload),
                None => Section::Bytes(payload),
            };
            self.reply_ref(header_codec, header, &section);
            return;
        }
        if let Some(lead) = lead {
            self.buf.extend_from_slice(lead.as_slice());
        }
        self.push_payload(&payload);
    }

    /// Queues a reply. A reply over the limit is replaced by a body-less
    /// `500` that names the sizes and the setting, so the caller learns why
    /// instead of waiting for a reply that never comes.
    pub(super) fn reply(&mut self, reply: &Frame) {
        self.reply_ref(
            reply.header_codec,
            reply.header.as_ref(),
            &Section::Bytes(reply.body.clone()),
        );
    }

    /// [`Outbox::reply`] from borrowed parts: a handler's reply is written
    /// with the URI of the pull it answers, not a copy of it.
    pub(super) fn reply_ref(
        &mut self,
        header_codec: HeaderCodec,
        header: HeaderRef<'_>,
        body: &Section,
    ) {
        let limit = self.max_frame_size;
        let buf = &mut self.buf;
        let written = match body {
            Section::Bytes(b) => encode_frame(header_codec, header, b, limit, buf),
            Section::Vec(v) => encode_frame(header_codec, header, v, limit, buf),
            Section::Parts(lead, payload) => {
                encode_frame_parts(header_codec, header, lead.as_slice(), payload, limit, buf)
            }
        };
        let Err(e) = written else {
            return;
        };
        tracing::warn!(uri = %header.uri, error = %e, "reply refused by the frame size limit; replied 500");
        let status = Status::internal(format!(
            "the reply to {} cannot be sent: {e} (PeerConfig::max_frame_size of the replying peer)",
            header.uri
        ));
        let mut header = HeaderRef {
            status_code: status.code(),
            status: status.text(),
            ..header
        };
        // A status text the size of the limit is the caller's doing; the
        // reply then goes without it.
        if encode_frame(
            header_codec,
            header,
            &[],
            self.max_frame_size,
            &mut self.buf,
        )
        .is_err()
        {
            header.status = "";
            let _ = encode_frame(
                header_codec,
                header,
                &[],
                self.max_frame_size,
                &mut self.buf,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use tokio::io::AsyncWrite;

    use super::{LARGE, MAX_SLICES, Outbox};

    /// A socket that takes at most `step` bytes per write, across slices.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = self.step;
            for buf in bufs {
                let n = buf.len().min(left);
                self.got.extend_from_slice(&buf[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(self.step - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn large_and_small_frames_reach_the_socket_whole_and_in_order() {
        // More large payloads than one vectored write takes, between small
        // frames, written by a socket that takes odd-sized pieces, and by
        // one that takes all it is given.
        for step in [10_007, usize::MAX / 2] {
            let mut out = Outbox::new(1 << 30, 1 << 30);
            let mut expected = Vec::new();
            for i in 0..(MAX_SLICES * 2) {
                let mut small = vec![i as u8; 10 + i];
                expected.extend_from_slice(&small);
                out.push_encoded(&mut small, &Bytes::new());
                let mut large = vec![(i * 7) as u8; LARGE + i];
                expected.extend_from_slice(&large);
                let tail = Bytes::from(vec![(i * 3) as u8; if i % 2 == 0 { LARGE } else { 5 }]);
                expected.extend_from_slice(&tail);
                out.push_encoded(&mut large, &tail);
            }
            assert_eq!(out.queued_end(), expected.len() as u64);
            let mut socket = Trickle {
                got: Vec::new(),
                step,
            };
            let mut cx = Context::from_waker(std::task::Waker::noop());
            while !out.is_empty() {
                match out.poll_write_to(&mut socket, &mut cx) {
                    Poll::Ready(Ok(n)) => assert!(n > 0),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(socket.got.len(), expected.len());
            assert!(
                socket.got == expected,
                "bytes out of order or lost (step {step})"
            );
        }
    }
}
