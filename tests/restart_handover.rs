//! Zero-downtime restart: a real server process (`bin/restart_server.rs`)
//! is restarted with SIGUSR2 while clients keep pulling. The new process
//! inherits the listening socket; the old one drains and exits.
//!
//! Counted: pulls sent, completed and failed, failures on connections
//! opened after the restart (must be none), and the longest stall between
//! two completed pulls of one client. Every failure must be a typed
//! connection-closed error of a connection to the old process (never a
//! hang, never a timeout).
//!
//! The new process is then restarted once more, through an API call (a pull
//! of `/admin/restart`), and finally stopped with SIGTERM.
#![cfg(unix)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use process::{GUARD, parse_serving, start_server, until_notified};
use teleport::{Peer, PeerConfig, Router};
use tokio::sync::Notify;

#[derive(Default)]
struct Figures {
    sent: AtomicUsize,
    completed: AtomicUsize,
    failed: AtomicUsize,
    failed_after_restart: AtomicUsize,
    completed_after_restart: AtomicUsize,
    longest_stall_us: AtomicU64,
    /// Pulls answered by the new process on connections opened after the restart.
    answered_by_new: AtomicUsize,
    /// Signalled after each completed pull.
    progress: Notify,
}

impl Figures {
    /// Waits until `done` holds, checking it after each completed pull.
    async fn until(&self, what: &str, done: impl Fn(&Figures) -> bool) {
        until_notified(&self.progress, what, || done(self)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_load_hands_the_listener_over_without_failing_new_connections() {
    let (mut processes, mut lines) = start_server(env!("CARGO_BIN_EXE_restart-server"));
    let (addr, old_pid, inherited) = parse_serving(&lines.next_matching("serving").await);
    assert!(!inherited);
    processes.pids.lock().unwrap().push(old_pid);

    let figures = Arc::new(Figures::default());
    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let new_pid = Arc::new(AtomicU64::new(0));
    let client = Peer::new(PeerConfig::default(), Router::new());
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, addr, figures, restarted, stop, new_pid) = (
            client.clone(),
            addr.clone(),
            figures.clone(),
            restarted.clone(),
            stop.clone(),
            new_pid.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut last_ok = Instant::now();
            // Each connection makes up to 40 pulls, then the client dials
            // again, so connections keep opening throughout. Bounded in count
            // as well as by the stop flag.
            'dial: for _ in 0..10_000 {
                let after = restarted.load(Ordering::SeqCst);
                let session = client
                    .dial(addr.as_str())
                    .await
                    .expect("the listener never goes away");
                for _ in 0..40 {
                    if stop.load(Ordering::SeqCst) {
                        break 'dial;
                    }
                    figures.sent.fetch_add(1, Ordering::SeqCst);
                    let got = session
                        .pull::<_, u64>("/restart/work", &2u64)
                        .timeout(Duration::from_secs(20))
                        .await;
                    match got {
                        Ok(pid) => {
                            figures.completed.fetch_add(1, Ordering::SeqCst);
                            let stall = last_ok.elapsed().as_micros() as u64;
                            figures.longest_stall_us.fetch_max(stall, Ordering::SeqCst);
                            last_ok = Instant::now();
                            if after {
                                figures
                                    .completed_after_restart
                                    .fetch_add(1, Ordering::SeqCst);
                                if pid == new_pid.load(Ordering::SeqCst) {
                                    figures.answered_by_new.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            figures.progress.notify_waiters();
                        }
                        Err(e) => {
                            assert!(
                                e.is_connection_closed(),
                                "a failed pull must end with connection closed, got {e}"
                            );
                            figures.failed.fetch_add(1, Ordering::SeqCst);
                            if after {
                                figures.failed_after_restart.fetch_add(1, Ordering::SeqCst);
                            }
                            continue 'dial;
                        }
                    }
                }
                session.close().await;
            }
        }));
    }

    figures
        .until("the old process served", |f| {
            f.completed.load(Ordering::SeqCst) >= 300
        })
        .await;

    kill(Pid::from_raw(old_pid), Signal::SIGUSR2).unwrap();
    let (new_addr, pid, inherited) = parse_serving(&lines.next_matching("serving").await);
    processes.pids.lock().unwrap().push(pid);
    assert_eq!(new_addr, addr, "the new process serves the same socket");
    assert_ne!(pid, old_pid);
    assert!(inherited);
    new_pid.store(pid as u64, Ordering::SeqCst);
    let exit_line = lines.next_matching(&format!("exiting pid {old_pid}")).await;
    assert_eq!(
        exit_line,
        format!("exiting pid {old_pid} restarted into {pid} forced 0")
    );

    // The old process exits by itself once drained. (If it does not, the
    // guard fails the test and `processes` kills it, ending the wait.)
    let mut first = processes.first.take().unwrap();
    let status = tokio::time::timeout(GUARD, tokio::task::spawn_blocking(move || first.wait()))
        .await
        .expect("the old process exits after draining")
        .unwrap()
        .unwrap();
    assert!(status.success(), "the old process exited with {status}");
    restarted.store(true, Ordering::SeqCst);

    figures
        .until("clients served after the restart", |f| {
            f.completed_after_restart.load(Ordering::SeqCst) >= 300
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let sent = figures.sent.load(Ordering::SeqCst);
    let completed = figures.completed.load(Ordering::SeqCst);
    let failed = figures.failed.load(Ordering::SeqCst);
    let stall = Duration::from_micros(figures.longest_stall_us.load(Ordering::SeqCst));
    eprintln!(
        "restart figures: pulls sent {sent}, completed {completed}, failed {failed} (after the restart {}), longest stall {stall:?}",
        figures.failed_after_restart.load(Ordering::SeqCst)
    );
    assert_eq!(figures.failed_after_restart.load(Ordering::SeqCst), 0);
    assert_eq!(
        sent,
        completed + failed,
        "every pull completed or failed: none hangs"
    );
    assert_eq!(
        figures.answered_by_new.load(Ordering::SeqCst),
        figures.completed_after_restart.load(Ordering::SeqCst),
        "after the restart only the new process answers"
    );

    // A restarted process restarts again, this time through an API call.
    let session = client.dial(addr.as_str()).await.unwrap();
    let answered: u64 = session.pull("/admin/restart", &()).await.unwrap();
    assert_eq!(answered, pid as u64);
    let (third_addr, third, inherited) = parse_serving(&lines.next_matching("serving").await);
    processes.pids.lock().unwrap().push(third);
    assert_eq!((third_addr.as_str(), inherited), (addr.as_str(), true));
    let exit_line = lines.next_matching(&format!("exiting pid {pid}")).await;
    assert_eq!(
        exit_line,
        format!("exiting pid {pid} restarted into {third} forced 0")
    );
    session.closed().await;
    let session = client.dial(addr.as_str()).await.unwrap();
    let answered: u64 = session.pull("/restart/work", &0u64).await.unwrap();
    assert_eq!(answered, third as u64);

    // SIGTERM: the newest process shuts down gracefully and says so.
    kill(Pid::from_raw(third), Signal::SIGTERM).unwrap();
    let exit_line = lines.next_matching(&format!("exiting pid {third}")).await;
    assert_eq!(exit_line, format!("exiting pid {third} shutdown forced 0"));
    session.closed().await;
    drop(processes);
}
