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
//! ```no_run
//! # #[allow(dead_code, unused_variables)]
//! # async fn demo(session: teleport::Session) -> Result<(), teleport::Error> {
//! use std::time::Duration;
//! use teleport::CodecId;
//!
//! let sum: i64 = session.pull("/home/add", &[40, 2]).await?;
//! let echoed: String = session
//!     .pull("/home/echo", &"hello")
//!     .codec(CodecId::STRING)
//!     .gzip(5)
//!     .timeout(Duration::from_secs(1))
//!     .await?;
//! session.push("/msg/note", &"hi").await?;
//! # Ok(()) }
//! ```

mod driver;
mod extensions;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::codec::{CodecId, Decode, Encode, decode_section, encode_section, gzip};
use crate::error::Error;
use crate::frame::{Frame, Header, HeaderCodec, Kind};
use crate::peer::{Peer, PeerConfig};
use crate::router::Router;

pub(crate) use driver::Command;
pub use extensions::Extensions;

/// Per-call settings; anything left `None` uses the peer's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Body codec of the argument (the reply comes back in the codec the handler picks).
    pub codec: Option<CodecId>,
    /// Header codec of the pull or push.
    pub header_codec: Option<HeaderCodec>,
    /// Gzip level of the argument's body.
    pub gzip: Option<i32>,
    /// How long a pull waits for its reply; `Some(Duration::MAX)` waits forever.
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// Sets the body codec.
    #[must_use]
    pub fn codec(mut self, codec: CodecId) -> Self {
        self.codec = Some(codec);
        self
    }
    /// Sets the header codec.
    #[must_use]
    pub fn header_codec(mut self, codec: HeaderCodec) -> Self {
        self.header_codec = Some(codec);
        self
    }
    /// Sets the gzip level.
    #[must_use]
    pub fn gzip(mut self, level: i32) -> Self {
        self.gzip = Some(level);
        self
    }
    /// Sets the pull timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A handle to one connection. Cheap to clone; all clones are the same session.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    id: u64,
    remote: SocketAddr,
    local: SocketAddr,
    peer: Peer,
    config: Arc<PeerConfig>,
    cmd_tx: mpsc::Sender<Command>,
    pull_seq: AtomicU64,
    push_seq: AtomicU64,
    /// One permit per pull waiting for its reply (`max_pulls_in_flight`).
    pull_slots: Semaphore,
    /// Cancelled when the session should close (by the user or the peer).
    close: CancellationToken,
    /// Cancelled when the session should drain: stop reading, let running
    /// handlers finish and flush their replies, then close.
    drain: CancellationToken,
    /// Cancelled once the connection task has ended.
    closed: CancellationToken,
    close_reason: OnceLock<String>,
    /// Cancelled once the session hooks of the peer's plugins have passed:
    /// until then incoming pulls and pushes are held back.
    gate: CancellationToken,
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
pub(crate) fn spawn<S>(
    id: u64,
    io: S,
    remote: SocketAddr,
    local: SocketAddr,
    peer: Peer,
    config: Arc<PeerConfig>,
    router: Arc<Router>,
) -> Session
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(config.send_queue.max(1));
    let gate = CancellationToken::new();
    if config.plugins.is_empty() {
        // No session hook to wait for.
        gate.cancel();
    }
    let pull_slots = Semaphore::new(config.max_pulls_in_flight.clamp(1, Semaphore::MAX_PERMITS));
    let session = Session {
        shared: Arc::new(Shared {
            id,
            remote,
            local,
            peer,
            config,
            cmd_tx,
            pull_seq: AtomicU64::new(0),
            push_seq: AtomicU64::new(0),
            pull_slots,
            close: CancellationToken::new(),
            drain: CancellationToken::new(),
            closed: CancellationToken::new(),
            close_reason: OnceLock::new(),
            gate,
            extensions: Extensions::new(),
        }),
    };
    let driver = driver::Driver::new(io, session.clone(), cmd_rx, router);
    tokio::spawn(driver);
    session
}

impl Session {
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

    pub(crate) fn gate_token(&self) -> &CancellationToken {
        &self.shared.gate
    }

    pub(crate) fn close_token(&self) -> &CancellationToken {
        &self.shared.close
    }

    /// Closes the session gracefully: stops reading new frames, lets the
    /// handlers already running finish and flushes their replies, then shuts
    /// the connection down. If that takes longer than `deadline`, the session
    /// is closed at once as by [`Session::close`], dropping the handlers still
    /// running. Pulls this side is still waiting on end with
    /// [`Error::ConnectionClosed`] (no reply can be read any more); the other
    /// side sees a clean end of stream, and its pulls that were never read
    /// end with [`Error::ConnectionClosed`] too.
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

    pub(crate) fn drain_token(&self) -> &CancellationToken {
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

    /// Starts a pull of `uri` with `arg`; `.await` it for the reply decoded
    /// as `Resp`, or set per-call options first (`.codec()`, `.gzip()`,
    /// `.timeout()`, `.header_codec()`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the remote side replies with a status other
    /// than 200; [`Error::Timeout`]; [`Error::ConnectionClosed`];
    /// [`Error::Codec`] when the argument cannot be encoded or the reply
    /// decoded.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes abandons the pull: its slot
    /// is freed and a late reply is discarded.
    pub fn pull<'a, Req, Resp>(&'a self, uri: &'a str, arg: &'a Req) -> Pull<'a, Req, Resp>
    where
        Req: Encode + ?Sized,
        Resp: Decode,
    {
        Pull {
            session: self,
            uri,
            arg,
            options: CallOptions::default(),
            _resp: PhantomData,
        }
    }

    /// Pulls with explicit options; the same as [`Session::pull`] with the
    /// options set, without boxing the future.
    ///
    /// # Errors
    ///
    /// As [`Session::pull`].
    pub async fn pull_with<Req, Resp>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> Result<Resp, Error>
    where
        Req: Encode + ?Sized,
        Resp: Decode,
    {
        let prepared = self.prepare(uri, arg, &options);
        self.finish_pull(uri, prepared, options.timeout).await
    }

    /// Sends a one-way push of `uri` with `arg`. `.await` returns once the
    /// push is queued for the connection (not when it is handled).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] or [`Error::Codec`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may or may not send the push.
    pub fn push<'a, Req>(&'a self, uri: &'a str, arg: &'a Req) -> Push<'a, Req>
    where
        Req: Encode + ?Sized,
    {
        Push {
            session: self,
            uri,
            arg,
            options: CallOptions::default(),
        }
    }

    /// Pushes with explicit options.
    ///
    /// # Errors
    ///
    /// As [`Session::push`].
    pub async fn push_with<Req>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> Result<(), Error>
    where
        Req: Encode + ?Sized,
    {
        let prepared = self.prepare(uri, arg, &options);
        self.finish_push(prepared).await
    }

    /// Pulls with an already-encoded body section and returns the reply
    /// frame whatever its status (for proxies and gateways).
    ///
    /// `body` is a body section as on the wire (codec id byte, then the
    /// payload, compressed at `gzip` if that is not 0), or empty.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::ConnectionClosed`]; a non-200 reply is
    /// returned as a frame, not an error.
    pub async fn pull_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Frame, Error> {
        let header_codec = options
            .header_codec
            .unwrap_or(self.shared.config.header_codec);
        let prepared = Ok((header_codec, raw_header(uri, gzip), body));
        self.send_pull(uri, prepared, options.timeout).await
    }

    /// Pushes an already-encoded body section (for proxies and gateways).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`].
    pub async fn push_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: Bytes,
        options: CallOptions,
    ) -> Result<(), Error> {
        let header_codec = options
            .header_codec
            .unwrap_or(self.shared.config.header_codec);
        self.finish_push(Ok((header_codec, raw_header(uri, gzip), body)))
            .await
    }

    /// Encodes the argument on the caller's task.
    fn prepare<Req: Encode + ?Sized>(
        &self,
        uri: &str,
        arg: &Req,
        options: &CallOptions,
    ) -> Prepared {
        let config = &self.shared.config;
        let codec = options.codec.unwrap_or(config.body_codec);
        let level = options.gzip.unwrap_or(config.gzip);
        gzip::check_level(level)?;
        let body = encode_section(arg, codec, level, &config.codecs, config.max_frame_size)?;
        let header_codec = options.header_codec.unwrap_or(config.header_codec);
        Ok((header_codec, raw_header(uri, level), body))
    }

    async fn finish_pull<Resp: Decode>(
        &self,
        uri: &str,
        prepared: Prepared,
        timeout: Option<Duration>,
    ) -> Result<Resp, Error> {
        let reply = self.send_pull(uri, prepared, timeout).await?;
        let status = reply.header.status_code;
        // Go v2.0 always sets 200; 0 (the field left out) is read as success too.
        if status != crate::status::code::OK && status != 0 {
            return Err(Error::Status(reply.header.status()));
        }
        let config = &self.shared.config;
        Ok(decode_section(
            &reply.body,
            reply.header.gzip,
            &config.codecs,
            config.max_frame_size,
        )?)
    }

    /// Sends a prepared pull and waits for its reply. `uri` is the caller's
    /// (borrowed for errors and logs, so nothing is cloned per call).
    async fn send_pull(
        &self,
        uri: &str,
        prepared: Prepared,
        timeout: Option<Duration>,
    ) -> Result<Frame, Error> {
        let (mut header_codec, mut header, mut body) = prepared?;
        let seq = self.shared.pull_seq.fetch_add(1, Ordering::Relaxed);
        header.seq = seq;
        header.kind = Kind::Pull;
        if !self.shared.config.plugins.is_empty() {
            (header_codec, header, body) = self.before_write(header_codec, header, body)?;
        }
        let timeout = timeout.or(self.shared.config.pull_timeout);
        let start = Instant::now();
        let (tx, rx) = oneshot::channel();
        let cmd = Command::Pull {
            header_codec,
            header,
            body,
            reply: tx,
        };
        let wait = async {
            // Bounded pulls in flight: past the limit the caller waits for a
            // slot, within its timeout.
            let _slot = match self.shared.pull_slots.try_acquire() {
                Ok(slot) => slot,
                Err(_) => self
                    .shared
                    .pull_slots
                    .acquire()
                    .await
                    .map_err(|_| self.not_sent_error(uri))?,
            };
            self.shared
                .cmd_tx
                .send(cmd)
                .await
                .map_err(|_| self.not_sent_error(uri))?;
            let mut guard = CancelOnDrop {
                shared: &self.shared,
                seq,
                armed: true,
            };
            let received = rx.await;
            guard.armed = false;
            match received {
                Ok(result) => result,
                Err(_) => Err(self.closed_error()),
            }
        };
        let result = match timeout {
            Some(t) if t != Duration::MAX => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    uri: uri.to_owned(),
                    timeout: t,
                }),
            },
            _ => wait.await,
        };
        if tracing::enabled!(target: "teleport::call", tracing::Level::DEBUG) {
            let cost = start.elapsed();
            let status = match &result {
                Ok(f) => f.header.status_code,
                Err(Error::Status(s)) => s.code(),
                Err(_) => 0,
            };
            tracing::debug!(target: "teleport::call", kind = "pull-launch", session = self.id(), remote = %self.remote_addr(), %uri, seq, status, ?cost, ok = result.is_ok());
        }
        result
    }

    async fn finish_push(&self, prepared: Prepared) -> Result<(), Error> {
        let (mut header_codec, mut header, mut body) = prepared?;
        header.seq = self.shared.push_seq.fetch_add(1, Ordering::Relaxed);
        header.kind = Kind::Push;
        if !self.shared.config.plugins.is_empty() {
            (header_codec, header, body) = self.before_write(header_codec, header, body)?;
        }
        tracing::debug!(target: "teleport::call", kind = "push-launch", session = self.id(), remote = %self.remote_addr(), uri = %header.uri, seq = header.seq, size = body.len());
        let permit = self.shared.cmd_tx.reserve().await;
        match permit {
            Ok(permit) => {
                permit.send(Command::Push {
                    header_codec,
                    header,
                    body,
                });
                Ok(())
            }
            Err(_) => Err(self.not_sent_error(&header.uri)),
        }
    }
}

impl Session {
    /// Runs the peer plugins' `before_write_pull`/`before_write_push` hooks.
    fn before_write(
        &self,
        header_codec: HeaderCodec,
        header: Header,
        body: Bytes,
    ) -> Result<Parts, Error> {
        let mut frame = Frame {
            header_codec,
            header,
            body,
        };
        crate::plugin::before_write(&self.shared.config.plugins, self, &mut frame)
            .map_err(Error::Status)?;
        Ok((frame.header_codec, frame.header, frame.body))
    }
}

type Parts = (HeaderCodec, Header, Bytes);
type Prepared = Result<(HeaderCodec, Header, Bytes), Error>;

/// Tells the connection task to forget a pull whose caller stopped waiting
/// (timeout or a dropped future), so its slot is freed at once.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    seq: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // If the queue is full the entry is freed when the late reply
            // arrives or the session ends instead.
            let _ = self
                .shared
                .cmd_tx
                .try_send(Command::Cancel { seq: self.seq });
        }
    }
}

fn raw_header(uri: &str, gzip: i32) -> Header {
    Header {
        uri: uri.to_owned(),
        gzip,
        ..Header::default()
    }
}

/// A pull being set up: `.await` it, or set options first. Made by [`Session::pull`].
#[must_use = "a pull does nothing until it is awaited"]
pub struct Pull<'a, Req: ?Sized, Resp> {
    session: &'a Session,
    uri: &'a str,
    arg: &'a Req,
    options: CallOptions,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Req: ?Sized, Resp> fmt::Debug for Pull<'_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pull")
            .field("uri", &self.uri)
            .field("options", &self.options)
            .finish()
    }
}

impl<Req: ?Sized, Resp> Pull<'_, Req, Resp> {
    /// Encodes the argument with this body codec.
    pub fn codec(mut self, codec: CodecId) -> Self {
        self.options.codec = Some(codec);
        self
    }
    /// Encodes the header with this codec.
    pub fn header_codec(mut self, codec: HeaderCodec) -> Self {
        self.options.header_codec = Some(codec);
        self
    }
    /// Compresses the argument at this gzip level (1..=9; 0 for none).
    pub fn gzip(mut self, level: i32) -> Self {
        self.options.gzip = Some(level);
        self
    }
    /// Waits at most this long for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }
    /// Replaces all options.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }
}

/// The future of a [`Pull`].
#[must_use = "futures do nothing unless polled"]
pub struct PullFuture<'a, Resp> {
    inner: Pin<Box<dyn Future<Output = Result<Resp, Error>> + Send + 'a>>,
}

impl<Resp> fmt::Debug for PullFuture<'_, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PullFuture")
    }
}

impl<Resp> Future for PullFuture<'_, Resp> {
    type Output = Result<Resp, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<'a, Req, Resp> IntoFuture for Pull<'a, Req, Resp>
where
    Req: Encode + ?Sized,
    Resp: Decode + Send + 'a,
{
    type Output = Result<Resp, Error>;
    type IntoFuture = PullFuture<'a, Resp>;

    fn into_future(self) -> PullFuture<'a, Resp> {
        // The argument is encoded now, on the caller's task; the future only
        // borrows the session and the URI.
        let prepared = self.session.prepare(self.uri, self.arg, &self.options);
        let (session, uri, timeout) = (self.session, self.uri, self.options.timeout);
        PullFuture {
            inner: Box::pin(async move { session.finish_pull(uri, prepared, timeout).await }),
        }
    }
}

/// A push being set up: `.await` it, or set options first. Made by [`Session::push`].
#[must_use = "a push does nothing until it is awaited"]
pub struct Push<'a, Req: ?Sized> {
    session: &'a Session,
    uri: &'a str,
    arg: &'a Req,
    options: CallOptions,
}

impl<Req: ?Sized> fmt::Debug for Push<'_, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("uri", &self.uri)
            .field("options", &self.options)
            .finish()
    }
}

impl<Req: ?Sized> Push<'_, Req> {
    /// Encodes the argument with this body codec.
    pub fn codec(mut self, codec: CodecId) -> Self {
        self.options.codec = Some(codec);
        self
    }
    /// Encodes the header with this codec.
    pub fn header_codec(mut self, codec: HeaderCodec) -> Self {
        self.options.header_codec = Some(codec);
        self
    }
    /// Compresses the argument at this gzip level.
    pub fn gzip(mut self, level: i32) -> Self {
        self.options.gzip = Some(level);
        self
    }
    /// Replaces all options.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }
}

/// The future of a [`Push`].
#[must_use = "futures do nothing unless polled"]
pub struct PushFuture {
    inner: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
}

impl fmt::Debug for PushFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushFuture")
    }
}

impl Future for PushFuture {
    type Output = Result<(), Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<Req: Encode + ?Sized> IntoFuture for Push<'_, Req> {
    type Output = Result<(), Error>;
    type IntoFuture = PushFuture;

    fn into_future(self) -> PushFuture {
        let prepared = self.session.prepare(self.uri, self.arg, &self.options);
        let session = self.session.clone();
        PushFuture {
            inner: Box::pin(async move { session.finish_push(prepared).await }),
        }
    }
}
