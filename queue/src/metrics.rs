//! Prometheus metrics of the queue and the runner. Every name starts with
//! `peyk_`; durations are histograms in seconds. One registry per process:
//! the API and each worker serve their own at `/metrics` (the job types add
//! theirs to it, `peyk_jobs::metrics`).

use std::sync::LazyLock;

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

/// Rows (and uploads) whose content retention erased, by what they were:
/// job, pipeline, attempt_error, message, sms, upload.
pub static RETENTION_ERASED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("peyk_retention_erased_total", "Content erased past its retention, by what held it"), &["what"])
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

pub static DB_POOL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(IntGaugeVec::new(Opts::new("peyk_db_pool_connections", "PostgreSQL pool connections by state"), &["state"]).unwrap())
});

pub static REDIS_UP: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("peyk_redis_up", "1 when this process reaches Redis").unwrap()));

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
            HistogramOpts::new(
                "peyk_job_queue_wait_seconds",
                "Time from when a job was due to when a worker started it, by priority level",
            )
            .buckets(exponential_buckets(0.001, 2.5, 14).unwrap()),
            &["type", "priority"],
        )
        .unwrap(),
    )
});

pub static DELAY_LATENESS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "peyk_queue_delay_lateness_seconds",
                "From when a delayed job (run_at, a retry's backoff, a schedule's fire stored ahead) fell due to when it was moved into its waiting set",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0]),
            &["queue"],
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

pub static QUEUE_PAUSED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(IntGaugeVec::new(Opts::new("peyk_queue_paused", "1 while a queue is paused for every tenant"), &["queue"]).unwrap())
});

pub static QUEUE_TENANTS_PAUSED: LazyLock<IntGaugeVec> =
    LazyLock::new(|| register(IntGaugeVec::new(Opts::new("peyk_queue_tenants_paused", "Tenants paused in a queue"), &["queue"]).unwrap()));

/// Waiting tasks per tenant, only for the tenants that have more than
/// `PEYK_METRICS_TENANT_DEPTH_THRESHOLD` waiting or are named in
/// `PEYK_METRICS_TENANTS`; the rest are summed under `tenant="other"`, so
/// the label set stays bounded however many tenants there are.
pub static TENANT_WAITING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("peyk_queue_tenant_waiting", "Tasks waiting in a queue, by tenant (large or listed tenants only)"),
            &["queue", "tenant"],
        )
        .unwrap(),
    )
});

/// Use in the current Tehran day (jobs, sms) or month (audio seconds, LLM
/// tokens): `tenant="all"`, and the tenants of `PEYK_METRICS_TENANTS`.
pub static TENANT_USAGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("peyk_tenant_usage", "Use in the current day or month, by kind (all tenants, or listed ones)"),
            &["tenant", "kind"],
        )
        .unwrap(),
    )
});

/// Which tenants get a `peyk_queue_tenant_waiting` series of their own.
#[derive(Debug, Clone, Default)]
struct TenantSeries {
    threshold: u64,
    always: std::collections::HashSet<String>,
}

static TENANT_SERIES: LazyLock<TenantSeries> = LazyLock::new(TenantSeries::from_env);

impl TenantSeries {
    /// From `PEYK_METRICS_TENANT_DEPTH_THRESHOLD` (default 1,000) and
    /// `PEYK_METRICS_TENANTS` (tenant ids, comma-separated).
    fn from_env() -> Self {
        let threshold = std::env::var("PEYK_METRICS_TENANT_DEPTH_THRESHOLD").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(1000);
        let always = std::env::var("PEYK_METRICS_TENANTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        Self { threshold, always }
    }
}

pub static SCHEDULE_FIRES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "peyk_schedule_fires_total",
                "Schedule fire times acted on, by outcome (submitted, skipped_overlap, buffered, missed, quota_exceeded, error)",
            ),
            &["outcome"],
        )
        .unwrap(),
    )
});

pub static SCHEDULE_LATENESS: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    register(
        prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "peyk_schedule_fire_lateness_seconds",
                "From a fire time to its job stored and pushed, by the database's clock (0 for a fire stored ahead, whose job waits delayed: see peyk_queue_delay_lateness_seconds)",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0]),
        )
        .unwrap(),
    )
});

pub static SCHEDULES_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("peyk_schedules_active", "Schedules that will fire again (not paused, not past their end)").unwrap())
});

pub static WORKERS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| register(IntGaugeVec::new(Opts::new("peyk_workers", "Worker processes serving a queue"), &["queue"]).unwrap()));

/// Creates every series of each job type at zero, so that dashboards and
/// rates see them before the first job.
pub fn init_job_series(job_types: &[&str]) {
    for job_type in job_types {
        JOBS_ENQUEUED.with_label_values(&[job_type]);
        for status in ["succeeded", "failed", "dead", "discarded"] {
            JOBS_FINISHED.with_label_values(&[job_type, status]);
        }
        JOB_DURATION.with_label_values(&[job_type]);
        JOB_QUEUE_WAIT.with_label_values(&[job_type, "0"]);
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

/// Reads queue depths and live workers from Redis, and dead jobs from
/// PostgreSQL (Peyk, not apalis, decides when a job is dead), into their gauges.
pub async fn refresh_queue_gauges(queue: &Queue, pool: &peyk_schema::DbPool) {
    let tenant_series = &*TENANT_SERIES;
    let dead: std::collections::HashMap<String, i64> =
        peyk_schema::queries::jobs::dead_counts(pool).await.unwrap_or_default().into_iter().collect();
    // Tenants that fell below the threshold lose their series.
    TENANT_WAITING.reset();
    for kind in crate::queue::UsageKind::ALL {
        if let Ok(used) = queue.usage(kind).await {
            TENANT_USAGE.with_label_values(&["all", kind.as_str()]).set(used.values().sum());
            for tenant in &tenant_series.always {
                TENANT_USAGE.with_label_values(&[tenant, kind.as_str()]).set(used.get(tenant).copied().unwrap_or(0));
            }
        }
    }
    for job_type in queue.names() {
        if let Ok((paused, tenants)) = queue.paused(job_type).await {
            QUEUE_PAUSED.with_label_values(&[job_type]).set(paused as i64);
            QUEUE_TENANTS_PAUSED.with_label_values(&[job_type]).set(tenants.len() as i64);
        }
        if let Ok(depth) = queue.depth(job_type).await {
            let mut other = 0;
            for t in &depth.tenants {
                if t.waiting > tenant_series.threshold || tenant_series.always.contains(&t.tenant) {
                    TENANT_WAITING.with_label_values(&[job_type, &t.tenant]).set(t.waiting as i64);
                } else {
                    other += t.waiting as i64;
                }
            }
            TENANT_WAITING.with_label_values(&[job_type, "other"]).set(other);
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
