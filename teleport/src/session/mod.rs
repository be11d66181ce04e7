//! Sessions: one connection, many calls in flight, both directions.
//!
//! A [`Session`] is a handle to one connection between two peers. Either
//! side may [`pull`](Session::pull) (request/reply) and
//! [`push`](Session::push) (one-way) at any time, with any number of pulls
//! in flight: each pull carries a sequence number and its reply is matched
//! to it by that number, whatever order the replies come back in.
//!
//! Behind each session one connection task owns the socket. It reads frames
//! and routes them (replies to their waiting pulls, pulls and pushes to the
//! router's handlers, which it polls in place), and writes every queued
//! frame in as few writes as possible. Callers encode their arguments and
//! decode their replies on their own tasks; the connection task only moves
//! frames. When the connection ends, every pull still waiting ends at once
//! with [`Error::ConnectionClosed`].
//!
//! The module's rooms, in the order data flows:
//!
//! - `call`: [`Session::pull`]/[`Session::push`], their builders and
//!   [`CallOptions`]; arguments are encoded here, on the caller's task.
//! - `commands`: the queue that hands calls to the connection task.
//! - `connection`: the connection task that owns the socket, and its
//!   lifecycle as one state enum.
//! - `outbox`: frames queued for the socket, checked against the frame size
//!   limit; large payloads queued as they are, written in vectored writes.
//! - `pending`: the pulls this side sent, waiting for their replies, and
//!   the session's one timer for their deadlines.
//! - `reply_slot`: where a pull's reply is handed back to its caller.
//! - `inbound`: incoming calls: routing, handler tasks, panics, call logs.
//!
//! ```no_run
//! # #[allow(dead_code, unused_variables)]
//! # async fn demo(session: teleport::Session) -> Result<(), teleport::Error> {
//! use std::time::Duration;
//! use teleport::{CodecId, GzipLevel};
//!
//! let sum: i64 = session.pull("/home/add", &[40, 2]).await?;
//! let echoed: String = session
//!     .pull("/home/echo", &"hello")
//!     .codec(CodecId::STRING)
//!     .gzip(GzipLevel::L5)
//!     .timeout(Duration::from_secs(1))
//!     .await?;
//! session.push("/msg/note", &"hi").await?;
//! # Ok(()) }
//! ```

mod by_seq;
mod call;
mod commands;
mod connection;
mod extensions;
mod inbound;
mod outbox;
mod pending;
mod reply_slot;
mod slots;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::Error;
use crate::peer::{Peer, PeerConfig};
use crate::router::Router;

pub use call::{CallOptions, Pull, PullFuture, Push, PushFuture};
pub(crate) use connection::Command;
pub use extensions::Extensions;
pub(crate) use pending::Deadline;

/// A handle to one connection. Cheap to clone; all clones are the same session.
///
/// # Lifetime
///
/// - A session **dialed** by this side ([`Peer::dial`], `dial_tls`,
///   [`Peer::attach_dialed`]) lives while a handle to it lives: the
///   `Session` returned and its clones, generated clients made from it, a
///   [`Redial`](crate::peer::Redial). When the last of them is dropped, the
///   session flushes what was queued and closes in the background; the
///   remote side sees the end of the stream. (The peer's registry, the
///   [`Ctx`](crate::Ctx) of its incoming calls and the sessions listed by
///   [`Peer::sessions`] do not keep it open.)
/// - A session **accepted** by this side lives until the remote side closes
///   it, or it is closed here ([`Session::close`], [`Session::shutdown`],
///   the peer's close or shutdown).
/// - [`Session::close`] flushes queued frames, bounded by
///   `PeerConfig::write_timeout`, then shuts the connection down;
///   [`Session::shutdown`] first lets every call in flight finish (see
///   [going away](Session::is_going_away)).
/// - A push is queued when `push(..).await` returns; a push awaited with
///   [`Push::flushed`] has been written to the socket. A process that
///   returns from `main` right after dropping its handles may exit before the
///   background close has written anything: await [`Session::close`] (or the
///   last push's `flushed()`) before exiting.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    /// Present on the handles of a dialed session; the last one dropped
    /// closes it (only its `Drop` matters).
    _handle: Option<Arc<Handle>>,
}

/// A push's place among the session's `send_queue`: taken by the caller,
/// given back when the connection task puts the push into its write buffer
/// (or drops it), so the pushes waiting for room stay bounded while the
/// connection task still takes every command (and so sees every pull's
/// deadline).
pub(crate) struct PushSlot(Arc<Shared>);

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.0.push_slots.give_back();
    }
}

/// A one-way signal of the session (close, drain, going away...): a
/// cancellation token to wait on, and a flag beside it, so that the
/// checks made on every call and every round of the connection task are
/// one atomic load (the token's own `is_cancelled` takes a lock: about 200
/// instructions per call for the checks of the call path).
pub(crate) struct Signal {
    fired: AtomicBool,
    token: CancellationToken,
}

impl Signal {
    fn new() -> Self {
        Signal {
            fired: AtomicBool::new(false),
            token: CancellationToken::new(),
        }
    }

    /// Fires the signal: waiters wake, [`Signal::is_cancelled`] is true.
    pub(crate) fn cancel(&self) {
        self.fired.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// A future that completes once the signal fires, owning its token.
    pub(crate) fn cancelled_owned(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

/// Closes a dialed session when its last handle is dropped.
struct Handle(std::sync::Weak<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            if !shared.closed.is_cancelled() {
                tracing::debug!(
                    session = shared.id,
                    "every handle of the session was dropped; closing it"
                );
                let _ = shared
                    .close_reason
                    .set("every handle of the dialed session was dropped".to_owned());
                shared.close.cancel();
            }
        }
    }
}

pub(crate) struct Shared {
    id: u64,
    remote: SocketAddr,
    local: SocketAddr,
    peer: Peer,
    config: Arc<PeerConfig>,
    /// Calls for the connection task (pulls bounded by `pull_slots`,
    /// pushes by `push_slots`).
    commands: commands::Commands,
    pull_seq: AtomicU64,
    push_seq: AtomicU64,
    /// A place per pull waiting for its reply (`max_pulls_in_flight`).
    pull_slots: slots::Slots,
    /// A place per push queued and not yet in the write buffer
    /// (`send_queue`): see [`PushSlot`].
    push_slots: slots::Slots,
    /// Cancelled when the session should close (by the user or the peer).
    close: Signal,
    /// Cancelled when the session should drain: stop reading, let running
    /// handlers finish and flush their replies, then close.
    drain: Signal,
    /// Cancelled once the connection task has ended.
    closed: Signal,
    /// Cancelled when the remote peer announced it is going away: no new
    /// call is written on this session.
    going_away: Signal,
    close_reason: OnceLock<String>,
    /// Cancelled once the session hooks of the peer's plugins have passed:
    /// until then incoming pulls and pushes are held back.
    gate: Signal,
    /// Typed per-session values (plugins' state).
    extensions: Extensions,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("remote", &self.shared.remote)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Starts the connection task for `io` and returns the session's handle.
/// `register` runs before the task starts, so the session is in its peer's
/// registry before it can serve a call or end (and leave it).
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, in peer/mod.rs, that names each part"
)]
pub(crate) fn spawn<S>(
    id: u64,
    io: S,
    remote: SocketAddr,
    local: SocketAddr,
    peer: Peer,
    config: Arc<PeerConfig>,
    router: Arc<Router>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    register: impl FnOnce(&Session),
) -> Session
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let push_slots = slots::Slots::new(config.send_queue);
    let gate = Signal::new();
    if config.plugins.is_empty() {
        // No session hook to wait for.
        gate.cancel();
    }
    let pull_slots = slots::Slots::new(config.max_pulls_in_flight);
    let session = Session {
        shared: Arc::new(Shared {
            id,
            remote,
            local,
            peer,
            config,
            commands: commands::Commands::new(),
            pull_seq: AtomicU64::new(0),
            push_seq: AtomicU64::new(0),
            pull_slots,
            push_slots,
            close: Signal::new(),
            drain: Signal::new(),
            closed: Signal::new(),
            going_away: Signal::new(),
            close_reason: OnceLock::new(),
            gate,
            extensions: Extensions::new(),
        }),
        _handle: None,
    };
    let connection = connection::Connection::new(io, session.clone(), router, permit);
    register(&session);
    tokio::spawn(connection);
    session
}

impl Session {
    /// This session as a handle that keeps it open: the last such handle
    /// dropped closes it (for sessions this side dialed).
    pub(crate) fn into_handle(self) -> Session {
        let handle = Handle(Arc::downgrade(&self.shared));
        Session {
            _handle: Some(Arc::new(handle)),
            ..self
        }
    }

    /// The session's id, unique within its peer.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The address of the other end.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared.remote
    }

    /// The address of this end.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The peer this session belongs to.
    pub fn peer(&self) -> &Peer {
        &self.shared.peer
    }

    /// The peer's configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.shared.config
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<&str> {
        self.shared.close_reason.get().map(String::as_str)
    }

    /// Whether the remote peer announced that it is going away (it is
    /// shutting down or restarting): no new call is written on this session
    /// any more, and calls made on it fail at once with
    /// [`Error::NotSent`], safe to retry elsewhere.
    /// Calls already written still get their replies.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(session: teleport::Session) {
    /// session.going_away().await;
    /// assert!(session.is_going_away() || session.is_closed());
    /// # }
    /// ```
    pub fn is_going_away(&self) -> bool {
        self.shared.going_away.is_cancelled()
    }

    /// Waits until the remote peer announces it is going away, or the
    /// session has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn going_away(&self) {
        tokio::select! {
            () = self.shared.going_away.cancelled() => {}
            () = self.shared.closed.cancelled() => {}
        }
    }

    pub(crate) fn mark_going_away(&self) {
        self.shared.going_away.cancel();
    }

    /// The next sequence number of a pull this side sends.
    pub(crate) fn next_pull_seq(&self) -> u64 {
        self.shared
            .pull_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the connection has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Closes the session: stops reading, flushes what was already queued,
    /// shuts the connection down and waits for the connection task to end.
    /// Pulls still waiting end with [`Error::ConnectionClosed`]. Handlers
    /// still running are dropped: [`Session::shutdown`] lets them finish and
    /// sends their replies first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close goes on in the background.
    pub async fn close(&self) {
        self.start_close();
        self.closed().await;
    }

    pub(crate) fn start_close(&self) {
        self.shared.close.cancel();
    }

    /// Typed values attached to this session, shared by all its handles
    /// (plugins keep their per-session state here).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(session: teleport::Session) {
    /// #[derive(Clone)]
    /// struct UserId(u64);
    ///
    /// session.extensions().insert(UserId(7));
    /// assert_eq!(session.extensions().get::<UserId>().map(|u| u.0), Some(7));
    /// # }
    /// ```
    pub fn extensions(&self) -> &Extensions {
        &self.shared.extensions
    }

    /// Closes the session in the background, keeping `reason` as its close
    /// reason: pulls still waiting end with [`Error::ConnectionClosed`]
    /// carrying it.
    pub(crate) fn close_because(&self, reason: String) {
        let _ = self.shared.close_reason.set(reason);
        self.start_close();
    }

    /// Releases the incoming pulls and pushes held back while session hooks ran.
    pub(crate) fn open_gate(&self) {
        self.shared.gate.cancel();
    }

    pub(crate) fn gate_token(&self) -> &Signal {
        &self.shared.gate
    }

    pub(crate) fn close_token(&self) -> &Signal {
        &self.shared.close
    }

    /// Closes the session gracefully, losing nothing in flight: tells the
    /// remote peer this side is going away (a teleport peer then writes no
    /// new call on it; see [`Session::is_going_away`]), keeps reading and
    /// answering everything the remote side wrote before it heard that,
    /// waits for the replies to this side's own pulls, then shuts the
    /// connection down. New pulls on this session fail with
    /// [`Error::NotSent`] meanwhile. If that takes
    /// longer than `deadline`, the session is closed at once as by
    /// [`Session::close`], dropping the handlers still running and ending
    /// the pulls still waiting with [`Error::ConnectionClosed`]. The wire
    /// form of the notice, which Go Teleport v2.0 peers answer without
    /// noticing, is in `docs/PROTOCOL.md`.
    ///
    /// Returns `true` if the session drained within the deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the drain goes on in the background, but the session is
    /// then not closed at once when the deadline passes.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.start_drain();
        if tokio::time::timeout(deadline, self.closed()).await.is_ok() {
            return true;
        }
        tracing::warn!(session = self.id(), remote = %self.remote_addr(), "session did not drain within {deadline:?}; closing it now");
        self.close().await;
        false
    }

    pub(crate) fn start_drain(&self) {
        self.shared.drain.cancel();
    }

    pub(crate) fn drain_token(&self) -> &Signal {
        &self.shared.drain
    }

    pub(crate) fn mark_closed(&self, reason: String) {
        let _ = self.shared.close_reason.set(reason);
        self.shared.closed.cancel();
    }

    fn closed_error(&self) -> Error {
        Error::closed(self.close_reason().unwrap_or("the session is closed"))
    }

    /// The error of a call the connection task never took.
    fn not_sent_error(&self, uri: &str) -> Error {
        Error::not_sent(uri, self.close_reason().unwrap_or("the session is closed"))
    }
}
