//! Retry delays. The `backoff` crate computes them (jitter off, so a stored policy gives the
//! same schedule after a restart); kept behind this module so it can be swapped for a
//! maintained equivalent (`backon`) without touching callers. See docs/storage.md.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub multiplier: f64,
    pub max_backoff_ms: u64,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub const NONE: RetryPolicy =
        RetryPolicy { max_attempts: 1, initial_backoff_ms: 1, multiplier: 1.0, max_backoff_ms: 1 };

    /// The wait after the `failures`-th failed attempt (1-based), or `None` when the policy
    /// allows no further attempt.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        if failures == 0 || failures >= self.max_attempts {
            return None;
        }
        let mut b = ExponentialBackoff {
            current_interval: Duration::from_millis(self.initial_backoff_ms),
            initial_interval: Duration::from_millis(self.initial_backoff_ms),
            randomization_factor: 0.0,
            multiplier: self.multiplier.max(1.0),
            max_interval: Duration::from_millis(self.max_backoff_ms.max(self.initial_backoff_ms)),
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut delay = Duration::ZERO;
        for _ in 0..failures {
            delay = b.next_backoff()?;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_then_capped_then_exhausted() {
        let p = RetryPolicy { max_attempts: 5, initial_backoff_ms: 100, multiplier: 2.0, max_backoff_ms: 300 };
        let ms = |n| p.delay_after(n).map(|d| d.as_millis());
        assert_eq!((ms(1), ms(2), ms(3), ms(4), ms(5)), (Some(100), Some(200), Some(300), Some(300), None));
        assert_eq!(ms(0), None);
    }
}
