//! The random numbers behind retry jitter: a tiny xorshift generator, seeded
//! from the time, the process id and a counter (or a fixed seed for tests).
//! Jitter only spreads retries apart; it needs no cryptographic quality.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub(crate) struct Jitter {
    state: AtomicU64,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// SplitMix64's finaliser: spreads the bits of a weak seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Jitter {
    /// A generator seeded from `seed`, or from the time, pid and a counter.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
            nanos ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17)
        });
        // xorshift's state must never be zero.
        let state = mix(seed).max(1);
        Jitter {
            state: AtomicU64::new(state),
        }
    }

    /// The next number in `[0, 1)`.
    pub(crate) fn unit(&self) -> f64 {
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let previous = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or(1);
        let x = step(previous);
        // The top 53 bits as a fraction: exactly representable, below 1.
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_in_range_and_spread() {
        let j = Jitter::new(Some(42));
        let draws: Vec<f64> = (0..10_000).map(|_| j.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let low = draws.iter().filter(|u| **u < 0.5).count();
        assert!((4_000..6_000).contains(&low), "{low}");
    }

    #[test]
    fn a_fixed_seed_repeats() {
        let a = Jitter::new(Some(7));
        let b = Jitter::new(Some(7));
        for _ in 0..100 {
            assert_eq!(a.unit().to_bits(), b.unit().to_bits());
        }
    }
}
