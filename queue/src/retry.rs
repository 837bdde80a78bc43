//! The retry schedule, in one place: exponential backoff with full jitter,
//! never sooner than the provider asked for.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Upper bound of any delay, the provider's `Retry-After` included.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(3600) }
    }
}

impl Backoff {
    /// Delay before the next run after `attempt` (1-based) failed.
    /// Jitter spreads the delay over [50 %, 100 %] of the exponential value so
    /// that a burst of failures does not come back as a burst of retries.
    pub fn delay(&self, attempt: u32, provider_asked: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let exponential = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let jittered = exponential.mul_f64(rand::rng().random_range(0.5..=1.0));
        match provider_asked {
            Some(asked) => jittered.max(asked).min(self.max),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_cap() {
        let backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(10) };
        for _ in 0..100 {
            let first = backoff.delay(1, None);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let third = backoff.delay(3, None);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4), "{third:?}");
            assert!(backoff.delay(30, None) <= Duration::from_secs(10));
        }
    }

    #[test]
    fn honours_retry_after_within_the_cap() {
        let backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };
        assert_eq!(backoff.delay(1, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(backoff.delay(1, Some(Duration::from_secs(600))), Duration::from_secs(60));
    }
}
