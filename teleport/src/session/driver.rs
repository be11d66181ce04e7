//! The connection task: one task per session that owns the socket.
//!
//! It does everything that touches the connection, in one place and without
//! locks: it reads frames and routes them, polls the handlers of incoming
//! calls in place (a slow handler only waits, it never stalls the others),
//! keeps the map of pulls waiting for replies, and writes every queued frame
//! with as few `write` calls as possible. Measurements on a 2-core machine
//! showed a single task that both reads and writes beats split reader and
//! writer tasks by 1.3–2.4× for small messages, and that spawning a task per
//! request costs 1.6–3.8× CPU per call; hence this shape.
//!
//! Backpressure: the task stops taking new outgoing frames while its write
//! buffer holds more than `write_buffer` bytes, and stops reading while
//! `max_handlers` incoming calls are being handled, so neither a flood of
//! requests nor a peer that stops reading can grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tokio_util::codec::Decoder;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::Session;
use crate::error::Error;
use crate::frame::{Frame, FrameCodec, FrameError, Header, HeaderCodec, Kind, encode_frame};
use crate::plugin::{self, Plugins};
use crate::router::{BoxFuture, Ctx, Router};
use crate::status::Status;

/// What callers ask the connection task to do.
pub(crate) enum Command {
    /// Send a pull and deliver its reply to `reply`.
    Pull {
        header_codec: HeaderCodec,
        header: Header,
        body: bytes::Bytes,
        reply: oneshot::Sender<Result<Frame, Error>>,
    },
    /// Send a push.
    Push {
        header_codec: HeaderCodec,
        header: Header,
        body: bytes::Bytes,
    },
    /// Forget the pull with this seq: its caller stopped waiting.
    Cancel { seq: u64 },
}

/// How much free room the read buffer keeps before each read.
const READ_RESERVE: usize = 64 * 1024;
/// Rounds of work per poll before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 32;

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

pub(crate) struct Driver<S> {
    io: S,
    session: Session,
    router: Arc<Router>,
    cmd_rx: mpsc::Receiver<Command>,
    close_requested: Pin<Box<WaitForCancellationFutureOwned>>,
    drain_requested: Pin<Box<WaitForCancellationFutureOwned>>,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Pulls sent by this side, waiting for their replies. Only this task
    /// touches it, so it needs no lock.
    pending: HashMap<u64, oneshot::Sender<Result<Frame, Error>>>,
    /// Incoming calls being handled.
    tasks: FuturesUnordered<Task>,
    write_buffer: usize,
    max_handlers: usize,
    needs_flush: bool,
    closing: bool,
    /// Draining: no more reading; the running handlers finish, their replies
    /// are flushed, then the session closes (see [`Driver::start_draining`]).
    draining: bool,
    write_deadline: Option<Pin<Box<Sleep>>>,
    read_deadline: Option<Pin<Box<Sleep>>>,
    finished: bool,
    /// The peer's plugins (empty: every plugin step is skipped).
    plugins: Plugins,
    /// Open until the session hooks have passed; meanwhile incoming pulls
    /// and pushes wait in `held`.
    gate: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    held: VecDeque<Frame>,
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(
        io: S,
        session: Session,
        cmd_rx: mpsc::Receiver<Command>,
        router: Arc<Router>,
    ) -> Self {
        let config = session.config();
        let read_deadline = config
            .read_idle_timeout
            .map(|d| Box::pin(tokio::time::sleep(d)));
        let gate = (!session.gate_token().is_cancelled())
            .then(|| Box::pin(session.gate_token().clone().cancelled_owned()));
        Driver {
            plugins: config.plugins.clone(),
            gate,
            held: VecDeque::new(),
            codec: FrameCodec::new(config.max_frame_size),
            write_buffer: config.write_buffer.max(1),
            max_handlers: config.max_handlers.max(1),
            close_requested: Box::pin(session.close_token().clone().cancelled_owned()),
            drain_requested: Box::pin(session.drain_token().clone().cancelled_owned()),
            io,
            router,
            cmd_rx,
            rbuf: BytesMut::with_capacity(READ_RESERVE),
            wbuf: BytesMut::with_capacity(16 * 1024),
            pending: HashMap::new(),
            tasks: FuturesUnordered::new(),
            needs_flush: false,
            closing: false,
            draining: false,
            write_deadline: None,
            read_deadline,
            finished: false,
            session,
        }
    }

    /// Runs rounds of work until nothing can make progress, the session
    /// ends, or the round budget is spent.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = false;

            if !self.closing && self.close_requested.as_mut().poll(cx).is_ready() {
                self.start_closing();
                progress = true;
            }

            // Session hooks done: handle what arrived meanwhile, in order.
            if !self.closing
                && self
                    .gate
                    .as_mut()
                    .is_some_and(|gate| gate.as_mut().poll(cx).is_ready())
            {
                self.gate = None;
                while let Some(frame) = self.held.pop_front() {
                    self.dispatch(frame);
                }
                progress = true;
            }
            if !self.closing && !self.draining && self.drain_requested.as_mut().poll(cx).is_ready()
            {
                self.start_draining();
                progress = true;
            }

            // Outgoing calls, while the write buffer has room.
            if !self.closing {
                while self.wbuf.len() < self.write_buffer {
                    match self.cmd_rx.poll_recv(cx) {
                        Poll::Ready(Some(cmd)) => {
                            self.on_command(cmd);
                            progress = true;
                        }
                        _ => break,
                    }
                }
            }

            // Handlers that finished.
            while !self.tasks.is_empty() {
                match self.tasks.poll_next_unpin(cx) {
                    Poll::Ready(Some(done)) => {
                        self.on_done(done);
                        progress = true;
                    }
                    _ => break,
                }
            }

            // A drain ends once the last running handler has replied.
            if self.draining && !self.closing && self.tasks.is_empty() {
                self.start_closing();
                progress = true;
            }

            // Incoming frames, unless throttled.
            if !self.closing && !self.draining {
                match self.read(cx) {
                    Poll::Ready(Ok(true)) => progress = true,
                    Poll::Ready(Ok(false)) | Poll::Pending => {}
                    Poll::Ready(Err(reason)) => return Poll::Ready(reason),
                }
            }

            // Everything queued, in as few writes as the socket allows.
            match self.write(cx) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(reason)) => return Poll::Ready(reason),
                Poll::Pending => {}
            }

            if let Some(reason) = self.poll_timers(cx) {
                return Poll::Ready(reason);
            }

            if self.closing && self.wbuf.is_empty() {
                return match std::pin::Pin::new(&mut self.io).poll_shutdown(cx) {
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

    fn start_closing(&mut self) {
        self.closing = true;
        // A plugin that closes a session (heartbeat, auth) gives its reason first.
        let reason = self
            .session
            .close_reason()
            .unwrap_or("the session was closed locally")
            .to_owned();
        // What was already queued is still sent: pushes go out; pulls cannot
        // get a reply any more (nothing is read), so they end now.
        self.cmd_rx.close();
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            match cmd {
                Command::Push {
                    header_codec,
                    header,
                    body,
                } => {
                    encode_frame(header_codec, &header, &body, &mut self.wbuf);
                    if !self.plugins.is_empty() {
                        plugin::after_write(&self.plugins, &self.session, &header);
                    }
                }
                Command::Pull { reply, header, .. } => {
                    let _ = reply.send(Err(Error::not_sent(header.uri, reason.clone())));
                }
                Command::Cancel { .. } => {}
            }
        }
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(Error::closed(reason.clone())));
        }
        self.tasks.clear();
        self.held.clear();
    }

    /// Starts a graceful close: stop reading, but keep polling the running
    /// handlers and sending their replies (and any push they make), and close
    /// once the last one is done. Pulls this side sent cannot get a reply any
    /// more (nothing is read), so they end now, and new ones are refused.
    fn start_draining(&mut self) {
        tracing::debug!(
            session = self.session.id(),
            running = self.tasks.len(),
            "draining"
        );
        self.draining = true;
        // Nothing is read any more, so idleness is expected.
        self.read_deadline = None;
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(Error::closed(
                "the session is draining (graceful close)",
            )));
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Pull {
                header_codec,
                header,
                body,
                reply,
            } => {
                if reply.is_closed() {
                    // The caller gave up before the pull was even sent.
                    return;
                }
                if self.draining {
                    let _ = reply.send(Err(Error::not_sent(
                        header.uri,
                        "the session is draining (graceful close)",
                    )));
                    return;
                }
                encode_frame(header_codec, &header, &body, &mut self.wbuf);
                self.pending.insert(header.seq, reply);
                if !self.plugins.is_empty() {
                    plugin::after_write(&self.plugins, &self.session, &header);
                }
            }
            Command::Push {
                header_codec,
                header,
                body,
            } => {
                encode_frame(header_codec, &header, &body, &mut self.wbuf);
                if !self.plugins.is_empty() {
                    plugin::after_write(&self.plugins, &self.session, &header);
                }
            }
            Command::Cancel { seq } => {
                self.pending.remove(&seq);
            }
        }
    }

    /// Decodes and routes buffered frames, then reads once. `Ok(true)` if
    /// anything happened.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        let mut progress = false;
        loop {
            if self.tasks.len() >= self.max_handlers
                || self.held.len() >= self.max_handlers
                || self.wbuf.len() >= self.write_buffer
            {
                // Throttled: no new handler starts, but replies are still
                // read: two peers whose write buffers are both full of pulls
                // would otherwise wait on each other forever. A finishing
                // handler or a draining socket wakes us.
                if !matches!(self.codec.peek_kind(&self.rbuf), None | Some(Kind::Reply)) {
                    return Poll::Ready(Ok(progress));
                }
            }
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(frame)) => {
                    self.dispatch(frame);
                    progress = true;
                }
                Ok(None) => break,
                Err(e) => return Poll::Ready(Err(CloseReason::Frame(e))),
            }
        }
        if self.rbuf.capacity() - self.rbuf.len() < READ_RESERVE / 4 {
            self.rbuf.reserve(READ_RESERVE);
        }
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

    /// Writes the buffer out. `Ok(true)` if any byte was written.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, CloseReason>> {
        let mut wrote = false;
        while !self.wbuf.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(CloseReason::Io(std::io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => {
                    self.wbuf.advance(n);
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
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CloseReason::Io(e))),
                Poll::Pending => {}
            }
        }
        Poll::Ready(Ok(wrote))
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<CloseReason> {
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

    /// Routes one incoming frame.
    fn dispatch(&mut self, mut frame: Frame) {
        if self.gate.is_some() && frame.header.kind != Kind::Reply {
            // Session hooks still running: no handler may see this yet.
            self.held.push_back(frame);
            return;
        }
        if !self.plugins.is_empty() {
            if let Err(refusal) =
                plugin::read_header(&self.plugins, &self.session, &mut frame.header)
            {
                self.refuse(&frame, refusal, &Plugins::new());
                return;
            }
        }
        match frame.header.kind {
            Kind::Reply => match self.pending.remove(&frame.header.seq) {
                Some(reply) => {
                    if !self.plugins.is_empty() {
                        if let Err(refusal) = plugin::read_routed(
                            &self.plugins,
                            &Plugins::new(),
                            &self.session,
                            &mut frame,
                        ) {
                            refusal.log(&self.session, &frame.header);
                            let _ = reply.send(Err(Error::Status(refusal.status)));
                            return;
                        }
                    }
                    let _ = reply.send(Ok(frame));
                }
                None => tracing::debug!(
                    session = self.session.id(),
                    seq = frame.header.seq,
                    uri = %frame.header.uri,
                    "reply for a pull that is not waiting (timed out, cancelled or never sent); dropped"
                ),
            },
            Kind::Pull => {
                let Some(route) = self.router.find_pull(frame.header.path()) else {
                    tracing::debug!(target: "teleport::call", kind = "pull-handle", session = self.session.id(), remote = %self.session.remote_addr(), uri = %frame.header.uri, status = 404);
                    self.reply_without_handler(&frame, &Status::not_found());
                    return;
                };
                let (handler, spawn, plugins) =
                    (route.handler.clone(), route.spawn, route.plugins.clone());
                self.start(frame, &handler, spawn, plugins);
            }
            Kind::Push => {
                let Some(route) = self.router.find_push(frame.header.path()) else {
                    tracing::warn!(target: "teleport::call", kind = "push-handle", session = self.session.id(), remote = %self.session.remote_addr(), uri = %frame.header.uri, "push to an unknown URI dropped");
                    return;
                };
                let (handler, spawn, plugins) =
                    (route.handler.clone(), route.spawn, route.plugins.clone());
                self.start(frame, &handler, spawn, plugins);
            }
            Kind::Other(t) => {
                tracing::warn!(session = self.session.id(), remote = %self.session.remote_addr(), packet_type = t, "unsupported packet type; replied 410");
                self.reply_without_handler(&frame, &Status::unsupported_type());
            }
        }
    }

    /// Replies with a status and no body, straight from the connection task.
    fn reply_without_handler(&mut self, frame: &Frame, status: &Status) {
        // Go v2.0 sends a 410 with type 0, which two v2.0 peers can bounce
        // forever; a reply is always type 2 here.
        let header = frame.header.reply(status);
        if self.plugins.is_empty() {
            encode_frame(frame.header_codec, &header, &[], &mut self.wbuf);
        } else {
            let reply = Frame {
                header_codec: frame.header_codec,
                header,
                body: bytes::Bytes::new(),
            };
            self.write_reply(reply, &Plugins::new());
        }
    }

    /// A plugin stopped an incoming frame: a pull gets the plugin's status,
    /// a reply ends its pull with it, anything else is dropped.
    fn refuse(&mut self, frame: &Frame, refusal: plugin::Refusal, route: &Plugins) {
        refusal.log(&self.session, &frame.header);
        match frame.header.kind {
            Kind::Pull => {
                let reply = Frame {
                    header_codec: frame.header_codec,
                    header: frame.header.reply(&refusal.status),
                    body: bytes::Bytes::new(),
                };
                self.write_reply(reply, route);
            }
            Kind::Reply => {
                if let Some(reply) = self.pending.remove(&frame.header.seq) {
                    let _ = reply.send(Err(Error::Status(refusal.status)));
                }
            }
            Kind::Push | Kind::Other(_) => {}
        }
    }

    /// Queues a reply through the reply hooks of the peer's and the route's plugins.
    fn write_reply(&mut self, mut reply: Frame, route: &Plugins) {
        plugin::before_write_reply(&self.plugins, route, &self.session, &mut reply);
        encode_frame(
            reply.header_codec,
            &reply.header,
            &reply.body,
            &mut self.wbuf,
        );
        for p in plugin::chain(&self.plugins, route) {
            p.after_write_reply(&self.session, &reply.header);
        }
    }

    fn start(
        &mut self,
        mut frame: Frame,
        handler: &crate::router::HandlerFn,
        spawn: bool,
        plugins: Plugins,
    ) {
        if !(self.plugins.is_empty() && plugins.is_empty()) {
            if let Err(refusal) =
                plugin::read_routed(&self.plugins, &plugins, &self.session, &mut frame)
            {
                self.refuse(&frame, refusal, &plugins);
                return;
            }
        }
        let in_size = frame.body.len();
        if self.session.config().log_bodies {
            tracing::trace!(target: "teleport::call", uri = %frame.header.uri, seq = frame.header.seq, body = %String::from_utf8_lossy(&frame.body), "incoming body");
        }
        let (ctx, body) = Ctx::new(self.session.clone(), frame);
        let fut = CatchPanic(handler(ctx.clone(), body));
        let run = if spawn {
            Running::Spawned(tokio::spawn(fut))
        } else {
            Running::Inline(fut)
        };
        self.push_task(Task {
            run,
            ctx: Some(ctx),
            start: Instant::now(),
            in_size,
            plugins,
        });
    }

    /// Polls an inline handler once before it joins the running ones: most
    /// handlers answer at once, and then the call costs no
    /// `FuturesUnordered` node and its reply goes out in this same round.
    /// One that is not done is polled again by `tasks` with the real waker
    /// (a noop waker here loses nothing: newly pushed futures are always
    /// polled).
    fn push_task(&mut self, mut task: Task) {
        if matches!(task.run, Running::Inline(_)) {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(done) = Pin::new(&mut task).poll(&mut cx) {
                self.on_done(done);
                return;
            }
        }
        self.tasks.push(task);
    }

    fn on_done(&mut self, done: Done) {
        let Done {
            ctx,
            start,
            in_size,
            result,
            plugins,
        } = done;
        let header = ctx.header();
        let is_pull = header.kind == Kind::Pull;
        let reply = match result {
            Ok(reply) => reply,
            Err(panic) => {
                tracing::error!(session = self.session.id(), uri = %header.uri, panic = %panic, "handler panicked");
                is_pull.then(|| ctx.reply_status(&Status::internal("handler panicked")))
            }
        };
        let cost = start.elapsed();
        let config = self.session.config();
        let (status, out_size) = reply
            .as_ref()
            .map_or((0, 0), |f| (f.header.status_code, f.body.len()));
        let kind = if is_pull {
            "pull-handle"
        } else {
            "push-handle"
        };
        if config.slow_call.is_some_and(|slow| cost >= slow) {
            tracing::warn!(target: "teleport::call", kind, session = self.session.id(), remote = %self.session.remote_addr(), uri = %header.uri, seq = header.seq, status, in_size, out_size, ?cost, "slow call");
        } else {
            tracing::debug!(target: "teleport::call", kind, session = self.session.id(), remote = %self.session.remote_addr(), uri = %header.uri, seq = header.seq, status, in_size, out_size, ?cost);
        }
        if let Some(frame) = reply {
            if config.log_bodies {
                tracing::trace!(target: "teleport::call", uri = %header.uri, body = %String::from_utf8_lossy(&frame.body), "reply body");
            }
            if self.plugins.is_empty() && plugins.is_empty() {
                encode_frame(
                    frame.header_codec,
                    &frame.header,
                    &frame.body,
                    &mut self.wbuf,
                );
            } else {
                self.write_reply(frame, &plugins);
            }
        }
    }
}

impl<S> Future for Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.finished {
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

// `finish` needs no I/O bounds, so that `Drop` can call it too.
impl<S> Driver<S> {
    /// Ends the session: every waiting pull and every queued pull gets a
    /// connection-closed error, the session leaves its peer's registry.
    fn finish(&mut self, reason: CloseReason) {
        if self.finished {
            return;
        }
        self.finished = true;
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
        self.cmd_rx.close();
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(Error::closed(text.clone())));
        }
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            if let Command::Pull { reply, header, .. } = cmd {
                let _ = reply.send(Err(Error::not_sent(header.uri, text.clone())));
            }
        }
        self.tasks.clear();
        self.held.clear();
        self.session.peer().remove_session(self.session.id());
        self.session.mark_closed(text);
    }
}

impl<S> Drop for Driver<S> {
    fn drop(&mut self) {
        // Only does anything when the runtime drops the task before it
        // finished; every waiting pull still ends with a typed error.
        self.finish(CloseReason::Dropped);
    }
}

/// A handler future that turns a panic into an error value.
struct CatchPanic(BoxFuture<Option<Frame>>);

impl Future for CatchPanic {
    type Output = Result<Option<Frame>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(reply)) => Poll::Ready(Ok(reply)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

enum Running {
    Inline(CatchPanic),
    Spawned(JoinHandle<Result<Option<Frame>, String>>),
}

/// One incoming call being handled.
struct Task {
    run: Running,
    ctx: Option<Ctx>,
    start: Instant,
    in_size: usize,
    /// The route's own plugins (its groups' and its own).
    plugins: Plugins,
}

struct Done {
    ctx: Ctx,
    start: Instant,
    in_size: usize,
    result: Result<Option<Frame>, String>,
    plugins: Plugins,
}

impl Future for Task {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let result = match &mut self.run {
            Running::Inline(fut) => std::task::ready!(Pin::new(fut).poll(cx)),
            Running::Spawned(handle) => match std::task::ready!(Pin::new(handle).poll(cx)) {
                Ok(result) => result,
                Err(e) => Err(format!("handler task failed: {e}")),
            },
        };
        let ctx = self.ctx.take().expect("a task completes once");
        Poll::Ready(Done {
            ctx,
            start: self.start,
            in_size: self.in_size,
            result,
            plugins: std::mem::take(&mut self.plugins),
        })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Running::Spawned(handle) = &self.run {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;
    use std::time::Duration;

    use crate::{Ctx, Peer, PeerConfig, Router, Status};

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
