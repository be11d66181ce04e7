//! A soak load for teleport: many sessions, pulls and pushes in both
//! directions at once, with counts of everything that was sent, completed,
//! failed or timed out, and whether any push was lost.
//!
//! Shared by `examples/soak.rs` (full size) and `tests/soak_reduced.rs`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use teleport::{CodecId, Ctx, Error, Peer, PeerConfig, Router, Session, Status};
use tokio::sync::{Notify, mpsc};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// Sessions between the client peer and the server peer.
    pub sessions: usize,
    /// Calls in all, split evenly over sessions and both directions.
    pub calls: u64,
    /// Calls in flight per session and direction.
    pub in_flight: usize,
    /// One call in this many is a push; the rest are pulls.
    pub push_every: u64,
    /// Payload size in bytes.
    pub payload: usize,
    /// Per-pull timeout.
    pub timeout: Duration,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            sessions: 100,
            calls: 1_000_000,
            in_flight: 8,
            push_every: 4,
            payload: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    pub pulls_sent: u64,
    pub pulls_completed: u64,
    pub pulls_failed: u64,
    pub pulls_timed_out: u64,
    pub pushes_sent: u64,
    pub pushes_failed: u64,
    pub pushes_received: u64,
    pub elapsed: Duration,
    /// Peak resident memory of the process (VmHWM), in KiB, if known.
    pub peak_rss_kib: Option<u64>,
}

impl SoakReport {
    /// Pushes that were sent but never arrived.
    pub fn pushes_lost(&self) -> u64 {
        (self.pushes_sent - self.pushes_failed).saturating_sub(self.pushes_received)
    }

    /// Whether nothing failed, timed out or got lost.
    pub fn clean(&self) -> bool {
        self.pulls_failed == 0
            && self.pulls_timed_out == 0
            && self.pushes_failed == 0
            && self.pushes_lost() == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls = self.pulls_sent + self.pushes_sent;
        writeln!(
            f,
            "calls sent        {calls} in {:.2?} ({:.0}/s)",
            self.elapsed,
            calls as f64 / self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "pulls  sent       {}", self.pulls_sent)?;
        writeln!(f, "       completed  {}", self.pulls_completed)?;
        writeln!(f, "       failed     {}", self.pulls_failed)?;
        writeln!(f, "       timed out  {}", self.pulls_timed_out)?;
        writeln!(f, "pushes sent       {}", self.pushes_sent)?;
        writeln!(f, "       failed     {}", self.pushes_failed)?;
        writeln!(f, "       received   {}", self.pushes_received)?;
        writeln!(f, "       lost       {}", self.pushes_lost())?;
        match self.peak_rss_kib {
            Some(k) => write!(f, "peak memory       {:.1} MiB", k as f64 / 1024.0),
            None => write!(f, "peak memory       unknown"),
        }
    }
}

#[derive(Default)]
struct Counters {
    pulls_sent: AtomicU64,
    pulls_completed: AtomicU64,
    pulls_failed: AtomicU64,
    pulls_timed_out: AtomicU64,
    pushes_sent: AtomicU64,
    pushes_failed: AtomicU64,
    pushes_received: AtomicU64,
    /// Signalled each time a push arrives.
    push_arrived: Notify,
}

impl Counters {
    /// Pushes sent without error that have not arrived yet.
    fn pushes_in_transit(&self) -> u64 {
        let sent =
            self.pushes_sent.load(Ordering::Relaxed) - self.pushes_failed.load(Ordering::Relaxed);
        sent.saturating_sub(self.pushes_received.load(Ordering::Relaxed))
    }
}

/// `/{prefix}/echo` echoes, `/{prefix}/note` counts pushes, and
/// `/{prefix}/hello` hands its session to `greeted`.
fn router(
    received: Arc<Counters>,
    prefix: &str,
    greeted: mpsc::UnboundedSender<Session>,
) -> Router {
    let mut r = Router::new();
    r.pull(
        &format!("/{prefix}/echo"),
        |_: Ctx, body: Vec<u8>| async move { Ok::<_, Status>(body) },
    );
    r.pull(&format!("/{prefix}/hello"), move |ctx: Ctx, (): ()| {
        let _ = greeted.send(ctx.session().clone());
        async { Ok::<_, Status>(()) }
    });
    r.push(&format!("/{prefix}/note"), move |_: Ctx, _body: Vec<u8>| {
        received.pushes_received.fetch_add(1, Ordering::Relaxed);
        received.push_arrived.notify_waiters();
        async {}
    });
    r
}

/// Runs `calls` calls over `session`, `in_flight` at a time.
async fn drive(
    session: Session,
    prefix: &'static str,
    calls: u64,
    cfg: SoakConfig,
    c: Arc<Counters>,
) {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..cfg.in_flight)
        .map(|_| {
            let (session, next, c, cfg) = (session.clone(), next.clone(), c.clone(), cfg.clone());
            tokio::spawn(async move {
                let payload = vec![7u8; cfg.payload];
                let pull_uri = format!("/{prefix}/echo");
                let push_uri = format!("/{prefix}/note");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        return;
                    }
                    if i % cfg.push_every == 0 {
                        c.pushes_sent.fetch_add(1, Ordering::Relaxed);
                        if session
                            .push(&push_uri, &payload)
                            .codec(CodecId::BINCODE)
                            .await
                            .is_err()
                        {
                            c.pushes_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        c.pulls_sent.fetch_add(1, Ordering::Relaxed);
                        let r: Result<Vec<u8>, Error> = session
                            .pull(&pull_uri, &payload)
                            .codec(CodecId::BINCODE)
                            .timeout(cfg.timeout)
                            .await;
                        match r {
                            Ok(body) if body.len() == payload.len() => {
                                c.pulls_completed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) if e.is_timeout() => {
                                c.pulls_timed_out.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => c.pulls_failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

/// Peak resident memory of this process in KiB (Linux).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the soak and reports.
pub async fn run(cfg: SoakConfig) -> SoakReport {
    let counters = Arc::new(Counters::default());
    let (greeted, mut server_sessions) = mpsc::unbounded_channel();
    let server = Peer::new(
        PeerConfig::default(),
        router(counters.clone(), "server", greeted.clone()),
    );
    let addr = server.listen("127.0.0.1:0").await.expect("listen");
    let client = Peer::new(
        PeerConfig::default(),
        router(counters.clone(), "client", greeted),
    );
    // Each session says hello, so the server's end of it is known.
    let mut sessions = Vec::with_capacity(cfg.sessions);
    for _ in 0..cfg.sessions {
        let session = client.dial(addr).await.expect("dial");
        session
            .pull::<_, ()>("/server/hello", &())
            .await
            .expect("hello");
        sessions.push(session);
    }
    let per_direction = cfg.calls / (2 * cfg.sessions as u64);
    let started = Instant::now();
    let mut runs = Vec::new();
    // Client → server, and server → client on the same connections.
    for s in sessions.iter().cloned() {
        runs.push(tokio::spawn(drive(
            s,
            "server",
            per_direction,
            cfg.clone(),
            counters.clone(),
        )));
    }
    for _ in 0..cfg.sessions {
        let s = server_sessions.recv().await.expect("the server's end");
        runs.push(tokio::spawn(drive(
            s,
            "client",
            per_direction,
            cfg.clone(),
            counters.clone(),
        )));
    }
    for r in runs {
        let _ = r.await;
    }
    // Pushes are one-way: wait until the last ones are handled. Those still
    // missing after 10 s are reported lost.
    let all_arrived = async {
        loop {
            let arrived = counters.push_arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if counters.pushes_in_transit() == 0 {
                return;
            }
            arrived.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), all_arrived).await;
    let elapsed = started.elapsed();
    client.close(Duration::from_secs(5)).await;
    server.close(Duration::from_secs(5)).await;
    let c = &counters;
    SoakReport {
        pulls_sent: c.pulls_sent.load(Ordering::Relaxed),
        pulls_completed: c.pulls_completed.load(Ordering::Relaxed),
        pulls_failed: c.pulls_failed.load(Ordering::Relaxed),
        pulls_timed_out: c.pulls_timed_out.load(Ordering::Relaxed),
        pushes_sent: c.pushes_sent.load(Ordering::Relaxed),
        pushes_failed: c.pushes_failed.load(Ordering::Relaxed),
        pushes_received: c.pushes_received.load(Ordering::Relaxed),
        elapsed,
        peak_rss_kib: peak_rss_kib(),
    }
}
