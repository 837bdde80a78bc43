//! Storing and queueing new jobs in batches: the API's submissions, and the
//! follow-up jobs that jobs queue (e.g. SMS delivery checks).
//!
//! Inserts (and then pushes to Redis) go through [`Batcher`]s: concurrent submissions are gathered
//! into one multi-row INSERT (one round trip, one commit). At a few thousand
//! submissions a second that is what keeps PostgreSQL's commit rate — and the
//! API's tail latency — low, without weakening durability: a client gets its
//! 202 only after its row is committed.

use crate::queue::{Enqueue, Queue, QueueError};
use crate::registry::JobKind;
use peyk_schema::queries::jobs::insert_batch;
use peyk_schema::{Batcher, DbPool, JobRow, NewJob};
use uuid::Uuid;

/// A job Peyk queues itself (a follow-up, a pipeline step): no idempotency
/// key, default priority, the type's default attempts; `scheduled` when
/// `run_at` is ahead, else `queued`.
pub fn system_job<C>(tenant: Uuid, kind: &JobKind<C>, payload: serde_json::Value, run_at: chrono::DateTime<chrono::Utc>) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        job_type: kind.name.to_string(),
        status: if run_at > chrono::Utc::now() { "scheduled" } else { "queued" }.to_string(),
        payload,
        max_attempts: kind.default_max_attempts,
        priority: 0,
        idempotency_key: None,
        request_hash: None,
        run_at,
        queue_task_id: Some(ulid::Ulid::new().to_string()),
        pipeline_id: None,
        pipeline_step: None,
        schedule_id: None,
        metadata: serde_json::json!({}),
        callback: None,
    }
}

/// Answers `Some(row)` when inserted, `None` when the tenant's idempotency
/// key already exists.
pub type Inserter = Batcher<NewJob, Option<JobRow>>;

/// Two inserts at once: with four, the API's submissions made batches of
/// four rows on average, each its own commit; two halve PostgreSQL's time
/// per job at the same rate (2026-12-06, `bench/run.sh`), and give more
/// submissions a second than one or three.
pub const INSERTS_AT_ONCE: usize = 2;

pub fn start_inserter(pool: DbPool) -> Inserter {
    Batcher::start(256, INSERTS_AT_ONCE, move |jobs: Vec<NewJob>| {
        let pool = pool.clone();
        async move { insert_batch(&pool, jobs).await }
    })
}

/// Pushes stored jobs onto their Redis queues, many per round trip.
pub type Pusher = Batcher<Enqueue, (), QueueError>;

pub fn start_pusher(queue: Queue) -> Pusher {
    Batcher::start(256, 4, move |entries: Vec<Enqueue>| {
        let queue = queue.clone();
        async move {
            queue.enqueue_many(&entries).await?;
            Ok(vec![(); entries.len()])
        }
    })
}
