//! `peyk-api`: serves the HTTP API (`serve`, the default), applies the
//! database migrations (`migrate`), and creates API keys (`create-key`).
//! This file only wires things together.

mod address_limit;
mod admission;
mod auth;
mod cache;
mod config;
mod console;
mod control;
mod error;
mod extract;
mod http_metrics;
mod inbound;
mod keys;
mod paging;
mod quota;
mod rate_limit;
mod routes;
mod state;
mod views;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use peyk_jobs::{metrics, telemetry};
use peyk_queue::queue::{self, Queue, QueueTimings};

use crate::config::Config;
use crate::state::{AppState, Shared};

#[derive(Parser)]
#[command(name = "peyk-api", version, about = "Peyk's HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
// `set-limits` carries many options; a command is parsed once per run.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the embedded database migrations.
    Migrate,
    /// Create an API key for a tenant (created if new) and print it once.
    CreateKey {
        #[arg(long)]
        tenant: String,
        /// What the key is for (shown when keys are listed).
        #[arg(long, default_value = "")]
        name: String,
        /// A scope the key gets; may be given several times. Without any:
        /// every scope but `admin`. The scopes: jobs:read, jobs:write,
        /// files, payments:read, payments:write, payments:admin,
        /// webhooks:admin, admin (README, "Keys and scopes").
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// An admin key: adds the `admin` scope (every tenant: queues,
        /// limits, usage, keys, the audit log).
        #[arg(long)]
        admin: bool,
        /// How long the key works: 30d, 12h, 90m (default: until revoked).
        #[arg(long, value_name = "LIFETIME")]
        expires_in: Option<String>,
    },
    /// List keys (prefix, name, scopes, last use), newest first.
    ListKeys {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Revoked keys too.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key, given its id or its prefix; API processes refuse it
    /// within a second.
    RevokeKey { key: String },
    /// Seal every stored secret with PEYK_SECRETS_KEY (the old keys in
    /// PEYK_SECRETS_OLD_KEYS), in batches, while the service runs; also
    /// seals secrets stored before there was a key.
    RotateSecretsKey {
        /// Rows a statement at most.
        #[arg(long, default_value_t = 100)]
        batch: i64,
    },
    /// Pause a queue (for every tenant, or for `--tenant` only). Stored in
    /// PostgreSQL; workers apply it within `PEYK_CONTROL_SYNC_SECONDS`.
    Pause {
        #[arg(long)]
        queue: String,
        /// Tenant name.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Resume what `pause` paused.
    Resume {
        #[arg(long)]
        queue: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Set a tenant's limits (what is not given stays as it is).
    SetLimits {
        #[arg(long)]
        tenant: String,
        /// 1 to 1,000 (default 1): its share of each queue relative to the
        /// other tenants with work.
        #[arg(long)]
        weight: Option<i32>,
        /// API requests a second (0: the server's default).
        #[arg(long)]
        requests_per_second: Option<i32>,
        /// Requests at once above the rate (0: the server's default).
        #[arg(long)]
        burst: Option<i32>,
        /// QUEUE=N: at most N of its jobs of QUEUE run at once (0: no cap);
        /// may be given once per queue.
        #[arg(long = "max-running", value_name = "QUEUE=N")]
        max_running: Vec<String>,
        #[command(flatten)]
        quotas: control::QuotaArgs,
    },
}

/// mimalloc: measurably faster than the system allocator for the many small,
/// short-lived allocations of JSON requests and job records.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => {
            let pool = peyk_schema::connect_pool(&Config::database_url()?, 1)?;
            let applied = peyk_schema::run_migrations(&pool).await?;
            eprintln!("migrations applied: {}", if applied.is_empty() { "none pending".to_string() } else { applied.join(", ") });
            Ok(())
        }
        Command::CreateKey { tenant, name, scopes, admin, expires_in } => {
            let expires_at = expires_in.as_deref().map(keys::parse_lifetime).transpose()?.map(|lifetime| chrono::Utc::now() + lifetime);
            keys::create_from_cli(keys::KeyRequest { tenant, name, scopes, admin, expires_at }).await
        }
        Command::ListKeys { tenant, all } => keys::list_from_cli(tenant.as_deref(), all).await,
        Command::RevokeKey { key } => keys::revoke_from_cli(&key).await,
        Command::RotateSecretsKey { batch } => {
            let sealer = peyk_schema::sealed::install_from_env()?;
            let Some(key_id) = sealer.current_key_id() else {
                anyhow::bail!("rotate-secrets-key needs PEYK_SECRETS_KEY: the key to seal with")
            };
            let pool = control::connect()?;
            for (column, resealed) in peyk_schema::queries::secrets::reseal_all(&pool, batch.clamp(1, 10_000)).await? {
                eprintln!("{column}: {resealed} sealed again");
            }
            eprintln!("every secret is sealed with key {key_id}; the old keys may go from PEYK_SECRETS_OLD_KEYS");
            Ok(())
        }
        Command::Pause { queue, tenant } => control::set_paused(&queue, tenant.as_deref(), true).await,
        Command::Resume { queue, tenant } => control::set_paused(&queue, tenant.as_deref(), false).await,
        Command::SetLimits { tenant, weight, requests_per_second, burst, max_running, quotas } => {
            control::set_limits(&tenant, weight, requests_per_second, burst, &max_running, quotas).await
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::load()?;
    peyk_schema::sealed::install_from_env()?;
    let job_types = peyk_jobs::registry::catalogue().names();
    metrics::init_series(&job_types);
    let pool = peyk_schema::connect_pool(&config.database_url, config.db_pool_size)?;
    let conn = queue::connect_with_retry(&config.redis_url).await;
    let queue = Queue::new(conn, &config.redis_prefix, &QueueTimings::default(), &job_types);
    let state = AppState::new(Shared {
        pool: pool.clone(),
        pusher: peyk_queue::submit::start_pusher(queue.clone()),
        tokens: peyk_queue::queue::TenantTokens::start(queue.clone()),
        charger: peyk_queue::queue::start_charger(queue.clone()),
        tally: peyk_queue::queue::UsageTally::start(queue.clone()),
        queue,
        keys: Arc::new(auth::KeyCache::new(config.key_cache_ttl)),
        quotas: Arc::new(quota::QuotaCache::new(config.key_cache_ttl)),
        accounts: Arc::new(state::AccountCache::new(state::ACCOUNT_CACHE_TTL)),
        callbacks: peyk_schema::queries::payments::start_callback_recorder(pool.clone()),
        inserter: peyk_queue::submit::start_inserter(peyk_schema::connect_insert_pool(
            &config.database_url,
            peyk_queue::submit::INSERTS_AT_ONCE,
        )?),
        redis_up: Arc::new(AtomicBool::new(true)),
        files: peyk_jobs::storage::FileStore::from_env()?,
        uploads: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_uploads)),
        limits: config.limits,
        public_limiter: Arc::new(address_limit::AddressLimiter::new(config.public_rate_per_minute, config.trust_forwarded_for)),
        waiters: peyk_queue::finished::Waiters::start(&config.redis_url, &config.redis_prefix),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
        console: config.console,
        checks: Arc::new(admission::Checks::new(&config.redis_prefix, peyk_jobs::sms::rate_limiter_from_env(&config.redis_prefix)?)),
    });
    tokio::spawn(state::watch_redis(state.clone()));
    tokio::spawn(auth::watch_key_changes(state.clone()));
    tracing::info!(store = %state.files.description, "file store ready");
    let app = routes::router(state, &config);
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %config.addr, "peyk-api listening");
    // The connection's address: the public endpoints limit per sender.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(peyk_jobs::env::shutdown_signal()).await?;
    Ok(())
}
