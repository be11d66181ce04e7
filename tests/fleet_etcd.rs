//! Registration and discovery against a real etcd: entries appear, carry
//! their metadata, leave on deregistration at once and on a crash when
//! their lease expires, while live registrations are kept alive.
//!
//! Needs `TELEPORT_ETCD_ENDPOINTS` (set by `.ci/run`); see
//! `support/etcd.rs` for what happens without it.

#[path = "support/etcd.rs"]
mod etcd;

use std::time::{Duration, Instant};

use teleport::discovery::{
    DiscoveryError, Endpoint, EndpointWatch, EtcdClient, EtcdResolver, Registration, Resolver,
};

const TTL: Duration = Duration::from_secs(2);

/// Waits (bounded) until the watched set satisfies `f`.
async fn until(
    w: &mut EndpointWatch,
    what: &str,
    bound: Duration,
    f: impl Fn(&[Endpoint]) -> bool,
) {
    let done =
        tokio::time::timeout(bound, async { w.wait_for(|set| f(set)).await.map(drop) }).await;
    match done {
        Ok(watching) => watching.expect("the resolver watches on"),
        Err(_) => panic!("{what}: not within {bound:?}; the set is {:?}", w.borrow()),
    }
}

fn has(set: &[Endpoint], addr: &str) -> bool {
    set.iter().any(|e| e.addr == addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_come_and_go_with_registration_deregistration_and_lease_expiry() {
    let Some(client) = etcd::etcd_or_skip("entries_come_and_go") else {
        return;
    };
    let prefix = etcd::unique_prefix("come-and-go");
    let a = Endpoint::new("10.9.0.1:7000")
        .with_weight(50)
        .with_zone("eu-1")
        .with_meta("version", "2");
    let reg_a = Registration::register_under(&client, &prefix, "svc", a.clone(), TTL)
        .await
        .unwrap();
    let reg_b =
        Registration::register_under(&client, &prefix, "svc", Endpoint::new("10.9.0.2:7000"), TTL)
            .await
            .unwrap();
    assert_eq!(reg_a.key(), format!("{prefix}svc/10.9.0.1:7000"));

    let resolver = EtcdResolver::new(client.clone()).prefix(prefix.clone());
    let mut w = resolver.resolve("svc").await.unwrap();
    {
        let set = w.borrow_and_update();
        assert_eq!(set.len(), 2, "{set:?}");
        assert_eq!(
            set.iter().find(|e| e.addr == a.addr),
            Some(&a),
            "metadata survives the registry"
        );
    }
    // Another service under the same prefix is not mixed in.
    let _other = Registration::register_under(
        &client,
        &prefix,
        "svc-other",
        Endpoint::new("10.9.0.9:1"),
        TTL,
    )
    .await
    .unwrap();

    // A new instance: pushed by the watch.
    let reg_c =
        Registration::register_under(&client, &prefix, "svc", Endpoint::new("10.9.0.3:7000"), TTL)
            .await
            .unwrap();
    until(
        &mut w,
        "the new instance appears",
        Duration::from_secs(5),
        |s| s.len() == 3,
    )
    .await;

    // Deregistered: gone at once (no waiting for a TTL).
    reg_a.deregister().await.unwrap();
    until(
        &mut w,
        "the deregistered instance leaves",
        Duration::from_secs(5),
        |s| !has(s, "10.9.0.1:7000"),
    )
    .await;

    // "Crashed": stops renewing. Gone within its lease TTL (plus etcd's
    // expiry sweep), while C, registered before and renewed, stays.
    let crashed = Instant::now();
    drop(reg_b);
    until(
        &mut w,
        "the crashed instance's lease expires",
        TTL * 2 + Duration::from_secs(3),
        |s| !has(s, "10.9.0.2:7000"),
    )
    .await;
    eprintln!(
        "a crashed instance left the resolver {:?} after it stopped renewing (TTL {TTL:?})",
        crashed.elapsed()
    );
    assert!(
        has(&w.borrow(), "10.9.0.3:7000"),
        "the kept-alive registration outlived the TTL"
    );
    assert!(!w.borrow().iter().any(|e| e.addr == "10.9.0.9:1"));
    let (pairs, _) = client.get_prefix(&format!("{prefix}svc/")).await.unwrap();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    reg_c.deregister().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_etcd_fails_with_an_error_naming_it() {
    // Needs no etcd: nothing listens on port 1.
    let resolver = EtcdResolver::new(EtcdClient::new(["127.0.0.1:1"]));
    let err = resolver.resolve("svc").await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Etcd(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let err = EtcdClient::new(Vec::<String>::new())
        .grant(TTL)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TELEPORT_ETCD_ENDPOINTS"), "{err}");
}
