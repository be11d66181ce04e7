//! The connection task: one task per session that owns the socket.
//!
//! (This file is longer than most: the loop, its state table, and the few
//! routines that move a session between states belong together, so that one
//! reading shows every way a connection can end. What it delegates has rooms
//! of its own: `outbox`, `pending`, `inbound`.)
//!
//! It does everything that touches the connection, in one place and without
//! locks, in rounds: take the commands callers queued (pulls and pushes to
//! send) into the [`Outbox`], collect the handlers that finished (their
//! replies go to the outbox too), read and route incoming frames (replies to
//! their [`Pending`] pulls, pulls and pushes to [`Inbound`]), write the
//! outbox, check the timers. Measurements on a 2-core machine showed a
//! single task that both reads and writes beats split reader and writer
//! tasks by 1.3–2.4× for small messages, and that spawning a task per
//! request costs 1.6–3.8× CPU per call; hence this shape.
//!
//! # States
//!
//! A connection is in one [`State`] at a time:
//!
//! ```text
//! state     reads  new calls        handlers          writes                leaves for
//! --------  -----  ---------------  ----------------  --------------------  -------------------------------
//! Open      yes    written          run               yes                   Draining (shutdown), Closing
//!                                                                           (close), Finished (EOF, error)
//! Draining  yes    pulls NotSent,   run to their end  yes, first the        Closing once the goaway pull is
//!                  pushes written                     goaway pull           answered, no handler runs and
//!                                                                           no pull of ours waits; or close
//! Closing   no     NotSent          dropped           flushes what is       Finished once flushed and the
//!                                                     queued, then shuts    socket is shut down
//!                                                     the socket down
//! Finished  -      NotSent          -                 -                     (end: every waiting pull has
//!                                                                           its error, the task returns)
//! ```
//!
//! Draining is the sending side of the going-away notice
//! (docs/PROTOCOL.md). The receiving side is a flag, not a state: once
//! the remote side's goaway pull is read, new calls fail with `NotSent`
//! and everything else goes on until the remote side closes.
//!
//! Orthogonal to the state, the *gate* is closed while the peer's session
//! hooks run (auth, say): incoming pulls and pushes wait in [`Inbound`]
//! until it opens; replies pass.
//!
//! # Backpressure
//!
//! While the outbox is over `write_buffer` bytes the task writes no new
//! outgoing frame: it keeps taking commands into a backlog, written in
//! order once the socket drains, so that every pull's deadline runs (the
//! session's one timer for them lives in `pending`). The backlog is bounded
//! by the callers' slots: `max_pulls_in_flight` for pulls, `send_queue` for
//! pushes, whose callers wait past it. The task also stops reading new
//! calls while `max_handlers` incoming calls are being handled, so neither
//! a flood of requests nor a peer that stops reading can grow memory
//! without bound. Replies are
//! still read while throttled: two peers whose write buffers are both full
//! of pulls would otherwise wait on each other forever.
//!
//! # Write coalescing
//!
//! Callers that wait for replies send their next call as soon as the
//! reply wakes them, and they run on other workers while this task goes
//! on. A round that takes only a few of them and writes at once spends a
//! `sendto` on those few, and the rest follow one write each: with 4
//! connections of 64 pulls in flight on 2 cores, this task wrote about
//! four frames per system call. So when a round has taken calls, at least
//! [`COALESCE_MIN_IN_FLIGHT`] pulls wait for replies, the round took
//! fewer than half as many calls as that and less than
//! [`COALESCE_MAX_QUEUED`] bytes wait to be written, the task yields to
//! the scheduler once before it writes: the callers queued behind it run,
//! and the next round takes their calls and writes them all together
//! (larger frames are written at once). It never yields
//! twice between two writes, so a call waits at most one pass of the
//! scheduler's queue; with few pulls in flight (a single caller, say) it
//! never yields. Measured on the 2-core machine (teleport-bench, 16 B
//! echo, alternating builds): QPS with 64 pulls in flight on one
//! connection rose 10-20%, with 64 on each of four connections it
//! roughly doubled, p50 and p99 latency fell with it, and 1, 8 or 16 in
//! flight did not change beyond the noise.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::call::Outgoing;
use super::inbound::Inbound;
use super::outbox::{FlushWaiter, Outbox};
use super::pending::{Deadline, Pending, Waiter};
use super::reply_slot::Replied;
use super::{PushSlot, Session};
use crate::error::Error;
use crate::frame::{Decoded, Frame, FrameCodec, FrameError, Header, HeaderCodec, Kind};
use crate::plugin::{self, Plugins};
use crate::router::Router;
use crate::status::Status;

/// The reserved URI of the going-away notice (docs/PROTOCOL.md): a pull a
/// draining peer sends once; a teleport peer stops writing new calls on the
/// session and replies 200, a Go v2.0 peer replies 404. Either reply comes
/// after every call the remote side wrote before it.
pub(crate) const GOAWAY_URI: &str = "/_teleport/goaway";

/// What callers ask the connection task to do.
pub(crate) enum Command {
    /// Send a pull and deliver its reply to `reply`; past `deadline`,
    /// deliver a timeout instead (see `pending`).
    Pull {
        frame: Outgoing,
        reply: Waiter,
        deadline: Option<Deadline>,
    },
    /// Send a push; tell `flushed` once it is written.
    Push {
        frame: Outgoing,
        flushed: Option<FlushWaiter>,
        slot: PushSlot,
    },
    /// Forget the pull with this seq: its caller stopped waiting.
    Cancel { seq: u64 },
}

/// A call taken from the command queue while the write buffer was full,
/// waiting for room. A pull's waiter is in [`Pending`] already, so its
/// deadline runs while it waits here.
enum Queued {
    Pull(Outgoing),
    Push(Outgoing, Option<FlushWaiter>, PushSlot),
}

/// How much free room the read buffer keeps before each read.
const READ_RESERVE: usize = 64 * 1024;
/// When the read buffer must grow for a frame, how many more frames of its
/// size the new buffer has room for ([`Connection::reserve_read`]).
const READ_BURST_FRAMES: usize = 4;
/// The most room a new read buffer is given beyond the frame being
/// received: large frames are still received whole, with fewer after them
/// in the same buffer.
const READ_BURST_MAX: usize = 1024 * 1024;
/// Rounds of work per poll before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 32;
/// Pulls waiting for replies from which a round that took few calls yields
/// once before writing (module docs, "Write coalescing"). Below it the
/// callers are too few for a yield to gather more than it costs.
const COALESCE_MIN_IN_FLIGHT: usize = 8;
/// Queued bytes from which a round writes at once, whatever it took: a
/// write this large pays for its system call already, and holding back
/// large frames would only delay them.
const COALESCE_MAX_QUEUED: usize = 16 * 1024;

/// The write-coalescing rule (module docs, "Write coalescing"): yield once
/// before writing when the round took some callers' calls (`took`), at
/// least [`COALESCE_MIN_IN_FLIGHT`] pulls wait for replies (`in_flight`,
/// counting those just taken), the round took fewer than half as many
/// calls as that, and less than [`COALESCE_MAX_QUEUED`] bytes wait to be
/// written (`queued`); never twice in a row (`already`).
fn coalesce_before_write(already: bool, took: usize, in_flight: usize, queued: usize) -> bool {
    !already
        && took > 0
        && in_flight >= COALESCE_MIN_IN_FLIGHT
        && took * 2 < in_flight
        && queued < COALESCE_MAX_QUEUED
}

/// The life of a connection; the module doc has the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Draining,
    Closing,
    Finished,
}

/// Why a session ended.
enum CloseReason {
    RemoteClosed,
    LocalClose,
    Frame(FrameError),
    Io(std::io::Error),
    WriteTimeout(Duration),
    ReadIdle(Duration),
    Dropped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::RemoteClosed => f.write_str("the remote peer closed the connection"),
            CloseReason::LocalClose => f.write_str("the session was closed locally"),
            CloseReason::Frame(e) => write!(f, "broken framing: {e}"),
            CloseReason::Io(e) => write!(f, "i/o error: {e}"),
            CloseReason::WriteTimeout(d) => write!(
                f,
                "the remote peer accepted no data for {d:?} (write timeout)"
            ),
            CloseReason::ReadIdle(d) => write!(f, "nothing received for {d:?} (read idle timeout)"),
            CloseReason::Dropped => {
                f.write_str("the connection task was dropped (runtime shutting down)")
            }
        }
    }
}

/// The connection task of one session (a future: spawn it).
pub(crate) struct Connection<S> {
    io: S,
    session: Session,
    state: State,
    /// The commands taken this round (kept, with its capacity, between rounds).
    taken: Vec<Command>,
    close_requested: Pin<Box<WaitForCancellationFutureOwned>>,
    drain_requested: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Open (`None`) once the session hooks have passed.
    gate: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The three futures above have been polled once: they hold this
    /// task's waker (a spawned task's waker never changes).
    signals_registered: bool,
    codec: FrameCodec,
    rbuf: BytesMut,
    /// A call read while throttled, decoded once, waiting to be handled.
    parked: Option<Decoded>,
    out: Outbox,
    /// Calls taken while the write buffer was full, written in order
    /// before any newer one (bounded by `max_pulls_in_flight` and
    /// `send_queue`, whose slots their callers hold).
    backlog: VecDeque<Queued>,
    pending: Pending,
    inbound: Inbound,
    /// The peer's plugins (empty: every plugin step is skipped).
    plugins: Plugins,
    max_handlers: usize,
    /// The seq of our goaway pull, until its reply arrives.
    goaway_seq: Option<u64>,
    /// The remote side's goaway pull was read.
    remote_going_away: bool,
    needs_flush: bool,
    /// The last round yielded before its write to gather more calls; the
    /// next one writes whatever it has.
    coalesced: bool,
    /// This round's reading of the clock, taken when first needed: the
    /// start of every call read and the deadline of every pull taken in
    /// the round (one clock read per round instead of two per call).
    clock: Option<tokio::time::Instant>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    read_deadline: Option<Pin<Box<Sleep>>>,
    /// The session's place among the peer's `max_sessions`, given back
    /// when the session ends (see `peer/mod.rs`).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(
        io: S,
        session: Session,
        router: Arc<Router>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        let config = session.config();
        let read_deadline = config
            .read_idle_timeout
            .map(|d| Box::pin(tokio::time::sleep(d)));
        let gate = (!session.gate_token().is_cancelled())
            .then(|| Box::pin(session.gate_token().cancelled_owned()));
        Connection {
            permit,
            plugins: config.plugins.clone(),
            inbound: Inbound::new(router, config.plugins.clone()),
            gate,
            signals_registered: false,
            codec: FrameCodec::new(config.max_frame_size),
            out: Outbox::new(config.max_frame_size, config.write_buffer),
            backlog: VecDeque::new(),
            max_handlers: config.max_handlers.max(1),
            close_requested: Box::pin(session.close_token().cancelled_owned()),
            drain_requested: Box::pin(session.drain_token().cancelled_owned()),
            io,
            taken: Vec::new(),
            rbuf: BytesMut::with_capacity(READ_RESERVE),
            parked: None,
            pending: Pending::default(),
            state: State::Open,
            goaway_seq: None,
            remote_going_away: false,
            needs_flush: false,
            coalesced: false,
            clock: None,
            write_deadline: None,
            read_deadline,
            session,
        }
    }

    /// Runs rounds of work until nothing can make progress, the session
    /// ends, or the round budget is spent.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = false;
            self.clock = None;
            // Callers' calls this round took.
            let mut took = 0;

            // The three signals below are polled once to register this
            // task's waker, then only once their token is cancelled: polling
            // a registered `cancelled_owned` future takes its lock every
            // time (about 200 instructions per call for the three).
            let registered = self.signals_registered;
            self.signals_registered = true;
            let close = self.session.close_token();
            if self.state != State::Closing
                && (!registered || close.is_cancelled())
                && self.close_requested.as_mut().poll(cx).is_ready()
            {
                self.start_closing();
                progress = true;
            }

            // Session hooks done: handle what arrived meanwhile, in order.
            if self.state != State::Closing
                && (!registered || self.session.gate_token().is_cancelled())
                && self
                    .gate
                    .as_mut()
                    .is_some_and(|gate| gate.as_mut().poll(cx).is_ready())
            {
                self.gate = None;
                // Through `dispatch`: the plugins' header hooks (auth) see
                // them exactly as if they had arrived now.
                for frame in self.inbound.release() {
                    self.dispatch(frame);
                }
                progress = true;
            }
            if self.state == State::Open
                && (!registered || self.session.drain_token().is_cancelled())
                && self.drain_requested.as_mut().poll(cx).is_ready()
            {
                self.start_draining();
                progress = true;
            }

            // Outgoing calls: written while the write buffer has room, the
            // backlog first; past that taken into the backlog, so that every
            // pull's deadline runs (the callers' slots bound it).
            if self.state != State::Closing {
                while self.out.has_room() {
                    let Some(queued) = self.backlog.pop_front() else {
                        break;
                    };
                    self.write_queued(queued);
                    progress = true;
                }
                let mut taken = std::mem::take(&mut self.taken);
                if self.session.shared.commands.take(cx, &mut taken) {
                    took = taken.len();
                    for cmd in taken.drain(..) {
                        let room = self.out.has_room() && self.backlog.is_empty();
                        self.on_command(cmd, room);
                    }
                    progress = true;
                }
                self.taken = taken;
            }

            // Handlers that finished.
            progress |= self.inbound.poll_done(cx, &self.session, &mut self.out);

            // A drain ends once the remote side has answered the notice
            // (so we have read every call it wrote before it), every
            // handler has replied and every pull of ours has its reply.
            if self.state == State::Draining
                && self.goaway_seq.is_none()
                && self.inbound.is_idle()
                && self.pending.is_empty()
            {
                self.start_closing();
                progress = true;
            }

            // Incoming frames, unless throttled.
            if matches!(self.state, State::Open | State::Draining) {
                match self.read(cx) {
                    Poll::Ready(Ok(true)) => progress = true,
                    Poll::Ready(Ok(false)) | Poll::Pending => {}
                    Poll::Ready(Err(reason)) => {
                        // The remote side may only have shut down its
                        // writing half: what we queued for it (replies to
                        // what it sent last) still gets one try.
                        let _ = self.write(cx);
                        return Poll::Ready(reason);
                    }
                }
            }

            // More callers' calls are on their way: let them come first.
            if self.should_coalesce(took) {
                self.coalesced = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.coalesced = false;

            // Everything queued, in as few writes as the socket allows.
            match self.write(cx) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(reason)) => return Poll::Ready(reason),
                Poll::Pending => {}
            }

            if let Some(reason) = self.poll_timers(cx) {
                return Poll::Ready(reason);
            }

            if self.state == State::Closing && self.out.is_empty() {
                return match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(CloseReason::LocalClose),
                    Poll::Pending => Poll::Pending,
                };
            }

            if !progress {
                return Poll::Pending;
            }
        }
        // Budget spent with work left: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Enters `Closing`: nothing is read any more, so waiting pulls end now;
    /// pushes already queued still go out.
    fn start_closing(&mut self) {
        self.state = State::Closing;
        // A plugin that closes a session (heartbeat, auth) gives its reason first.
        let reason = self
            .session
            .close_reason()
            .unwrap_or("the session was closed locally")
            .to_owned();
        self.end_commands(&reason, true);
        self.pending.fail_all(&reason);
        self.inbound.clear();
    }

    /// Enters `Draining`: tell the remote side this side is going away,
    /// keep reading and answering, and close once everything in flight is
    /// done (see the state table).
    fn start_draining(&mut self) {
        tracing::debug!(
            session = self.session.id(),
            running = self.inbound.running(),
            waiting = self.pending.len(),
            "draining: going away"
        );
        self.state = State::Draining;
        let seq = self.session.next_pull_seq();
        let header = Header::new(Kind::Pull, seq, GOAWAY_URI);
        let header_codec = self.session.config().header_codec;
        match self.out.call(header_codec, &header, &[]) {
            Ok(()) => self.goaway_seq = Some(seq),
            // Only a limit below a few bytes gets here; close as before.
            Err(e) => {
                tracing::warn!(session = self.session.id(), error = %e, "cannot send the going-away notice")
            }
        }
    }

    /// The remote side is going away: no new call goes out on this session.
    fn on_goaway(&mut self, frame: &Frame) {
        tracing::debug!(session = self.session.id(), remote = %self.session.remote_addr(), "the remote peer is going away");
        self.remote_going_away = true;
        self.session.mark_going_away();
        self.out.reply(&Frame {
            header_codec: frame.header_codec,
            header: frame.header.reply(&Status::ok()),
            body: bytes::Bytes::new(),
        });
    }

    /// Takes a command: a call is written now if `room`, else it joins
    /// the backlog (a pull with its waiter in [`Pending`] already).
    fn on_command(&mut self, cmd: Command, room: bool) {
        match cmd {
            Command::Pull {
                mut frame,
                reply,
                deadline,
            } => {
                if reply.is_closed() {
                    // The caller gave up before the pull was even sent.
                    return;
                }
                if let Some(reason) = self.refuses_pulls() {
                    let _ = reply.send(Err(Error::not_sent(frame.uri(), reason)));
                    return;
                }
                let deadline = deadline.and_then(|deadline| deadline.at(self.now()));
                self.pending.insert(frame.seq, reply, deadline);
                if room {
                    self.write_call(&mut frame);
                } else {
                    self.backlog.push_back(Queued::Pull(frame));
                }
            }
            Command::Push {
                frame,
                flushed,
                slot: _slot,
            } if room => self.write_push(frame, flushed),
            Command::Push {
                frame,
                flushed,
                slot,
            } => self.backlog.push_back(Queued::Push(frame, flushed, slot)),
            Command::Cancel { seq } => self.pending.cancel(seq),
        }
    }

    /// Why no new pull may be written now, if none may.
    fn refuses_pulls(&self) -> Option<&'static str> {
        if self.remote_going_away {
            Some(
                "the remote peer is going away (shutting down or restarting); retry on another session",
            )
        } else if self.state != State::Open {
            Some("this side is going away (graceful shutdown of the session)")
        } else {
            None
        }
    }

    /// Writes a call from the backlog, now that the write buffer has room:
    /// a pull only if it still waits (its caller may have stopped waiting,
    /// or its deadline passed, meanwhile).
    fn write_queued(&mut self, queued: Queued) {
        match queued {
            Queued::Pull(mut frame) => {
                if !self.pending.contains(frame.seq) {
                    return;
                }
                if let Some(reason) = self.refuses_pulls() {
                    if let Some(reply) = self.pending.take(frame.seq) {
                        let _ = reply.send(Err(Error::not_sent(frame.uri(), reason)));
                    }
                    return;
                }
                self.write_call(&mut frame);
            }
            Queued::Push(frame, flushed, _slot) => self.write_push(frame, flushed),
        }
    }

    /// Decodes and routes buffered frames, then reads once. `Ok(true)` if
    /// anything happened.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        let mut progress = false;
        loop {
            let decoded = match self.parked.take() {
                Some(decoded) => decoded,
                None => match self.codec.decode_next(&mut self.rbuf) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => break,
                    Err(e) => return Poll::Ready(Err(CloseReason::Frame(e))),
                },
            };
            let kind = match &decoded {
                Decoded::Frame(frame) => frame.header.kind,
                Decoded::Oversized { header, .. } => header.kind,
            };
            if kind != Kind::Reply
                && (self.inbound.running() >= self.max_handlers || !self.out.has_room())
            {
                // Throttled: no new handler starts, but replies are still
                // read (see the module doc). The call waits, decoded, until
                // a finishing handler or a draining socket wakes us.
                self.parked = Some(decoded);
                return Poll::Ready(Ok(progress));
            }
            match decoded {
                Decoded::Frame(frame) => self.dispatch(frame),
                Decoded::Oversized {
                    header_codec,
                    header,
                    body_len,
                    limit,
                } => self.on_oversized(header_codec, header, body_len, limit),
            }
            progress = true;
        }
        self.reserve_read();
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(if self.rbuf.is_empty() {
                CloseReason::RemoteClosed
            } else {
                CloseReason::Frame(FrameError::Truncated {
                    buffered: self.rbuf.len(),
                })
            })),
            Poll::Ready(Ok(_)) => {
                if let (Some(deadline), Some(idle)) = (
                    self.read_deadline.as_mut(),
                    self.session.config().read_idle_timeout,
                ) {
                    deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(CloseReason::Io(e))),
            Poll::Pending if progress => Poll::Ready(Ok(true)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Makes room in the read buffer for the next read: at least
    /// `READ_RESERVE / 4` bytes, and the rest of the frame being received.
    ///
    /// Frames already read are slices of the buffer, so while any is alive
    /// (a handler's argument, a reply on its way to its caller) reserving
    /// cannot grow the buffer in place: it allocates a new one and copies
    /// the part of the next frame already read. With large frames that
    /// copy is most of a frame, so the new buffer holds the rest of this
    /// frame and [`READ_BURST_FRAMES`] more of its size (up to
    /// [`READ_BURST_MAX`]): the copy then comes once every few frames
    /// instead of once or twice per frame.
    fn reserve_read(&mut self) {
        let awaiting = self.codec.awaiting();
        let missing = awaiting.saturating_sub(self.rbuf.len());
        if self.rbuf.capacity() - self.rbuf.len() >= missing.max(READ_RESERVE / 4) {
            return;
        }
        let burst = awaiting
            .saturating_mul(READ_BURST_FRAMES)
            .clamp(READ_RESERVE, READ_BURST_MAX);
        self.rbuf.reserve(missing + burst);
    }

    /// This round's clock reading (see `clock`).
    fn now(&mut self) -> tokio::time::Instant {
        *self.clock.get_or_insert_with(tokio::time::Instant::now)
    }

    /// Whether this round, having taken `took` callers' calls, yields once
    /// before writing so that more can join them.
    fn should_coalesce(&self, took: usize) -> bool {
        coalesce_before_write(self.coalesced, took, self.pending.len(), self.out.len())
    }

    /// Writes the outbox out. `Ok(true)` if any byte was written.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        let mut wrote = false;
        while !self.out.is_empty() {
            match self.out.poll_write_to(&mut self.io, cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(CloseReason::Io(std::io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(_)) => {
                    self.needs_flush = true;
                    self.write_deadline = None;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CloseReason::Io(e))),
                Poll::Pending => {
                    if self.write_deadline.is_none() {
                        if let Some(t) = self.session.config().write_timeout {
                            self.write_deadline = Some(Box::pin(tokio::time::sleep(t)));
                        }
                    }
                    return if wrote {
                        Poll::Ready(Ok(true))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    self.out.flushed();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CloseReason::Io(e))),
                Poll::Pending => {}
            }
        }
        Poll::Ready(Ok(wrote))
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<CloseReason> {
        self.pending.poll_expired(cx);
        let config = self.session.config();
        if let Some(deadline) = self.write_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Some(CloseReason::WriteTimeout(
                    config.write_timeout.unwrap_or_default(),
                ));
            }
        }
        if let Some(deadline) = self.read_deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Some(CloseReason::ReadIdle(
                    config.read_idle_timeout.unwrap_or_default(),
                ));
            }
        }
        None
    }

    /// A frame whose body is over our limit arrived; its body is being
    /// skipped, the connection stays usable. A pull is answered with 413, a
    /// reply ends its pull, a push is dropped.
    fn on_oversized(
        &mut self,
        header_codec: HeaderCodec,
        header: Header,
        len: usize,
        limit: usize,
    ) {
        tracing::warn!(session = self.session.id(), remote = %self.session.remote_addr(), uri = %header.uri, kind = ?header.kind, len, limit, "frame body over PeerConfig::max_frame_size skipped");
        match header.kind {
            Kind::Pull => {
                let status = Status::new(
                    crate::status::code::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body of {len} bytes exceeds the serving peer's PeerConfig::max_frame_size of {limit} bytes"
                    ),
                );
                self.out.reply(&Frame {
                    header_codec,
                    header: header.reply(&status),
                    body: bytes::Bytes::new(),
                });
            }
            Kind::Reply => {
                if let Some(reply) = self.pending.take(header.seq) {
                    let _ = reply.send(Err(Error::ReplyTooLarge {
                        uri: header.uri.into(),
                        len,
                        limit,
                    }));
                }
            }
            Kind::Push | Kind::Other(_) => {}
        }
    }

    /// Routes one incoming frame: a reply to its waiting pull, anything
    /// else to [`Inbound`].
    fn dispatch(&mut self, mut frame: Frame) {
        // The going-away notice and its answer are the protocol's, not the
        // application's: no gate, plugin or router sees them.
        match frame.header.kind {
            Kind::Reply if self.goaway_seq == Some(frame.header.seq) => {
                tracing::debug!(
                    session = self.session.id(),
                    status = frame.header.status_code,
                    "the remote peer heard that we are going away"
                );
                self.goaway_seq = None;
                return;
            }
            Kind::Pull if frame.header.path() == GOAWAY_URI => {
                self.on_goaway(&frame);
                return;
            }
            _ => {}
        }
        if self.gate.is_some() && frame.header.kind != Kind::Reply {
            // Session hooks still running: no handler may see this yet.
            self.inbound.hold(frame);
            return;
        }
        if !self.plugins.is_empty() {
            if let Err(refusal) =
                plugin::read_header(&self.plugins, &self.session, &mut frame.header)
            {
                if frame.header.kind == Kind::Reply {
                    refusal.log(&self.session, &frame.header);
                    if let Some(reply) = self.pending.take(frame.header.seq) {
                        let uri = std::mem::take(&mut frame.header.uri);
                        let _ = reply.send(Err(Error::remote_status(uri, refusal.status)));
                    }
                } else {
                    self.inbound.refuse(
                        &self.session,
                        &frame,
                        refusal,
                        &Plugins::new(),
                        &mut self.out,
                    );
                }
                return;
            }
        }
        if frame.header.kind != Kind::Reply {
            let now = self.now();
            self.inbound.start(&self.session, frame, now, &mut self.out);
            return;
        }
        let Some(reply) = self.pending.take(frame.header.seq) else {
            tracing::debug!(
                session = self.session.id(),
                seq = frame.header.seq,
                uri = %frame.header.uri,
                "reply for a pull that is not waiting (timed out, cancelled or never sent); dropped"
            );
            return;
        };
        if !self.plugins.is_empty() {
            if let Err(refusal) =
                plugin::read_routed(&self.plugins, &Plugins::new(), &self.session, &mut frame)
            {
                refusal.log(&self.session, &frame.header);
                let uri = std::mem::take(&mut frame.header.uri);
                let _ = reply.send(Err(Error::remote_status(uri, refusal.status)));
                return;
            }
        }
        let _ = reply.send(Ok(Replied::of(frame)));
    }
}

impl<S> Future for Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.state == State::Finished {
            return Poll::Ready(());
        }
        match this.drive(cx) {
            Poll::Ready(reason) => {
                this.finish(reason);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

// These need no I/O bounds, so that `Drop` can call them too.
impl<S> Connection<S> {
    /// Queues a pull or a push a caller encoded, and runs the plugins'
    /// after-write hooks on it.
    fn write_call(&mut self, frame: &mut Outgoing) {
        self.out.push_encoded(&mut frame.bytes, &frame.tail);
        if let Some(header) = &frame.header {
            plugin::after_write(&self.plugins, &self.session, header);
        }
    }

    /// Queues a push (and who waits for it to be written).
    fn write_push(&mut self, mut frame: Outgoing, flushed: Option<FlushWaiter>) {
        let start = self.out.queued_end();
        // Read before the frame is queued: a large frame's bytes move into
        // the outbox, and the URI is read back from them.
        let uri = flushed.as_ref().map(|_| frame.uri());
        self.write_call(&mut frame);
        if let (Some(waiter), Some(uri)) = (flushed, uri) {
            self.out.notify_when_written(uri, start, waiter);
        }
    }

    /// Ends the commands still queued, once the connection takes no more:
    /// pulls end with [`Error::NotSent`] (they were never written); pushes
    /// go out if `write_pushes` (closing flushes what was queued), else they
    /// are dropped with the connection.
    fn end_commands(&mut self, reason: &str, write_pushes: bool) {
        for queued in std::mem::take(&mut self.backlog) {
            match queued {
                Queued::Pull(frame) => {
                    if let Some(reply) = self.pending.take(frame.seq) {
                        let _ = reply.send(Err(Error::not_sent(frame.uri(), reason)));
                    }
                }
                Queued::Push(frame, flushed, _slot) => {
                    self.end_push(frame, flushed, reason, write_pushes);
                }
            }
        }
        for cmd in self.session.shared.commands.close() {
            match cmd {
                Command::Pull { reply, frame, .. } => {
                    let _ = reply.send(Err(Error::not_sent(frame.uri(), reason)));
                }
                Command::Push { frame, flushed, .. } => {
                    self.end_push(frame, flushed, reason, write_pushes);
                }
                Command::Cancel { .. } => {}
            }
        }
    }

    /// A push still queued when the connection takes no more: written if
    /// `write_pushes` (closing flushes), else its waiter learns it was not sent.
    fn end_push(
        &mut self,
        frame: Outgoing,
        flushed: Option<FlushWaiter>,
        reason: &str,
        write_pushes: bool,
    ) {
        if write_pushes {
            self.write_push(frame, flushed);
        } else if let Some(waiter) = flushed {
            let _ = waiter.send(Err(Error::not_sent(frame.uri(), reason)));
        }
    }

    /// Ends the session: every waiting pull and every queued pull gets its
    /// error, the session leaves its peer's registry.
    fn finish(&mut self, reason: CloseReason) {
        if self.state == State::Finished {
            return;
        }
        self.state = State::Finished;
        let text = reason.to_string();
        match &reason {
            CloseReason::RemoteClosed | CloseReason::LocalClose | CloseReason::Dropped => {
                tracing::debug!(session = self.session.id(), remote = %self.session.remote_addr(), reason = %text, "session closed");
            }
            _ => {
                tracing::warn!(session = self.session.id(), remote = %self.session.remote_addr(), reason = %text, "session closed");
            }
        }
        let _ = self.session.shared.close_reason.set(text.clone());
        // The backlog's pulls first: they were never written (NotSent).
        self.end_commands(&text, false);
        self.pending.fail_all(&text);
        self.out.fail_waiters(&text);
        self.inbound.clear();
        self.session.peer().remove_session(self.session.id());
        // Before `closed` fires, so whoever waits for it finds the place free.
        drop(self.permit.take());
        self.session.mark_closed(text);
    }
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        // Only does anything when the runtime drops the task before it
        // finished; every waiting pull still ends with a typed error.
        self.finish(CloseReason::Dropped);
    }
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;
    use std::time::Duration;

    use super::{COALESCE_MAX_QUEUED, COALESCE_MIN_IN_FLIGHT, coalesce_before_write};
    use crate::{Ctx, Peer, PeerConfig, Router, Status};

    #[test]
    fn a_round_yields_before_writing_only_when_many_pulls_wait_and_few_small_calls_came() {
        let yields = |already, took, in_flight, queued| {
            coalesce_before_write(already, took, in_flight, queued)
        };
        let (min, max) = (COALESCE_MIN_IN_FLIGHT, COALESCE_MAX_QUEUED);
        let many = 4 * min;
        // A few calls while many pulls wait: more are on their way.
        assert!(yields(false, 1, many, 100));
        assert!(yields(false, many / 2 - 1, many, 100));
        // Never twice in a row: the round after a yield writes.
        assert!(!yields(true, 1, many, 100));
        // Nothing taken (replies only, or nothing new): write at once.
        assert!(!yields(false, 0, many, 100));
        // Half or more of the pulls in flight came this round.
        assert!(!yields(false, many / 2, many, 100));
        // A lone caller, or a handful: a yield would only add latency.
        assert!(!yields(false, 1, 1, 100));
        assert!(!yields(false, 1, min - 1, 100));
        assert!(yields(false, 1, min, 100));
        // Enough bytes for a write that pays for itself: write now.
        assert!(yields(false, 1, many, max - 1));
        assert!(!yields(false, 1, many, max));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peers_with_full_write_buffers_still_read_replies() {
        // Both sides' write buffers are far smaller than what is in flight,
        // so both fill up: the client's with pulls, the server's with replies.
        let config = || {
            PeerConfig::default()
                .write_buffer(16 * 1024)
                .pull_timeout(Some(Duration::from_secs(60)))
        };
        let mut router = Router::new();
        router.pull(
            "/echo",
            |_ctx: Ctx, s: String| async move { Ok::<_, Status>(s) },
        );
        let server = Peer::new(config(), router);
        let addr = server.listen("127.0.0.1:0").await.unwrap();
        let session = Peer::new(config(), Router::new()).dial(addr).await.unwrap();
        let payload = "x".repeat(256 * 1024);
        let calls = (0..64).map(|_| session.pull::<_, String>("/echo", &payload).into_future());
        for reply in futures_util::future::join_all(calls).await {
            assert_eq!(reply.unwrap().len(), payload.len());
        }
    }
}
