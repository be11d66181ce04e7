//! The server the restart test (`restart_handover.rs`) starts and restarts.
//!
//! It serves `/restart/work` (sleeps the given milliseconds, replies with its
//! process id) on the address given as its first argument, taking the
//! listener over from its predecessor when it was started by a restart, and
//! runs [`graceful::run`]: SIGUSR2 or a pull of `/admin/restart` restarts it,
//! SIGINT/SIGTERM stop it. It
//! reports on stdout, one line per event, for the test to follow.

use std::io::Write;
use std::time::Duration;

use teleport::graceful::{self, Outcome, Signal, Signals};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    // Before serving: a SIGUSR2 that arrived unhandled would kill the process.
    let signals = Signals::new().expect("signal handlers");
    let pid = std::process::id();
    let mut router = Router::new();
    router.pull("/restart/work", move |_: Ctx, ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, Status>(pid)
    });
    // The "API call" way: raise the restart from a handler; `run` does it
    // once the handler has replied.
    let handle = signals.handle();
    router.pull("/admin/restart", move |_: Ctx, _: ()| {
        handle.raise(Signal::Restart);
        async move { Ok::<_, Status>(pid) }
    });
    let peer = Peer::new(PeerConfig::default(), router);
    let local = peer
        .listen_inherited_or(addr.as_str())
        .await
        .expect("listen");
    say(&format!(
        "serving {local} pid {pid} inherited {}",
        graceful::is_restarted()
    ));
    let line = match graceful::run(&peer, signals, Duration::from_secs(10)).await {
        Outcome::Shutdown(s) => format!("exiting pid {pid} shutdown forced {}", s.forced),
        Outcome::Restarted(r) => format!(
            "exiting pid {pid} restarted into {} forced {}",
            r.pid, r.shutdown.forced
        ),
        other => format!("exiting pid {pid} {other:?}"),
    };
    say(&line);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
