//! Ending a peer: [`Peer::close`] closes every session at once,
//! [`Peer::shutdown`] drains them first (see [`graceful`](crate::graceful)
//! for the concept and the restart built on it).
//!
//! Both stop accepting first, and both end in the same forced close: every
//! session still open is told to close (flushing what was already written),
//! and the peer waits a bounded time for them to end.
//!
//! ```text
//!  close(timeout)                      shutdown(deadline)
//!   ├─ stop accepting                   ├─ stop accepting
//!   │                                   ├─ drain every session until the deadline
//!   └─ forced close, wait `timeout`     └─ forced close of the rest, wait FORCED_CLOSE_GRACE
//! ```

use std::collections::HashSet;
use std::time::Duration;

use super::Peer;
use crate::session::Session;

/// How long sessions closed at the deadline get to flush before
/// [`Peer::shutdown`] returns anyway.
const FORCED_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a [`Peer::shutdown`] did.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// # let peer = teleport::Peer::new(teleport::PeerConfig::default(), teleport::Router::new());
/// use std::time::Duration;
/// let summary = peer.shutdown(Duration::from_secs(10)).await;
/// tracing::info!(drained = summary.drained, forced = summary.forced, "stopped");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Sessions that were open (or opened while stopping) and were drained.
    pub sessions: usize,
    /// Of those, how many finished their handlers and closed cleanly in time.
    pub drained: usize,
    /// Of those, how many were still busy at the deadline and were closed at
    /// once, dropping their running handlers.
    pub forced: usize,
}

impl Peer {
    /// Stops listening, closes every session (flushing what was already
    /// written to them) and waits up to `timeout` for them to end. Pending
    /// pulls on those sessions end with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed).
    /// Handlers still running are dropped: [`Peer::shutdown`] lets them
    /// finish and sends their replies first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use teleport::{Peer, PeerConfig, Router};
    ///
    /// let server = Peer::new(PeerConfig::default(), Router::new());
    /// let addr = server.listen("127.0.0.1:0").await?;
    /// server.close(Duration::from_secs(1)).await;
    /// assert!(server.is_closing());
    /// assert_eq!(server.session_count(), 0);
    /// # let _ = addr;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the peer stops accepting and its sessions close whether
    /// or not the wait for them is dropped.
    pub async fn close(&self, timeout: Duration) {
        self.stop_accepting();
        self.force_close(self.sessions(), timeout).await;
    }

    /// Shuts the peer down gracefully: stops accepting (and dialing), lets
    /// every session finish the handlers already running and flush their
    /// replies, closes each session cleanly, and returns once all are closed
    /// or `deadline` has passed, in which case the sessions left are closed
    /// at once (their running handlers are dropped).
    ///
    /// The remote side of each session sees an orderly end of stream: its
    /// pulls that were already being handled get their replies, the others
    /// end with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed).
    /// Pulls this peer itself is waiting on end the same way. See the
    /// [`graceful`](crate::graceful) module; [`Peer::close`] closes at once
    /// instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() {
    /// # let peer = teleport::Peer::new(teleport::PeerConfig::default(), teleport::Router::new());
    /// use std::time::Duration;
    /// let summary = peer.shutdown(Duration::from_secs(10)).await;
    /// assert_eq!(summary.forced, 0, "every handler finished in time");
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that the peer keeps shutting down (no listener comes
    /// back, draining sessions finish), but sessions are then not closed at
    /// once when the deadline passes.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownSummary {
        self.stop_accepting();
        let until = tokio::time::Instant::now() + deadline;
        let mut summary = ShutdownSummary::default();
        let mut seen = HashSet::new();
        tracing::info!(sessions = self.session_count(), ?deadline, "shutting down");
        // Loop: a connection accepted or dialed just as accepting stopped
        // registers its session a moment later, and is drained too.
        loop {
            let sessions = self.sessions();
            if sessions.is_empty() {
                break;
            }
            for s in &sessions {
                if seen.insert(s.id()) {
                    s.start_drain();
                    summary.sessions += 1;
                }
            }
            let all = futures_util::future::join_all(sessions.iter().map(|s| s.closed()));
            if tokio::time::timeout_at(until, all).await.is_err() {
                break;
            }
        }
        let left = self.sessions();
        summary.forced = left.len();
        summary.drained = summary.sessions.saturating_sub(summary.forced);
        if !left.is_empty() {
            tracing::warn!(
                left = left.len(),
                ?deadline,
                "sessions still draining at the deadline; closing them now"
            );
            self.force_close(left, FORCED_CLOSE_GRACE).await;
        }
        tracing::info!(?summary, "shut down");
        summary
    }

    /// The forced close both ends share: tells each of `sessions` to close
    /// at once (what was already written is flushed, running handlers are
    /// dropped) and waits up to `wait` for them to end.
    async fn force_close(&self, sessions: Vec<Session>, wait: Duration) {
        for s in &sessions {
            s.start_close();
        }
        let all = futures_util::future::join_all(sessions.iter().map(|s| s.closed()));
        if tokio::time::timeout(wait, all).await.is_err() {
            tracing::warn!(
                left = self.session_count(),
                "sessions still open {wait:?} after being closed; leaving them"
            );
        }
    }
}
