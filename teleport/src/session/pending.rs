//! The pulls this side sent, waiting for their replies.
//!
//! Every pull the connection task writes gets an entry keyed by its
//! sequence number; the reply with that number takes it. Only the
//! connection task touches the map, so it needs no lock. When the session
//! ends, [`Pending::fail_all`] ends every waiting pull with one typed error:
//! the one place where "fail every waiting pull" is written.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::frame::Frame;

/// Where a pull's outcome goes: its reply frame or why it has none.
pub(crate) type Waiter = oneshot::Sender<Result<Frame, Error>>;

/// Waiting pulls by sequence number. The keys are our own sequence
/// numbers, so a fast hash is safe (std's SipHash cost ~400 instructions
/// per call here).
#[derive(Default)]
pub(super) struct Pending {
    waiting: HashMap<u64, Waiter, foldhash::fast::RandomState>,
}

impl Pending {
    /// Records a pull that was just written.
    pub(super) fn insert(&mut self, seq: u64, waiter: Waiter) {
        self.waiting.insert(seq, waiter);
    }

    /// Takes the waiter of the pull a reply answers, if it still waits.
    pub(super) fn take(&mut self, seq: u64) -> Option<Waiter> {
        self.waiting.remove(&seq)
    }

    /// Forgets a pull whose caller stopped waiting.
    pub(super) fn cancel(&mut self, seq: u64) {
        self.waiting.remove(&seq);
    }

    /// How many pulls wait for a reply.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no pull waits for a reply.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Ends every waiting pull with [`Error::ConnectionClosed`] carrying
    /// `reason`: they were written, so the remote side may have run them.
    pub(super) fn fail_all(&mut self, reason: &str) {
        for (_, waiter) in self.waiting.drain() {
            let _ = waiter.send(Err(Error::closed(reason)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fail_all_ends_every_waiting_pull_with_the_reason() {
        let mut pending = Pending::default();
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        pending.insert(1, a);
        pending.insert(2, b);
        assert!(pending.take(1).is_some());
        pending.fail_all("gone");
        assert!(pending.take(2).is_none());
        assert!(ra.await.is_err(), "taken waiter was dropped unanswered");
        let err = rb.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "connection closed: gone");
    }
}
