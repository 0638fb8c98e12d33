//! Exponential backoff with full jitter, as a pure function of the attempt count and a random
//! sample supplied by the caller (no clock, no randomness here).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The largest delay after `attempts` consecutive failures: `initial`, doubling, capped.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1 << doublings)
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// Full jitter: a delay uniformly spread over `[0, ceiling]`, from `sample` in `[0, 1]`.
    pub fn delay(&self, attempts: u32, sample: f64) -> Duration {
        self.ceiling(attempts).mul_f64(sample.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_one_second_to_five_minutes() {
        let policy = BackoffPolicy::default();
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (9, 256),
            (10, 300),
            (40, 300),
            (u32::MAX, 300),
        ];
        for (attempts, seconds) in cases {
            assert_eq!(
                policy.ceiling(attempts),
                Duration::from_secs(seconds),
                "{attempts}"
            );
        }
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        let policy = BackoffPolicy::default();
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(policy.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(3, 7.0), Duration::from_secs(4));
    }
}
