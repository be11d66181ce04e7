//! Per-session and per-peer limits: past them callers wait or get a typed
//! error, and memory stays bounded.
//!
//! Slow handlers sleep on tokio's paused time: the clock jumps to the next
//! timer whenever every task waits, so the tests never sleep for real.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use teleport::{Ctx, Peer, PeerConfig, PeerError, Router, Status};
use tokio::sync::mpsc;

/// A router whose `/slow` pull echoes its number after `delay`, the
/// highest number of those calls ever running at once, and a channel that
/// gets each call's number as its handler starts.
fn slow_router(delay: Duration) -> (Router, Arc<AtomicUsize>, mpsc::UnboundedReceiver<u32>) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::unbounded_channel();
    let mut router = Router::new();
    let (n, p) = (now, peak.clone());
    router.pull("/slow", move |_: Ctx, i: u32| {
        let (n, p) = (n.clone(), p.clone());
        let _ = started_tx.send(i);
        async move {
            let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(cur, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Status>(i)
        }
    });
    (router, peak, started)
}

#[tokio::test(start_paused = true)]
async fn pulls_past_the_in_flight_limit_wait_for_a_slot() {
    let (router, peak, mut started) = slow_router(Duration::from_millis(50));
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default().max_pulls_in_flight(4), Router::new());
    let session = client.dial(addr).await.unwrap();
    let calls: Vec<_> = (0..20u32)
        .map(|i| {
            let s = session.clone();
            tokio::spawn(async move { s.pull::<_, u32>("/slow", &i).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), i as u32);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "never more than 4 in flight"
    );

    // A caller that cannot get a slot within its timeout gets a timeout.
    while started.try_recv().is_ok() {}
    let hogs: Vec<_> = (100..104u32)
        .map(|i| {
            let s = session.clone();
            tokio::spawn(async move { s.pull::<_, u32>("/slow", &i).await })
        })
        .collect();
    // All 4 slots are taken once the 4 handlers run (for 50 ms).
    for _ in 0..4 {
        let i = tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .expect("the hogs' handlers start")
            .unwrap();
        assert!((100..104).contains(&i), "a hog's handler started, not {i}");
    }
    let err = session
        .pull::<_, u32>("/slow", &9)
        .timeout(Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    for h in hogs {
        h.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refuses_sessions_past_its_limit() {
    let mut router = Router::new();
    router.pull(
        "/echo",
        |_: Ctx, s: String| async move { Ok::<_, Status>(s) },
    );
    let server = Peer::new(PeerConfig::default().max_sessions(2), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let a = client.dial(addr).await.unwrap();
    let b = client.dial(addr).await.unwrap();
    for s in [&a, &b] {
        let got: String = s.pull("/echo", &"in").await.unwrap();
        assert_eq!(got, "in");
    }
    // The third connection is accepted by the kernel, then closed at once.
    let c = client.dial(addr).await.unwrap();
    let err = c.pull::<_, String>("/echo", &"out").await.unwrap_err();
    // Closed before or after the pull was written, depending on the race.
    assert!(err.is_connection_closed(), "{err}");
    assert_eq!(server.session_count(), 2);

    // Dialing side: its own limit is a typed error.
    let open = Peer::new(PeerConfig::default(), Router::new());
    let open_addr = open.listen("127.0.0.1:0").await.unwrap();
    let small = Peer::new(PeerConfig::default().max_sessions(1), Router::new());
    let _one = small.dial(open_addr).await.unwrap();
    let err = small.dial(open_addr).await.unwrap_err();
    assert!(
        matches!(err, PeerError::TooManySessions { limit: 1 }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_handles_at_most_max_handlers_calls_at_once() {
    let (router, peak, _started) = slow_router(Duration::from_millis(30));
    // The server stops reading past 3 calls in progress; the rest wait in
    // the socket (TCP backpressure), and all complete in the end.
    let server = Peer::new(PeerConfig::default().max_handlers(3), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let calls: Vec<_> = (0..24u32)
        .map(|i| {
            let s = session.clone();
            tokio::spawn(async move { s.pull::<_, u32>("/slow", &i).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), i as u32);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}
