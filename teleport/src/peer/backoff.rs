//! How long to wait before trying again: exponential backoff with jitter,
//! for reconnecting ([`Redial`](super::Redial)) and for an accept loop
//! whose `accept` failed.
//!
//! The unjittered wait before retry `n` doubles from `initial` up to `max`
//! ([`ceiling`]). The wait actually taken is drawn at random between half
//! of it and all of it ("equal jitter"), so it grows the same way and never
//! exceeds `max`, but clients that lost a server together (a restart, a
//! network cut) spread their redials instead of arriving in lockstep.
//!
//! ```text
//!  retry        1      2      3      4     …    n
//!  ceiling      i      2i     4i     8i    …    min(i·2ⁿ⁻¹, max)
//!  wait in    [i/2,i] [i,2i] [2i,4i] [4i,8i] …  [ceiling/2, ceiling]
//! ```
//!
//! The sequence comes from `backon`'s exponential builder (jitter on).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The waits of one run of retries; [`Backoff::reset`] starts over after
/// a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    waits: <ExponentialBuilder as BackoffBuilder>::Backoff,
    max: Duration,
}

impl Backoff {
    /// Waits doubling from `initial` up to `max`, with jitter.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        // backon's jitter adds up to the whole current delay to it; halving
        // its bounds makes each wait lie between half of the ceiling and
        // the ceiling.
        let builder = ExponentialBuilder::new()
            .with_min_delay(initial / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff {
            waits: builder.build(),
            builder,
            max,
        }
    }

    /// The wait before the next retry.
    pub(crate) fn next_wait(&mut self) -> Duration {
        self.waits.next().unwrap_or(self.max).min(self.max)
    }

    /// Starts over from the first wait (after a success).
    pub(crate) fn reset(&mut self) {
        self.waits = self.builder.build();
    }
}

/// The unjittered wait before retry number `attempt` (1-based): `initial`
/// doubled for each retry before it, capped at `max`.
pub(crate) fn ceiling(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// backon computes in `f32`: allow for its rounding.
    const ROUNDING: Duration = Duration::from_micros(1);

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let (i, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let waits: Vec<_> = (1..=6).map(|a| ceiling(i, max, a).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(ceiling(i, max, u32::MAX), max);
    }

    #[test]
    fn each_wait_lies_between_half_its_ceiling_and_its_ceiling() {
        let (i, max) = (Duration::from_millis(50), Duration::from_secs(5));
        for _run in 0..20 {
            let mut backoff = Backoff::new(i, max);
            for attempt in 1..=12 {
                let wait = backoff.next_wait();
                let top = ceiling(i, max, attempt);
                assert!(wait <= top, "retry {attempt}: {wait:?} > {top:?}");
                assert!(
                    wait + ROUNDING >= top / 2,
                    "retry {attempt}: {wait:?} < half of {top:?}"
                );
            }
        }
    }

    #[test]
    fn waits_are_jittered() {
        let waits: Vec<_> = (0..32)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).next_wait())
            .collect();
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "32 first waits all equal: {waits:?}"
        );
    }

    #[test]
    fn reset_starts_over_from_the_first_wait() {
        let (i, max) = (Duration::from_millis(10), Duration::from_secs(1));
        let mut backoff = Backoff::new(i, max);
        for _ in 0..10 {
            backoff.next_wait();
        }
        assert!(backoff.next_wait() >= max / 2 - ROUNDING);
        backoff.reset();
        assert!(backoff.next_wait() <= i);
    }
}
