//! Measures the numbers `docs/SCALING.md` builds on, on this machine:
//!
//! 1. sessions one peer holds, and the memory each costs (both ends of
//!    every session live in this process; halved per end);
//! 2. with `TELEPORT_ETCD_ENDPOINTS` set (feature `etcd` of the tests'
//!    build, always on here): the latency from a registration to an
//!    `EtcdResolver` watcher seeing it, and the lease keep-alives per
//!    second one etcd answers.
//!
//! Run with: `cargo run --release --example scaling -- [SESSIONS]`
//! (default 4000 sessions: each needs two file descriptors here).

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use teleport::{Ctx, Peer, PeerConfig, Router, Status};

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000);

    // 1. Sessions and memory.
    let mut router = Router::new();
    router.pull("/ping", |_: Ctx, (): ()| async { Ok::<_, Status>(()) });
    let config = PeerConfig::default().max_sessions(n + 10);
    let server = Peer::new(config.clone(), router);
    let addr = server.listen("127.0.0.1:0").await.expect("listen");
    let client = Peer::new(config, Router::new());
    let before = rss_kib();
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let s = client.dial(addr).await.expect("dial");
        // One call each, so both ends have set up their buffers.
        let () = s.pull("/ping", &()).await.expect("ping");
        sessions.push(s);
    }
    let took = started.elapsed();
    let after = rss_kib();
    println!(
        "sessions: {n} dialed and pinged in {took:?}; the server peer holds {}",
        server.session_count()
    );
    if let (Some(b), Some(a)) = (before, after) {
        let per_end = (a.saturating_sub(b)) as f64 * 1024.0 / (2 * n) as f64;
        println!(
            "memory: {} KiB for {n} sessions at both ends: {per_end:.0} bytes per session end",
            a.saturating_sub(b)
        );
    }
    for s in &sessions {
        s.close().await;
    }
    drop(sessions);

    // 2. etcd.
    let Some(etcd) = teleport::discovery::EtcdClient::from_env() else {
        println!("etcd: TELEPORT_ETCD_ENDPOINTS is not set; etcd figures not measured");
        return;
    };
    etcd_figures(etcd).await;
}

async fn etcd_figures(etcd: teleport::discovery::EtcdClient) {
    use teleport::discovery::{Endpoint, EtcdResolver, Registration, Resolver};
    let prefix = format!("/teleport-scaling/{}/", std::process::id());
    let resolver = EtcdResolver::new(etcd.clone()).prefix(prefix.clone());
    let mut watch = resolver.resolve("svc").await.expect("resolve");
    let mut latencies = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let reg = Registration::register_under(
            &etcd,
            &prefix,
            "svc",
            Endpoint::new(format!("10.0.0.1:{}", 1000 + i)),
            Duration::from_secs(10),
        )
        .await
        .expect("register");
        watch.wait_for(|set| set.len() == 1).await.expect("watch");
        latencies.push(t.elapsed());
        reg.deregister().await.expect("deregister");
        watch.wait_for(|set| set.is_empty()).await.expect("watch");
    }
    latencies.sort();
    println!(
        "etcd watch: registration (lease grant + put) to watcher update, 200 samples: p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    let lease = etcd.grant(Duration::from_secs(30)).await.expect("grant");
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let etcd = etcd.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                etcd.keep_alive(lease).await.expect("keep-alive");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    println!(
        "etcd leases: {:.0} keep-alives/s from 32 concurrent callers (one HTTP/1.1 request each, new connection per request)",
        total as f64 / started.elapsed().as_secs_f64()
    );
    etcd.revoke(lease).await.expect("revoke");
}
