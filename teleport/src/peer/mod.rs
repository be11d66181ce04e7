//! Peers: endpoints that listen and dial with the same API.
//!
//! A [`Peer`] owns a [`Router`] and a [`PeerConfig`]. It can listen on any
//! number of addresses and dial any number of remote peers; every
//! connection, accepted or dialed, becomes a [`Session`] served by the same
//! router, so both ends of a connection can pull and push to each other.
//! The peer keeps a registry of its live sessions.
//!
//! ```
//! use teleport::{Ctx, Peer, PeerConfig, Router, Status};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut router = Router::new();
//! router.pull("/home/echo", |_: Ctx, s: String| async move { Ok::<_, Status>(s) });
//! let server = Peer::new(PeerConfig::default(), router);
//! let addr = server.listen("127.0.0.1:0").await?;
//!
//! let client = Peer::new(PeerConfig::default(), Router::new());
//! let session = client.dial(addr).await?;
//! let reply: String = session.pull("/home/echo", &"hi").await?;
//! assert_eq!(reply, "hi");
//! # Ok(()) }
//! ```

mod config;
mod redial;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;

pub use config::PeerConfig;
pub use redial::{ReconnectPolicy, Redial, RedialEvent};

use crate::error::PeerError;
use crate::frame::Kind;
use crate::plugin::{self, Side};
use crate::router::Router;
use crate::session::Session;

/// An endpoint that listens and dials; cheap to clone (all clones are the same peer).
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<PeerConfig>,
    router: Arc<Router>,
    sessions: Mutex<HashMap<u64, Session>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    listen_addrs: Mutex<Vec<SocketAddr>>,
    /// The listeners being served, so a restart can hand them to a new process.
    listeners: Mutex<Vec<Arc<TcpListener>>>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("listening", &self.listen_addrs())
            .field("sessions", &self.session_count())
            .finish()
    }
}

impl Peer {
    /// A peer serving `router` with `config`. It neither listens nor dials yet.
    ///
    /// The peer plugins of `config` install their own routes into `router`
    /// and hear about every route (see [`plugin`]).
    pub fn new(config: PeerConfig, router: Router) -> Peer {
        let mut router = router;
        for p in config.plugins.iter() {
            p.install(&mut router);
        }
        for p in config.plugins.iter() {
            for path in router.pull_paths() {
                p.after_register(Kind::Pull, path);
            }
            for path in router.push_paths() {
                p.after_register(Kind::Push, path);
            }
        }
        Peer {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                router: Arc::new(router),
                sessions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                listen_addrs: Mutex::new(Vec::new()),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.inner.config
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Binds `addr` and accepts connections on it in a background task until
    /// [`Peer::close`]. Returns the bound address (useful with port 0).
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the address cannot be bound.
    pub async fn listen(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<SocketAddr, PeerError> {
        self.serve(bind(addr).await?)
    }

    /// Accepts connections on an already-bound listener in a background task.
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the listener's address cannot be read, or
    /// [`PeerError::ShuttingDown`].
    pub fn serve(&self, listener: TcpListener) -> Result<SocketAddr, PeerError> {
        self.serve_with(listener, |peer, stream, remote, local| {
            let session = peer.start_session(stream, remote, local);
            tracing::debug!(session = session.id(), %remote, "accepted");
        })
    }

    /// Accepts connections on `listener` in a background task and hands each
    /// one to `on_accept` (which starts a session, maybe after a handshake).
    pub(crate) fn serve_with<F>(
        &self,
        listener: TcpListener,
        on_accept: F,
    ) -> Result<SocketAddr, PeerError>
    where
        F: Fn(&Peer, TcpStream, SocketAddr, SocketAddr) + Send + 'static,
    {
        if self.inner.shutdown.is_cancelled() {
            return Err(PeerError::ShuttingDown);
        }
        let local = listener.local_addr().map_err(|source| PeerError::Listen {
            addr: "<listener>".into(),
            source,
        })?;
        lock(&self.inner.listen_addrs).push(local);
        let listener = Arc::new(listener);
        lock(&self.inner.listeners).push(listener.clone());
        tracing::info!(addr = %local, "listening");
        let peer = self.clone();
        tokio::spawn(async move {
            peer.accept_loop(listener, local, on_accept).await;
        });
        Ok(local)
    }

    async fn accept_loop<F>(self, listener: Arc<TcpListener>, local: SocketAddr, on_accept: F)
    where
        F: Fn(&Peer, TcpStream, SocketAddr, SocketAddr),
    {
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = self.inner.shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, remote)) => {
                    backoff = Duration::from_millis(5);
                    if self.inner.config.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    let limit = self.inner.config.max_sessions;
                    if self.session_count() >= limit {
                        tracing::warn!(%remote, limit, "session limit reached; connection refused");
                        drop(stream);
                        continue;
                    }
                    on_accept(&self, stream, remote, local);
                }
                Err(e) => {
                    // Out of file descriptors and similar: log, back off, keep serving.
                    tracing::error!(addr = %local, error = %e, "accept failed; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        lock(&self.inner.listen_addrs).retain(|a| *a != local);
        lock(&self.inner.listeners).retain(|l| !Arc::ptr_eq(l, &listener));
        tracing::info!(addr = %local, "stopped listening");
    }

    /// Connects to a remote peer; the connection becomes a session served by
    /// this peer's router.
    ///
    /// # Errors
    ///
    /// [`PeerError::Dial`] or [`PeerError::DialTimeout`].
    pub async fn dial(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<Session, PeerError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(PeerError::ShuttingDown);
        }
        let limit = self.inner.config.max_sessions;
        if self.session_count() >= limit {
            return Err(PeerError::TooManySessions { limit });
        }
        let timeout = self.inner.config.dial_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(PeerError::Dial {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(PeerError::DialTimeout {
                    addr: addr.to_string(),
                    timeout,
                });
            }
        };
        if self.inner.config.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let dial_err = |source| PeerError::Dial {
            addr: addr.to_string(),
            source,
        };
        let remote = stream.peer_addr().map_err(dial_err)?;
        let local = stream.local_addr().map_err(dial_err)?;
        let session = self.open_session(stream, remote, local);
        tracing::debug!(session = session.id(), %remote, "dialed");
        self.run_dial_hooks(&session, &addr.to_string()).await?;
        Ok(session.into_handle())
    }

    /// Runs the peer plugins' `after_accept` hooks of a new session in the
    /// background (the session holds its incoming calls until they pass).
    fn spawn_accept_hooks(&self, session: &Session) {
        if self.inner.config.plugins.is_empty() {
            return;
        }
        let hooks = plugin::run_session_hooks(
            self.inner.config.plugins.clone(),
            session.clone(),
            Side::Accepted,
        );
        tokio::spawn(hooks);
    }

    /// Runs the peer plugins' `after_dial` hooks of a new session.
    async fn run_dial_hooks(&self, session: &Session, addr: &str) -> Result<(), PeerError> {
        if self.inner.config.plugins.is_empty() {
            return Ok(());
        }
        let plugins = self.inner.config.plugins.clone();
        let hooks = plugin::run_session_hooks(plugins, session.clone(), Side::Dialed);
        let Err(refused) = hooks.await else {
            return Ok(());
        };
        // The session is closing; let it leave the registry before reporting.
        let _ = tokio::time::timeout(self.inner.config.dial_timeout, session.closed()).await;
        tracing::debug!(%addr, %refused, "dial refused by a plugin");
        Err(PeerError::Refused(refused))
    }

    /// Runs a session over a byte stream this side opened (a TLS client
    /// stream, say), as [`Peer::dial`] does over TCP: the peer plugins'
    /// `after_dial` hooks run before it returns.
    ///
    /// # Errors
    ///
    /// [`PeerError::Refused`] with the [`plugin::SessionRefused`] if a hook
    /// refused the session (which is then closed).
    pub async fn attach_dialed<S>(
        &self,
        io: S,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Result<Session, PeerError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let session = self.open_session(io, remote, local);
        self.run_dial_hooks(&session, &remote.to_string()).await?;
        Ok(session.into_handle())
    }

    /// Runs a session over any byte stream (a TLS stream, an in-memory
    /// duplex...). `remote` and `local` are what the session reports.
    ///
    /// The session counts as accepted: the peer plugins' `after_accept`
    /// hooks run on it in the background. Use [`Peer::attach_dialed`] for a
    /// stream this side opened.
    pub fn attach<S>(&self, io: S, remote: SocketAddr, local: SocketAddr) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.start_session(io, remote, local)
    }

    /// Starts a session this side accepted: the peer plugins' `after_accept`
    /// hooks run on it in the background.
    fn start_session<S>(&self, io: S, remote: SocketAddr, local: SocketAddr) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let session = self.open_session(io, remote, local);
        self.spawn_accept_hooks(&session);
        session
    }

    /// Starts a session's connection task. With peer plugins, its incoming
    /// calls wait until its session hooks have run (see [`plugin`]).
    fn open_session<S>(&self, io: S, remote: SocketAddr, local: SocketAddr) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let session = crate::session::spawn(
            id,
            io,
            remote,
            local,
            self.clone(),
            self.inner.config.clone(),
            self.inner.router.clone(),
        );
        lock(&self.inner.sessions).insert(id, session.clone());
        // A session that got in while the peer started closing (an accept or
        // handshake racing `close`) missed its snapshot of the registry: it
        // closes itself, so a closed peer never keeps a live session.
        if self.inner.shutdown.is_cancelled() {
            session.start_close();
        }
        session
    }

    pub(crate) fn remove_session(&self, id: u64) {
        lock(&self.inner.sessions).remove(&id);
    }

    /// The live session with this id.
    pub fn session(&self, id: u64) -> Option<Session> {
        lock(&self.inner.sessions).get(&id).cloned()
    }

    /// All live sessions, in no particular order.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.inner.sessions).values().cloned().collect()
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// The addresses this peer listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.inner.listen_addrs).clone()
    }

    /// Stops listening, closes every session (flushing what was already
    /// written to them) and waits up to `timeout` for them to end. Pending
    /// pulls on those sessions end with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed).
    /// Handlers still running are dropped: [`Peer::shutdown`] lets them
    /// finish and sends their replies first.
    pub async fn close(&self, timeout: Duration) {
        self.inner.shutdown.cancel();
        let sessions = self.sessions();
        for s in &sessions {
            s.start_close();
        }
        let all = futures_util::future::join_all(sessions.iter().map(|s| s.closed()));
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                left = self.session_count(),
                "sessions still open after {timeout:?}; dropping them"
            );
        }
    }

    /// The listeners being served (for a restart to hand over).
    pub(crate) fn listeners(&self) -> Vec<Arc<TcpListener>> {
        lock(&self.inner.listeners).clone()
    }

    /// Stops every accept loop and refuses new listeners and dials.
    pub(crate) fn stop_accepting(&self) {
        self.inner.shutdown.cancel();
    }

    /// Whether [`Peer::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }
}

/// Binds a listening socket, naming the address in the error.
pub(crate) async fn bind(
    addr: impl ToSocketAddrs + fmt::Display,
) -> Result<TcpListener, PeerError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| PeerError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Locks a mutex, going on with the data if a holder panicked (the maps it
/// guards stay consistent across any single operation).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
