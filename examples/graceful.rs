//! A server that shuts down gracefully and restarts without downtime.
//!
//! SIGINT (Ctrl-C) or SIGTERM drain it: running handlers finish and their
//! replies are sent before it exits. SIGUSR2, or a pull of `/admin/restart`,
//! starts a new copy of this binary that takes over the listening socket;
//! this one then drains and exits, and no connection attempt is refused in
//! between. `/home/work` replies with the serving process id after the
//! given number of milliseconds.
//!
//! Run with: `cargo run --example graceful -- 127.0.0.1:9090`, then
//! `kill -USR2 <pid>` (or `kill -TERM <pid>`) from another terminal.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use teleport::graceful::{self, Outcome, Signal, Signals};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    // Register the handlers first: an unhandled SIGUSR2 would kill us.
    let signals = Signals::new()?;
    let restart = signals.handle();
    let pid = std::process::id();

    let mut router = Router::new();
    router
        .pull("/home/work", move |_: Ctx, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Status>(pid)
        })
        .pull("/admin/restart", move |_: Ctx, _: ()| {
            // Raised, not awaited here: the drain waits for this handler.
            restart.raise(Signal::Restart);
            async move { Ok::<_, Status>("restarting") }
        });
    let peer = Peer::new(PeerConfig::default(), router);
    let local = peer.listen_inherited_or(addr.as_str()).await?;
    let how = if graceful::is_restarted() {
        "took over"
    } else {
        "listening on"
    };
    println!("pid {pid} {how} {local}");

    match graceful::run(&peer, signals, Duration::from_secs(10)).await {
        Outcome::Shutdown(summary) => println!("pid {pid} stopped: {summary:?}"),
        Outcome::Restarted(restarted) => println!("pid {pid} handed over to pid {}", restarted.pid),
        other => println!("pid {pid} stopped: {other:?}"),
    }
    Ok(())
}
