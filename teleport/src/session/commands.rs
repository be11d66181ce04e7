//! The command queue: calls handed from callers to the connection task.
//!
//! Callers (on any task) queue [`Command`]s; the connection task takes
//! all of them at once, each round. A vector behind a mutex, swapped whole
//! with the connection task's empty one, costs a lock per call and one per
//! round, where tokio's unbounded channel cost about 590 instructions per
//! call (a linked block list, and a waker registration per receive). The
//! queue needs no bound of its own: pulls are bounded by
//! `max_pulls_in_flight` and pushes by `send_queue`, whose slots their
//! callers hold.
//!
//! The mutex is `parking_lot`'s, which does not check for poisoning at
//! every lock and unlock as std's does (nothing panics while holding it).
//!
//! Only the caller that finds the queue empty wakes the connection task:
//! any other finds a wake-up already on its way, since the task empties
//! the queue only after registering its waker.

use std::task::Context;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use super::Command;

pub(crate) struct Commands {
    inner: Mutex<Inner>,
    waker: AtomicWaker,
}

struct Inner {
    queue: Vec<Command>,
    /// The connection task takes no more: [`Commands::send`] gives the
    /// command back.
    closed: bool,
}

impl Commands {
    pub(crate) fn new() -> Self {
        Commands {
            inner: Mutex::new(Inner {
                queue: Vec::new(),
                closed: false,
            }),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `cmd` for the connection task.
    ///
    /// # Errors
    ///
    /// Gives `cmd` back when the connection task takes no more (the
    /// session has ended): it was not sent.
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Command> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(cmd);
        }
        let was_empty = inner.queue.is_empty();
        inner.queue.push(cmd);
        drop(inner);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    /// Moves every queued command into `into`, which must be empty (its
    /// capacity becomes the queue's, so neither side allocates once both
    /// have grown); `false` if there were none. The task of `cx` is woken
    /// when the next command arrives.
    pub(crate) fn take(&self, cx: &Context<'_>, into: &mut Vec<Command>) -> bool {
        debug_assert!(into.is_empty());
        self.waker.register(cx.waker());
        let mut inner = self.inner.lock();
        if inner.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut inner.queue, into);
        true
    }

    /// Takes no more commands, and returns those still queued.
    pub(crate) fn close(&self) -> Vec<Command> {
        let mut inner = self.inner.lock();
        inner.closed = true;
        std::mem::take(&mut inner.queue)
    }
}
