//! The write side of a connection: frames queued for the socket.
//!
//! Every frame a session sends (its pulls and pushes, the replies of its
//! handlers) is encoded straight into one buffer, which the connection task
//! writes out in as few `write` calls as the socket allows. Encoding goes
//! through the frame layer, which owns the size limit: a frame over
//! `PeerConfig::max_frame_size` is refused before a byte of it is queued.
//!
//! The buffer is bounded by `PeerConfig::write_buffer`: past it, the
//! connection task takes no new outgoing calls and starts no new handlers
//! until the socket drains ([`Outbox::has_room`]), so a peer that stops
//! reading cannot grow our memory without bound.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::frame::{Frame, FrameError, Header, HeaderCodec, encode_frame};
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

pub(super) struct Outbox {
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
            buf: BytesMut::with_capacity(16 * 1024),
            written: 0,
            flush_waiters: VecDeque::new(),
            max_frame_size,
            high_water: high_water.max(1),
        }
    }

    /// Whether the buffer is below its high-water mark.
    pub(super) fn has_room(&self) -> bool {
        self.buf.len() < self.high_water
    }

    /// Whether everything queued has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes still to write.
    pub(super) fn unwritten(&self) -> &[u8] {
        &self.buf
    }

    /// Marks `n` bytes as written to the socket (not yet flushed).
    pub(super) fn advance(&mut self, n: usize) {
        self.buf.advance(n);
        self.written += n as u64;
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
        self.written + self.buf.len() as u64
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
            header,
            body,
            self.max_frame_size,
            &mut self.buf,
        )
    }

    /// Queues a reply. A reply over the limit is replaced by a body-less
    /// `500` that names the sizes and the setting, so the caller learns why
    /// instead of waiting for a reply that never comes.
    pub(super) fn reply(&mut self, reply: &Frame) {
        let Err(e) = encode_frame(
            reply.header_codec,
            &reply.header,
            &reply.body,
            self.max_frame_size,
            &mut self.buf,
        ) else {
            return;
        };
        tracing::warn!(uri = %reply.header.uri, error = %e, "reply refused by the frame size limit; replied 500");
        let status = Status::internal(format!(
            "the reply to {} cannot be sent: {e} (PeerConfig::max_frame_size of the replying peer)",
            reply.header.uri
        ));
        let mut header = reply.header.clone();
        header.status_code = status.code();
        header.status = status.text().to_owned();
        // A status text the size of the limit is the caller's doing; the
        // reply then goes without it.
        if encode_frame(
            reply.header_codec,
            &header,
            &Bytes::new(),
            self.max_frame_size,
            &mut self.buf,
        )
        .is_err()
        {
            header.status.clear();
            let _ = encode_frame(
                reply.header_codec,
                &header,
                &Bytes::new(),
                self.max_frame_size,
                &mut self.buf,
            );
        }
    }
}
