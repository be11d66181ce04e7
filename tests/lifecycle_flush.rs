//! Nothing queued is dropped: a program that pushes and then returns from
//! `main` delivers every push, when it closes its session first or when it
//! awaits its last push with `flushed()` (the documented rule). The client
//! is a separate process (`bin/push_client.rs`), because the process exit
//! is the point.
#![cfg(unix)]

#[path = "support/wait.rs"]
mod wait;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use teleport::{Ctx, Peer, PeerConfig, Router};
use tokio::sync::Notify;
use wait::GUARD;

/// Runs the push client against a fresh server and returns how many pushes
/// arrived, once the client's connection has ended.
async fn pushes_arriving(n: u64, mode: &str) -> u64 {
    let count = Arc::new(AtomicU64::new(0));
    let arrived = Arc::new(Notify::new());
    let mut router = Router::new();
    {
        let (count, arrived) = (count.clone(), arrived.clone());
        router.push("/count", move |_: Ctx, _: u64| {
            count.fetch_add(1, Ordering::SeqCst);
            arrived.notify_one();
            async {}
        });
    }
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_push-client"))
        .args([addr.to_string(), n.to_string(), mode.to_owned()])
        .spawn()
        .expect("start the push client");
    let status = tokio::time::timeout(GUARD, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("the push client exits")
        .unwrap()
        .unwrap();
    assert!(status.success(), "push client exited with {status}");
    // The process is gone, so its connection has ended: every push it wrote
    // is in our socket before the end of the stream. Wait for the session to
    // see that end (or for all pushes, whichever is first).
    let wait = async {
        loop {
            let notified = arrived.notified();
            if count.load(Ordering::SeqCst) >= n {
                return;
            }
            let sessions = server.sessions();
            if sessions.is_empty()
                && server.session_count() == 0
                && count.load(Ordering::SeqCst) > 0
            {
                return;
            }
            tokio::select! {
                () = notified => {}
                _ = futures_util::future::join_all(sessions.iter().map(|s| s.closed())) => {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(GUARD, wait).await;
    count.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_closes_before_returning_delivers_every_push() {
    for round in 0..5 {
        assert_eq!(pushes_arriving(4001, "close").await, 4001, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_whose_last_push_is_flushed_delivers_every_push_when_it_just_returns() {
    for round in 0..5 {
        assert_eq!(
            pushes_arriving(4001, "flushed").await,
            4001,
            "round {round}"
        );
    }
}
