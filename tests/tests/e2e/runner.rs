//! The runner on its own, with toy job types in a registry of the test's
//! (after crates.io's `crates_io_worker/tests/runner.rs`): what a panic, a
//! timeout, a cancel while running, a permanent error, exhausted attempts
//! and an unknown type do to the job's record. Real PostgreSQL and Redis;
//! no worker binary, no apalis consumer: each test hands the runner the
//! entry a consumer would have fetched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peyk_queue::queue::{Queue, QueueTimings, QueuedJob};
use peyk_queue::retry::Backoff;
use peyk_queue::runner::{Runner, RunnerSettings, Silent};
use peyk_queue::{Backbone, Job, JobError, JobKind, Registry, ValidationErrors};
use peyk_schema::{DbPool, JobRow, JobStatus, TenantId};
use peyk_tests::TestEnv;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Counts the runs of each toy type, so a test can tell whether its handler ran.
static RUNS: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];

macro_rules! toy {
    ($name:ident, $type:literal, $index:literal, $timeout_ms:literal, |$job:ident| $body:expr) => {
        #[derive(Serialize, Deserialize, utoipa::ToSchema)]
        struct $name {
            #[serde(default)]
            note: String,
        }

        impl Job for $name {
            type Clients = Backbone;
            const TYPE: &'static str = $type;
            const ATTEMPT_TIMEOUT: Duration = Duration::from_millis($timeout_ms);

            fn validate(&self) -> Result<(), ValidationErrors> {
                Ok(())
            }

            async fn run(self, _ctx: &peyk_queue::JobContext<Backbone>) -> Result<Value, JobError> {
                RUNS[$index].fetch_add(1, Ordering::SeqCst);
                let $job = self;
                $body
            }
        }
    };
}

toy!(Succeeds, "toy_succeeds", 0, 5000, |job| Ok(json!({ "echo": job.note })));
toy!(Panics, "toy_panics", 1, 5000, |job| panic!("toy panic: {}", job.note));
toy!(Hangs, "toy_hangs", 2, 300, |_job| {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(Value::Null)
});
toy!(Refuses, "toy_refuses", 3, 5000, |_job| Err(JobError::permanent("toy_refused", "never succeeds")));
toy!(Flaky, "toy_flaky", 4, 5000, |_job| Err(JobError::retry("toy_flaky", "might succeed later")));
// Runs until it is stopped; its handler's future being dropped is how a
// stop reaches it.
toy!(RunsUntilStopped, "toy_runs_until_stopped", 5, 60000, |_job| {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(Value::Null)
});

// Would succeed, if it ran (the test where its worker is lost).
toy!(WouldSucceed, "toy_would_succeed", 6, 5000, |_job| Ok(Value::Null));

fn toy_registry() -> Registry<Backbone> {
    Registry::new()
        .register::<Succeeds>()
        .register::<Panics>()
        .register::<Hangs>()
        .register::<Refuses>()
        .register::<Flaky>()
        .register::<RunsUntilStopped>()
        .register::<WouldSucceed>()
}

struct Harness {
    pool: DbPool,
    /// The runner's claim and finish connections.
    batch_pool: DbPool,
    tenant: TenantId,
    runner: Arc<Runner<Backbone>>,
    env: TestEnv,
}

impl Harness {
    async fn new(name: &str) -> Self {
        let env = TestEnv::new(name).await;
        let pool = peyk_schema::connect_pool(&env.database_url, 4).unwrap();
        use peyk_schema::queries::api_keys::{create_key, NewKey, Scopes};
        let new = NewKey { tenant_name: "toys", key: "peyk_toys_unused", name: "", scopes: Scopes::tenant(), expires_at: None };
        let tenant = TenantId(create_key(&pool, &new).await.unwrap().tenant_id);
        let registry = Arc::new(toy_registry());
        let conn = peyk_queue::queue::connect_with_retry(&env.redis_url).await;
        let queue = Queue::new(conn, &env.prefix, &QueueTimings::default(), &registry.names());
        // Toy jobs need no provider: their clients are the queue's own handles.
        let clients = Arc::new(Backbone::start(pool.clone(), queue));
        let backoff = Backoff { base: Duration::from_secs(30), max: Duration::from_secs(60) };
        let batch_pool = peyk_schema::connect_batch_pool(&env.database_url, peyk_queue::runner::BATCH_CONNECTIONS).unwrap();
        let settings = RunnerSettings {
            worker_id: format!("runner-test-{name}"),
            lease: Duration::from_secs(30),
            backoff,
            batch_pool: batch_pool.clone(),
        };
        let runner = Runner::start(clients, registry, Arc::new(Silent), settings);
        Self { pool, batch_pool, tenant, runner, env }
    }

    /// Stores a job of type `J` and returns it with the entry a consumer
    /// would have fetched for it.
    async fn store<J: Job>(&self, max_attempts: i32) -> (JobRow, QueuedJob) {
        let mut job = peyk_queue::submit::system_job(self.tenant.0, &JobKind::of::<J>(), json!({ "note": "hi" }), chrono::Utc::now());
        job.max_attempts = max_attempts;
        let row = peyk_schema::queries::jobs::insert_batch(&self.pool, vec![job]).await.unwrap().remove(0).unwrap();
        let entry = QueuedJob { job_id: row.id, tenant: Some(row.tenant_id), priority: row.priority, not_before_ms: None };
        (row, entry)
    }

    /// Hands the entry to the runner as its consumer would; returns how long it took.
    async fn run(&self, row: &JobRow, entry: QueuedJob) -> Duration {
        let started = Instant::now();
        let task_id = row.queue_task_id.clone().expect("a queued job has a task id");
        self.runner.handle(&row.job_type, "runner-test-consumer", entry, task_id).await;
        started.elapsed()
    }

    async fn reload(&self, row: &JobRow) -> JobRow {
        peyk_schema::queries::jobs::get(&self.pool, self.tenant, row.id).await.unwrap().expect("the job exists")
    }
}

/// How each of `pool`'s connections (the runner's `BATCH_CONNECTIONS`) plans its prepared statements.
async fn plan_cache_modes(pool: &DbPool) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        plan_cache_mode: String,
    }
    let mut connections = Vec::new();
    for _ in 0..peyk_queue::runner::BATCH_CONNECTIONS {
        connections.push(pool.get().await.unwrap());
    }
    let mut modes = Vec::new();
    for conn in &mut connections {
        let setting: Setting = diesel_async::RunQueryDsl::get_result(diesel::sql_query("SHOW plan_cache_mode"), conn).await.unwrap();
        modes.push(setting.plan_cache_mode);
    }
    modes
}

fn runs_of(index: usize) -> usize {
    RUNS[index].load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_result_is_recorded_as_succeeded() {
    let harness = Harness::new("runner-ok").await;
    let (row, entry) = harness.store::<Succeeds>(3).await;
    harness.run(&row, entry).await;
    let row = harness.reload(&row).await;
    assert_eq!(row.status, JobStatus::Succeeded.as_str());
    assert_eq!(row.result, Some(json!({ "echo": "hi" })));
    assert_eq!(row.attempts, 1);
}

/// Claims and finishes plan every run while the tables are small (a plan
/// kept from then would scan them whole once they grew), and keep their
/// plans once the tables are large: jobs come out the same either way.
#[tokio::test]
async fn claims_keep_their_plans_only_once_the_tables_are_large() {
    let harness = Harness::new("runner-plans").await;
    let (row, entry) = harness.store::<Succeeds>(3).await;
    harness.run(&row, entry).await;
    assert_eq!(harness.reload(&row).await.status, JobStatus::Succeeded.as_str());
    assert_eq!(plan_cache_modes(&harness.batch_pool).await, vec!["force_custom_plan"; peyk_queue::runner::BATCH_CONNECTIONS]);

    // Finished jobs and their attempts, past the sizes that keep plans.
    harness
        .env
        .sql_exec(
            "INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, attempts, run_at, finished_at)
             SELECT gen_random_uuid(), tenant_id, job_type, 'succeeded', jsonb_build_object('note', repeat('x', 200)), 1, 1, now(), now()
               FROM jobs, generate_series(1, 60000) LIMIT 60000",
        )
        .await;
    harness
        .env
        .sql_exec(
            "INSERT INTO job_attempts (job_id, attempt, worker, outcome, finished_at, error_message)
             SELECT id, 1, 'filler', 'succeeded', now(), repeat('x', 100) FROM jobs",
        )
        .await;
    let jobs = harness.env.sql_count("SELECT pg_relation_size('jobs') AS n").await;
    let attempts = harness.env.sql_count("SELECT pg_relation_size('job_attempts') AS n").await;
    let (jobs_from, attempts_from) = peyk_schema::kept_plans::KEEP_PLANS_FROM;
    assert!(jobs >= jobs_from && attempts >= attempts_from, "the filler is too small: {jobs} and {attempts} bytes");

    tokio::time::sleep(peyk_schema::kept_plans::PLANNING_RECHECK + Duration::from_secs(1)).await;
    assert_eq!(plan_cache_modes(&harness.batch_pool).await, vec!["force_generic_plan"; peyk_queue::runner::BATCH_CONNECTIONS]);
    for _ in 0..6 {
        let (row, entry) = harness.store::<Succeeds>(3).await;
        harness.run(&row, entry).await;
        let row = harness.reload(&row).await;
        assert_eq!((row.status.as_str(), row.attempts), (JobStatus::Succeeded.as_str(), 1));
    }
}

#[tokio::test]
async fn a_panic_is_a_retryable_failure_and_the_runner_lives_on() {
    let harness = Harness::new("runner-panic").await;
    let (row, entry) = harness.store::<Panics>(3).await;
    harness.run(&row, entry).await;
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Scheduled.as_str(), "retried later with backoff");
    assert_eq!(after.error_code.as_deref(), Some("panic"));
    assert!(after.error_message.as_deref().unwrap_or("").contains("toy panic: hi"), "{:?}", after.error_message);
    assert!(after.run_at > chrono::Utc::now() + chrono::Duration::seconds(10), "backoff applied: {}", after.run_at);
    assert_ne!(after.queue_task_id, row.queue_task_id, "the retry is a new queue entry");
    // The same runner still runs jobs.
    let (ok, entry) = harness.store::<Succeeds>(1).await;
    harness.run(&ok, entry).await;
    assert_eq!(harness.reload(&ok).await.status, "succeeded");
}

#[tokio::test]
async fn an_attempt_past_its_time_limit_is_abandoned_and_retried() {
    let harness = Harness::new("runner-timeout").await;
    let (row, entry) = harness.store::<Hangs>(3).await;
    let took = harness.run(&row, entry).await;
    assert!(took < Duration::from_secs(10), "abandoned at its 300 ms limit, not after the handler's 60 s: {took:?}");
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Scheduled.as_str());
    assert_eq!(after.error_code.as_deref(), Some("attempt_timeout"));
}

#[tokio::test]
async fn a_job_cancelled_while_it_runs_is_stopped_and_its_outcome_discarded() {
    let harness = Harness::new("runner-cancel").await;
    let (row, entry) = harness.store::<RunsUntilStopped>(3).await;
    let runs_before = runs_of(5);
    let running = {
        let runner = harness.runner.clone();
        let task_id = row.queue_task_id.clone().unwrap();
        let queue = row.job_type.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            runner.handle(&queue, "runner-test-consumer", entry, task_id).await;
            started.elapsed()
        })
    };
    // Wait until the handler runs, then cancel as the API does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs_of(5) == runs_before {
        assert!(Instant::now() < deadline, "the handler never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled = peyk_schema::queries::jobs::cancel(&harness.pool, harness.tenant, row.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, "cancelled");
    // What the worker's cancel watcher does every 200 ms.
    let stopped = harness.runner.stop_lost_jobs(Duration::ZERO).await.unwrap();
    assert_eq!(stopped, 1);
    let took = tokio::time::timeout(Duration::from_secs(10), running).await.expect("the handler stopped").unwrap();
    assert!(took < Duration::from_secs(20), "stopped, not run to its end: {took:?}");
    let after = harness.reload(&row).await;
    assert_eq!(after.status, "cancelled", "the stopped attempt's outcome is discarded, not recorded over the cancel");
    assert_eq!(after.error_code, None);
    assert!(harness.runner.in_flight.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_permanent_error_fails_the_job_at_once() {
    let harness = Harness::new("runner-permanent").await;
    let (row, entry) = harness.store::<Refuses>(5).await;
    harness.run(&row, entry).await;
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Failed.as_str());
    assert_eq!((after.attempts, after.error_code.as_deref()), (1, Some("toy_refused")), "no retry of what can never succeed");
}

#[tokio::test]
async fn a_retryable_error_on_the_last_attempt_makes_the_job_dead() {
    let harness = Harness::new("runner-dead").await;
    let (row, entry) = harness.store::<Flaky>(1).await;
    harness.run(&row, entry).await;
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Dead.as_str());
    assert_eq!(after.error_code.as_deref(), Some("toy_flaky"));
    assert!(after.error_message.as_deref().unwrap_or("").contains("gave up after 1 attempts"), "{:?}", after.error_message);
}

#[tokio::test]
async fn a_job_whose_every_attempt_lost_its_worker_is_dead_without_running_again() {
    let harness = Harness::new("runner-lost").await;
    let (row, entry) = harness.store::<WouldSucceed>(1).await;
    // Its only attempt was claimed by a worker that then vanished: the
    // claim lapsed and the attempt never reported.
    let mut conn = harness.pool.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "WITH gone AS (UPDATE jobs SET status = 'running', attempts = 1, locked_by = 'vanished', lease_until = now() - interval '1 second'
                        WHERE id = '{}' RETURNING id)
         INSERT INTO job_attempts (job_id, attempt, worker) SELECT id, 1, 'vanished' FROM gone",
        row.id
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    harness.run(&row, entry).await;
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Dead.as_str());
    assert_eq!(after.error_code.as_deref(), Some("worker_lost"));
    assert_eq!(runs_of(6), 0, "the handler did not run again");
}

#[tokio::test]
async fn a_type_this_registry_lacks_fails_with_a_clear_reason() {
    let harness = Harness::new("runner-unknown").await;
    let (row, entry) = harness.store::<peyk_jobs::webhook::WebhookJob>(3).await;
    harness.run(&row, entry).await;
    let after = harness.reload(&row).await;
    assert_eq!(after.status, JobStatus::Failed.as_str());
    assert_eq!(after.error_code.as_deref(), Some("unknown_type"));
}
