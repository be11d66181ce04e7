//! Server processes for the tests that start, signal and restart them
//! (`bin/restart_server.rs`): killing what is left when a test ends, and
//! following the lines the servers print.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// How long a test waits for any one thing the servers do. Real time:
/// the servers are other processes, whose clocks a test cannot pause.
pub const GUARD: Duration = Duration::from_secs(30);

/// Kills whatever server process is still running when the test ends,
/// passing or failing.
pub struct Processes {
    /// The first server process, until the test waits for its exit.
    pub first: Option<Child>,
    pub pids: Mutex<Vec<i32>>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().iter() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        if let Some(first) = &mut self.first {
            let _ = first.kill();
            let _ = first.wait();
        }
    }
}

/// Lines the server processes print, read on a thread. Two processes write
/// to the same pipe, so their lines interleave in any order: a line is
/// looked for among those already read before waiting for more.
pub struct Lines {
    pub rx: mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub async fn next_matching(&mut self, prefix: &str) -> String {
        if let Some(i) = self.seen.iter().position(|l| l.starts_with(prefix)) {
            return self.seen.remove(i);
        }
        let wait = async {
            while let Some(line) = self.rx.recv().await {
                if line.starts_with(prefix) {
                    return Some(line);
                }
                self.seen.push(line);
            }
            None
        };
        match tokio::time::timeout(GUARD, wait).await {
            Ok(Some(line)) => line,
            outcome => panic!(
                "no line starting with {prefix:?} from the server ({}; other lines: {:?})",
                if outcome.is_ok() {
                    "its output ended"
                } else {
                    "timed out"
                },
                self.seen
            ),
        }
    }
}

/// `serving 127.0.0.1:PORT pid PID inherited BOOL` → (addr, pid, inherited).
pub fn parse_serving(line: &str) -> (String, i32, bool) {
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1].to_owned(),
        words[3].parse().unwrap(),
        words[5] == "true",
    )
}

/// Starts the server binary at `exe` on a free loopback port, with a
/// thread forwarding its output lines.
pub fn start_server(exe: &str) -> (Processes, Lines) {
    let mut first = Command::new(exe)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let stdout = first.stdout.take().unwrap();
    let processes = Processes {
        first: Some(first),
        pids: Mutex::new(Vec::new()),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (
        processes,
        Lines {
            rx,
            seen: Vec::new(),
        },
    )
}

/// Waits until `done` holds, checking it now and after each time `progress`
/// is notified (with `notify_waiters`); fails the test after [`GUARD`].
pub async fn until_notified(progress: &tokio::sync::Notify, what: &str, done: impl Fn() -> bool) {
    let wait = async {
        loop {
            let notified = progress.notified();
            tokio::pin!(notified);
            // Registered before the check, so a notification after it counts.
            notified.as_mut().enable();
            if done() {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(GUARD, wait)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting until {what}"));
}
