//! Gateway mode: one upstream session per downstream session, for
//! long-connection services (push, chat, games).
//!
//! The [reverse proxy](crate::proxy) shares upstream sessions among all
//! its clients: right for request/reply, wrong when the server talks back,
//! since a push from the upstream cannot tell which client it is for. A
//! [`Gateway`] instead pairs every session a client opens with a session
//! of its own to one endpoint of the upstream service (resolved through
//! the [`discovery`] seam, so any live instance):
//!
//! ```text
//!  client A ══ session ══╗           ╔══ session A' ══ upstream instance 1
//!  client B ══ session ══╬═ gateway ═╬══ session B' ══ upstream instance 2
//!  client C ══ session ══╝           ╚══ session C' ══ upstream instance 1
//! ```
//!
//! - Pulls and pushes from a client go over its own upstream session;
//!   pulls and pushes the upstream sends over that session reach that
//!   client, and only it. Replies come back with their status, gzip level
//!   and body bytes unchanged (bodies are never decoded), as through the
//!   proxy.
//! - The upstream session is dialed when the client connects, before any
//!   of its calls is read: a client whose upstream cannot be dialed is
//!   refused (its session closes with the reason logged).
//! - Closing either side closes the other: a client that leaves frees its
//!   upstream session, and an upstream instance that goes away
//!   disconnects its clients, who reconnect and get a live instance.
//! - Routes of the gateway's own router are served locally and never
//!   forwarded (health checks, auth).
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use teleport::discovery::StaticResolver;
//! use teleport::gateway::Gateway;
//! use teleport::{PeerConfig, Router};
//!
//! let resolver = StaticResolver::new().with_service("chat", ["10.0.0.1:7000", "10.0.0.2:7000"]);
//! let gateway = Gateway::new(resolver, "chat");
//! let peer = gateway.peer(PeerConfig::default(), Router::new());
//! peer.listen("0.0.0.0:9000").await?;
//! # Ok(()) }
//! ```
//!
//! Upstream failures give the client the statuses the proxy gives:
//! `502 Bad Gateway` when the upstream session is closed, `504 Gateway
//! Timeout` when its reply is late. A push that cannot be forwarded is
//! dropped with a warning.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::discovery::{self, Resolver};
use crate::error::Error;
use crate::peer::{Peer, PeerConfig};
use crate::plugin::{Plugin, PluginFuture};
use crate::router::{Ctx, RawReply, Router};
use crate::session::{CallOptions, Session};
use crate::status::{Status, code};

/// Pairs each downstream session with an upstream session of its own. See
/// the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    resolver: Arc<dyn Resolver>,
    service: String,
    upstream_config: PeerConfig,
    timeout: Option<Duration>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("service", &self.inner.service)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// The session on the other side of the gateway, kept in a session's
/// extensions.
#[derive(Clone)]
struct Paired(Session);

impl Gateway {
    /// A gateway to `service`, resolved by `resolver`.
    pub fn new(resolver: impl Resolver, service: impl Into<String>) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                resolver: Arc::new(resolver),
                service: service.into(),
                upstream_config: PeerConfig::default(),
                timeout: None,
            }),
        }
    }

    /// The configuration of the peer that dials the upstream sessions
    /// (codecs, timeouts, plugins such as auth toward the upstream).
    /// Default: `PeerConfig::default()`.
    #[must_use]
    pub fn upstream_config(mut self, config: PeerConfig) -> Gateway {
        Arc::make_mut(&mut self.inner).upstream_config = config;
        self
    }

    /// How long a forwarded pull waits for its reply, either way. Default:
    /// the forwarding peer's pull timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Gateway {
        Arc::make_mut(&mut self.inner).timeout = Some(timeout);
        self
    }

    /// The client-facing peer: `config` and `router` as for any peer, plus
    /// the gateway (a plugin that dials each client's upstream session, and
    /// forwarding of every call the router does not serve itself). Listen
    /// on it.
    pub fn peer(&self, config: PeerConfig, mut router: Router) -> Peer {
        // The peer that dials upstream sessions: what the upstream sends
        // over one goes to the client paired with it.
        let mut upstream_router = Router::new();
        self.forward_unknown(&mut upstream_router, "upstream");
        let upstream = Peer::new(self.inner.upstream_config.clone(), upstream_router);
        self.forward_unknown(&mut router, "downstream");
        Peer::new(
            config.plugin(Pairing {
                gateway: self.clone(),
                upstream,
            }),
            router,
        )
    }

    /// Forwards the router's unknown pulls and pushes to the session paired
    /// with the one they arrived on.
    fn forward_unknown(&self, router: &mut Router, from: &'static str) {
        let timeout = self.inner.timeout;
        router.unknown_pull(move |ctx: Ctx, body: Bytes| async move {
            forward_pull(ctx, body, timeout, from).await
        });
        router.unknown_push(move |ctx: Ctx, body: Bytes| async move {
            forward_push(ctx, body, from).await
        });
    }
}

/// The paired session of the one `ctx` arrived on, if it is still open.
fn paired(ctx: &Ctx) -> Result<Session, String> {
    match ctx.session().extensions().get::<Paired>() {
        Some(Paired(s)) if !s.is_closed() => Ok(s),
        Some(Paired(s)) => Err(format!(
            "the paired session to {} is closed",
            s.remote_addr()
        )),
        None => Err("the session has no paired session".into()),
    }
}

async fn forward_pull(ctx: Ctx, body: Bytes, timeout: Option<Duration>, from: &str) -> RawReply {
    let other = match paired(&ctx) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(uri = %ctx.uri(), from, error = %e, "gateway: pull not forwarded");
            return RawReply::status(Status::from_code(code::BAD_GATEWAY));
        }
    };
    let mut options = CallOptions::default().header_codec(ctx.header_codec());
    if let Some(t) = timeout {
        options = options.timeout(t);
    }
    match other
        .pull_raw(ctx.uri(), ctx.header().gzip, body, options)
        .await
    {
        Ok(reply) => RawReply {
            status: reply.header.status(),
            gzip: reply.header.gzip,
            body: reply.body,
        },
        Err(Error::Status { status, .. }) => RawReply::status(status),
        Err(e) => {
            let status = if e.is_timeout() {
                code::GATEWAY_TIMEOUT
            } else {
                code::BAD_GATEWAY
            };
            tracing::warn!(uri = %ctx.uri(), from, status, error = %e, "gateway: forwarded pull failed");
            RawReply::status(Status::from_code(status))
        }
    }
}

async fn forward_push(ctx: Ctx, body: Bytes, from: &str) {
    let result = match paired(&ctx) {
        Ok(other) => other
            .push_raw(
                ctx.uri(),
                ctx.header().gzip,
                body,
                CallOptions::default().header_codec(ctx.header_codec()),
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(uri = %ctx.uri(), from, error = %e, "gateway: push dropped");
    }
}

/// The plugin of the client-facing peer: dials the upstream session of
/// each accepted session and links their lifetimes.
struct Pairing {
    gateway: Gateway,
    upstream: Peer,
}

impl Plugin for Pairing {
    fn name(&self) -> &str {
        "gateway"
    }

    fn after_accept<'a>(&'a self, downstream: &'a Session) -> PluginFuture<'a> {
        Box::pin(async move {
            let inner = &self.gateway.inner;
            let upstream = discovery::dial(&self.upstream, &*inner.resolver, &inner.service)
                .await
                .map_err(|e| {
                    tracing::warn!(service = %inner.service, client = %downstream.remote_addr(), error = %e, "gateway: no upstream for a client");
                    Status::new(code::BAD_GATEWAY, format!("no upstream for service {:?}", inner.service))
                })?;
            // The upstream session's incoming calls are already released:
            // pair it first, so nothing it sends finds no client.
            upstream.extensions().insert(Paired(downstream.clone()));
            downstream.extensions().insert(Paired(upstream.clone()));
            tracing::debug!(client = %downstream.remote_addr(), upstream = %upstream.remote_addr(), "gateway: paired");
            link(downstream.clone(), upstream);
            Ok(())
        })
    }
}

/// How long a client's session may drain when its upstream goes away.
const UPSTREAM_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Closes each session when the other closes, then unpairs them (each
/// held the other in its extensions: left there, the two would keep each
/// other alive after both closed).
///
/// An upstream that announces it is going away is passed on: the client's
/// session drains (the client hears the notice and reconnects, to a live
/// instance), so nothing in flight through the gateway is lost.
fn link(downstream: Session, upstream: Session) {
    tokio::spawn(async move {
        tokio::select! {
            () = downstream.closed() => {
                tracing::debug!(client = %downstream.remote_addr(), "gateway: client left; closing its upstream session");
                upstream.close().await;
            }
            () = upstream.going_away() => {
                if upstream.is_closed() {
                    tracing::debug!(upstream = %upstream.remote_addr(), "gateway: upstream closed; closing its client");
                    downstream.close().await;
                } else {
                    tracing::debug!(upstream = %upstream.remote_addr(), "gateway: upstream going away; draining its client");
                    downstream.shutdown(UPSTREAM_DRAIN).await;
                    upstream.close().await;
                }
            }
        }
        downstream.extensions().remove::<Paired>();
        upstream.extensions().remove::<Paired>();
    });
}
