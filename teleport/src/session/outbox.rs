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

use bytes::{Buf, BytesMut};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::frame::{
    Frame, FrameError, Header, HeaderCodec, HeaderRef, Section, encode_frame, encode_frame_parts,
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
            header.as_ref(),
            body,
            self.max_frame_size,
            &mut self.buf,
        )
    }

    /// Queues a frame a caller encoded (its size was checked then): its
    /// bytes, then the payload it carries as shared bytes, if any.
    pub(super) fn push_encoded(&mut self, frame: &[u8], tail: &[u8]) {
        self.buf.reserve(frame.len() + tail.len());
        self.buf.extend_from_slice(frame);
        self.buf.extend_from_slice(tail);
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
            Section::Parts(id, payload) => {
                encode_frame_parts(header_codec, header, *id, payload, limit, buf)
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
