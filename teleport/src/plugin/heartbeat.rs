//! Heartbeat: periodic pings, and sessions that fall silent are closed.
//!
//! Every `interval`, each session of a peer with [`Heartbeat`] pushes an
//! empty ping to [`PING_URI`] (the plugin installs a handler for it, so the
//! other side needs the plugin too, or a push handler of its own). Any frame
//! that arrives counts as a sign of life; a session that receives nothing
//! for `misses` intervals in a row is closed, and the pulls waiting on it end
//! with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed) saying
//! how many beats were missed.
//!
//! ```no_run
//! use std::time::Duration;
//! use teleport::plugin::heartbeat::Heartbeat;
//! use teleport::{Peer, PeerConfig, Router};
//!
//! // Ping every 5 s; close a session silent for 3 pings (15 s).
//! let config = PeerConfig::default().plugin(Heartbeat::new(Duration::from_secs(5), 3));
//! let peer = Peer::new(config, Router::new());
//! # let _ = peer;
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Plugin, PluginFuture};
use crate::router::Router;
use crate::session::{CallOptions, Session};
use crate::status::Status;

/// The reserved URI of the ping push.
pub const PING_URI: &str = "/heartbeat/ping";

/// The heartbeat plugin; attach it to a peer. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    interval: Duration,
    misses: u32,
}

impl Heartbeat {
    /// Pings every `interval` and closes a session that receives nothing for
    /// `misses` intervals (at least 1; a zero interval is raised to 1 ms).
    pub fn new(interval: Duration, misses: u32) -> Heartbeat {
        Heartbeat {
            interval: interval.max(Duration::from_millis(1)),
            misses: misses.max(1),
        }
    }

    /// The ping interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many silent intervals close a session.
    pub fn misses(&self) -> u32 {
        self.misses
    }

    fn start(&self, session: &Session) {
        let beat = Arc::new(LastSeen::new());
        session.extensions().insert(beat.clone());
        let (session, interval, misses) = (session.clone(), self.interval, self.misses);
        tokio::spawn(async move {
            let limit = interval * misses;
            let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = session.closed() => return,
                    _ = ticks.tick() => {}
                }
                let silent = beat.silent_for();
                if silent >= limit {
                    let reason =
                        format!("missed {misses} heartbeats: nothing received for {silent:?}");
                    tracing::warn!(target: "teleport::plugin", session = session.id(), remote = %session.remote_addr(), %reason, "closing the session");
                    session.close_because(reason);
                    return;
                }
                // A full send queue must not stop the silence check.
                let ping = session.push_raw(PING_URI, 0, Bytes::new(), CallOptions::default());
                if let Ok(Err(e)) = tokio::time::timeout(interval, ping).await {
                    tracing::debug!(target: "teleport::plugin", session = session.id(), error = %e, "heartbeat ping not sent");
                }
            }
        });
    }
}

/// When the last frame arrived, in milliseconds since the session started.
#[derive(Debug)]
struct LastSeen {
    start: Instant,
    last_ms: AtomicU64,
}

impl LastSeen {
    fn new() -> LastSeen {
        LastSeen {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

impl Plugin for Heartbeat {
    fn name(&self) -> &str {
        "heartbeat"
    }

    fn install(&self, router: &mut Router) {
        if !router.contains_push(PING_URI) {
            router.push_raw(PING_URI, |_, _| async {});
        }
    }

    fn after_dial<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        self.start(session);
        Box::pin(std::future::ready(Ok(())))
    }

    fn after_accept<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        self.start(session);
        Box::pin(std::future::ready(Ok(())))
    }

    fn before_read_header(&self, session: &Session) -> Result<(), Status> {
        if let Some(beat) = session.extensions().get::<Arc<LastSeen>>() {
            beat.touch();
        }
        Ok(())
    }
}
