//! Peers: endpoints that listen and dial with the same API.
//!
//! A [`Peer`] owns a [`Router`] and a [`PeerConfig`]. It can listen on any
//! number of addresses and dial any number of remote peers; every
//! connection, accepted or dialed, becomes a [`Session`] served by the same
//! router, so both ends of a connection can pull and push to each other.
//! The peer keeps a registry of its live sessions.
//!
//! # The session limit
//!
//! [`PeerConfig::max_sessions`] is a hard bound, kept the way mini-redis
//! keeps its connection limit: the peer owns a semaphore with that many
//! permits, a permit is taken the moment a socket exists (accepted,
//! dialed, handed to [`Peer::attach`]) and before any TLS handshake runs
//! on it, and the session holds it until it ends. Accepted and attached
//! connections past the limit are closed at once; dials past it fail with
//! [`PeerError::TooManySessions`].
//!
//! # Where things are
//!
//! | room | what |
//! |---|---|
//! | `mod.rs` | [`Peer`], its session registry and session limit |
//! | `listener.rs` | [`Peer::listen`], [`Peer::serve`], the accept loop, [`Peer::attach`] |
//! | `dial.rs` | [`Peer::dial`] and the one dial path TLS shares, [`Peer::attach_dialed`] |
//! | `shutdown.rs` | [`Peer::close`], [`Peer::shutdown`] |
//! | `redial.rs` | [`Peer::dial_with_reconnect`] |
//! | `config.rs` | [`PeerConfig`] |
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

mod backoff;
mod config;
mod dial;
mod listener;
mod redial;
mod shutdown;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use config::PeerConfig;
#[cfg(feature = "tls")]
pub(crate) use listener::bind;
pub use redial::{ReconnectPolicy, Redial, RedialEvent};
pub use shutdown::ShutdownSummary;

use crate::error::PeerError;
use crate::frame::Kind;
use crate::router::Router;
use crate::session::Session;

/// A byte stream a session runs over: TCP, TLS, an in-memory duplex.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// An endpoint that listens and dials; cheap to clone (all clones are the same peer).
#[derive(Clone)]
pub struct Peer {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<PeerConfig>,
    router: Arc<Router>,
    sessions: Mutex<HashMap<u64, Session>>,
    /// One permit per session that may exist (`max_sessions`); each
    /// session holds one until it ends.
    session_slots: Arc<Semaphore>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    listen_addrs: Mutex<Vec<SocketAddr>>,
    /// The listeners being served, so a restart can hand them to a new process.
    listeners: Mutex<Vec<Arc<TcpListener>>>,
    /// Bumped whenever a session joins or leaves, or a listener starts or
    /// stops: what [`Peer::wait_for`] waits on.
    changed: tokio::sync::watch::Sender<u64>,
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
    /// and hear about every route (see [`plugin`](crate::plugin)).
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
        let session_slots = Arc::new(Semaphore::new(
            config.max_sessions.min(Semaphore::MAX_PERMITS),
        ));
        Peer {
            inner: Arc::new(Inner {
                session_slots,
                config: Arc::new(config),
                router: Arc::new(router),
                sessions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                listen_addrs: Mutex::new(Vec::new()),
                listeners: Mutex::new(Vec::new()),
                changed: tokio::sync::watch::Sender::new(0),
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

    /// Takes a place for one more session: the permit the session holds
    /// until it ends (see [the session limit](self#the-session-limit)).
    ///
    /// # Errors
    ///
    /// [`PeerError::TooManySessions`] when all `max_sessions` are taken.
    pub(crate) fn session_permit(&self) -> Result<OwnedSemaphorePermit, PeerError> {
        self.inner
            .session_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| PeerError::TooManySessions {
                limit: self.inner.config.max_sessions,
            })
    }

    /// Starts a session's connection task, holding `permit` until it ends.
    /// With peer plugins, its incoming calls wait until its session hooks
    /// have run (see [`plugin`](crate::plugin)).
    fn open_session(
        &self,
        io: impl Stream,
        remote: SocketAddr,
        local: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> Session {
        let session = self.spawn_session(io, remote, local, Some(permit), true);
        // A session that got in while the peer started closing (an accept or
        // handshake racing `close`) missed its snapshot of the registry: it
        // closes itself, so a closed peer never keeps a live session.
        if self.inner.shutdown.is_cancelled() {
            session.start_close();
        }
        session
    }

    /// A session over `io` that is closed at once because the peer has no
    /// place for it: it never joins the registry, and `why` is its close
    /// reason. For [`Peer::attach`], which must return a session.
    fn refuse_session(
        &self,
        io: impl Stream,
        remote: SocketAddr,
        local: SocketAddr,
        why: &PeerError,
    ) -> Session {
        let session = self.spawn_session(io, remote, local, None, false);
        session.close_because(why.to_string());
        session
    }

    fn spawn_session(
        &self,
        io: impl Stream,
        remote: SocketAddr,
        local: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
        register: bool,
    ) -> Session {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        crate::session::spawn(
            id,
            io,
            remote,
            local,
            self.clone(),
            self.inner.config.clone(),
            self.inner.router.clone(),
            permit,
            |session| {
                // Registered before its task runs: a session that ends at
                // once still leaves the registry after joining it.
                if register {
                    lock(&self.inner.sessions).insert(session.id(), session.clone());
                    self.changed();
                }
            },
        )
    }

    pub(crate) fn remove_session(&self, id: u64) {
        lock(&self.inner.sessions).remove(&id);
        self.changed();
    }

    /// Wakes [`Peer::wait_for`]: the sessions or listeners changed.
    pub(crate) fn changed(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until `done` holds for this peer, checking it now and again
    /// each time a session joins or leaves the registry or a listener starts
    /// or stops. For tests and tools that wait for a peer's state without
    /// polling.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(server: teleport::Peer) {
    /// // The first client has connected.
    /// server.wait_for(|peer| peer.session_count() > 0).await;
    /// // Every listener has stopped (after `close` or `shutdown`).
    /// server.wait_for(|peer| peer.listen_addrs().is_empty()).await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for(&self, mut done: impl FnMut(&Peer) -> bool) {
        let mut changes = self.inner.changed.subscribe();
        loop {
            // Seen before checking: a change after the check wakes us.
            changes.borrow_and_update();
            if done(self) {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
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

    /// Whether [`Peer::close`] or [`Peer::shutdown`] was called.
    pub fn is_closing(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }
}

/// Locks a mutex, going on with the data if a holder panicked (the maps it
/// guards stay consistent across any single operation).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::PeerConfig;

    fn peer(max_sessions: usize) -> Peer {
        Peer::new(
            PeerConfig::default().max_sessions(max_sessions),
            Router::new(),
        )
    }

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn attach_past_the_limit_returns_a_closed_session_outside_the_registry() {
        let peer = peer(1);
        let (remote, local) = addrs();
        let (io, _keep) = tokio::io::duplex(64);
        let first = peer.attach(io, remote, local);
        assert_eq!(peer.session_count(), 1);

        let (io, _keep2) = tokio::io::duplex(64);
        let refused = peer.attach(io, remote, local);
        refused.closed().await;
        let reason = refused.close_reason().unwrap();
        assert!(reason.contains("max_sessions"), "{reason}");
        assert_eq!(peer.session_count(), 1);
        assert!(peer.session(refused.id()).is_none());

        // Once the first session ends, its place is free again.
        first.close().await;
        let (io, _keep3) = tokio::io::duplex(64);
        let again = peer.attach(io, remote, local);
        assert!(!again.is_closed());
        assert_eq!(peer.session_count(), 1);
    }

    #[tokio::test]
    async fn attach_dialed_past_the_limit_is_too_many_sessions() {
        let peer = peer(1);
        let (remote, local) = addrs();
        let (io, _keep) = tokio::io::duplex(64);
        let _first = peer.attach_dialed(io, remote, local).await.unwrap();
        let (io, _keep2) = tokio::io::duplex(64);
        let err = peer.attach_dialed(io, remote, local).await.unwrap_err();
        assert!(
            matches!(err, PeerError::TooManySessions { limit: 1 }),
            "{err}"
        );
    }

    /// A dial holds its place from before it connects, through its
    /// handshake (TLS takes this path), until its session ends.
    #[tokio::test]
    async fn a_dial_holds_its_session_place_through_the_handshake_until_the_session_ends() {
        let server = peer(16);
        let addr = server.listen("127.0.0.1:0").await.unwrap();
        let client = peer(1);

        let (started_tx, started_rx) = oneshot::channel();
        let (finish_tx, finish_rx) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .dial_with(addr, move |stream| async move {
                        let _ = started_tx.send(());
                        let _ = finish_rx.await;
                        Ok(stream)
                    })
                    .await
            }
        });
        started_rx.await.unwrap();
        let err = client.dial(addr).await.unwrap_err();
        assert!(
            matches!(err, PeerError::TooManySessions { limit: 1 }),
            "a handshake in progress holds the only place: {err}"
        );

        finish_tx.send(()).unwrap();
        let session = first.await.unwrap().unwrap();
        assert!(matches!(
            client.dial(addr).await,
            Err(PeerError::TooManySessions { .. })
        ));
        // `closed` fires after the place is given back.
        session.close().await;
        let again = client.dial(addr).await.unwrap();
        assert!(!again.is_closed());
    }

    #[tokio::test]
    async fn a_failed_dial_gives_its_place_back() {
        let client = peer(1);
        // A port nothing listens on: bind one, note it, close it.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            client.dial(addr).await,
            Err(PeerError::Dial { .. })
        ));
        let server = peer(16);
        let addr = server.listen("127.0.0.1:0").await.unwrap();
        let failed = client
            .dial_with(addr, |_stream| async {
                Err::<tokio::net::TcpStream, _>(std::io::Error::other("handshake refused"))
            })
            .await
            .unwrap_err();
        // The cause is the error's source, not repeated in its message.
        let cause = std::error::Error::source(&failed).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("handshake refused"), "{failed}");
        assert!(
            !failed.to_string().contains("handshake refused"),
            "{failed}"
        );
        let session = client.dial(addr).await.unwrap();
        assert_eq!(client.session_count(), 1);
        session.close().await;
    }
}
