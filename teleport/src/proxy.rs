//! Reverse proxy: forward pulls and pushes to upstream peers without
//! decoding them.
//!
//! A [`Proxy`] maps URI path prefixes (and, optionally, everything else) to
//! [`Upstream`]s and installs itself as the router's handler for unknown
//! pulls and pushes, so the router's own routes still take precedence. A
//! forwarded call keeps its URI with the query, its header codec and gzip
//! level, and its body section byte for byte (the codec id byte and the
//! possibly compressed payload are never decoded); the upstream's reply
//! comes back the same way with its status code and text, gzip level and
//! body. When the upstream cannot be used, the caller gets a status instead:
//!
//! | upstream failure | reply |
//! |---|---|
//! | cannot be dialed, or its connection closed | `502 Bad Gateway` |
//! | dialing or the reply took longer than the timeout | `504 Gateway Timeout` |
//! | no prefix matches and there is no fallback | `404 Not Found` |
//!
//! ```text
//!  client ──pull /math/add?x=1──▶ proxy ──same header fields, same body bytes──▶ backend
//!  client ◀──reply (status, gzip, body)── proxy ◀──────────── reply ──────────── backend
//! ```
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use teleport::proxy::{Proxy, Upstream};
//! use teleport::{Peer, PeerConfig, Router};
//!
//! let mut router = Router::new();
//! Proxy::new()
//!     .prefix("/math", Upstream::dial("127.0.0.1:9091"))
//!     .fallback(Upstream::dial("127.0.0.1:9092"))
//!     .timeout(Duration::from_secs(5))
//!     .install(&mut router);
//! let proxy = Peer::new(PeerConfig::default(), router);
//! proxy.listen("0.0.0.0:9090").await?;
//! # Ok(()) }
//! ```
//!
//! Upstream sessions are sessions of the proxy's own peer: pulls an
//! upstream makes back over them are served by the proxy's router.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::balance::Balanced;
use crate::error::{Error, PeerError};
use crate::peer::Peer;
use crate::router::{Ctx, RawReply, Router, uri};
use crate::session::{CallOptions, Session};
use crate::status::{Status, code};

/// Where a [`Proxy`] forwards calls: one session, or an address dialed on
/// demand. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Target>,
}

enum Target {
    Session(Session),
    /// Any live endpoint of a service, picked per call (shared mode).
    Balanced(Balanced),
    Dial {
        addr: String,
        peer: Option<Peer>,
        /// The current connection; dialed again once it has closed.
        session: tokio::sync::Mutex<Option<Session>>,
    },
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Target::Session(s) => f
                .debug_tuple("Upstream::Session")
                .field(&s.remote_addr())
                .finish(),
            Target::Dial { addr, .. } => f.debug_tuple("Upstream::Dial").field(addr).finish(),
            Target::Balanced(b) => f.debug_tuple("Upstream::Balanced").field(b).finish(),
        }
    }
}

/// Why an upstream could not take a call.
enum Unavailable {
    /// Refused, unreachable or closed: 502.
    Bad(String),
    /// Took too long: 504.
    Timeout(String),
}

impl Upstream {
    /// Forwards over this session. Once it closes, calls get `502`.
    pub fn session(session: Session) -> Upstream {
        Upstream {
            inner: Arc::new(Target::Session(session)),
        }
    }

    /// Forwards to `addr`, dialed by the proxy's own peer (the one whose
    /// router the proxy is installed in) on first use, and dialed again
    /// whenever the connection has closed.
    pub fn dial(addr: impl Into<String>) -> Upstream {
        Upstream {
            inner: Arc::new(Target::Dial {
                addr: addr.into(),
                peer: None,
                session: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Forwards to the live endpoints of a service, one picked per call by
    /// the [`Balanced`] client (the resolver seam: a static list, DNS or
    /// etcd). A call that provably never reached an endpoint is resent to
    /// another; an endpoint going away stops getting calls at once. This
    /// is the shared mode: any endpoint may serve any call. For sessions
    /// whose pushes must reach one client, use [`gateway`](crate::gateway).
    ///
    /// ```no_run
    /// use teleport::balance::Balanced;
    /// use teleport::discovery::StaticResolver;
    /// use teleport::proxy::{Proxy, Upstream};
    /// use teleport::{Peer, PeerConfig, Router};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let resolver = StaticResolver::new().with_service("math", ["10.0.0.1:9090", "10.0.0.2:9090"]);
    /// let upstreams = Peer::new(PeerConfig::default(), Router::new());
    /// let math = Balanced::builder(upstreams, resolver, "math").connect().await?;
    /// let mut router = Router::new();
    /// Proxy::new().prefix("/math", Upstream::balanced(math)).install(&mut router);
    /// # Ok(()) }
    /// ```
    pub fn balanced(balanced: Balanced) -> Upstream {
        Upstream {
            inner: Arc::new(Target::Balanced(balanced)),
        }
    }

    /// Forwards to `addr`, dialed by `peer` (for instance one with other
    /// codecs, timeouts or plugins than the proxy's own).
    pub fn dial_with(peer: Peer, addr: impl Into<String>) -> Upstream {
        Upstream {
            inner: Arc::new(Target::Dial {
                addr: addr.into(),
                peer: Some(peer),
                session: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The session to forward over, dialing if needed.
    async fn connect(&self, local: &Peer) -> Result<Session, Unavailable> {
        match &*self.inner {
            Target::Balanced(_) => Err(Unavailable::Bad(
                "a balanced upstream picks its session per call".to_owned(),
            )),
            Target::Session(s) if s.is_closed() => Err(Unavailable::Bad(format!(
                "upstream session to {} is closed",
                s.remote_addr()
            ))),
            Target::Session(s) => Ok(s.clone()),
            Target::Dial {
                addr,
                peer,
                session,
            } => {
                // Held while dialing, so concurrent calls wait for one dial.
                let mut current = session.lock().await;
                if let Some(s) = current.as_ref().filter(|s| !s.is_closed()) {
                    return Ok(s.clone());
                }
                let dialer = peer.as_ref().unwrap_or(local);
                match dialer.dial(addr.as_str()).await {
                    Ok(s) => {
                        tracing::debug!(%addr, session = s.id(), "proxy dialed upstream");
                        *current = Some(s.clone());
                        Ok(s)
                    }
                    Err(e @ PeerError::DialTimeout { .. }) => {
                        Err(Unavailable::Timeout(e.to_string()))
                    }
                    Err(e) => Err(Unavailable::Bad(e.to_string())),
                }
            }
        }
    }
}

/// Forwards pulls and pushes by URI path prefix to [`Upstream`]s. See the
/// [module docs](self). Cheap to clone.
///
/// # Examples
///
/// A backend serves `/math/add`; the proxy forwards `/math` to it, and the
/// client only knows the proxy.
///
/// ```
/// use std::time::Duration;
/// use teleport::proxy::{Proxy, Upstream};
/// use teleport::{Ctx, Peer, PeerConfig, Router, Status};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut backend_router = Router::new();
/// backend_router.pull("/math/add", |_: Ctx, [a, b]: [i64; 2]| async move {
///     Ok::<_, Status>(a + b)
/// });
/// let backend = Peer::new(PeerConfig::default(), backend_router);
/// let backend_addr = backend.listen("127.0.0.1:0").await?;
///
/// let mut router = Router::new();
/// Proxy::new()
///     .prefix("/math", Upstream::dial(backend_addr.to_string()))
///     .timeout(Duration::from_secs(5))
///     .install(&mut router);
/// let proxy = Peer::new(PeerConfig::default(), router);
/// let proxy_addr = proxy.listen("127.0.0.1:0").await?;
///
/// let client = Peer::new(PeerConfig::default(), Router::new()).dial(proxy_addr).await?;
/// let sum: i64 = client.pull("/math/add", &[40, 2]).await?;
/// assert_eq!(sum, 42);
/// // No prefix matches and there is no fallback: 404.
/// let err = client.pull::<_, i64>("/other", &()).await.unwrap_err();
/// assert_eq!(err.status().map(|s| s.code()), Some(404));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Proxy {
    inner: Arc<Routes>,
}

#[derive(Clone, Debug, Default)]
struct Routes {
    /// Longest prefix first.
    prefixes: Vec<(String, Upstream)>,
    fallback: Option<Upstream>,
    timeout: Option<Duration>,
}

impl Proxy {
    /// A proxy that forwards nothing yet.
    pub fn new() -> Proxy {
        Proxy::default()
    }

    fn routes_mut(&mut self) -> &mut Routes {
        Arc::make_mut(&mut self.inner)
    }

    /// Forwards calls whose path is `prefix` or lies under it (`/math`
    /// covers `/math` and `/math/add`, not `/mathematics`) to `upstream`.
    /// The longest matching prefix wins.
    #[must_use]
    pub fn prefix(mut self, prefix: &str, upstream: Upstream) -> Proxy {
        let prefix = uri::prefix(prefix);
        let routes = self.routes_mut();
        routes.prefixes.retain(|(p, _)| *p != prefix);
        routes.prefixes.push((prefix, upstream));
        routes
            .prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    /// Forwards every call no prefix matches to `upstream`.
    #[must_use]
    pub fn fallback(mut self, upstream: Upstream) -> Proxy {
        self.routes_mut().fallback = Some(upstream);
        self
    }

    /// How long a forwarded pull waits for the upstream's reply (dialing
    /// has the dialing peer's own timeout). Default: the proxy peer's pull
    /// timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Proxy {
        self.routes_mut().timeout = Some(timeout);
        self
    }

    /// Makes this proxy the router's handler for unknown pulls and pushes:
    /// routes registered on the router are served locally, all other calls
    /// are forwarded (or get `404` / are dropped when nothing matches).
    pub fn install(self, router: &mut Router) {
        let for_pushes = self.clone();
        router.unknown_pull(move |ctx, body| {
            let proxy = self.clone();
            async move { proxy.pull(ctx, body).await }
        });
        router.unknown_push(move |ctx, body| {
            let proxy = for_pushes.clone();
            async move { proxy.push(ctx, body).await }
        });
    }

    /// The upstream for a path, if any.
    fn upstream(&self, path: &str) -> Option<&Upstream> {
        self.inner
            .prefixes
            .iter()
            .find(|(prefix, _)| uri::under(path, prefix))
            .map(|(_, u)| u)
            .or(self.inner.fallback.as_ref())
    }

    /// Forwards one incoming pull and returns the reply to send back. Use it
    /// in a raw route to forward an exact path:
    /// `router.pull_raw("/a/b", move |ctx, body| { let p = proxy.clone(); async move { p.pull(ctx, body).await } })`.
    pub async fn pull(&self, ctx: Ctx, body: Bytes) -> RawReply {
        let Some(upstream) = self.upstream(ctx.path()) else {
            return RawReply::status(Status::not_found());
        };
        let mut options = CallOptions::default().header_codec(ctx.header_codec());
        if let Some(t) = self.inner.timeout {
            options = options.timeout(t);
        }
        let forwarded = if let Target::Balanced(b) = &*upstream.inner {
            b.pull_raw(ctx.uri(), ctx.header().gzip, body, options)
                .await
        } else {
            let session = match upstream.connect(ctx.peer()).await {
                Ok(s) => s,
                Err(e) => return unavailable(&ctx, upstream, e),
            };
            session
                .pull_raw(ctx.uri(), ctx.header().gzip, body, options)
                .await
        };
        match forwarded {
            Ok(reply) => RawReply {
                status: reply.header.status(),
                gzip: reply.header.gzip,
                body: reply.body,
            },
            // A plugin of this peer refused to send the pull: its status.
            Err(Error::Status { status, .. }) => RawReply::status(status),
            Err(e @ Error::Timeout { .. }) => {
                unavailable(&ctx, upstream, Unavailable::Timeout(e.to_string()))
            }
            Err(e) => unavailable(&ctx, upstream, Unavailable::Bad(e.to_string())),
        }
    }

    /// Forwards one incoming push. A push that cannot be forwarded is
    /// dropped with a warning (a push has no reply to carry a status).
    pub async fn push(&self, ctx: Ctx, body: Bytes) {
        let Some(upstream) = self.upstream(ctx.path()) else {
            tracing::warn!(uri = %ctx.uri(), remote = %ctx.remote_addr(), "push to an unknown URI dropped (no proxy route)");
            return;
        };
        let options = CallOptions::default().header_codec(ctx.header_codec());
        let forwarded = if let Target::Balanced(b) = &*upstream.inner {
            b.push_raw(ctx.uri(), ctx.header().gzip, body, options)
                .await
        } else {
            let session = match upstream.connect(ctx.peer()).await {
                Ok(s) => s,
                Err(Unavailable::Bad(e) | Unavailable::Timeout(e)) => {
                    tracing::warn!(uri = %ctx.uri(), ?upstream, error = %e, "push dropped: upstream unavailable");
                    return;
                }
            };
            session
                .push_raw(ctx.uri(), ctx.header().gzip, body, options)
                .await
        };
        if let Err(e) = forwarded {
            tracing::warn!(uri = %ctx.uri(), ?upstream, error = %e, "push dropped: upstream unavailable");
        }
    }
}

/// Logs why an upstream failed and picks the status for the caller. The
/// details stay in the log: they name internal addresses.
fn unavailable(ctx: &Ctx, upstream: &Upstream, why: Unavailable) -> RawReply {
    let (status, error) = match why {
        Unavailable::Bad(e) => (code::BAD_GATEWAY, e),
        Unavailable::Timeout(e) => (code::GATEWAY_TIMEOUT, e),
    };
    tracing::warn!(uri = %ctx.uri(), ?upstream, status, %error, "proxy: upstream failed");
    RawReply::status(Status::from_code(status))
}
