//! Metrics: calls, errors and latency per URI and kind, through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install any `metrics` recorder (a Prometheus exporter, StatsD...) and add
//! [`Metrics`] to a peer. It records:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `teleport_calls_total` | counter | `uri`, `kind` |
//! | `teleport_errors_total` | counter | `uri`, `kind`, `status` |
//! | `teleport_call_duration_seconds` | histogram | `uri`, `kind` |
//!
//! `kind` is what the call logs say: `pull-handle` (a pull this peer
//! served, timed from its header being read to its reply being queued),
//! `push-handle` (a push it received), `pull-launch` (a pull it sent, timed
//! from being queued to its reply being read) and `push-launch` (a push it
//! sent). An error is a reply whose status is not 200; `status` is its code.
//! `uri` is the path without the query; on the serving side a path that no
//! route of the peer matches is labelled `unmatched`, so a remote peer cannot
//! grow the number of series without bound.
//!
//! Attach it to the peer (or to a group, to measure only that group's
//! routes), not both. Pulls that time out are not counted as launched calls
//! that finished; they stop being tracked when their session ends.
//!
//! ```
//! use teleport::PeerConfig;
//! use teleport::plugin::metrics::Metrics;
//!
//! let config = PeerConfig::default().plugin(Metrics::new());
//! # let _ = config;
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::Plugin;
use crate::frame::{Header, Kind};
use crate::session::Session;
use crate::status::{Status, code};

/// Name of the call counter.
pub const CALLS: &str = "teleport_calls_total";
/// Name of the error counter.
pub const ERRORS: &str = "teleport_errors_total";
/// Name of the latency histogram, in seconds.
pub const DURATION: &str = "teleport_call_duration_seconds";
/// The `uri` label of served calls to a path no route matches.
pub const UNMATCHED: &str = "unmatched";

/// Outgoing pulls tracked per session before old entries are swept.
const SWEEP_AT: usize = 4096;

/// The metrics plugin. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Metrics {
    routes: RwLock<HashSet<String>>,
}

impl Metrics {
    /// A plugin that learns the peer's routes when the peer is built.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn served_uri(&self, path: &str) -> String {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if routes.contains(path) {
            path.to_owned()
        } else {
            UNMATCHED.to_owned()
        }
    }
}

/// Start times of the calls in flight on one session.
#[derive(Default)]
struct Clocks {
    /// Pulls being served, by seq.
    served: HashMap<u64, Instant>,
    /// Pulls sent and waiting, by seq: start and path.
    sent: HashMap<u64, (Instant, String)>,
}

type SharedClocks = Arc<Mutex<Clocks>>;

fn clocks(session: &Session) -> SharedClocks {
    session
        .extensions()
        .get_or_insert_with(SharedClocks::default)
}

fn lock(clocks: &SharedClocks) -> std::sync::MutexGuard<'_, Clocks> {
    clocks.lock().unwrap_or_else(|e| e.into_inner())
}

fn record(uri: String, kind: &'static str, status: Option<i32>, elapsed: Option<Duration>) {
    metrics::counter!(CALLS, "uri" => uri.clone(), "kind" => kind).increment(1);
    if let Some(status) = status.filter(|s| *s != code::OK && *s != 0) {
        metrics::counter!(ERRORS, "uri" => uri.clone(), "kind" => kind, "status" => status.to_string())
            .increment(1);
    }
    if let Some(elapsed) = elapsed {
        metrics::histogram!(DURATION, "uri" => uri, "kind" => kind).record(elapsed.as_secs_f64());
    }
}

impl Plugin for Metrics {
    fn name(&self) -> &str {
        "metrics"
    }

    fn after_register(&self, _kind: Kind, path: &str) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned());
    }

    fn after_write_pull(&self, session: &Session, header: &Header) {
        let clocks = clocks(session);
        let mut clocks = lock(&clocks);
        if clocks.sent.len() >= SWEEP_AT {
            // Pulls whose caller gave up never see a reply; forget the old ones.
            let horizon = session
                .config()
                .pull_timeout
                .unwrap_or(Duration::from_secs(60))
                .saturating_mul(2);
            clocks
                .sent
                .retain(|_, (start, _)| start.elapsed() < horizon);
        }
        clocks
            .sent
            .insert(header.seq, (Instant::now(), header.path().to_owned()));
    }

    fn after_write_push(&self, _session: &Session, header: &Header) {
        record(header.path().to_owned(), "push-launch", None, None);
    }

    fn after_read_header(&self, session: &Session, header: &mut Header) -> Result<(), Status> {
        match header.kind {
            Kind::Pull => {
                lock(&clocks(session))
                    .served
                    .insert(header.seq, Instant::now());
            }
            Kind::Push => record(self.served_uri(header.path()), "push-handle", None, None),
            Kind::Reply => {
                let sent = lock(&clocks(session)).sent.remove(&header.seq);
                if let Some((start, path)) = sent {
                    record(
                        path,
                        "pull-launch",
                        Some(header.status_code),
                        Some(start.elapsed()),
                    );
                }
            }
            Kind::Other(_) => {}
        }
        Ok(())
    }

    fn after_write_reply(&self, session: &Session, header: &Header) {
        let start = lock(&clocks(session)).served.remove(&header.seq);
        record(
            self.served_uri(header.path()),
            "pull-handle",
            Some(header.status_code),
            start.map(|s| s.elapsed()),
        );
    }
}
