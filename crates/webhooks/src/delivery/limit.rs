//! The per-endpoint rate limit: evenly spaced send slots (a GCRA without burst), so an
//! endpoint limited to `n` messages per second never sees more than `n` in any second from
//! one engine; with `e` engines sharing the store, each spaces its slots `e` times as far
//! apart, so together they send about `n` a second.

use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How far ahead a worker may book a slot and wait for it; beyond this the delivery goes
/// back to the store instead of holding a worker.
pub(crate) const HORIZON: Duration = Duration::from_secs(1);

/// The next free send slot of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct RateGate {
    next_slot: Mutex<Option<Instant>>,
}

impl RateGate {
    /// Books the next slot for a limit of `per_second` shared by `engines` engines:
    /// `Ok(wait)` when it is at most [`HORIZON`] away (the caller sends after `wait`),
    /// `Err(wait)` without booking when it is further.
    pub(crate) fn reserve(
        &self,
        per_second: NonZeroU32,
        engines: u32,
        now: Instant,
    ) -> Result<Duration, Duration> {
        let interval = Duration::from_secs(1) * engines.max(1) / per_second.get();
        let mut next = self
            .next_slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = next.map_or(now, |next| next.max(now));
        let wait = slot - now;
        if wait > HORIZON {
            return Err(wait);
        }
        *next = Some(slot + interval);
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn slots_are_evenly_spaced_and_bounded() {
        let gate = RateGate::default();
        let rate = NonZeroU32::new(10).unwrap();
        let t0 = Instant::now();
        let waits: Vec<_> = (0..11)
            .map(|_| gate.reserve(rate, 1, t0).unwrap())
            .collect();
        for (i, wait) in waits.iter().enumerate() {
            assert_eq!(*wait, Duration::from_millis(100) * i as u32);
        }
        // The 12th would be 1.1 s away: refused, not booked.
        assert_eq!(gate.reserve(rate, 1, t0), Err(Duration::from_millis(1100)));
        assert_eq!(gate.reserve(rate, 1, t0), Err(Duration::from_millis(1100)));
        // Time passes: slots free up again; an idle gate does not bank a burst.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(gate.reserve(rate, 1, later), Ok(Duration::ZERO));
        assert_eq!(gate.reserve(rate, 1, later), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn engines_sharing_a_limit_space_their_slots_further_apart() {
        let gate = RateGate::default();
        let rate = NonZeroU32::new(10).unwrap();
        let t0 = Instant::now();
        // Four engines share 10 a second: each sends one every 400 ms, three within 1 s.
        let waits: Vec<_> = (0..3).map(|_| gate.reserve(rate, 4, t0).unwrap()).collect();
        assert_eq!(waits, [0, 400, 800].map(Duration::from_millis).to_vec());
        assert_eq!(gate.reserve(rate, 4, t0), Err(Duration::from_millis(1200)));
    }
}
