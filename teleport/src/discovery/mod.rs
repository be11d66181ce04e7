//! Service discovery: where addresses enter.
//!
//! A fleet does not dial fixed addresses. A client names a *service*
//! (`"arith"`) and a [`Resolver`] turns that name into the set of
//! [`Endpoint`]s serving it *now*, and keeps telling as the set changes:
//! servers start, crash, restart and scale. Everything that needs an
//! address (the [balanced client](crate::balance), the
//! [gateway](crate::gateway), [`dial`]) goes through this seam, so the same
//! code runs on a hard-coded list in a test, on DNS in Kubernetes and on
//! etcd in a Go Teleport fleet.
//!
//! A resolver hands out a [`tokio::sync::watch`] receiver of the endpoint
//! set: the current value is always the latest set (readers never see a
//! stale backlog), and `changed()` wakes them when it moves.
//!
//! | resolver | source | updates |
//! | --- | --- | --- |
//! | [`StaticResolver`] | a list given in code (the default, no infrastructure) | when you call [`StaticResolver::set`] |
//! | [`DnsResolver`] | `host:port` looked up with the system resolver | re-resolved every interval |
//! | `EtcdResolver` (feature `etcd`) | keys under a prefix in etcd, written by `Registration` | pushed by an etcd watch |
//!
//! ```
//! use teleport::discovery::{Endpoint, Resolver, StaticResolver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), teleport::discovery::DiscoveryError> {
//! let resolver = StaticResolver::new()
//!     .with_service("arith", [Endpoint::new("10.0.0.1:9090"), Endpoint::new("10.0.0.2:9090")]);
//! let mut set = resolver.resolve("arith").await?;
//! assert_eq!(set.borrow().len(), 2);
//!
//! // A third server comes up: every watcher sees the new set.
//! resolver.set("arith", [
//!     Endpoint::new("10.0.0.1:9090"),
//!     Endpoint::new("10.0.0.2:9090"),
//!     Endpoint::new("10.0.0.3:9090").with_weight(200),
//! ]);
//! set.changed().await.expect("the resolver is alive");
//! assert_eq!(set.borrow_and_update().len(), 3);
//! # Ok(()) }
//! ```

mod dns;
#[cfg(feature = "etcd")]
pub mod etcd;
mod fixed;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::PeerError;
use crate::peer::Peer;
use crate::session::Session;

pub use dns::DnsResolver;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdClient, EtcdResolver, Registration};
pub use fixed::StaticResolver;

/// The endpoints of a service at one moment: shared, never mutated (a new
/// set replaces the old one).
pub type Endpoints = Arc<[Endpoint]>;

/// A changing set of endpoints: `borrow()` is the latest set, `changed()`
/// waits for the next one. Ends (`changed()` returns an error) when the
/// resolver stops watching the service.
pub type EndpointWatch = watch::Receiver<Endpoints>;

/// The weight an [`Endpoint`] has unless it says otherwise.
pub const DEFAULT_WEIGHT: u32 = 100;

/// One instance of a service: where to dial it, and what a balancer may
/// want to know about it.
///
/// Serialized as JSON when registered in etcd (`{"addr":"10.0.0.1:9090",
/// "weight":100,"zone":"eu-1","metadata":{}}`), so tools in other
/// languages can read and write the registry.
///
/// ```
/// use teleport::discovery::Endpoint;
///
/// let e = Endpoint::new("10.0.0.1:9090").with_weight(50).with_zone("eu-1").with_meta("version", "2.3");
/// assert_eq!(e.addr, "10.0.0.1:9090");
/// assert_eq!(e.metadata["version"], "2.3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// `host:port` to dial.
    pub addr: String,
    /// Relative share of the calls under the weighted strategy and of the
    /// keys under consistent hashing ([`DEFAULT_WEIGHT`] is 100); `0` keeps
    /// the endpoint out of weighted picks.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The zone, rack or region the instance runs in, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Free-form labels (version, shard...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

impl Endpoint {
    /// An endpoint at `addr` (`host:port`) with the default weight.
    pub fn new(addr: impl Into<String>) -> Self {
        Endpoint {
            addr: addr.into(),
            weight: DEFAULT_WEIGHT,
            zone: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the weight.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the zone.
    #[must_use]
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Adds a metadata label.
    #[must_use]
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

impl From<&str> for Endpoint {
    fn from(addr: &str) -> Self {
        Endpoint::new(addr)
    }
}

impl From<String> for Endpoint {
    fn from(addr: String) -> Self {
        Endpoint::new(addr)
    }
}

impl From<std::net::SocketAddr> for Endpoint {
    fn from(addr: std::net::SocketAddr) -> Self {
        Endpoint::new(addr.to_string())
    }
}

/// Turns a service name into a changing set of [`Endpoint`]s.
///
/// `resolve` does the first lookup (so a service that cannot be resolved
/// at all fails here, with a reason) and returns a watch that the
/// resolver keeps up to date in the background until every receiver is
/// dropped. Dyn-compatible: the balanced client and the gateway hold an
/// `Arc<dyn Resolver>`.
///
/// Implementing one for your registry (Consul, a config file...):
///
/// ```
/// # #![allow(dead_code)]
/// use std::sync::Arc;
/// use futures_util::future::BoxFuture;
/// use teleport::discovery::{DiscoveryError, Endpoint, EndpointWatch, Resolver};
///
/// /// Every service is on localhost, at a port from a table.
/// struct Localhost(std::collections::HashMap<String, u16>);
///
/// impl Resolver for Localhost {
///     fn resolve<'a>(&'a self, service: &'a str) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>> {
///         Box::pin(async move {
///             let port = self.0.get(service).ok_or_else(|| DiscoveryError::UnknownService {
///                 service: service.to_owned(),
///             })?;
///             let set: Arc<[Endpoint]> = Arc::from([Endpoint::new(format!("127.0.0.1:{port}"))]);
///             // Nothing ever changes: a receiver whose sender is gone keeps its value.
///             Ok(tokio::sync::watch::channel(set).1)
///         })
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// Starts watching `service`: the returned receiver holds its current
    /// endpoints and is updated as they change.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`] when the first lookup fails (unknown service,
    /// DNS failure, registry unreachable). Failures *after* the first
    /// lookup keep the last known set and are logged.
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>>;
}

impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>> {
        (**self).resolve(service)
    }
}

/// Why a service could not be resolved or dialed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The resolver knows no service of that name.
    #[error("no service named {service:?} is known to the resolver")]
    UnknownService {
        /// The service asked for.
        service: String,
    },
    /// The service name is not something this resolver can look up.
    #[error("cannot resolve {service:?}: {reason}")]
    BadName {
        /// The service asked for.
        service: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The system resolver failed to look a name up.
    #[error("DNS lookup of {host:?} failed")]
    Dns {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The service resolved, but to no endpoint at all.
    #[error("service {service:?} has no endpoint")]
    NoEndpoint {
        /// The service.
        service: String,
    },
    /// Every endpoint of the service refused or failed the dial; the last
    /// failure is the source.
    #[error("could not dial any of the {tried} endpoints of service {service:?}")]
    Dial {
        /// The service.
        service: String,
        /// How many endpoints were tried.
        tried: usize,
        /// The last dial error.
        source: PeerError,
    },
    /// The etcd registry failed (feature `etcd`).
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Etcd(#[from] etcd::EtcdError),
}

/// Dials one live endpoint of `service`: resolves it, then tries its
/// endpoints in a random order until one connects. The session is served
/// by `peer`'s router like any dialed session.
///
/// For one session (a gateway's upstream, a reconnecting client) rather
/// than a [balanced client](crate::balance::Balanced).
///
/// ```no_run
/// # #![allow(dead_code)]
/// use teleport::discovery::{self, StaticResolver};
/// use teleport::{Peer, PeerConfig, Router};
///
/// # async fn f() -> Result<(), teleport::discovery::DiscoveryError> {
/// let resolver = StaticResolver::new().with_service("arith", ["127.0.0.1:9090", "127.0.0.1:9091"]);
/// let peer = Peer::new(PeerConfig::default(), Router::new());
/// let session = discovery::dial(&peer, &resolver, "arith").await?;
/// # let _ = session; Ok(()) }
/// ```
///
/// # Errors
///
/// The resolver's error, [`DiscoveryError::NoEndpoint`] for an empty
/// set, or [`DiscoveryError::Dial`] when no endpoint could be dialed.
pub async fn dial(
    peer: &Peer,
    resolver: &dyn Resolver,
    service: &str,
) -> Result<Session, DiscoveryError> {
    let set = resolver.resolve(service).await?.borrow().clone();
    let mut order: Vec<&Endpoint> = set.iter().collect();
    fastrand::shuffle(&mut order);
    let mut last = None;
    for endpoint in &order {
        match peer.dial(endpoint.addr.as_str()).await {
            Ok(session) => return Ok(session),
            Err(e) => {
                tracing::debug!(service, endpoint = %endpoint.addr, error = %e, "dial failed; trying the next endpoint");
                last = Some(e);
            }
        }
    }
    match last {
        None => Err(DiscoveryError::NoEndpoint {
            service: service.to_owned(),
        }),
        Some(source) => Err(DiscoveryError::Dial {
            service: service.to_owned(),
            tried: order.len(),
            source,
        }),
    }
}
