//! Running the calls that arrive: routing, handler tasks, panics, call logs.
//!
//! An incoming pull or push is routed to its handler, whose future is
//! polled in place by the connection task (or spawned, for routes of a
//! [`Router::spawned`](crate::Router::spawned) group). A handler that
//! answers at once costs no queue node; one that waits joins
//! [`Inbound::tasks`], polled whenever the connection task wakes. A
//! synchronous handler ([`Router::pull_sync`](crate::Router::pull_sync))
//! is called in place, or on the blocking pool for a spawned group. A panic
//! is caught and becomes a `500` reply. Every finished call is logged here,
//! in one place (`teleport::call` target, `pull-handle`/`push-handle`,
//! with a slow-call warning). Replies go to the [`Outbox`].
//!
//! While a peer's session hooks run (auth, say), incoming pulls and pushes
//! wait in [`Inbound::hold`] so that no handler sees an unauthenticated
//! call; [`Inbound::release`] hands them back, in order, to be dispatched
//! (header hooks first) once the hooks pass.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::Session;
use super::outbox::Outbox;
use crate::frame::{Frame, Kind};
use crate::plugin::{self, Plugins, Refusal};
use crate::router::{Ctx, HandlerBox, HandlerFn, Reply, Router, SpareCtx, SyncFn};
use crate::status::Status;

/// The incoming calls of one session being handled.
pub(super) struct Inbound {
    router: Arc<Router>,
    /// The peer's plugins (empty: every plugin step is skipped).
    plugins: Plugins,
    /// Handlers that did not finish when first polled.
    tasks: FuturesUnordered<Task>,
    /// Calls that arrived while the session hooks ran.
    held: VecDeque<Frame>,
    /// Contexts of finished calls, for the next ones (see [`SpareCtx`]).
    spare: Vec<SpareCtx>,
    /// The box of the last handler that finished at once, for the next
    /// call's future (see [`HandlerBox`]).
    spare_future: Option<HandlerBox>,
}

/// Contexts kept for reuse per session.
const SPARE_CONTEXTS: usize = 16;

impl Inbound {
    pub(super) fn new(router: Arc<Router>, plugins: Plugins) -> Self {
        Inbound {
            router,
            plugins,
            tasks: FuturesUnordered::new(),
            held: VecDeque::new(),
            spare: Vec::new(),
            spare_future: None,
        }
    }

    /// How many handlers are running (or held back).
    pub(super) fn running(&self) -> usize {
        self.tasks.len().max(self.held.len())
    }

    /// Whether no handler is running.
    pub(super) fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.held.is_empty()
    }

    /// Keeps a call until the session hooks have passed.
    pub(super) fn hold(&mut self, frame: Frame) {
        self.held.push_back(frame);
    }

    /// The calls held back, in the order they arrived, to be dispatched
    /// now (through the plugins' header hooks, as if they had just arrived).
    pub(super) fn release(&mut self) -> VecDeque<Frame> {
        std::mem::take(&mut self.held)
    }

    /// Drops every running handler and held call (the session is closing).
    pub(super) fn clear(&mut self) {
        self.tasks.clear();
        self.held.clear();
    }

    /// Routes an incoming pull, push or frame of an unknown type, and
    /// starts its handler (or answers it at once when nothing serves it).
    pub(super) fn start(
        &mut self,
        session: &Session,
        mut frame: Frame,
        start: Instant,
        out: &mut Outbox,
    ) {
        let route = match frame.header.kind {
            Kind::Pull => self.router.find_pull(frame.header.path()),
            Kind::Push => self.router.find_push(frame.header.path()),
            Kind::Reply => return,
            Kind::Other(t) => {
                tracing::warn!(session = session.id(), remote = %session.remote_addr(), packet_type = t, "unsupported packet type; replied 410");
                self.reply_without_handler(session, &frame, &Status::unsupported_type(), out);
                return;
            }
        };
        let Some(route) = route else {
            if frame.header.kind == Kind::Pull {
                tracing::debug!(target: "teleport::call", kind = "pull-handle", session = session.id(), remote = %session.remote_addr(), uri = %frame.header.uri, status = 404);
                self.reply_without_handler(session, &frame, &Status::not_found(), out);
            } else {
                tracing::warn!(target: "teleport::call", kind = "push-handle", session = session.id(), remote = %session.remote_addr(), uri = %frame.header.uri, "push to an unknown URI dropped");
            }
            return;
        };
        // The handler is called while the route is borrowed (no reference
        // counted per call); its plugins, most often none, are cloned for
        // the reply hooks.
        let (handler, spawn, route_plugins): (&HandlerFn, bool, Plugins) =
            (&route.handler, route.spawn, route.plugins.clone());
        if !(self.plugins.is_empty() && route_plugins.is_empty()) {
            if let Err(refusal) =
                plugin::read_routed(&self.plugins, &route_plugins, session, &mut frame)
            {
                self.refuse(session, &frame, refusal, &route_plugins, out);
                return;
            }
        }
        let in_size = frame.body.len();
        if session.config().log_bodies {
            tracing::trace!(target: "teleport::call", uri = %frame.header.uri, seq = frame.header.seq, body = %String::from_utf8_lossy(&frame.body), "incoming body");
        }
        // `start` is the connection round's clock reading: the call's
        // start and the base of its deadline.
        let (ctx, body) = Ctx::new(session, frame, start, self.spare.pop());
        let handler = match handler {
            HandlerFn::Async(handler) => handler,
            HandlerFn::Sync(handler) if !spawn => {
                let done = Done {
                    result: Outcome::of(call_sync(handler, &ctx, body)),
                    ctx,
                    start,
                    in_size,
                    plugins: route_plugins,
                };
                self.finish(session, done, out);
                return;
            }
            HandlerFn::Sync(handler) => {
                let (handler, task_ctx) = (Arc::clone(handler), ctx.clone());
                let run = tokio::task::spawn_blocking(move || call_sync(&handler, &task_ctx, body));
                self.push_task(Running::Spawned(run), ctx, start, in_size, route_plugins);
                return;
            }
        };
        let mut fut = CatchPanic(handler(ctx.clone(), body, self.spare_future.take()));
        // Most inline handlers answer at once: then the call costs no
        // `FuturesUnordered` node, its reply goes out in this same round,
        // and its future's box is kept for the next call. One that is not
        // done is polled again by `tasks` with the real waker (a noop
        // waker here loses nothing: newly pushed futures are always polled).
        if !spawn {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(ended) = Pin::new(&mut fut).poll(&mut cx) {
                self.spare_future = Some(fut.0);
                let done = Done {
                    ctx,
                    start,
                    in_size,
                    result: Outcome::of(ended),
                    plugins: route_plugins,
                };
                self.finish(session, done, out);
                return;
            }
        }
        let run = if spawn {
            Running::Spawned(tokio::spawn(fut))
        } else {
            Running::Inline(fut)
        };
        self.push_task(run, ctx, start, in_size, route_plugins);
    }

    /// Keeps a handler that did not answer at once until it does, or until
    /// the caller's deadline passes.
    fn push_task(
        &mut self,
        run: Running,
        ctx: Ctx,
        start: Instant,
        in_size: usize,
        plugins: Plugins,
    ) {
        // Only a handler that did not answer at once needs a timer.
        let deadline = ctx
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        self.tasks.push(Task {
            run,
            ctx: Some(ctx),
            start,
            in_size,
            plugins,
            deadline,
        });
    }

    /// Collects the handlers that finished and queues their replies.
    /// `true` if any did.
    pub(super) fn poll_done(
        &mut self,
        cx: &mut Context<'_>,
        session: &Session,
        out: &mut Outbox,
    ) -> bool {
        let mut progress = false;
        while !self.tasks.is_empty() {
            match self.tasks.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => {
                    self.finish(session, done, out);
                    progress = true;
                }
                _ => break,
            }
        }
        progress
    }

    /// A plugin stopped an incoming pull or push: a pull gets the plugin's
    /// status, a push is dropped.
    pub(super) fn refuse(
        &mut self,
        session: &Session,
        frame: &Frame,
        refusal: Refusal,
        route: &Plugins,
        out: &mut Outbox,
    ) {
        refusal.log(session, &frame.header);
        if frame.header.kind == Kind::Pull {
            let reply = Frame {
                header_codec: frame.header_codec,
                header: frame.header.reply(&refusal.status),
                body: Bytes::new(),
            };
            self.write_reply_frame(session, reply, route, out);
        }
    }

    /// Replies with a status and no body, straight from the connection task.
    fn reply_without_handler(
        &mut self,
        session: &Session,
        frame: &Frame,
        status: &Status,
        out: &mut Outbox,
    ) {
        // Go v2.0 sends a 410 with type 0, which two v2.0 peers can bounce
        // forever; a reply is always type 2 here.
        let reply = Frame {
            header_codec: frame.header_codec,
            header: frame.header.reply(status),
            body: Bytes::new(),
        };
        self.write_reply_frame(session, reply, &Plugins::new(), out);
    }

    /// Queues a handler's reply: straight into the outbox, its header
    /// borrowing the pull's URI, unless plugins have reply hooks to run.
    fn write_reply(
        &mut self,
        session: &Session,
        ctx: &Ctx,
        reply: Reply,
        route: &Plugins,
        out: &mut Outbox,
    ) {
        if self.plugins.is_empty() && route.is_empty() {
            let Reply { status, gzip, body } = reply;
            let header = Reply::header_of(&status, gzip, !body.is_empty(), ctx.header());
            out.reply_owned(ctx.header_codec(), header, body);
        } else {
            self.write_reply_frame(session, ctx.reply_frame(reply), route, out);
        }
    }

    /// Queues a reply through the reply hooks of the peer's and the route's plugins.
    fn write_reply_frame(
        &mut self,
        session: &Session,
        mut reply: Frame,
        route: &Plugins,
        out: &mut Outbox,
    ) {
        let hooks = !(self.plugins.is_empty() && route.is_empty());
        if hooks {
            plugin::before_write_reply(&self.plugins, route, session, &mut reply);
        }
        out.reply(&reply);
        if hooks {
            for p in plugin::chain(&self.plugins, route) {
                p.after_write_reply(session, &reply.header);
            }
        }
    }

    /// Logs a finished call and queues its reply, if it has one.
    fn finish(&mut self, session: &Session, done: Done, out: &mut Outbox) {
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
            Outcome::Done(reply) => reply,
            Outcome::Panicked(panic) => {
                tracing::error!(session = session.id(), uri = %header.uri, panic = %panic, "handler panicked");
                is_pull.then(|| ctx.reply_status(&Status::internal("handler panicked")))
            }
            Outcome::Expired => {
                tracing::debug!(target: "teleport::call", kind = "pull-handle", session = session.id(), remote = %session.remote_addr(), uri = %header.uri, seq = header.seq, cost = ?start.elapsed(), "the caller's deadline passed: handler dropped, no reply");
                return;
            }
        };
        log_call(session, &ctx, start, in_size, reply.as_ref());
        if let Some(reply) = reply {
            self.write_reply(session, &ctx, reply, &plugins, out);
        }
        if self.spare.len() < SPARE_CONTEXTS {
            self.spare.extend(ctx.into_spare());
        }
    }
}

/// The one log line of a handled call, a warning when it was slow.
fn log_call(session: &Session, ctx: &Ctx, start: Instant, in_size: usize, reply: Option<&Reply>) {
    let header = ctx.header();
    // Compared as instants: the duration is worked out only for a line
    // that is logged (about 45 instructions a call less).
    let now = Instant::now();
    let config = session.config();
    let (status, out_size) = reply.map_or((0, 0), |r| (r.status.code(), r.body.len()));
    let kind = if header.kind == Kind::Pull {
        "pull-handle"
    } else {
        "push-handle"
    };
    let cost = || now.saturating_duration_since(start);
    if config
        .slow_call
        .is_some_and(|slow| start.checked_add(slow).is_some_and(|at| now >= at))
    {
        tracing::warn!(target: "teleport::call", kind, session = session.id(), remote = %session.remote_addr(), uri = %header.uri, seq = header.seq, status, in_size, out_size, cost = ?cost(), "slow call");
    } else {
        tracing::debug!(target: "teleport::call", kind, session = session.id(), remote = %session.remote_addr(), uri = %header.uri, seq = header.seq, status, in_size, out_size, cost = ?cost());
    }
    if let (Some(frame), true) = (reply, config.log_bodies) {
        let body = frame.body.clone().into_bytes();
        tracing::trace!(target: "teleport::call", uri = %header.uri, body = %String::from_utf8_lossy(&body), "reply body");
    }
}

/// A handler future that turns a panic into an error value.
struct CatchPanic(HandlerBox);

impl Future for CatchPanic {
    type Output = Result<Option<Reply>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.poll(cx))) {
            Ok(Poll::Ready(reply)) => Poll::Ready(Ok(reply)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        }
    }
}

/// Runs a synchronous handler: its reply (`None` for a push), or its
/// panic's message.
#[inline]
fn call_sync(handler: &SyncFn, ctx: &Ctx, body: Bytes) -> Result<Option<Reply>, String> {
    catch_unwind(AssertUnwindSafe(|| handler(ctx, body))).map_err(|panic| panic_message(&*panic))
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
    Spawned(JoinHandle<Result<Option<Reply>, String>>),
}

/// One incoming call being handled.
struct Task {
    run: Running,
    ctx: Option<Ctx>,
    start: Instant,
    in_size: usize,
    /// The route's own plugins (its groups' and its own).
    plugins: Plugins,
    /// When the caller stops waiting (a pull that carried a deadline and
    /// did not finish at once).
    deadline: Option<Pin<Box<Sleep>>>,
}

/// How a handler ended.
enum Outcome {
    /// It finished: a pull's reply, or `None` for a push.
    Done(Option<Reply>),
    /// It panicked, with this message.
    Panicked(String),
    /// The caller's deadline passed first: it was dropped.
    Expired,
}

impl Outcome {
    /// How a handler's future ended: its reply, or its panic's message.
    fn of(ended: Result<Option<Reply>, String>) -> Outcome {
        match ended {
            Ok(reply) => Outcome::Done(reply),
            Err(panic) => Outcome::Panicked(panic),
        }
    }
}

/// A call whose handler ended.
struct Done {
    ctx: Ctx,
    start: Instant,
    in_size: usize,
    result: Outcome,
    plugins: Plugins,
}

impl Future for Task {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let expired = self
            .deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
        let result = if expired {
            // Drops an inline handler's future with the task; a spawned
            // one is aborted by `Drop`.
            Outcome::Expired
        } else {
            let ended = match &mut self.run {
                Running::Inline(fut) => std::task::ready!(Pin::new(fut).poll(cx)),
                Running::Spawned(handle) => match std::task::ready!(Pin::new(handle).poll(cx)) {
                    Ok(result) => result,
                    Err(e) => Err(format!("handler task failed: {e}")),
                },
            };
            Outcome::of(ended)
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
