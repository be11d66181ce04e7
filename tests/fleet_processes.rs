//! A fleet of real server processes (`bin/fleet_server.rs`) under a
//! balanced client with 64 calls in flight (48 idempotent, 16 not), while
//! one server is SIGKILLed, one restarted gracefully (SIGUSR2: it leaves
//! the registry, hands its socket to a new process and drains) and a
//! fourth added. Once with the static resolver, once with every server
//! registered in etcd.
//!
//! Asserted: no idempotent call fails; a non-idempotent call fails only
//! with `ConnectionClosed` (written, outcome unknown: unsafe to resend),
//! and those are counted and printed; once the fleet is settled, calls
//! spread within ±20% over the live endpoints (counts, not timings); with
//! etcd, the killed server leaves the resolver within its lease TTL.
#![cfg(unix)]

#[path = "support/etcd.rs"]
mod etcd;
#[path = "support/fleet_service.rs"]
mod fleet_service;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_service::FleetClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use teleport::balance::{BalanceEvent, Balanced};
use teleport::discovery::{EtcdClient, EtcdResolver, Resolver, StaticResolver};
use teleport::{Error, Peer, PeerConfig, Router};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Lease TTL of the servers registered in etcd.
const TTL: Duration = Duration::from_secs(2);

/// The server processes; every one still running is killed at the end,
/// passing or failing.
#[derive(Default)]
struct Servers {
    children: Vec<Child>,
    pids: Vec<u32>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

/// One server's stdout lines, read on a task. After a restart two
/// processes write to the same pipe, in any order: a line is looked for
/// among those already read before waiting for more.
struct Server {
    addr: String,
    pid: u32,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Server {
    async fn line(&mut self, prefix: &str) -> String {
        if let Some(i) = self.seen.iter().position(|l| l.starts_with(prefix)) {
            return self.seen.remove(i);
        }
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {prefix:?} line from the server at {} within 30 s",
                        self.addr
                    )
                })
                .unwrap_or_else(|| {
                    panic!(
                        "the server at {} closed its output before {prefix:?}",
                        self.addr
                    )
                });
            if line.starts_with(prefix) {
                return line;
            }
            self.seen.push(line);
        }
    }
}

/// `serving ADDR pid PID`.
fn parse_serving(line: &str) -> (String, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].to_owned(), words[3].parse().unwrap())
}

async fn spawn(servers: &mut Servers, etcd: Option<(&EtcdClient, &str)>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleet-server"));
    cmd.arg("127.0.0.1:0");
    if let Some((client, prefix)) = etcd {
        cmd.args([
            client.endpoints().join(","),
            prefix.to_owned(),
            "fleet".into(),
            TTL.as_millis().to_string(),
        ]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fleet-server");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(30), lines.recv())
        .await
        .expect("the server starts within 30 s")
        .expect("the server prints its address");
    let (addr, pid) = parse_serving(&first);
    servers.pids.push(pid);
    servers.children.push(child);
    Server {
        addr,
        pid,
        lines,
        seen: Vec::new(),
    }
}

/// What the workers saw.
#[derive(Default)]
struct Tally {
    /// Completed calls, for waiting on progress.
    completed: tokio::sync::watch::Sender<u64>,
    idempotent_ok: AtomicU64,
    plain_ok: AtomicU64,
    idempotent_failed: Mutex<Vec<String>>,
    plain_failed: Mutex<Vec<Error>>,
    /// Answers per endpoint address.
    per_endpoint: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn answered(&self, addr: String) {
        *self.per_endpoint.lock().unwrap().entry(addr).or_insert(0) += 1;
    }

    /// Counts a completed call, successful or not.
    fn completed(&self) {
        self.completed.send_modify(|n| *n += 1);
    }

    /// Waits until `n` more calls have completed (bounded).
    async fn progress(&self, n: u64) {
        let mut completed = self.completed.subscribe();
        let target = *completed.borrow() + n;
        tokio::time::timeout(
            Duration::from_secs(60),
            completed.wait_for(|&done| done >= target),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "calls stopped completing: {} of {target}",
                *self.completed.borrow()
            )
        })
        .expect("the tally lives");
    }
}

/// Starts 48 idempotent and 16 non-idempotent callers, each with one call
/// in flight, until `stop`.
fn workers(
    client: &FleetClient<Balanced>,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (client, tally, stop) = (client.clone(), Arc::clone(tally), Arc::clone(stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if i < 48 {
                    match client.whoami().await {
                        Ok((addr, _pid)) => {
                            tally.idempotent_ok.fetch_add(1, Ordering::Relaxed);
                            tally.answered(addr);
                        }
                        Err(e) => tally.idempotent_failed.lock().unwrap().push(e.to_string()),
                    }
                } else {
                    match client.bump().await {
                        Ok(addr) => {
                            tally.plain_ok.fetch_add(1, Ordering::Relaxed);
                            tally.answered(addr);
                        }
                        Err(e) => tally.plain_failed.lock().unwrap().push(e),
                    }
                }
                tally.completed();
            }
        }));
    }
    tasks
}

async fn scenario(name: &str, etcd: Option<EtcdClient>) {
    let prefix = etcd::unique_prefix(name);
    let registry = etcd.as_ref().map(|c| (c, prefix.as_str()));
    let mut servers = Servers::default();
    let s0 = spawn(&mut servers, registry).await;
    let mut s1 = spawn(&mut servers, registry).await;
    let s2 = spawn(&mut servers, registry).await;
    let static_resolver = StaticResolver::new()
        .with_service("fleet", [s0.addr.clone(), s1.addr.clone(), s2.addr.clone()]);
    let resolver: Arc<dyn Resolver> = match &etcd {
        Some(client) => Arc::new(EtcdResolver::new(client.clone()).prefix(prefix.clone())),
        None => Arc::new(static_resolver.clone()),
    };
    // A second watcher of the same registry, to time the killed server's
    // exit from it.
    let mut registry_watch = resolver.resolve("fleet").await.unwrap();

    let peer = Peer::new(PeerConfig::default(), Router::new());
    let balanced = Balanced::builder(peer, Arc::clone(&resolver), "fleet")
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), balanced.ready(3))
        .await
        .expect("three endpoints live");
    let mut events = balanced.events();
    let client = FleetClient::new(balanced.clone());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = workers(&client, &tally, &stop);
    tally.progress(2_000).await;

    // 1. SIGKILL server 0 with calls in flight.
    let killed_at = Instant::now();
    kill(Pid::from_raw(s0.pid as i32), Signal::SIGKILL).unwrap();
    let eject_time = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(BalanceEvent::Ejected { addr, .. }) if addr == s0.addr => {
                    return killed_at.elapsed();
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the killed server is ejected within 10 s");
    let registry_exit = if etcd.is_some() {
        let bound = TTL * 2 + Duration::from_secs(3);
        tokio::time::timeout(bound, async {
            registry_watch
                .wait_for(|set| !set.iter().any(|e| e.addr == s0.addr))
                .await
                .map(drop)
        })
        .await
        .unwrap_or_else(|_| {
            panic!("the killed server left etcd within its lease TTL ({TTL:?}, bound {bound:?})")
        })
        .unwrap();
        Some(killed_at.elapsed())
    } else {
        None
    };
    tally.progress(2_000).await;

    // 2. Restart server 1 gracefully: a new process takes its socket.
    let old_pid = s1.pid;
    kill(Pid::from_raw(old_pid as i32), Signal::SIGUSR2).unwrap();
    let restarted = s1.line("serving ").await;
    let (addr, new_pid) = parse_serving(&restarted);
    assert_eq!(addr, s1.addr, "the new process serves the same address");
    assert_ne!(new_pid, old_pid);
    servers.pids.push(new_pid);
    s1.line(&format!("exiting pid {old_pid}")).await;
    tally.progress(2_000).await;

    // 3. A fourth server joins.
    let s3 = spawn(&mut servers, registry).await;
    if etcd.is_none() {
        static_resolver.set("fleet", [s1.addr.clone(), s2.addr.clone(), s3.addr.clone()]);
    }
    let live = [s1.addr.clone(), s2.addr.clone(), s3.addr.clone()];
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut events = balanced.events();
        while !live
            .iter()
            .all(|a| balanced.live_endpoints().iter().any(|e| &e.addr == a))
        {
            let _ = events.recv().await;
        }
    })
    .await
    .expect("the new server and the restarted one are live");

    // 4. Settled (after a warm-up of the new processes): measure the
    // spread over the live endpoints.
    tally.progress(2_000).await;
    let before = tally.per_endpoint.lock().unwrap().clone();
    tally.progress(8_000).await;
    let after = tally.per_endpoint.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let spread: BTreeMap<&String, u64> = live
        .iter()
        .map(|a| {
            (
                a,
                after.get(a).copied().unwrap_or(0) - before.get(a).copied().unwrap_or(0),
            )
        })
        .collect();
    let settled_total: u64 = spread.values().sum();
    let mean = settled_total as f64 / live.len() as f64;
    let worst = spread
        .values()
        .map(|&n| (n as f64 - mean).abs() / mean)
        .fold(0.0, f64::max);

    let idempotent_failed = tally.idempotent_failed.lock().unwrap().clone();
    let plain_failed = std::mem::take(&mut *tally.plain_failed.lock().unwrap());
    let stats = balanced.stats();
    eprintln!(
        "[{name}] calls: {} idempotent ok, {} failed; {} non-idempotent ok, {} failed (ConnectionClosed); \
         retried {}, ejected {}; killed server ejected after {eject_time:?}{}; settled spread {spread:?} (worst {:.1}% off the mean)",
        tally.idempotent_ok.load(Ordering::Relaxed),
        idempotent_failed.len(),
        tally.plain_ok.load(Ordering::Relaxed),
        plain_failed.len(),
        stats.retried,
        stats.ejected,
        registry_exit
            .map(|d| format!(", left etcd after {d:?}"))
            .unwrap_or_default(),
        worst * 100.0
    );
    assert!(
        idempotent_failed.is_empty(),
        "idempotent calls failed: {idempotent_failed:?}"
    );
    for e in &plain_failed {
        assert!(
            matches!(e, Error::ConnectionClosed { .. }),
            "a non-idempotent call failed though it was safe to resend: {e}"
        );
    }
    assert!(
        worst <= 0.2,
        "load is not within ±20% over the live endpoints: {spread:?}"
    );
    assert!(
        stats.retried > 0,
        "the kill caught calls in flight, which were resent"
    );
    balanced.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_fleet_survives_a_kill_a_restart_and_a_new_server() {
    scenario("static", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_fleet_survives_a_kill_a_restart_and_a_new_server() {
    let Some(client) = etcd::etcd_or_skip("etcd_fleet_survives_a_kill_a_restart_and_a_new_server")
    else {
        return;
    };
    scenario("etcd", Some(client)).await;
}
