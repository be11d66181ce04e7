//! Spare byte buffers, kept per thread for the next call.
//!
//! Every pull encodes its frame into a `Vec<u8>` on the caller's task, and
//! every reply its body on the handler's; the connection task copies them
//! into its write buffer and drops them. Instead of a `malloc` and a `free`
//! per call (about 150 instructions for the two on this path), a dropped
//! buffer goes back to a small per-thread list, and the next call on that
//! thread takes it. Only small buffers are kept (a large payload's buffer
//! is freed as before), and at most [`KEEP`] per thread, so the list holds
//! at most `KEEP * MAX_CAPACITY` bytes per worker thread.
//!
//! A buffer is not always given back on the thread that took it: a pull's
//! is taken on the caller's thread and given back on the connection
//! task's, often the other worker. One thread's list then runs dry while
//! the other's fills up, and half the pulls paid a `malloc` and a `free`
//! after all (about 180 instructions per call). So the lists balance
//! through one shared list, in batches, as a memory allocator's thread
//! caches do: a full list moves [`BATCH`] buffers to the shared one, an
//! empty list takes up to [`BATCH`] from it, one lock per [`BATCH`]
//! buffers. The shared list keeps at most [`SHARED_KEEP`].

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

/// Buffers kept per thread: enough for a worker thread that runs a few
/// hundred calls at once (at 64, a thread running 64 pulls and their
/// replies ran out and allocated 0.4 times per call). Small calls' buffers
/// are 256 bytes: 64 KiB a thread; at most 1 MiB with 4 KiB frames.
const KEEP: usize = 256;
/// Buffers larger than this are freed, not kept.
const MAX_CAPACITY: usize = 4096;
/// The room for its body a typed pull reserves with its header, before it
/// encodes the body (which grows the buffer if it needs more).
pub(crate) const BODY_HINT: usize = 64;
/// The capacity of a new buffer: room for a small call's whole frame
/// (a pull reserves its header at its longest, about 80 bytes plus the
/// URI, and [`BODY_HINT`] bytes of body before it encodes), so that a
/// buffer taken for one is not grown on its first use. At 128, 4 pulls in
/// 10 grew theirs (a `realloc` of about 500 instructions) because the
/// buffers new to a thread are those its reply bodies drew, never grown.
const FIRST_CAPACITY: usize = 256;

/// Buffers moved between a thread's list and the shared one at a time.
const BATCH: usize = KEEP / 2;
/// Buffers the shared list keeps; a full thread list frees its batch when
/// the shared one is full too. At 256-byte buffers, 256 KiB.
const SHARED_KEEP: usize = 4 * KEEP;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Where threads' lists leave their surplus and refill when empty.
static SHARED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer: a spare one of this thread's (refilled from the
/// shared list when it is empty), or a new one.
pub(crate) fn take() -> Vec<u8> {
    SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.is_empty() {
                let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
                let from = shared.len().saturating_sub(BATCH);
                spare.extend(shared.drain(from..));
            }
            spare.pop()
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY))
}

/// Keeps `buf` for a later [`take`], if it is small: on this thread's
/// list, which moves a batch to the shared list when it is full (freed if
/// that is full too). A large buffer is freed.
pub(crate) fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_CAPACITY {
        return;
    }
    buf.clear();
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() >= KEEP {
            let batch = spare.drain(KEEP - BATCH..);
            let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
            if shared.len() < SHARED_KEEP {
                shared.extend(batch);
            }
        }
        spare.push(buf);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests that touch the shared list run one at a time, from an empty
    /// shared list and an empty list on their thread.
    fn isolated() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        SHARED.lock().unwrap().clear();
        SPARE.with(|spare| spare.borrow_mut().clear());
        guard
    }

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_and_large_ones_are_freed() {
        let _serial = isolated();
        let mut buf = take();
        buf.extend_from_slice(b"frame");
        let ptr = buf.as_ptr();
        give(buf);
        let again = take();
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
        assert!(again.is_empty());

        give(Vec::with_capacity(MAX_CAPACITY + 1));
        let fresh = take();
        assert_eq!(fresh.capacity(), FIRST_CAPACITY, "the large one was freed");
    }

    /// What a small pull reserves (a 32-byte URI, no status) fits a new
    /// buffer, so that taking one for it never grows it.
    #[test]
    fn a_new_buffer_holds_what_a_small_pull_reserves() {
        let header = crate::frame::HeaderRef {
            seq: u64::MAX,
            kind: crate::frame::Kind::Pull,
            uri: "/a/service/method?with=a&query=1",
            gzip: 0,
            status_code: 0,
            status: "",
            timeout_ms: u64::MAX,
        };
        let reserved = 4 + 1 + header.max_encoded_len() + 4 + BODY_HINT;
        assert!(reserved <= FIRST_CAPACITY, "{reserved} > {FIRST_CAPACITY}");
    }

    #[test]
    fn at_most_keep_buffers_stay_per_thread() {
        let _serial = isolated();
        for _ in 0..KEEP * 2 {
            give(Vec::with_capacity(64));
        }
        let kept = SPARE.with(|spare| spare.borrow().len());
        // The list filled to KEEP, then spilled a batch each time it was
        // full: the rest went to the shared list.
        assert_eq!(kept, KEEP);
        assert_eq!(SHARED.lock().unwrap().len(), KEEP);
        // Past SHARED_KEEP, spilled batches are freed.
        for _ in 0..SHARED_KEEP * 2 {
            give(Vec::with_capacity(64));
        }
        assert_eq!(SHARED.lock().unwrap().len(), SHARED_KEEP);
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), KEEP);
    }

    /// Buffers given back on another thread than the one that took them
    /// (a pull's: taken by its caller, given back by the connection task)
    /// reach the taking thread through the shared list instead of being
    /// freed there and allocated here.
    #[test]
    fn buffers_given_on_one_thread_are_taken_on_another() {
        let _serial = isolated();
        let taker = std::thread::spawn(|| {
            let bufs: Vec<Vec<u8>> = (0..KEEP * 2).map(|_| take()).collect();
            let ptrs: std::collections::HashSet<usize> =
                bufs.iter().map(|b| b.as_ptr() as usize).collect();
            (bufs, ptrs)
        });
        let (bufs, ptrs) = taker.join().unwrap();
        // Given back on this thread (the "connection task's").
        std::thread::spawn(move || bufs.into_iter().for_each(give))
            .join()
            .unwrap();
        // A new thread (the "caller's", its list empty) takes them again.
        let reused = std::thread::spawn(move || {
            (0..BATCH)
                .map(|_| take())
                .filter(|b| ptrs.contains(&(b.as_ptr() as usize)))
                .count()
        })
        .join()
        .unwrap();
        assert_eq!(reused, BATCH, "a whole batch came from the shared list");
    }
}
