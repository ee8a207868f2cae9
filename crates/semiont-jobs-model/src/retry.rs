//! The retry policy: whether a failed attempt is retried, and after how long.

use std::time::Duration;

/// Exponential back-off with jitter, capped.
///
/// The delay before retry number `n` (0-based: the first retry is `n = 0`) is
/// `min(cap, base · 2ⁿ)` shrunk by a random fraction of at most `jitter`, so
/// it lies in `[d · (1 − jitter), d]`. Jitter spreads retries of jobs that
/// failed together (a server that went down) so they do not return together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry, before jitter.
    pub base_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Fraction of the delay that jitter may remove, in 0..=1.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// Whether a job that has been retried `retry_count` times may be retried
    /// again under a budget of `max_retries`.
    pub const fn should_retry(retry_count: u32, max_retries: u32) -> bool {
        retry_count < max_retries
    }

    /// The delay before retry number `retry_count`, without jitter.
    pub fn nominal_delay(&self, retry_count: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry_count.min(31));
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The delay before retry number `retry_count`, with jitter drawn from
    /// `unit`, a random number in `[0, 1)` supplied by the caller (so this
    /// stays a pure function).
    pub fn delay(&self, retry_count: u32, unit: f64) -> Duration {
        let d = self.nominal_delay(retry_count);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        d.mul_f64(1.0 - jitter * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_budget() {
        assert!(RetryPolicy::should_retry(0, 3));
        assert!(RetryPolicy::should_retry(2, 3));
        assert!(!RetryPolicy::should_retry(3, 3));
        assert!(!RetryPolicy::should_retry(0, 0));
    }

    #[test]
    fn doubles_then_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.nominal_delay(0), Duration::from_secs(1));
        assert_eq!(p.nominal_delay(1), Duration::from_secs(2));
        assert_eq!(p.nominal_delay(3), Duration::from_secs(8));
        assert_eq!(p.nominal_delay(20), Duration::from_secs(900));
        assert_eq!(p.nominal_delay(u32::MAX), Duration::from_secs(900));
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn delay_within_bounds(
            n in 0u32..64,
            unit in 0.0f64..1.0,
            base_ms in 1u64..10_000,
            cap_ms in 1u64..10_000_000,
            jitter in 0.0f64..=1.0,
        ) {
            let p = RetryPolicy {
                base_delay: Duration::from_millis(base_ms),
                max_delay: Duration::from_millis(cap_ms),
                jitter,
            };
            let d = p.delay(n, unit);
            let nominal = p.nominal_delay(n);
            prop_assert!(d <= nominal);
            prop_assert!(nominal <= p.max_delay);
            prop_assert!(d >= nominal.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
            prop_assert!(p.nominal_delay(n + 1) >= nominal);
        }
    }
}
