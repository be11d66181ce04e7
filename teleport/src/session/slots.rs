//! The session's bounded places: for pulls waiting for their replies
//! (`PeerConfig::max_pulls_in_flight`) and for pushes waiting for room in
//! the write buffer (`PeerConfig::send_queue`).
//!
//! A count in one atomic: taking a place and giving it back are one atomic
//! operation each on the common path (a `tokio::sync::Semaphore` took its
//! waiters' lock on every release, about 100 instructions per call).
//! Callers past the limit wait on a `Notify`; a place given back wakes one
//! of them whenever any waits.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

pub(crate) struct Slots {
    used: AtomicUsize,
    max: usize,
    /// Callers waiting for a place.
    waiting: AtomicUsize,
    freed: Notify,
}

/// A place taken: given back when dropped.
pub(crate) struct Slot<'a>(&'a Slots);

impl Slot<'_> {
    /// Keeps the place taken after this guard is gone, for a call whose
    /// place travels with it (a queued push): [`Slots::give_back`] returns
    /// it.
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.give_back();
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

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Slots {
            used: AtomicUsize::new(0),
            max: max.max(1),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// A place, if one is free now.
    pub(crate) fn try_take(&self) -> Option<Slot<'_>> {
        self.used
            .fetch_update(SeqCst, SeqCst, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self))
    }

    /// A place, once one is free.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait takes no place.
    pub(crate) async fn take(&self) -> Slot<'_> {
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

    /// Gives back a place taken and kept ([`Slot::keep`]); a waiter, if
    /// any, is woken.
    pub(crate) fn give_back(&self) {
        self.used.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            self.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: a waiter left asleep fails the test at the (virtual)
    // timeout instead of hanging it.
    #[tokio::test(start_paused = true)]
    async fn every_waiter_gets_a_place_as_places_are_given_back() {
        let slots = std::sync::Arc::new(Slots::new(2));
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
        // Both waiters asleep (the spawned tasks run when this one yields).
        while slots.waiting.load(SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // Both give back at once: two waiters, two wake-ups.
        drop(held);
        for _ in 0..2 {
            tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("every waiter woke")
                .unwrap();
        }
        assert!(slots.try_take().is_none(), "the waiters hold both places");
        for w in waiters {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_dropped_wait_takes_no_place() {
        use std::future::Future;
        let slots = Slots::new(1);
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

    #[test]
    fn a_kept_place_stays_taken_until_given_back() {
        let slots = Slots::new(1);
        slots.try_take().unwrap().keep();
        assert!(slots.try_take().is_none(), "kept past its guard");
        slots.give_back();
        assert!(slots.try_take().is_some());
    }
}
