//! The static resolver: endpoints given in code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::{DiscoveryError, Endpoint, EndpointWatch, Endpoints, Resolver};

/// Endpoints given in code, one list per service: the default resolver,
/// for tests, examples and fleets whose addresses are fixed.
///
/// The lists can still change at run time with [`StaticResolver::set`]
/// (an operator command, a config reload): every watcher sees the new set.
/// Clones share the same lists.
///
/// ```
/// use teleport::discovery::{Endpoint, Resolver, StaticResolver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let resolver = StaticResolver::new().with_service("chat", ["127.0.0.1:7001", "127.0.0.1:7002"]);
/// let set = resolver.resolve("chat").await.unwrap();
/// assert_eq!(set.borrow()[1], Endpoint::new("127.0.0.1:7002"));
/// assert!(resolver.resolve("nope").await.is_err());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    services: Arc<Mutex<HashMap<String, watch::Sender<Endpoints>>>>,
}

impl StaticResolver {
    /// A resolver that knows no service yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `service` with `endpoints`; builder style.
    #[must_use]
    pub fn with_service<E: Into<Endpoint>>(
        self,
        service: impl Into<String>,
        endpoints: impl IntoIterator<Item = E>,
    ) -> Self {
        self.set(service, endpoints);
        self
    }

    /// Sets the endpoints of `service`, telling every watcher of it. An
    /// empty list keeps the service known, with no endpoint.
    pub fn set<E: Into<Endpoint>>(
        &self,
        service: impl Into<String>,
        endpoints: impl IntoIterator<Item = E>,
    ) {
        let set: Endpoints = endpoints.into_iter().map(Into::into).collect();
        let mut services = self.services.lock().expect("no panic holds this lock");
        match services.entry(service.into()) {
            std::collections::hash_map::Entry::Occupied(e) => {
                e.get().send_replace(set);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(watch::channel(set).0);
            }
        }
    }

    /// Forgets `service`: its watchers keep the last set and see their
    /// watch end.
    pub fn remove(&self, service: &str) {
        self.services
            .lock()
            .expect("no panic holds this lock")
            .remove(service);
    }

    /// The current endpoints of `service`, if it is known.
    pub fn endpoints(&self, service: &str) -> Option<Endpoints> {
        self.services
            .lock()
            .expect("no panic holds this lock")
            .get(service)
            .map(|tx| tx.borrow().clone())
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(
        &'a self,
        service: &'a str,
    ) -> BoxFuture<'a, Result<EndpointWatch, DiscoveryError>> {
        let found = self
            .services
            .lock()
            .expect("no panic holds this lock")
            .get(service)
            .map(watch::Sender::subscribe);
        Box::pin(async move {
            found.ok_or_else(|| DiscoveryError::UnknownService {
                service: service.to_owned(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_see_every_new_set_and_the_end() {
        let resolver = StaticResolver::new().with_service("s", ["a:1"]);
        let mut w = resolver.resolve("s").await.unwrap();
        assert_eq!(w.borrow_and_update()[..], [Endpoint::new("a:1")]);
        resolver.set("s", ["a:1", "b:2"]);
        w.changed().await.unwrap();
        assert_eq!(w.borrow_and_update().len(), 2);
        assert_eq!(resolver.endpoints("s").unwrap().len(), 2);
        resolver.remove("s");
        assert!(
            w.changed().await.is_err(),
            "the watch ends with the service"
        );
        assert!(matches!(
            resolver.resolve("s").await,
            Err(DiscoveryError::UnknownService { service }) if service == "s"
        ));
    }
}
