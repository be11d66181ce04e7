//! Memory per idle session: a child process (this binary with
//! `--idle-server`) runs one teleport peer; the parent opens sessions to it
//! and reads the child's resident set size before and after. Only the
//! server's memory is measured, so the client's sessions do not count.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;

use crate::tp;

/// The resident set size of this process in KiB, from /proc.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child side: serve, print the port, answer `stat` lines with
/// `<sessions> <rss KiB>` until stdin closes.
pub fn child_main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (peer, addr) = rt.block_on(tp::serve(tp::router())).expect("listen");
    println!("port {}", addr.port());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stat" {
            println!("{} {}", peer.session_count(), rss_kib());
        }
    }
    drop(peer);
}

struct ChildServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ChildServer {
    fn stat(&mut self) -> (usize, u64) {
        let _ = writeln!(self.stdin, "stat");
        let _ = self.stdin.flush();
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let mut it = line
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        (it.next().unwrap_or(0) as usize, it.next().unwrap_or(0))
    }

    async fn wait_for(&mut self, sessions: usize) -> (usize, u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.stat();
            if s.0 >= sessions || Instant::now() > deadline {
                // Let allocations settle before the figure is read.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.stat();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What the idle-memory measurement gives.
#[derive(Debug, Clone)]
pub struct IdleFigures {
    pub sessions: usize,
    pub base_kib: u64,
    pub idle_kib: u64,
    pub after_call_kib: u64,
}

impl IdleFigures {
    pub fn per_session_idle(&self) -> f64 {
        (self.idle_kib.saturating_sub(self.base_kib)) as f64 / self.sessions as f64
    }
    pub fn per_session_after_call(&self) -> f64 {
        (self.after_call_kib.saturating_sub(self.base_kib)) as f64 / self.sessions as f64
    }
}

/// Opens `n` sessions to a fresh child server and measures its memory.
pub async fn measure(n: usize) -> Result<IdleFigures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--idle-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected child output {line:?}"))?;
    let mut server = ChildServer {
        child,
        stdin,
        stdout,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (_, base_kib) = server.wait_for(0).await;

    let client = tp::client_peer();
    let sessions: Vec<teleport::Session> = stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            async move { client.dial(addr).await }
        })
        .buffer_unordered(64)
        .filter_map(|r| async move { r.ok() })
        .collect()
        .await;
    if sessions.len() < n {
        eprintln!(
            "idle: only {} of {n} sessions could be opened",
            sessions.len()
        );
    }
    let (count, idle_kib) = server.wait_for(sessions.len()).await;

    let payload = crate::load::Payload::new(16);
    let payload = &payload;
    stream::iter(sessions.iter())
        .for_each_concurrent(64, |s| async move {
            let _ = s
                .pull_with::<str, String>(tp::ECHO, &payload.text, teleport::CallOptions::default())
                .await;
        })
        .await;
    let (_, after_call_kib) = server.wait_for(count).await;

    for s in &sessions {
        s.close().await;
    }
    drop(server.stdin);
    let _ = server.child.wait();
    Ok(IdleFigures {
        sessions: count,
        base_kib,
        idle_kib,
        after_call_kib,
    })
}
