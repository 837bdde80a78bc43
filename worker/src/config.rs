//! The worker's configuration, read once from the environment (and the
//! command line, which wins) at start-up. Every variable is in the README.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use peyk_jobs::env::{env_days, env_or, env_parse, env_required, env_seconds, EnvError};
use peyk_jobs::transcription::TranscriptionJob;
use peyk_jobs::webhook::client::AddressPolicy;
use peyk_jobs::Job;
use peyk_queue::retry::Backoff;
use peyk_queue::schedule::fire::SchedulerSettings;
use peyk_speech::SpeechConfig;

use crate::retention::{Days, RetentionSettings};

#[derive(Debug, Parser)]
#[command(name = "peyk-worker", version, about = "Runs Peyk jobs from the Redis queues it is told to serve")]
pub struct Args {
    /// Queues (job types) to serve, comma-separated; default: all.
    #[arg(long, env = "PEYK_QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// Jobs run at once per queue, e.g. `webhook=128`; a bare number applies
    /// to every queue. Default: the type's (256 for most; 64 for email and
    /// medical_analysis; transcription: cores ÷ PEYK_WHISPER_THREADS).
    #[arg(long, env = "PEYK_CONCURRENCY", value_delimiter = ',')]
    pub concurrency: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub db_pool_size: usize,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Queue name → jobs it runs at once.
    pub queues: BTreeMap<String, usize>,
    /// apalis consumers per queue, each with its own fetch/acknowledge loop.
    pub consumers_per_queue: usize,
    pub http_addr: SocketAddr,
    pub shutdown_grace: Duration,
    pub lease: Duration,
    pub sweep_interval: Duration,
    /// How often pauses and weights are applied from PostgreSQL to Redis.
    pub control_sync: Duration,
    /// A waiting job is checked against Redis once its row is this old.
    pub sweep_min_age: Duration,
    pub redis_retention: Duration,
    /// How long gateway callbacks and inbound webhooks are kept.
    pub inbound_retention: Duration,
    pub retention: RetentionSettings,
    pub backoff: Backoff,
    pub webhook_policy: AddressPolicy,
    pub speech: SpeechConfig,
    /// `None`: this worker fires no schedules (`PEYK_SCHEDULER=false`).
    pub scheduler: Option<SchedulerSettings>,
}

impl Config {
    /// `job_types`: the queues this worker may serve and how many jobs each
    /// runs at once by default (its registry's types).
    pub fn load(args: Args, job_types: &[(&str, usize)]) -> Result<Self, EnvError> {
        let database_url = env_required("DATABASE_URL")?;
        let speech = SpeechConfig::from_env()?;
        peyk_jobs::events::settings::check()?;
        let mut queues = BTreeMap::new();
        let selected: Vec<String> = if args.queues.is_empty() {
            // "All" means all this host can run: transcription needs a model.
            let runnable = |t: &&str| *t != TranscriptionJob::TYPE || !speech.models.is_empty();
            if speech.models.is_empty() {
                tracing::warn!("no Whisper model configured (PEYK_MODELS_DIR / PEYK_WHISPER_MODELS): not serving the transcription queue");
            }
            job_types.iter().map(|(name, _)| *name).filter(runnable).map(str::to_string).collect()
        } else {
            args.queues.iter().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect()
        };
        for queue in selected {
            let Some(&(_, type_default)) = job_types.iter().find(|(name, _)| *name == queue) else {
                let known: Vec<&str> = job_types.iter().map(|(name, _)| *name).collect();
                return Err(EnvError::new(format!("unknown queue `{queue}`; known queues: {}", known.join(", "))));
            };
            // A transcription already uses PEYK_WHISPER_THREADS cores:
            // by default run as many at once as there are cores for.
            let default = if queue == TranscriptionJob::TYPE { (cores() / speech.threads).max(1) } else { type_default };
            queues.insert(queue, default);
        }
        for item in &args.concurrency {
            let (queue, number) = match item.split_once('=') {
                Some((queue, number)) => (Some(queue.trim()), number),
                None => (None, item.as_str()),
            };
            let number: usize = number.trim().parse().map_err(|e| EnvError::new(format!("concurrency `{item}`: {e}")))?;
            if number == 0 {
                return Err(EnvError::new(format!("concurrency `{item}` must be at least 1")));
            }
            match queue {
                None => queues.values_mut().for_each(|n| *n = number),
                Some(queue) => match queues.get_mut(queue) {
                    Some(n) => *n = number,
                    None => return Err(EnvError::new(format!("concurrency `{item}` names a queue this worker does not serve"))),
                },
            }
        }
        Ok(Self {
            database_url,
            db_pool_size: env_parse("PEYK_DB_POOL_SIZE", 16)?,
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_prefix: env_or("PEYK_REDIS_PREFIX", "peyk"),
            queues,
            consumers_per_queue: env_parse("PEYK_CONSUMERS_PER_QUEUE", 2usize)?.max(1),
            http_addr: env_parse("PEYK_WORKER_ADDR", "127.0.0.1:9091".parse().unwrap())?,
            shutdown_grace: env_seconds("PEYK_SHUTDOWN_GRACE_SECONDS", 30.0)?,
            lease: env_seconds("PEYK_LEASE_SECONDS", 30.0)?.max(Duration::from_secs(3)),
            sweep_interval: env_seconds("PEYK_SWEEP_INTERVAL_SECONDS", 5.0)?.max(Duration::from_millis(100)),
            control_sync: env_seconds("PEYK_CONTROL_SYNC_SECONDS", 2.0)?.max(Duration::from_millis(100)),
            sweep_min_age: env_seconds("PEYK_SWEEP_MIN_AGE_SECONDS", 30.0)?,
            redis_retention: env_seconds("PEYK_REDIS_RETENTION_SECONDS", 600.0)?,
            inbound_retention: env_days("PEYK_INBOUND_RETENTION_DAYS", 30.0)?,
            retention: RetentionSettings {
                defaults: Days {
                    sensitive: retention_days("PEYK_RETENTION_SENSITIVE_DAYS", 30.0)?,
                    content: retention_days("PEYK_RETENTION_CONTENT_DAYS", 90.0)?,
                    uploads: retention_days("PEYK_RETENTION_UPLOAD_DAYS", 7.0)?,
                    trail: retention_days("PEYK_RETENTION_TRAIL_DAYS", 30.0)?,
                },
                every: env_seconds("PEYK_RETENTION_SWEEP_SECONDS", 300.0)?.max(Duration::from_millis(100)),
                batch: env_parse("PEYK_RETENTION_BATCH", 1000i64)?.clamp(1, 100_000),
            },
            backoff: Backoff { base: env_seconds("PEYK_RETRY_BASE_SECONDS", 2.0)?, max: env_seconds("PEYK_RETRY_MAX_SECONDS", 3600.0)? },
            speech,
            webhook_policy: AddressPolicy::parse(&env_or("PEYK_WEBHOOK_ALLOWED_NETWORKS", ""))
                .map_err(|e| EnvError::new(format!("PEYK_WEBHOOK_ALLOWED_NETWORKS: {e}")))?,
            scheduler: if env_parse("PEYK_SCHEDULER", true)? {
                Some(SchedulerSettings {
                    batch: env_parse("PEYK_SCHEDULER_BATCH", 500i64)?.clamp(1, 10_000),
                    poll: env_seconds("PEYK_SCHEDULER_POLL_SECONDS", 0.5)?.max(Duration::from_millis(10)),
                    default_quotas: peyk_jobs::env::default_quotas()?,
                    history_retention: env_days("PEYK_SCHEDULE_HISTORY_DAYS", 30.0)?,
                    lookahead: env_seconds("PEYK_SCHEDULER_LOOKAHEAD_SECONDS", 10.0)?.min(Duration::from_secs(300)),
                })
            } else {
                None
            },
        })
    }
}

fn cores() -> usize {
    peyk_speech::available_cores()
}

/// Days of a `PEYK_RETENTION_*_DAYS` setting (fractions allowed; 0: erase
/// as soon as the sweeper passes).
fn retention_days(name: &str, default: f64) -> Result<f64, EnvError> {
    Ok(env_days(name, default)?.as_secs_f64() / 86_400.0)
}
