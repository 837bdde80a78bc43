//! The API's configuration, read once from the environment at start-up.
//! Every variable is in the README.

use std::net::SocketAddr;
use std::time::Duration;

use peyk_jobs::env::{env_or, env_parse, env_required, env_seconds, EnvError};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub db_pool_size: usize,
    pub redis_url: String,
    pub redis_prefix: String,
    pub addr: SocketAddr,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body_bytes: usize,
    /// The same for `POST /v1/jobs/batch` (up to 1,000 jobs).
    pub max_batch_body_bytes: usize,
    /// How long a verified API key is trusted without asking PostgreSQL again
    /// (so a revoked key stops working within this time).
    pub key_cache_ttl: Duration,
    /// What `/metrics` asks for (`None`: open, for a scraper on a private network).
    pub metrics_token: Option<String>,
    /// Largest upload (`/v1/files`, `/v1/audio/*`), bytes.
    pub max_upload_bytes: usize,
    /// Uploads this process reads and stores at once; others wait their turn
    /// (up to `Limits::upload_wait`) without their bodies being read.
    pub max_concurrent_uploads: usize,
    pub limits: Limits,
    /// Requests per minute one address may send to the public endpoints.
    pub public_rate_per_minute: u32,
    /// Read the sender's address from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded_for: bool,
    pub console: ConsoleSettings,
}

/// The console's defaults (`/console`).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSettings {
    /// `PEYK_CONSOLE_LANGUAGE`: `en` or `fa`, until a browser picks.
    pub language: crate::console::locale::Language,
    /// `PEYK_CONSOLE_CALENDAR`: `gregorian` or `persian`, until a browser picks.
    pub calendar: crate::console::locale::Calendar,
    /// `PEYK_CONSOLE_SESSION_HOURS`: a sign-in lasts this long.
    pub session_lifetime: Duration,
    /// `PEYK_CONSOLE_SECURE_COOKIES`: mark cookies `Secure` even when no
    /// proxy says `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
}

/// Limits the handlers check themselves.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest audio upload accepted, seconds.
    pub max_audio_seconds: f64,
    /// Webhook endpoints a tenant may have.
    pub max_webhook_endpoints: i64,
    /// How long the OpenAI endpoints wait for the job before answering 202.
    pub openai_wait: Duration,
    /// How long an upload waits for its turn before answering 503 `uploads_busy`.
    pub upload_wait: Duration,
    /// What unauthenticated gateway callbacks may make Peyk store and do.
    pub callbacks: peyk_schema::queries::payments::CallbackLimits,
    /// A tenant's API requests a second, and its burst, unless set for it.
    pub requests_per_second: u32,
    pub burst: u32,
    /// Every tenant's quotas unless set for it (0: none).
    pub quotas: peyk_schema::queries::queue_controls::Quotas,
}

impl Config {
    pub fn load() -> Result<Self, EnvError> {
        // Replayed deliveries get as many attempts as the retry schedule lists.
        peyk_jobs::events::settings::check()?;
        let (redis_url, redis_prefix) = Self::redis();
        Ok(Self {
            database_url: env_required("DATABASE_URL")?,
            db_pool_size: env_parse("PEYK_DB_POOL_SIZE", 16)?,
            redis_url,
            redis_prefix,
            addr: env_parse("PEYK_API_ADDR", "127.0.0.1:8080".parse().unwrap())?,
            max_body_bytes: env_parse("PEYK_MAX_BODY_BYTES", 1024 * 1024)?,
            max_batch_body_bytes: env_parse("PEYK_MAX_BATCH_BODY_BYTES", 16 * 1024 * 1024)?,
            key_cache_ttl: Duration::from_secs(env_parse("PEYK_KEY_CACHE_SECONDS", 60)?),
            metrics_token: Some(env_or("PEYK_METRICS_TOKEN", "")).filter(|t| !t.trim().is_empty()),
            max_upload_bytes: env_parse("PEYK_MAX_UPLOAD_BYTES", 200 * 1024 * 1024)?,
            max_concurrent_uploads: env_parse("PEYK_MAX_CONCURRENT_UPLOADS", 8usize)?.clamp(1, 1 << 20),
            public_rate_per_minute: env_parse("PEYK_PUBLIC_RATE_PER_MINUTE", 120)?,
            trust_forwarded_for: env_parse("PEYK_TRUST_FORWARDED_FOR", false)?,
            console: ConsoleSettings {
                language: crate::console::locale::Language::parse(&env_or("PEYK_CONSOLE_LANGUAGE", "en"))
                    .ok_or_else(|| EnvError::new("PEYK_CONSOLE_LANGUAGE must be `en` or `fa`"))?,
                calendar: crate::console::locale::Calendar::parse(&env_or("PEYK_CONSOLE_CALENDAR", "gregorian"))
                    .ok_or_else(|| EnvError::new("PEYK_CONSOLE_CALENDAR must be `gregorian` or `persian`"))?,
                session_lifetime: Duration::from_secs_f64(
                    env_parse("PEYK_CONSOLE_SESSION_HOURS", 8.0f64)?.clamp(0.01, 24.0 * 30.0) * 3600.0,
                ),
                secure_cookies: env_parse("PEYK_CONSOLE_SECURE_COOKIES", false)?,
            },
            limits: Limits {
                max_audio_seconds: env_parse("PEYK_MAX_AUDIO_SECONDS", 4.0 * 3600.0)?,
                openai_wait: env_seconds("PEYK_OPENAI_WAIT_SECONDS", 120.0)?,
                upload_wait: env_seconds("PEYK_UPLOAD_WAIT_SECONDS", 30.0)?,
                max_webhook_endpoints: env_parse("PEYK_MAX_WEBHOOK_ENDPOINTS", 20i64)?.max(1),
                requests_per_second: env_parse("PEYK_TENANT_REQUESTS_PER_SECOND", 10_000u32)?.max(1),
                burst: env_parse("PEYK_TENANT_BURST", 20_000u32)?.max(1),
                quotas: peyk_jobs::env::default_quotas()?,
                callbacks: peyk_schema::queries::payments::CallbackLimits {
                    verifications_per_minute: env_parse("PEYK_CALLBACK_VERIFICATIONS_PER_MINUTE", 3)?.max(1),
                    events_per_payment: env_parse("PEYK_CALLBACK_EVENTS_PER_PAYMENT", 20)?.max(1),
                    unknown_per_minute: env_parse("PEYK_CALLBACK_UNKNOWN_PER_MINUTE", 10)?.max(1),
                },
            },
        })
    }

    /// Only what `migrate` and `create-key` need.
    pub fn database_url() -> Result<String, EnvError> {
        env_required("DATABASE_URL")
    }

    /// Redis and its prefix, for the commands that tell the API processes
    /// something (`revoke-key`).
    pub fn redis() -> (String, String) {
        (env_or("REDIS_URL", "redis://127.0.0.1:6379"), env_or("PEYK_REDIS_PREFIX", "peyk"))
    }
}
