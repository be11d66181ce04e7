//! The session's places for pulls waiting for their replies
//! (`PeerConfig::max_pulls_in_flight`).
//!
//! A count in one atomic: taking a place and giving it back are one atomic
//! operation each on the common path (a `tokio::sync::Semaphore` took its
//! waiters' lock on every release, about 100 instructions per call).
//! Callers past the limit wait on a `Notify`; a place given back wakes one
//! of them whenever any waits.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

pub(crate) struct PullSlots {
    used: AtomicUsize,
    max: usize,
    /// Callers waiting for a place.
    waiting: AtomicUsize,
    freed: Notify,
}

/// A place taken: given back when dropped.
pub(crate) struct PullSlot<'a>(&'a PullSlots);

impl Drop for PullSlot<'_> {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, SeqCst);
        if self.0.waiting.load(SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// Counts a caller as waiting while it lives (also when its future is
/// dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl PullSlots {
    pub(crate) fn new(max: usize) -> Self {
        PullSlots {
            used: AtomicUsize::new(0),
            max: max.max(1),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// A place, if one is free now.
    pub(crate) fn try_take(&self) -> Option<PullSlot<'_>> {
        self.used
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| PullSlot(self))
    }

    /// A place, once one is free.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait takes no place.
    pub(crate) async fn take(&self) -> PullSlot<'_> {
        self.waiting.fetch_add(1, SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the count is read: a place given back
            // after this read wakes it.
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_gets_a_place_as_places_are_given_back() {
        let slots = std::sync::Arc::new(PullSlots::new(2));
        let held: Vec<_> = (0..2).map(|_| slots.try_take().unwrap()).collect();
        assert!(slots.try_take().is_none(), "both places taken");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (slots, tx) = (slots.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slots.take().await;
                    tx.send(()).unwrap();
                    // Keep the place until the test ends.
                    std::future::pending::<()>().await;
                })
            })
            .collect();
        // Both give back at once: two waiters, two wake-ups.
        drop(held);
        rx.recv().await.unwrap();
        rx.recv().await.unwrap();
        assert!(slots.try_take().is_none(), "the waiters hold both places");
        for w in waiters {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_dropped_wait_takes_no_place() {
        use std::future::Future;
        let slots = PullSlots::new(1);
        let held = slots.try_take().unwrap();
        let mut waiting = Box::pin(slots.take());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(slots.waiting.load(SeqCst), 1);
        drop(waiting);
        assert_eq!(
            slots.waiting.load(SeqCst),
            0,
            "no longer counted as waiting"
        );
        drop(held);
        assert!(slots.try_take().is_some(), "the place is free");
    }
}
