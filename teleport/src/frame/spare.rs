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

use std::cell::RefCell;

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

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: a spare one of this thread's, or a new one.
pub(crate) fn take() -> Vec<u8> {
    SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY))
}

/// Keeps `buf` for a later [`take`] on this thread, if it is small and the
/// thread keeps fewer than [`KEEP`]; else frees it.
pub(crate) fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_CAPACITY {
        return;
    }
    buf.clear();
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEEP {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_and_large_ones_are_freed() {
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
        for _ in 0..KEEP * 2 {
            give(Vec::with_capacity(64));
        }
        let kept = SPARE.with(|spare| spare.borrow().len());
        assert_eq!(kept, KEEP);
    }
}
