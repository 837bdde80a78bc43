//! The delivery retry schedule and the disable threshold, read once from
//! the environment (the API reads the schedule too: its length is the
//! attempts of a replayed delivery).
//!
//! - `PEYK_WEBHOOK_RETRY_SCHEDULE`: comma-separated seconds, the delay before
//!   each attempt; the first is the initial attempt (Svix's schedule by
//!   default). Attempts = entries.
//! - `PEYK_WEBHOOK_DISABLE_AFTER`: seconds an endpoint may fail without a
//!   single success before it is disabled (5 days).
//! - `PEYK_WEBHOOK_HTTPS_ONLY_FOR`: job types whose events and callbacks
//!   are never sent to a plain `http://` URL (their bodies hold medical
//!   text or transcripts); comma-separated, empty for none. Default
//!   `medical_analysis,transcription`.

use std::sync::LazyLock;
use std::time::Duration;

use rand::Rng;

use crate::env::{env_seconds, EnvError};

/// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE: &str = "0,5,300,1800,7200,18000,36000,36000";
pub const DEFAULT_DISABLE_AFTER_SECONDS: f64 = 5.0 * 24.0 * 3600.0;
pub const DEFAULT_HTTPS_ONLY_FOR: &str = "medical_analysis,transcription";
/// A `Retry-After` longer than the schedule's delay wins, up to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);
/// Each delay is spread over ±20 % so that an endpoint coming back is not
/// hit by every retry at once.
const JITTER: f64 = 0.2;
/// The most attempts a job may have (as for submitted jobs).
const MAX_ENTRIES: usize = 25;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Delay before attempt n+1 is `schedule[n]`; `schedule[0]` is the first attempt's.
    pub schedule: Vec<Duration>,
    pub disable_after: Duration,
    /// Job types whose events go to `https://` URLs only.
    pub https_only_for: Vec<String>,
}

impl Settings {
    pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
        let schedule: Vec<Duration> = text
            .split(',')
            .map(str::trim)
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("`{s}` is not a number of seconds"))
            })
            .collect::<Result<_, _>>()?;
        if schedule.is_empty() || schedule.len() > MAX_ENTRIES {
            return Err(format!("must list 1 to {MAX_ENTRIES} delays"));
        }
        Ok(schedule)
    }

    fn from_env() -> Result<Self, EnvError> {
        let raw = crate::env::env_or("PEYK_WEBHOOK_RETRY_SCHEDULE", DEFAULT_SCHEDULE);
        let schedule = Self::parse_schedule(&raw).map_err(|e| EnvError::new(format!("PEYK_WEBHOOK_RETRY_SCHEDULE={raw}: {e}")))?;
        let disable_after = env_seconds("PEYK_WEBHOOK_DISABLE_AFTER", DEFAULT_DISABLE_AFTER_SECONDS)?;
        let https_only_for = crate::env::env_or("PEYK_WEBHOOK_HTTPS_ONLY_FOR", DEFAULT_HTTPS_ONLY_FOR)
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Self { schedule, disable_after, https_only_for })
    }

    /// The problem with sending events about `job_type` to `url`, when it
    /// is plain `http://` and the type's events go over https only.
    pub fn plain_http_refused(&self, job_type: &str, url: &str) -> Option<String> {
        let plain = url.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        (plain && self.https_only_for.iter().any(|t| t == job_type))
            .then(|| format!("`{job_type}` events and callbacks are sent only to https:// URLs (PEYK_WEBHOOK_HTTPS_ONLY_FOR)"))
    }

    pub fn max_attempts(&self) -> i32 {
        self.schedule.len() as i32
    }

    /// The delay before the attempt after `attempt` (1-based) failed:
    /// the schedule's, jittered, or the endpoint's `Retry-After` when that
    /// is longer (capped at [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, attempt: u32, provider_asked: Option<Duration>) -> Duration {
        let scheduled = self.schedule.get(attempt as usize).or(self.schedule.last()).copied().unwrap_or_default();
        let jittered = scheduled.mul_f64(rand::rng().random_range(1.0 - JITTER..=1.0 + JITTER));
        match provider_asked {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

static SETTINGS: LazyLock<Result<Settings, EnvError>> = LazyLock::new(Settings::from_env);

/// Checks the variables; the binaries call this at start so that a
/// malformed value stops them with its name.
pub fn check() -> Result<(), EnvError> {
    SETTINGS.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The settings (checked at start-up by [`check`]).
pub fn get() -> &'static Settings {
    SETTINGS.as_ref().expect("webhook settings are checked at start-up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_svix_like() {
        let schedule = Settings::parse_schedule(DEFAULT_SCHEDULE).unwrap();
        let seconds: Vec<u64> = schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, [0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert!(Settings::parse_schedule("1,x").is_err());
        assert!(Settings::parse_schedule("-1").is_err());
        assert!(Settings::parse_schedule("").is_err());
    }

    #[test]
    fn delays_follow_the_schedule_with_jitter_and_retry_after() {
        let settings = Settings {
            schedule: Settings::parse_schedule(DEFAULT_SCHEDULE).unwrap(),
            https_only_for: Vec::new(),
            disable_after: Duration::from_secs(1),
        };
        assert_eq!(settings.max_attempts(), 8);
        for _ in 0..100 {
            // After the first attempt: 5 s ± 20 %; after the third: 30 min ± 20 %.
            let first = settings.delay(1, None);
            assert!(first >= Duration::from_secs(4) && first <= Duration::from_secs(6), "{first:?}");
            let third = settings.delay(3, None);
            assert!(third >= Duration::from_secs(1440) && third <= Duration::from_secs(2160), "{third:?}");
            // A longer Retry-After wins; a shorter one does not.
            assert_eq!(settings.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(60));
            assert!(settings.delay(3, Some(Duration::from_secs(1))) >= Duration::from_secs(1440));
            // Capped at 10 h.
            assert_eq!(settings.delay(1, Some(Duration::from_secs(100 * 3600))), MAX_RETRY_AFTER);
            // Past the end: the last delay.
            assert!(settings.delay(20, None) >= Duration::from_secs(28800));
        }
    }
}
