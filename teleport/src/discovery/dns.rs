//! The DNS resolver: `host:port`, re-resolved periodically.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::{DiscoveryError, Endpoint, EndpointWatch, Endpoints, Resolver};

/// Resolves a service named `host:port` with the system resolver (tokio's
/// `lookup_host`), one [`Endpoint`] per address, and looks it up again
/// every `interval` (30 s by default) for as long as anyone watches it.
///
/// Suits a headless Kubernetes service or any DNS name with several A/AAAA
/// records. A lookup that fails after the first one keeps the last set
/// (a flapping DNS server must not empty a healthy fleet) and is logged.
///
/// ```
/// use std::time::Duration;
/// use teleport::discovery::{DnsResolver, Resolver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let resolver = DnsResolver::new().interval(Duration::from_secs(10));
/// let set = resolver.resolve("localhost:9090").await.unwrap();
/// assert!(set.borrow().iter().all(|e| e.addr.ends_with(":9090")));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DnsResolver {
    interval: Duration,
}

impl Default for DnsResolver {
    fn default() -> Self {
        DnsResolver {
            interval: Duration::from_secs(30),
        }
    }
}

impl DnsResolver {
    /// A resolver that re-resolves every 30 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how often a watched name is looked up again.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// One lookup, as a sorted set of endpoints (so an unchanged answer in
/// another order is not a change).
async fn lookup(service: &str) -> Result<Endpoints, DiscoveryError> {
    let addrs: BTreeSet<_> = tokio::net::lookup_host(service)
        .await
        .map_err(|source| DiscoveryError::Dns {
            host: service.to_owned(),
            source,
        })?
        .collect();
    Ok(addrs.into_iter().map(Endpoint::from).collect())
}

impl Resolver for DnsResolver {
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>> {
        Box::pin(async move {
            if service
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(DiscoveryError::BadName {
                    service: service.to_owned(),
                    reason: "the DNS resolver takes `host:port`".into(),
                });
            }
            let first = lookup(service).await?;
            let (tx, rx) = watch::channel(first);
            let interval = self.interval;
            let name = service.to_owned();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    tokio::select! {
                        () = tx.closed() => break,
                        _ = ticks.tick() => {}
                    }
                    match lookup(&name).await {
                        Ok(set) => {
                            tx.send_if_modified(|old| {
                                let changed = *old != set;
                                if changed {
                                    tracing::info!(service = %name, endpoints = set.len(), "DNS answer changed");
                                    *old = Arc::clone(&set);
                                }
                                changed
                            });
                        }
                        Err(e) => {
                            tracing::warn!(service = %name, error = %e, "DNS lookup failed; keeping the last endpoints")
                        }
                    }
                }
            });
            Ok(rx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literal_addresses_and_rejects_names_without_a_port() {
        let r = DnsResolver::new();
        let set = r.resolve("127.0.0.1:4000").await.unwrap();
        assert_eq!(set.borrow()[..], [Endpoint::new("127.0.0.1:4000")]);
        assert!(matches!(
            r.resolve("localhost").await,
            Err(DiscoveryError::BadName { .. })
        ));
    }
}
