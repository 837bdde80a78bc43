//! `peyk-worker`: runs the jobs of the queues it is told to serve.
//! This file only wires Peyk's job types to `peyk_queue`'s runner; see
//! `peyk_queue::runner` for what happens to one job, and
//! `peyk_queue::maintenance` and `maintenance` for the background duties.

mod config;
mod gpu;
mod http;
mod maintenance;
mod openmp;
mod retention;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;
use peyk_jobs::context::SharedClients;
use peyk_jobs::events::finished::FinishedJobEvents;
use peyk_jobs::transcription::engine::SpeechEngine;
use peyk_jobs::transcription::TranscriptionJob;
use peyk_jobs::Job;
use peyk_jobs::{metrics, telemetry};
use peyk_queue::queue::{self, Queue, QueueTimings};
use peyk_queue::runner::{Runner, RunnerSettings};
use peyk_schema::queries::worker as q;
use peyk_speech::SpeechModels;
use tokio_util::sync::CancellationToken;

use crate::config::{Args, Config};

/// Unique per process (host, pid and a random suffix), so that two replicas
/// never keep each other's abandoned jobs "alive".
fn worker_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix = ulid::Ulid::new().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[suffix.len() - 6..])
}

/// Whisper models, loaded once (before any job is taken) when this worker
/// serves the transcription queue.
async fn load_speech_models(config: &Config) -> anyhow::Result<Option<Arc<dyn SpeechEngine>>> {
    if !config.queues.contains_key(TranscriptionJob::TYPE) {
        return Ok(None);
    }
    let speech = config.speech.clone();
    let models = tokio::task::spawn_blocking(move || SpeechModels::load(&speech)).await??;
    tracing::info!(models = ?models.model_names(), device = %models.device, "speech models ready");
    Ok(Some(Arc::new(models)))
}

/// mimalloc: measurably faster than the system allocator for the many small,
/// short-lived allocations of JSON requests and job records.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before anything else: this may replace the process with a fresh start.
    openmp::ensure_short_spin();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init_tracing();
    let registry = peyk_jobs::registry::production();
    let config = Config::load(args, &registry.default_concurrencies())?;
    peyk_schema::sealed::install_from_env()?;
    metrics::init_series(&registry.names());

    let pool = peyk_schema::connect_pool(&config.database_url, config.db_pool_size)?;
    let conn = queue::connect_with_retry(&config.redis_url).await;
    let queue = Queue::new(conn.clone(), &config.redis_prefix, &QueueTimings::default(), &registry.names());
    let speech = load_speech_models(&config).await?;
    let clients =
        Arc::new(SharedClients::from_env(pool.clone(), queue.clone(), &config.redis_prefix, config.webhook_policy.clone(), speech)?);
    let announcer = FinishedJobEvents::new(clients.clone());
    let batch_pool = peyk_schema::connect_batch_pool(&config.database_url, peyk_queue::runner::BATCH_CONNECTIONS)?;
    let settings = RunnerSettings { worker_id: worker_identity(), lease: config.lease, backoff: config.backoff, batch_pool };
    let runner = Runner::start(clients, registry, announcer, settings);

    let stop = CancellationToken::new();
    let background = maintenance::spawn_all(&runner, &config, &stop);
    let http = tokio::spawn(http::serve(config.http_addr, runner.clone(), stop.clone()));
    let mut consumers = Vec::new();
    for (queue_name, concurrency) in &config.queues {
        consumers.extend(peyk_queue::consumers::start(
            runner.clone(),
            &config.redis_prefix,
            queue_name,
            *concurrency,
            config.consumers_per_queue,
        ));
    }
    tracing::info!(worker = %runner.worker_id, queues = ?config.queues, "worker started");

    peyk_jobs::env::shutdown_signal().await;

    // 1. Stop fetching; entries already fetched but not started are handed back.
    runner.shutting_down.store(true, Ordering::Release);
    for consumer in &consumers {
        consumer.handle.stop();
    }
    // 2. Let running jobs finish within the grace period.
    let finished = futures::future::join_all(consumers.iter_mut().map(|c| &mut c.task));
    if tokio::time::timeout(config.shutdown_grace, finished).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "grace period over; handing running jobs back");
        for consumer in &consumers {
            consumer.task.abort();
        }
    }
    // 3. Hand back what is left: claims still held, and entries fetched but never run.
    match q::release_running(&pool, &runner.worker_id).await {
        Ok(released) => {
            if let Err(e) = peyk_queue::maintenance::push_all(&queue, &released).await {
                tracing::warn!(error = %e, "could not push released jobs; the sweeper will");
            }
            if !released.is_empty() {
                tracing::info!(count = released.len(), "released unfinished jobs to other workers");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not release running jobs; their claims will expire"),
    }
    for consumer in &consumers {
        match queue.hand_back(&consumer.queue, &consumer.name).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(queue = %consumer.queue, count, "handed unstarted entries back"),
            Err(e) => tracing::warn!(error = %e, "could not hand entries back; apalis re-queues them later"),
        }
    }
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    let _ = http.await;
    tracing::info!("worker stopped");
    Ok(())
}
