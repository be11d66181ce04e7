//! Services served by either peer: the dialing peer serves a service that
//! the listening peer calls over the same connection, and a service's
//! handler calls back into its caller while it serves.

#[path = "support/wait.rs"]
mod wait;

use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::sync::mpsc;

/// Served by the peer that dials.
#[teleport::service]
trait Worker {
    /// Squares a number.
    async fn square(&self, n: i64) -> i64;
    /// Tells the worker something.
    #[push]
    async fn tell(&self, text: String);
}

struct WorkerImpl {
    name: String,
    told: mpsc::UnboundedSender<String>,
}

impl Worker for WorkerImpl {
    async fn square(&self, n: i64) -> i64 {
        n * n
    }
    async fn tell(&self, text: String) {
        let _ = self.told.send(format!("{} heard {text}", self.name));
    }
}

/// Served by the peer that listens; it calls the worker back.
#[teleport::service]
trait Boss {
    /// Asks the calling worker to square `n`, over the caller's own session.
    async fn delegate(&self, ctx: Ctx, n: i64) -> Result<i64, Status>;
}

struct BossImpl;

impl Boss for BossImpl {
    async fn delegate(&self, ctx: Ctx, n: i64) -> Result<i64, Status> {
        let worker = WorkerClient::new(ctx.session().clone());
        worker
            .tell(format!("delegate {n}"))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        worker
            .square(n)
            .await
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn worker_router(name: &str, told: mpsc::UnboundedSender<String>) -> Router {
    let mut router = Router::new();
    WorkerServer::new(WorkerImpl {
        name: name.to_string(),
        told,
    })
    .register(&mut router);
    router
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_calls_a_service_served_by_the_dialing_peer() {
    let listener = Peer::new(PeerConfig::default(), Router::new());
    let addr = listener.listen("127.0.0.1:0").await.unwrap();
    let (told_tx, mut told) = mpsc::unbounded_channel();
    let dialer = Peer::new(PeerConfig::default(), worker_router("w1", told_tx));
    let dialed = dialer.dial(addr).await.unwrap();

    // The listener finds the accepted session and calls the dialer's service
    // on it, once it has accepted it (`dial` returns before that).
    tokio::time::timeout(
        wait::GUARD,
        listener.wait_for(|peer| peer.session_count() == 1),
    )
    .await
    .expect("the listener accepted the session");
    let session = listener.sessions().pop().unwrap();
    assert_eq!(session.remote_addr(), dialed.local_addr());
    let worker = WorkerClient::new(session);
    assert_eq!(worker.square(12).await.unwrap(), 144);
    worker.tell("hello".into()).await.unwrap();
    assert_eq!(told.recv().await.unwrap(), "w1 heard hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_calls_back_the_service_of_its_caller_on_the_same_connection() {
    let mut boss_router = Router::new();
    BossServer::new(BossImpl).register(&mut boss_router);
    let listener = Peer::new(PeerConfig::default(), boss_router);
    let addr = listener.listen("127.0.0.1:0").await.unwrap();

    // Two dialing workers, each serving its own implementation.
    let mut workers = Vec::new();
    for name in ["a", "b"] {
        let (told_tx, told) = mpsc::unbounded_channel();
        let peer = Peer::new(PeerConfig::default(), worker_router(name, told_tx));
        let boss = BossClient::new(peer.dial(addr).await.unwrap());
        workers.push((peer, boss, told, name));
    }
    for (_peer, boss, told, name) in &mut workers {
        assert_eq!(boss.delegate(-7).await.unwrap(), 49);
        // The callback reached this worker, not the other one.
        assert_eq!(
            told.recv().await.unwrap(),
            format!("{name} heard delegate -7")
        );
        assert!(told.try_recv().is_err());
    }
}
