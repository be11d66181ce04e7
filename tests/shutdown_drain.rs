//! Graceful shutdown over real loopback TCP: under load no reply that was
//! already being handled is lost, the deadline bounds the drain, the
//! listener stops, and the signal helper shuts down when asked.
//!
//! Slow handlers and deadlines run on tokio's paused time: the clock jumps
//! to the next timer whenever every task waits, so no test sleeps for real.

#[path = "support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use teleport::graceful::{self, Outcome, Signal, Signals};
use teleport::{Ctx, Error, Peer, PeerConfig, Router, Session, Status};
use tokio::sync::watch;

struct Counts {
    /// How many handlers started, watchable.
    started: watch::Sender<usize>,
    finished: AtomicUsize,
}

impl Counts {
    fn new() -> Arc<Counts> {
        Arc::new(Counts {
            started: watch::Sender::new(0),
            finished: AtomicUsize::new(0),
        })
    }

    fn started(&self) -> usize {
        *self.started.borrow()
    }

    /// Waits until at least `n` handlers have started.
    async fn until_started(&self, n: usize) {
        let mut started = self.started.subscribe();
        tokio::time::timeout(wait::GUARD, started.wait_for(|s| *s >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} handlers did not start"))
            .unwrap();
    }
}

/// `/work/slow` sleeps `ms` and echoes it; the counts say how many handlers
/// started and finished.
fn slow_router(counts: Arc<Counts>) -> Router {
    let mut router = Router::new();
    router.pull("/work/slow", move |_: Ctx, ms: u64| {
        let counts = counts.clone();
        async move {
            counts.started.send_modify(|s| *s += 1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            counts.finished.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(ms)
        }
    });
    router
}

#[tokio::test(start_paused = true)]
async fn shutdown_under_load_loses_no_reply_that_was_already_being_handled() {
    let counts = Counts::new();
    let server = Peer::new(PeerConfig::default(), slow_router(counts.clone()));
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());

    // 4 connections with 25 workers each, every worker pulling in a loop
    // (handlers take 20..=120 ms) until its connection goes away: the
    // shutdown lands while many handlers run and more pulls are on the wire.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(client.dial(addr).await.unwrap());
    }
    let mut workers = Vec::new();
    for w in 0..100u64 {
        let session: Session = sessions[w as usize % 4].clone();
        workers.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in 0u64.. {
                let ms = 20 + (w * 31 + i * 17) % 101;
                let got: Result<u64, Error> = session.pull("/work/slow", &ms).await;
                match got {
                    Ok(v) => {
                        assert_eq!(v, ms);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(
                            e.is_connection_closed(),
                            "a pull never handled must end with connection closed, got {e}"
                        );
                        break;
                    }
                }
            }
            ok
        }));
    }
    counts.until_started(500).await;

    let summary = server.shutdown(Duration::from_secs(20)).await;
    assert_eq!(summary.sessions, 4);
    assert_eq!(summary.drained, 4);
    assert_eq!(summary.forced, 0);
    assert_eq!(server.session_count(), 0);

    let mut ok = 0;
    for worker in workers {
        ok += worker.await.unwrap();
    }
    let started = counts.started();
    assert_eq!(
        counts.finished.load(Ordering::SeqCst),
        started,
        "every started handler ran to its end"
    );
    assert_eq!(ok, started, "every handled pull got its reply");
    for s in &sessions {
        s.closed().await;
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_closes_sessions_whose_handlers_run_too_long() {
    let counts = Counts::new();
    let server = Peer::new(PeerConfig::default(), slow_router(counts.clone()));
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();

    let stuck = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u64>("/work/slow", &600_000u64).await })
    };
    counts.until_started(1).await;

    let summary = server.shutdown(Duration::from_millis(100)).await;
    assert_eq!(summary.sessions, 1);
    assert_eq!(summary.forced, 1);
    assert_eq!(summary.drained, 0);
    let err = stuck.await.unwrap().unwrap_err();
    assert!(err.is_connection_closed(), "got {err}");
    assert_eq!(
        counts.finished.load(Ordering::SeqCst),
        0,
        "the handler was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_listening_and_refuses_new_dials() {
    let server = Peer::new(PeerConfig::default(), Router::new());
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let summary = server.shutdown(Duration::from_secs(1)).await;
    assert_eq!(summary.sessions, 0);
    assert!(server.is_closing());
    // The accept loop drops its listener after `shutdown` returns.
    tokio::time::timeout(
        wait::GUARD,
        server.wait_for(|peer| peer.listen_addrs().is_empty()),
    )
    .await
    .expect("the listener closed");

    let client = Peer::new(PeerConfig::default(), Router::new());
    assert!(client.dial(addr).await.is_err(), "nothing listens any more");
    assert!(
        server.dial(addr).await.is_err(),
        "a stopped peer dials no more"
    );
}

#[tokio::test(start_paused = true)]
async fn session_shutdown_flushes_the_running_reply_and_closes_cleanly() {
    let counts = Counts::new();
    let server = Peer::new(PeerConfig::default(), slow_router(counts.clone()));
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();

    let call = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u64>("/work/slow", &100u64).await })
    };
    counts.until_started(1).await;
    let server_side = server.sessions().pop().unwrap();
    assert!(
        server_side.shutdown(Duration::from_secs(10)).await,
        "drained in time"
    );
    assert_eq!(call.await.unwrap().unwrap(), 100);
    session.closed().await;
    assert_eq!(
        session.close_reason(),
        Some("the remote peer closed the connection")
    );
    let err = session
        .pull::<_, u64>("/work/slow", &1u64)
        .await
        .unwrap_err();
    assert!(err.is_connection_closed());
    // The server still listens: only the one session was shut down.
    let again = client.dial(addr).await.unwrap();
    assert_eq!(again.pull::<_, u64>("/work/slow", &1u64).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn run_shuts_down_when_a_terminate_is_raised_from_code() {
    let counts = Counts::new();
    let server = Peer::new(PeerConfig::default(), slow_router(counts.clone()));
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let signals = Signals::new().unwrap();
    let handle = signals.handle();
    let running = {
        let server = server.clone();
        tokio::spawn(async move { graceful::run(&server, signals, Duration::from_secs(10)).await })
    };

    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let call = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u64>("/work/slow", &100u64).await })
    };
    counts.until_started(1).await;
    handle.raise(Signal::Terminate);

    match running.await.unwrap() {
        Outcome::Shutdown(summary) => assert_eq!((summary.sessions, summary.forced), (1, 0)),
        other => panic!("expected a shutdown, got {other:?}"),
    }
    assert_eq!(call.await.unwrap().unwrap(), 100);
    session.closed().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_shutting_down_refuses_to_restart() {
    use teleport::graceful::RestartError;

    let server = Peer::new(PeerConfig::default(), Router::new());
    server.listen("127.0.0.1:0").await.unwrap();
    server.shutdown(Duration::from_secs(1)).await;
    let err = server.restart(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, RestartError::ShuttingDown), "got {err}");
    assert!(!graceful::is_restarted());
}

/// The lifecycle types and futures can move between threads (a server's
/// `main` spawns them); checked at compile time.
#[test]
fn lifecycle_types_and_futures_are_send_and_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<graceful::ShutdownSummary>();
    send_sync::<graceful::SignalHandle>();
    send_sync::<graceful::Signal>();
    send_sync::<graceful::Outcome>();
    #[cfg(unix)]
    send_sync::<graceful::RestartError>();
    #[cfg(unix)]
    send_sync::<graceful::Restarted>();
    fn futures(peer: Peer, session: Session, signals: Signals) {
        send(&peer.shutdown(Duration::from_secs(1)));
        send(&session.shutdown(Duration::from_secs(1)));
        send(&peer.listen_inherited_or("127.0.0.1:0"));
        #[cfg(unix)]
        send(&peer.restart(Duration::from_secs(1)));
        send(&graceful::run(&peer, signals, Duration::from_secs(1)));
    }
    let _ = futures;
}
