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
use tokio_util::sync::CancellationToken;

pub use config::PeerConfig;
#[cfg(feature = "tls")]
pub(crate) use listener::bind;
pub use redial::{ReconnectPolicy, Redial, RedialEvent};
pub use shutdown::ShutdownSummary;

use crate::frame::Kind;
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

    /// Starts a session's connection task. With peer plugins, its incoming
    /// calls wait until its session hooks have run (see [`plugin`](crate::plugin)).
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
