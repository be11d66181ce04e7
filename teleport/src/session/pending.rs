//! The pulls this side sent, waiting for their replies, and their deadlines.
//!
//! Every pull the connection task takes gets an entry keyed by its
//! sequence number; the reply with that number takes it. Only the
//! connection task touches the map, so it needs no lock. When the session
//! ends, [`Pending::fail_all`] ends every waiting pull with one typed error:
//! the one place where "fail every waiting pull" is written.
//!
//! # Deadlines
//!
//! A pull's timeout is kept here too, not in a timer per pull: one timer
//! per session, armed at the earliest deadline, and a min-heap of
//! `(deadline, seq)`. A pull that gets its reply leaves the map at once
//! and its heap entry goes stale; stale entries are skipped when they reach
//! the top, and the heap is rebuilt from the map whenever they outnumber
//! the live ones, so it stays within a small multiple of the pulls in
//! flight. With one timeout for every pull (the common case) deadlines
//! arrive in order, a push onto the heap is one comparison, and the timer
//! is re-armed once per timeout period instead of registered and removed
//! once per pull (which cost about 750 instructions per call).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::by_seq::BySeq;
use crate::error::Error;

pub(crate) use super::reply_slot::Waiter;

/// The error a pull's waiter gets when its deadline passes. Only the
/// caller reads it, and it fills in its own URI and timeout (see
/// `Session::send_pull`), so the connection task keeps neither per pull.
pub(crate) fn timed_out() -> Error {
    Error::Timeout {
        uri: String::new(),
        timeout: Duration::ZERO,
    }
}

/// When a pull stops waiting for its reply.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// Its timeout, from when the connection task takes it: the caller
    /// reads no clock (the task reads one per round for all it takes).
    After(Duration),
    /// An instant the caller fixed (it read the clock anyway, to bound its
    /// wait for a free slot).
    At(tokio::time::Instant),
}

impl Deadline {
    /// The instant it names, an `After` counted from `now`; `None` (no
    /// deadline) for a timeout too long for the clock.
    pub(crate) fn at(self, now: Instant) -> Option<Instant> {
        match self {
            Deadline::After(timeout) => now.checked_add(timeout),
            Deadline::At(at) => Some(at),
        }
    }
}

struct Entry {
    waiter: Waiter,
    deadline: Option<Instant>,
}

/// Waiting pulls by sequence number (see [`BySeq`]).
#[derive(Default)]
pub(super) struct Pending {
    waiting: BySeq<Entry>,
    /// `(deadline, seq)` of the pulls that have one, earliest on top;
    /// entries whose seq has left `waiting` are stale.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The session's one timer, at the earliest deadline it knows of.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer was polled since it was last reset (it holds our waker).
    registered: bool,
}

impl Pending {
    /// Records a pull the connection task took: written at once, or kept
    /// in its backlog until the write buffer has room (its deadline runs
    /// from now either way).
    pub(super) fn insert(&mut self, seq: u64, waiter: Waiter, deadline: Option<Instant>) {
        self.waiting.insert(seq, Entry { waiter, deadline });
        if let Some(at) = deadline {
            self.deadlines.push(Reverse((at, seq)));
            if self.deadlines.len() > 2 * self.waiting.len() + 64 {
                self.compact();
            }
            if self
                .timer
                .as_ref()
                .is_none_or(|timer| at < timer.deadline())
            {
                self.arm(at);
            }
        }
    }

    /// Whether the pull with this seq still waits (its caller has not
    /// stopped waiting and its deadline has not passed).
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.waiting.contains(seq)
    }

    /// Takes the waiter of the pull a reply answers, if it still waits.
    pub(super) fn take(&mut self, seq: u64) -> Option<Waiter> {
        self.waiting.remove(seq).map(|entry| entry.waiter)
    }

    /// Forgets a pull whose caller stopped waiting.
    pub(super) fn cancel(&mut self, seq: u64) {
        self.waiting.remove(seq);
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
    /// (The connection ends the pulls of its backlog, never written, with
    /// [`Error::NotSent`] before it calls this.)
    pub(super) fn fail_all(&mut self, reason: &str) {
        for entry in self.waiting.drain() {
            let _ = entry.waiter.send(Err(Error::closed(reason)));
        }
        self.deadlines.clear();
        self.timer = None;
    }

    /// Ends the pulls whose deadline has passed with a timeout, once the
    /// session's timer fires. Cheap to call every round: it reads the
    /// timer's state and polls it only to register the waker after a reset.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) {
        let Some(timer) = self.timer.as_mut() else {
            return;
        };
        if !timer.is_elapsed() {
            if !self.registered {
                self.registered = true;
                if timer.as_mut().poll(cx).is_pending() {
                    return;
                }
            } else {
                return;
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((at, seq))) = self.deadlines.peek() {
            let live = self
                .waiting
                .get(seq)
                .is_some_and(|entry| entry.deadline == Some(at));
            if live && at > now {
                self.arm(at);
                // Registers the waker for the new deadline at once.
                self.poll_expired(cx);
                return;
            }
            self.deadlines.pop();
            if live {
                if let Some(entry) = self.waiting.remove(seq) {
                    let _ = entry.waiter.send(Err(timed_out()));
                }
            }
        }
        self.timer = None;
    }

    /// Points the session's timer at `at`.
    fn arm(&mut self, at: Instant) {
        self.registered = false;
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Rebuilds the heap from the pulls still waiting, dropping the stale
    /// entries of pulls that got their replies.
    fn compact(&mut self) {
        let waiting = &self.waiting;
        self.deadlines.retain(|Reverse((at, seq))| {
            waiting
                .get(*seq)
                .is_some_and(|entry| entry.deadline == Some(*at))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fail_all_ends_every_waiting_pull_with_the_reason() {
        let mut pending = Pending::default();
        let (a, ra) = super::super::reply_slot::channel();
        let (b, rb) = super::super::reply_slot::channel();
        pending.insert(1, a, None);
        pending.insert(2, b, None);
        assert!(pending.take(1).is_some());
        pending.fail_all("gone");
        assert!(pending.take(2).is_none());
        assert!(ra.await.is_err(), "taken waiter was dropped unanswered");
        let err = rb.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "connection closed: gone");
    }

    /// Polls `pending`'s timer the way the connection task does, until the
    /// runtime's paused clock has run to `until`.
    async fn run_until(pending: &mut Pending, until: Instant) {
        loop {
            std::future::poll_fn(|cx| {
                pending.poll_expired(cx);
                std::task::Poll::Ready(())
            })
            .await;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until.min(Instant::now() + Duration::from_millis(1))).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pulls_time_out_at_their_own_deadlines_whatever_their_order() {
        let mut pending = Pending::default();
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut receivers = Vec::new();
        // Out of order, one without a deadline, one answered in time.
        for (seq, after) in [
            (1, Some(30)),
            (2, Some(10)),
            (3, None),
            (4, Some(20)),
            (5, Some(15)),
        ] {
            let (tx, rx) = super::super::reply_slot::channel();
            pending.insert(seq, tx, after.map(|a| start + ms(a)));
            receivers.push((seq, rx));
        }
        assert!(pending.take(5).is_some(), "seq 5 got its reply");

        run_until(&mut pending, start + ms(12)).await;
        assert!(!pending.contains(2), "10 ms deadline passed at 12 ms");
        assert!(pending.contains(1) && pending.contains(4) && pending.contains(3));

        run_until(&mut pending, start + ms(25)).await;
        assert!(!pending.contains(4));
        assert!(pending.contains(1));

        run_until(&mut pending, start + ms(40)).await;
        assert!(!pending.contains(1));
        assert!(
            pending.contains(3),
            "no deadline: waits until the session ends"
        );

        for (seq, rx) in receivers {
            let got = futures_util::FutureExt::now_or_never(rx);
            match seq {
                1 | 2 | 4 => assert!(matches!(got, Some(Ok(Err(Error::Timeout { .. }))))),
                3 => assert!(got.is_none(), "still waiting"),
                _ => assert!(matches!(got, Some(Err(_))), "answered elsewhere"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_heap_stays_small_while_replies_arrive() {
        let mut pending = Pending::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        for seq in 0..100_000 {
            let (tx, _rx) = super::super::reply_slot::channel();
            pending.insert(seq, tx, Some(deadline));
            pending.take(seq);
        }
        assert!(
            pending.deadlines.len() <= 64 + 2,
            "{}",
            pending.deadlines.len()
        );
    }
}
