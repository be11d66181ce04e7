//! The resolver seam where addresses enter besides the balanced client:
//! the shared-mode proxy forwards to any live endpoint of a service, and a
//! reconnecting session dials whichever instance of a service is up.

use std::time::Duration;

use teleport::balance::{Balanced, Strategy};
use teleport::discovery::StaticResolver;
use teleport::peer::{ReconnectPolicy, RedialEvent};
use teleport::proxy::{Proxy, Upstream};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};

const GUARD: Duration = Duration::from_secs(10);

/// A backend answering `/math/who` with its name.
async fn backend(name: &'static str) -> (Peer, String) {
    let mut router = Router::new();
    router.pull("/math/who", move |_: Ctx, (): ()| async move {
        Ok::<_, Status>(name.to_owned())
    });
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_proxy_forwards_to_every_live_endpoint_of_a_service() {
    let (_a, a) = backend("a").await;
    let (_b, b) = backend("b").await;
    let resolver = StaticResolver::new().with_service("math", [a, b]);
    let upstreams = Peer::new(PeerConfig::default(), Router::new());
    let math = Balanced::builder(upstreams, resolver, "math")
        .strategy(Strategy::RoundRobin)
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(GUARD, math.ready(2)).await.unwrap();
    let mut router = Router::new();
    Proxy::new()
        .prefix("/math", Upstream::balanced(math))
        .install(&mut router);
    let proxy = Peer::new(PeerConfig::default(), router);
    let proxy_addr = proxy.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_addr)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(client.pull::<_, String>("/math/who", &()).await.unwrap());
    }
    assert!(
        seen.contains(&"a".to_owned()) && seen.contains(&"b".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_redial_moves_to_the_instance_that_is_up() {
    let (a_peer, a) = backend("a").await;
    let (_b, b) = backend("b").await;
    let resolver = StaticResolver::new().with_service("math", [a]);
    let client = Peer::new(PeerConfig::default(), Router::new());
    let redial = client
        .dial_service_with_reconnect(resolver.clone(), "math", ReconnectPolicy::default())
        .await
        .unwrap();
    let mut events = redial.events();
    let who: String = redial
        .connected()
        .await
        .unwrap()
        .pull("/math/who", &())
        .await
        .unwrap();
    assert_eq!(who, "a");
    // Instance a is replaced by b: the registry says so, then a drains.
    resolver.set("math", [b]);
    let drained = tokio::spawn(async move { a_peer.shutdown(Duration::from_secs(10)).await });
    tokio::time::timeout(GUARD, async {
        loop {
            if let RedialEvent::Connected { .. } = events.recv().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("a fresh session");
    let who: String = redial
        .connected()
        .await
        .unwrap()
        .pull("/math/who", &())
        .await
        .unwrap();
    assert_eq!(who, "b");
    drained.await.unwrap();
}
