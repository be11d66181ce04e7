//! Where a pull's outcome goes: a one-shot slot between the connection
//! task and the caller, reused across calls.
//!
//! The connection task holds the [`Waiter`] (in `pending`) and puts the
//! reply frame, or why there is none, into the slot; the caller awaits the
//! [`Outcome`]. It does what `tokio::sync::oneshot` did here, with two
//! differences that matter per call: the slot is a mutex (one uncontended
//! lock per side) rather than a state machine of atomics, and its
//! allocation is reused: the caller's end puts a slot that nobody else
//! holds back on a short per-thread list, and the next pull on that thread
//! takes it. tokio's oneshot cost about 840 instructions and an allocation
//! per call here. The mutex is `parking_lot`'s: std's checks whether the
//! thread is panicking at every lock and unlock, for poisoning, which a
//! slot that never panics while locked does not need (about 10
//! instructions a lock).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use bytestring::ByteString;
use parking_lot::Mutex;

use crate::error::Error;
use crate::frame::{Frame, Header, HeaderCodec, Kind};
use crate::status::Status;

/// What a pull ends with: its reply, or why it has none.
pub(crate) type Result_ = Result<Replied, Error>;

/// A reply as the caller gets it: the parts of the reply frame a caller
/// reads. Its kind is always [`Kind::Reply`] and a reply carries no
/// timeout, so neither is kept: at 120 bytes (a [`Frame`] is 136) it is
/// moved between the connection task, the slot and the caller's future
/// with a few register copies instead of a `memcpy` call each time (the
/// calls cost about 170 instructions per call over the seven moves, the
/// copies about 70).
#[derive(Debug)]
pub(crate) struct Replied {
    pub(crate) header_codec: HeaderCodec,
    pub(crate) seq: u64,
    pub(crate) uri: ByteString,
    pub(crate) gzip: i32,
    pub(crate) status_code: i32,
    pub(crate) status: ByteString,
    pub(crate) body: Bytes,
}

// Past 128 bytes a move is a `memcpy` call again (see above).
const _: () = assert!(std::mem::size_of::<Result_>() <= 128);

impl Replied {
    /// The reply part of a frame the connection task read.
    pub(crate) fn of(frame: Frame) -> Replied {
        let Frame {
            header_codec,
            header,
            body,
        } = frame;
        Replied {
            header_codec,
            seq: header.seq,
            uri: header.uri,
            gzip: header.gzip,
            status_code: header.status_code,
            status: header.status,
            body,
        }
    }

    /// The reply's status.
    pub(crate) fn status(&self) -> Status {
        Status::new(self.status_code, String::from(self.status.clone()))
    }

    /// The reply frame again, as [`Session::pull_raw`] returns it.
    ///
    /// [`Session::pull_raw`]: crate::Session::pull_raw
    pub(crate) fn into_frame(self) -> Frame {
        Frame {
            header_codec: self.header_codec,
            header: Header {
                seq: self.seq,
                kind: Kind::Reply,
                uri: self.uri,
                gzip: self.gzip,
                status_code: self.status_code,
                status: self.status,
                timeout_ms: 0,
            },
            body: self.body,
        }
    }
}

/// Slots kept per thread for reuse.
const KEEP: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Arc<Slot>>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Slot {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outcome: Option<Result_>,
    /// The caller's task, once it has polled without finding an outcome.
    waker: Option<Waker>,
    /// The connection task dropped its end without sending.
    dropped: bool,
}

/// A new slot's two ends (a spare slot of this thread's, if it has one).
pub(crate) fn channel() -> (Waiter, Outcome) {
    let slot = SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    (
        Waiter {
            slot: Arc::clone(&slot),
            sent: false,
        },
        Outcome { slot: Some(slot) },
    )
}

/// The connection task's end: [`Waiter::send`] the outcome once.
pub(crate) struct Waiter {
    slot: Arc<Slot>,
    sent: bool,
}

impl Waiter {
    /// Delivers the pull's outcome and wakes the caller; `false` (the
    /// outcome dropped) when the caller has stopped waiting.
    pub(crate) fn send(mut self, outcome: Result_) -> bool {
        if self.is_closed() {
            return false;
        }
        self.sent = true;
        let waker = {
            let mut state = self.slot.state.lock();
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Whether the caller has stopped waiting (dropped its [`Outcome`]).
    pub(crate) fn is_closed(&self) -> bool {
        Arc::strong_count(&self.slot) == 1
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        let waker = {
            let mut state = self.slot.state.lock();
            state.dropped = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The caller's end: resolves to the outcome, or to `Err(Dropped)` when
/// the connection task dropped the [`Waiter`] without sending (it ended).
pub(crate) struct Outcome {
    /// `None` once it has resolved and given its slot back.
    slot: Option<Arc<Slot>>,
}

/// The connection task dropped its end without sending an outcome.
#[derive(Debug)]
pub(crate) struct Dropped;

impl Future for Outcome {
    type Output = Result<Result_, Dropped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = self.slot.as_ref() else {
            return Poll::Ready(Err(Dropped));
        };
        let mut state = slot.state.lock();
        if let Some(outcome) = state.outcome.take() {
            drop(state);
            self.recycle();
            return Poll::Ready(Ok(outcome));
        }
        if state.dropped {
            return Poll::Ready(Err(Dropped));
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Outcome {
    /// Puts the slot on this thread's spare list if no one else holds it
    /// (the connection task has dropped its end).
    fn recycle(&mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        let Some(state) = Arc::get_mut(&mut slot) else {
            return;
        };
        *state.state.get_mut() = State::default();
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < KEEP {
                spare.push(slot);
            }
        });
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.recycle();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn the_outcome_arrives_once_sent_and_a_dropped_waiter_is_seen() {
        let (tx, rx) = channel();
        let waiting = tokio::spawn(rx);
        tokio::task::yield_now().await;
        assert!(tx.send(Err(Error::closed("gone"))));
        let got = waiting.await.unwrap().unwrap().unwrap_err();
        assert_eq!(got.to_string(), "connection closed: gone");

        let (tx, rx) = channel();
        drop(tx);
        assert!(rx.await.is_err(), "dropped without sending");

        let (tx, rx) = channel();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(Err(Error::closed("late"))));
    }

    #[test]
    fn a_finished_slot_is_reused_on_the_same_thread_and_starts_empty() {
        let (tx, mut rx) = channel();
        let first = Arc::as_ptr(rx.slot.as_ref().unwrap());
        assert!(tx.send(Err(Error::closed("x"))));
        assert!(matches!((&mut rx).now_or_never(), Some(Ok(Err(_)))));
        drop(rx);
        let (tx, rx) = channel();
        assert_eq!(Arc::as_ptr(rx.slot.as_ref().unwrap()), first, "reused");
        assert!(rx.now_or_never().is_none(), "no outcome left over");
        drop(tx);
    }
}
