//! Reading configuration from environment variables, shared by the binaries.
//! An empty variable counts as unset; a malformed one is an error that names
//! it. Every configuration error of the binaries is an [`EnvError`].

use std::time::Duration;

/// A malformed variable: says which, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(String);

impl EnvError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A variable that has no default: its absence is an error naming it.
pub fn env_required(name: &str) -> Result<String, EnvError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| EnvError(format!("{name} is required")))
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> Result<T, EnvError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|e| EnvError(format!("{name}={raw}: {e}"))),
    }
}

pub fn env_seconds(name: &str, default: f64) -> Result<Duration, EnvError> {
    let seconds: f64 = env_parse(name, default)?;
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(EnvError(format!("{name} must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A non-negative number of days (fractions allowed), as a duration.
pub fn env_days(name: &str, default: f64) -> Result<Duration, EnvError> {
    let days: f64 = env_parse(name, default)?;
    if !(days.is_finite() && days >= 0.0) {
        return Err(EnvError(format!("{name} must be a non-negative number of days")));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Every tenant's quotas unless set for it (`PEYK_QUOTA_*`; 0: none): the
/// API charges submissions against them, the workers' scheduler its fires.
pub fn default_quotas() -> Result<peyk_schema::queries::queue_controls::Quotas, EnvError> {
    Ok(peyk_schema::queries::queue_controls::Quotas {
        jobs_per_day: Some(env_parse("PEYK_QUOTA_JOBS_PER_DAY", 0i64)?),
        sms_per_day: Some(env_parse("PEYK_QUOTA_SMS_PER_DAY", 0i64)?),
        audio_minutes_per_month: Some(env_parse("PEYK_QUOTA_AUDIO_MINUTES_PER_MONTH", 0i64)?),
        llm_tokens_per_month: Some(env_parse("PEYK_QUOTA_LLM_TOKENS_PER_MONTH", 0i64)?),
        // Email goes out through the operator's relay: capped unless set.
        emails_per_day: Some(env_parse("PEYK_QUOTA_EMAILS_PER_DAY", 1000i64)?),
    })
}
