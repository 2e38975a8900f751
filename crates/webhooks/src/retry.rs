//! When to try a failed delivery again: the retry schedule with jitter, and `Retry-After`.
//!
//! The default schedule is Svix's: the first attempt at once, then retries after 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h and 10 h — eight attempts in all — each delay varied by ±20 % so
//! that many failures at once do not retry in lockstep. A `Retry-After` from a 429 or 503
//! response is honoured: the next attempt waits at least that long, up to a bound.
//!
//! ```
//! use std::time::Duration;
//! use switchyard_webhooks::retry::RetryPolicy;
//!
//! let policy = RetryPolicy::default();
//! assert_eq!(policy.max_attempts(), 8);
//! // After the first failed attempt, the next comes 5 s later, ±20 %.
//! let delay = policy.next_delay(1, None).unwrap();
//! assert!(delay >= Duration::from_secs(4) && delay <= Duration::from_secs(6));
//! // After the eighth, the delivery is exhausted.
//! assert_eq!(policy.next_delay(8, None), None);
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The default delays between attempts (seven retries after the first attempt).
pub const DEFAULT_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
];

/// The default jitter: each delay varies by up to ±20 %.
pub const DEFAULT_JITTER: f64 = 0.2;

/// The longest `Retry-After` honoured by default (10 hours); longer values are cut to it.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 60 * 60);

/// How failed deliveries are retried. Every field has a documented default.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The delay before each retry; its length plus one is the number of attempts
    /// (default [`DEFAULT_SCHEDULE`]: eight attempts).
    pub schedule: Vec<Duration>,
    /// The relative jitter applied to each delay, clamped to `0.0..=1.0`
    /// (default [`DEFAULT_JITTER`], ±20 %).
    pub jitter: f64,
    /// The longest `Retry-After` honoured (default [`DEFAULT_MAX_RETRY_AFTER`]).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            jitter: DEFAULT_JITTER,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The total number of attempts a delivery gets.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.schedule.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The wait after `attempts_made` failed attempts, or `None` when the delivery is
    /// exhausted. `retry_after` is what the receiver asked for (429/503), if anything.
    /// Jitter is drawn from the OS RNG.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        self.next_delay_with(attempts_made, retry_after, unit_draw())
    }

    /// [`RetryPolicy::next_delay`] with the random draw given (`unit` in `0.0..1.0`; 0.5 means
    /// no jitter), for deterministic callers and tests.
    pub fn next_delay_with(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        let base = *self.schedule.get(index)?;
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let scheduled = base.mul_f64(factor.max(0.0));
        Some(match retry_after {
            Some(asked) => scheduled.max(asked.min(self.max_retry_after)),
            None => scheduled,
        })
    }
}

/// A uniform draw in `0.0..1.0` from the OS RNG; 0.5 (no jitter) if it is unavailable.
pub(crate) fn unit_draw() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

/// Parses a `Retry-After` header value: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past means "now";
/// anything else unparseable is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (when.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_without_jitter() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=8)
            .map(|n| policy.next_delay_with(n, None, 0.5))
            .collect();
        let expected: Vec<_> = DEFAULT_SCHEDULE
            .iter()
            .copied()
            .map(Some)
            .chain([None])
            .collect();
        assert_eq!(delays, expected);
        assert_eq!(policy.next_delay_with(0, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.next_delay_with(2, None, 0.0),
            Some(Duration::from_secs(240))
        );
        assert_eq!(
            policy.next_delay_with(2, None, 1.0),
            Some(Duration::from_secs(360))
        );
        for _ in 0..1000 {
            let d = policy.next_delay(3, None).unwrap();
            assert!(
                d >= Duration::from_secs(1440) && d <= Duration::from_secs(2160),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::default();
        // Longer than the schedule: wait as asked.
        assert_eq!(
            policy.next_delay_with(1, Some(Duration::from_secs(90)), 0.5),
            Some(Duration::from_secs(90))
        );
        // Shorter than the schedule: the schedule already waits long enough.
        assert_eq!(
            policy.next_delay_with(2, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(300))
        );
        // Absurdly long: cut to the bound.
        assert_eq!(
            policy.next_delay_with(1, Some(Duration::from_secs(10_000_000)), 0.5),
            Some(DEFAULT_MAX_RETRY_AFTER)
        );
        // Exhausted stays exhausted whatever the receiver asks.
        assert_eq!(
            policy.next_delay_with(8, Some(Duration::from_secs(1)), 0.5),
            None
        );
    }

    #[test]
    fn retry_after_values() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-5", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
