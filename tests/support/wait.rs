//! Waiting for state in tests without a fixed sleep.
//!
//! Prefer an event: [`Session::closed`], a channel or a `Notify` signalled
//! by a handler. [`no_sessions_left`] waits on the sessions' own `closed()`
//! events. State of a peer (sessions accepted, listeners stopped) is waited
//! for with `Peer::wait_for`.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::time::Duration;

use teleport::{Peer, Session};

/// How long a wait may take before the test fails instead of hanging. With
/// paused time this is virtual time and only passes while every task idles.
pub const GUARD: Duration = Duration::from_secs(10);

/// Waits until `peer` has no live session, on the sessions' own
/// [`Session::closed`] events: a session leaves its peer's registry before
/// `closed()` resolves.
///
/// Fails the test if a session is still registered after it has closed, or
/// if the sessions do not close within [`GUARD`].
pub async fn no_sessions_left(peer: &Peer) {
    let wait = async {
        let mut closed = HashSet::new();
        loop {
            let live = peer.sessions();
            let stale: Vec<u64> = live
                .iter()
                .map(Session::id)
                .filter(|id| closed.contains(id))
                .collect();
            assert!(
                stale.is_empty(),
                "sessions {stale:?} closed but are still in the registry"
            );
            if live.is_empty() {
                return;
            }
            futures_util::future::join_all(live.iter().map(Session::closed)).await;
            closed.extend(live.iter().map(Session::id));
        }
    };
    tokio::time::timeout(GUARD, wait)
        .await
        .unwrap_or_else(|_| panic!("{} sessions still open", peer.session_count()));
}
