//! A fleet member for `fleet_processes.rs`: serves the `Fleet` service
//! (`support/fleet_service.rs`), optionally registers itself in etcd, and
//! follows the signals of a real deployment:
//!
//! - SIGTERM/SIGINT: leave the registry, drain, exit.
//! - SIGUSR2: leave the registry, hand the listening socket to a new
//!   process (the same binary, same arguments, which registers itself
//!   again), drain, exit.
//! - SIGKILL: nothing; its etcd lease expires.
//!
//! Arguments: `ADDR [ETCD_ENDPOINTS PREFIX SERVICE TTL_MS]`. Reports on
//! stdout one line per event (`serving ADDR pid PID`, `exiting pid PID`).

#[path = "../support/fleet_service.rs"]
mod fleet_service;

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fleet_service::{FleetImpl, FleetServer};
use teleport::discovery::{Endpoint, EtcdClient, Registration};
use teleport::graceful::{Signal, Signals};
use teleport::{Peer, PeerConfig, Router};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".into());
    // Before serving: a SIGUSR2 that arrived unhandled would kill the process.
    let mut signals = Signals::new().expect("signal handlers");
    let pid = std::process::id();

    let local = Arc::new(OnceLock::new());
    let mut router = Router::new();
    FleetServer::new(FleetImpl {
        addr: Arc::clone(&local),
    })
    .register(&mut router);
    let peer = Peer::new(PeerConfig::default(), router);
    let listening = peer
        .listen_inherited_or(addr.as_str())
        .await
        .expect("listen")
        .to_string();
    local.set(listening.clone()).expect("set once");

    let registration = match &args[1..] {
        [etcd, prefix, service, ttl_ms] => {
            let client = EtcdClient::new(etcd.split(','));
            let ttl = Duration::from_millis(ttl_ms.parse().expect("TTL_MS is a number"));
            let endpoint = Endpoint::new(listening.clone());
            Some(
                Registration::register_under(&client, prefix, service, endpoint, ttl)
                    .await
                    .expect("register in etcd"),
            )
        }
        [] => None,
        other => {
            panic!("usage: fleet-server ADDR [ETCD_ENDPOINTS PREFIX SERVICE TTL_MS], got {other:?}")
        }
    };
    say(&format!("serving {listening} pid {pid}"));

    let signal = signals.recv().await;
    // Leave the registry before draining, so clients move away while this
    // process still answers.
    if let Some(registration) = registration {
        if let Err(e) = registration.deregister().await {
            say(&format!("deregister failed: {e}"));
        }
    }
    match signal {
        Signal::Restart => {
            peer.restart(Duration::from_secs(10))
                .await
                .expect("a new process takes over");
        }
        _ => {
            peer.shutdown(Duration::from_secs(10)).await;
        }
    }
    say(&format!("exiting pid {pid}"));
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
