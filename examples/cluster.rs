//! A small fleet: three servers of one service behind a balanced client,
//! with the static resolver (no infrastructure), while one server is
//! killed and another restarted.
//!
//! 32 callers keep calls in flight through `CounterClient::new(balanced)`,
//! the same generated client that runs over one session. Midway, server 0
//! dies abruptly (its connections drop with calls in flight) and server 1
//! restarts gracefully (drains, then listens again on the same address).
//! The balanced client ejects the dead endpoint at once, resends the
//! `#[idempotent]` calls that were in flight, redials the restarted one
//! with jittered backoff and takes it back. It prints the calls each
//! server answered and a summary line; it exits non-zero if any call
//! failed.
//!
//! The same with etcd: start `etcd`, register each server with
//! `teleport::discovery::Registration::register` (feature `etcd`) and give
//! the client an `EtcdResolver` instead (see the README, "A fleet on
//! etcd").
//!
//! Run with: `cargo run --example cluster`

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use teleport::balance::{BalanceEvent, Balanced};
use teleport::discovery::StaticResolver;
use teleport::{Peer, PeerConfig, Router};

/// The service: which server answered, and a sum.
#[teleport::service]
trait Counter {
    /// Adds two numbers and says which server did it. Safe to run twice.
    #[idempotent]
    async fn add(&self, a: u64, b: u64) -> (u64, u32);
}

struct Server {
    id: u32,
}

impl Counter for Server {
    async fn add(&self, a: u64, b: u64) -> (u64, u32) {
        // A little work, so calls overlap and a dying server takes some
        // with it.
        tokio::time::sleep(Duration::from_micros(500)).await;
        (a + b, self.id)
    }
}

async fn serve(id: u32, addr: &str) -> (Peer, SocketAddr) {
    let mut router = Router::new();
    CounterServer::new(Server { id }).register(&mut router);
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen(addr).await.expect("listen");
    (peer, addr)
}

const CALLS: u64 = 30_000;
const IN_FLIGHT: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let mut servers = Vec::new();
    for id in 0..3 {
        servers.push(serve(id, "127.0.0.1:0").await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|(_, a)| *a).collect();
    for (id, addr) in addrs.iter().enumerate() {
        println!("server {id} on {addr}");
    }

    let resolver = StaticResolver::new().with_service("counter", addrs.clone());
    let client_peer = Peer::new(PeerConfig::default(), Router::new());
    let balanced = Balanced::builder(client_peer, resolver, "counter")
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .connect()
        .await
        .expect("the service resolves");
    balanced.ready(3).await;
    let mut events = balanced.events();
    let client = CounterClient::new(balanced.clone());

    let started = Arc::new(AtomicU64::new(0));
    let (done, _) = tokio::sync::watch::channel(0u64);
    let done = Arc::new(done);
    let failed = Arc::new(AtomicU64::new(0));
    let per_server: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let mut callers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, started, done, failed, per_server) = (
            client.clone(),
            Arc::clone(&started),
            Arc::clone(&done),
            Arc::clone(&failed),
            Arc::clone(&per_server),
        );
        callers.push(tokio::spawn(async move {
            while started.fetch_add(1, Ordering::Relaxed) < CALLS {
                match client.add(40, 2).await {
                    Ok((42, id)) => {
                        per_server[id as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(other) => panic!("a wrong sum: {other:?}"),
                    Err(e) => {
                        println!("call failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done.send_modify(|n| *n += 1);
            }
        }));
    }

    // Waits until `n` calls have completed.
    let reach = |n: u64| {
        let mut done = done.subscribe();
        async move {
            let _ = done.wait_for(|&d| d >= n).await;
        }
    };

    reach(CALLS / 3).await;
    println!("killing server 0 (its connections drop with calls in flight)");
    let killed = Instant::now();
    servers[0].0.close(Duration::ZERO).await;
    loop {
        if let Ok(BalanceEvent::Ejected { addr, reason }) = events.recv().await {
            if addr == addrs[0].to_string() {
                println!("server 0 ejected after {:?} ({reason})", killed.elapsed());
                break;
            }
        }
    }

    reach(CALLS / 2).await;
    println!(
        "restarting server 1 gracefully (drain, then listen again on {})",
        addrs[1]
    );
    servers[1].0.shutdown(Duration::from_secs(5)).await;
    servers[1] = serve(1, &addrs[1].to_string()).await;
    while !balanced
        .live_endpoints()
        .iter()
        .any(|e| e.addr == addrs[1].to_string())
    {
        let _ = events.recv().await;
    }
    println!("server 1 is back");

    for caller in callers {
        caller.await.expect("a caller panicked");
    }
    let stats = balanced.stats();
    println!();
    for (id, addr) in addrs.iter().enumerate() {
        let live = stats
            .endpoints
            .iter()
            .find(|e| e.addr == addr.to_string())
            .is_some_and(|e| e.live);
        println!(
            "server {id} ({addr}): {:>6} calls answered{}",
            per_server[id].load(Ordering::Relaxed),
            if live { "" } else { "  (down)" }
        );
    }
    println!(
        "resent after a connection failure: {}, ejections: {}",
        stats.retried, stats.ejected
    );
    let failed = failed.load(Ordering::Relaxed);
    println!("calls: {}, failed: {failed}", *done.borrow());
    balanced.close().await;
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
