//! Prometheus metrics. Every name starts with `peyk_`; durations are
//! histograms in seconds. One registry per process: the API and each worker
//! serve their own at `/metrics`.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::queue::Queue;

/// The process's registry, with the standard `process_*` metrics (CPU,
/// resident memory, open file descriptors) of this process included.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("process collector registers once");
    registry
});

pub fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    REGISTRY.register(Box::new(collector.clone())).expect("metric names are unique");
    collector
}

pub static JOBS_ENQUEUED: LazyLock<IntCounterVec> =
    LazyLock::new(|| register(IntCounterVec::new(Opts::new("peyk_jobs_enqueued_total", "Jobs accepted by the API"), &["type"]).unwrap()));

pub static JOBS_FINISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("peyk_jobs_finished_total", "Job runs that ended, by the status they left the job in"),
            &["type", "status"],
        )
        .unwrap(),
    )
});

pub static JOB_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("peyk_job_retries_total", "Failed attempts scheduled to run again, by error code"), &["type", "code"])
            .unwrap(),
    )
});

pub static JOBS_DEAD: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("peyk_jobs_dead_total", "Jobs that ran out of attempts, by the last error code"), &["type", "code"])
            .unwrap(),
    )
});

pub static PROVIDER_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("peyk_provider_requests_total", "Calls to outside providers (webhook endpoints, gateways, SMTP, LLMs)"),
            &["provider", "outcome"],
        )
        .unwrap(),
    )
});

pub static PROVIDER_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("peyk_provider_request_duration_seconds", "Time an outside provider took to answer")
                .buckets(exponential_buckets(0.001, 2.5, 14).unwrap()),
            &["provider"],
        )
        .unwrap(),
    )
});

pub static DB_POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(IntGaugeVec::new(Opts::new("peyk_db_pool_connections", "PostgreSQL pool connections by state"), &["state"]).unwrap())
});

pub static REDIS_UP: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("peyk_redis_up", "1 when this process reaches Redis").unwrap()));

/// Outcome of one call to a provider: `success`, `client_error`,
/// `server_error`, `timeout`, `connection_error`, `refused` (e.g. a blocked
/// address: never sent, so `took` is `None` and no latency is recorded).
pub fn observe_provider(provider: &str, outcome: &str, took: Option<Duration>) {
    PROVIDER_REQUESTS.with_label_values(&[provider, outcome]).inc();
    if let Some(took) = took {
        PROVIDER_DURATION.with_label_values(&[provider]).observe(took.as_secs_f64());
    }
}

/// Pool and Redis connection state, read at scrape time.
pub fn refresh_connection_gauges(pool: &peyk_schema::DbPool, redis_up: bool) {
    let status = pool.status();
    let idle = status.available as i64;
    DB_POOL.with_label_values(&["max"]).set(status.max_size as i64);
    DB_POOL.with_label_values(&["open"]).set(status.size as i64);
    DB_POOL.with_label_values(&["idle"]).set(idle);
    DB_POOL.with_label_values(&["in_use"]).set(status.size as i64 - idle);
    DB_POOL.with_label_values(&["waiting"]).set(status.waiting as i64);
    REDIS_UP.set(redis_up as i64);
}

pub static JOB_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("peyk_job_duration_seconds", "Time one attempt of a job ran")
                .buckets(exponential_buckets(0.001, 2.5, 14).unwrap()),
            &["type"],
        )
        .unwrap(),
    )
});

pub static JOB_QUEUE_WAIT: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("peyk_job_queue_wait_seconds", "Time from when a job was due to when a worker started it")
                .buckets(exponential_buckets(0.001, 2.5, 14).unwrap()),
            &["type"],
        )
        .unwrap(),
    )
});

pub static QUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(IntGaugeVec::new(Opts::new("peyk_queue_depth", "Entries in a Redis queue by state"), &["queue", "state"]).unwrap())
});

pub static OLDEST_WAITING: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    register(
        prometheus::GaugeVec::new(
            Opts::new("peyk_queue_oldest_waiting_seconds", "How long the oldest queued job of a queue has been due"),
            &["queue"],
        )
        .unwrap(),
    )
});

pub static WORKERS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| register(IntGaugeVec::new(Opts::new("peyk_workers", "Worker processes serving a queue"), &["queue"]).unwrap()));

pub static TRANSCRIBED_AUDIO: LazyLock<prometheus::CounterVec> = LazyLock::new(|| {
    register(
        prometheus::CounterVec::new(
            Opts::new("peyk_transcription_audio_seconds_total", "Seconds of audio transcribed, by model and device"),
            &["model", "device"],
        )
        .unwrap(),
    )
});

pub static TRANSCRIPTION_RTF: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "peyk_transcription_real_time_factor",
                "Processing time over audio duration of each transcription (below 1 is faster than real time)",
            )
            .buckets(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0]),
            &["model", "device"],
        )
        .unwrap(),
    )
});

pub static SPEECH_MODELS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(Opts::new("peyk_speech_models_loaded", "Whisper models this worker has loaded"), &["model", "device"]).unwrap(),
    )
});

/// Creates every series that should exist from the start at zero, so that
/// dashboards and alerts see them before the first event.
/// Payment outcomes as recorded (once per payment), by gateway and status.
pub static PAYMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("peyk_payments_total", "Payment outcomes recorded, once per payment"), &["gateway", "status"])
            .unwrap(),
    )
});

/// Gateway callbacks the API answered, by what became of them.
pub static PAYMENT_CALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "peyk_payment_callbacks_total",
                "Gateway callbacks received: verifying, received, duplicate, unknown_payment, rejected, rate_limited",
            ),
            &["gateway", "result"],
        )
        .unwrap(),
    )
});

pub const PAYMENT_GATEWAYS: [&str; 4] = ["zarinpal", "idpay", "bitpay", "stripe"];
pub const PAYMENT_STATUSES: [&str; 5] = ["verified", "already_verified", "amount_mismatch", "failed", "needs_review"];
pub const CALLBACK_RESULTS: [&str; 6] = ["verifying", "received", "duplicate", "unknown_payment", "rejected", "rate_limited"];

/// Payments recorded as failed that a gateway later said were paid.
pub static PAYMENT_REVERSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "peyk_payment_reversals_total",
                "Payments recorded as failed (unpaid) that the gateway later said were paid; now paid",
            ),
            &["gateway"],
        )
        .unwrap(),
    )
});

pub fn init_job_series(job_types: &[&str]) {
    for job_type in job_types {
        JOBS_ENQUEUED.with_label_values(&[job_type]);
        for status in ["succeeded", "failed", "dead", "discarded"] {
            JOBS_FINISHED.with_label_values(&[job_type, status]);
        }
        JOB_DURATION.with_label_values(&[job_type]);
        JOB_QUEUE_WAIT.with_label_values(&[job_type]);
    }
    for gateway in PAYMENT_GATEWAYS {
        for status in PAYMENT_STATUSES {
            PAYMENTS.with_label_values(&[gateway, status]);
        }
        for result in CALLBACK_RESULTS {
            PAYMENT_CALLBACKS.with_label_values(&[gateway, result]);
        }
        PAYMENT_REVERSALS.with_label_values(&[gateway]);
    }
    for provider in ["webhook", "smtp"].into_iter().chain(PAYMENT_GATEWAYS) {
        for outcome in ["success", "client_error", "server_error", "timeout", "connection_error", "refused"] {
            PROVIDER_REQUESTS.with_label_values(&[provider, outcome]);
        }
        PROVIDER_DURATION.with_label_values(&[provider]);
    }
}

/// Reads queue depths and live workers from Redis, and dead jobs from
/// PostgreSQL (Peyk, not apalis, decides when a job is dead), into their gauges.
pub async fn refresh_queue_gauges(queue: &Queue, pool: &peyk_schema::DbPool) {
    let dead: std::collections::HashMap<String, i64> =
        peyk_schema::queries::jobs::dead_counts(pool).await.unwrap_or_default().into_iter().collect();
    for job_type in queue.names() {
        if let Ok(depth) = queue.depth(job_type).await {
            for (state, value) in [
                ("waiting", depth.waiting as i64),
                ("scheduled", depth.scheduled as i64),
                ("in_flight", depth.in_flight as i64),
                ("dead", dead.get(job_type).copied().unwrap_or(0)),
            ] {
                QUEUE_DEPTH.with_label_values(&[job_type, state]).set(value);
            }
        }
        if let Ok(oldest) = peyk_schema::queries::jobs::oldest_waiting_seconds(pool, job_type).await {
            OLDEST_WAITING.with_label_values(&[job_type]).set(oldest.unwrap_or(0.0));
        }
        if let Ok(workers) = queue.live_workers(job_type, std::time::Duration::from_secs(30)).await {
            WORKERS.with_label_values(&[job_type]).set(workers as i64);
        }
    }
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&REGISTRY.gather(), &mut buffer).expect("text encoding cannot fail");
    String::from_utf8(buffer).expect("prometheus text is UTF-8")
}
