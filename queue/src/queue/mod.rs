//! Peyk's Redis queues, one per job type, kept by apalis-redis.
//!
//! A queue entry carries only the job id: the payload and everything a user
//! sees live in PostgreSQL. Each entry is an apalis task whose id the job row
//! records (`jobs.queue_task_id`), so a worker can tell a current entry from
//! a stale duplicate, and the sweeper can tell a job Redis has lost.
//!
//! apalis-redis 0.7.4 keeps, under the namespace `{prefix}:{job_type}`:
//! `:active` (list), `:scheduled` (zset, seconds), `:inflight:{worker}`
//! (sets), `:consumers` (zset of live workers), `:data` (task bodies),
//! `:data::result`, `:done` and `:dead` (zsets). Peyk adds `:delayed`
//! (zset, due time in Unix ms): tasks that may start only later, moved into
//! their tenants' sets by every consumer five times a second, all that fell
//! due in one script call (apalis's `:scheduled` counts whole seconds and
//! moves a few dozen a call; it only still holds tasks scheduled by older
//! versions). Waiting tasks do not stay
//! on `:active`: Peyk keeps them per tenant and per priority level under
//! `:fair:` and takes them round-robin across tenants ([`fair`], whose
//! layout `lua/fair.lua` explains); `:active` is an inbox that apalis's
//! own scripts still fill (scheduled tasks falling due, tasks of dead
//! consumers) and that the fetch script sorts first. Besides that, our
//! scripts do batched pushes, batched acknowledgement, release of a task
//! that could not start, a bounded clean-up of finished tasks (apalis's
//! `vacuum` is unbounded and forgets `:data::result`), and a hand-back of
//! a stopping worker's unstarted tasks (each in `lua/`). [`cluster`] is what
//! worker processes tell each other through the same Redis: who is alive,
//! and who leads a periodic duty. [`live`] is what a running job shows as
//! it goes (`{prefix}:live:{job_id}`, a stream per job).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::codec::json::JsonCodec;
use apalis_core::codec::Codec;
use apalis_core::request::{Parts, Request};
use apalis_core::task::task_id::TaskId;
use apalis_redis::{Config, RedisContext, RedisStorage};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod activity;
mod cluster;
mod fair;
mod limits;
pub mod live;
mod usage;

pub use activity::QueueActivity;
pub use fair::{FetchedTask, TenantDepth, MAX_PRIORITY};
pub use limits::{Rate, TenantTokens, Token};
pub use usage::{start_charger, usage_charges, Charge, Charger, OverQuota, Period, UsageKind, UsageTally, Use};

/// What a queue entry carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job_id: Uuid,
    /// Whose job it is and its priority: what the fair fetch sorts a task by
    /// when apalis hands it back through the inbox (see [`fair`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Uuid>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i16,
    /// The exact time the job may start (Unix ms): the worker waits out any
    /// rest (an entry of apalis's `:scheduled` falls due by whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<i64>,
}

/// An entry ready to push, with its encoded task.
type EncodedEntry<'a> = (&'a Enqueue, Vec<u8>);

/// Entries per script call: one call blocks Redis while it runs.
const ENTRIES_PER_CALL: usize = 1000;

/// Delayed tasks moved per consumer per promotion (Lua's `unpack` takes a
/// few thousand values at most).
const PROMOTE_AT_ONCE: usize = 5000;

fn is_zero(n: &i16) -> bool {
    *n == 0
}

pub type JobStorage = RedisStorage<QueuedJob>;

/// Timings of the apalis-redis consumers (the defaults suit production; the
/// tests shorten none of them).
#[derive(Debug, Clone)]
pub struct QueueTimings {
    pub poll_interval: Duration,
    pub buffer_size: usize,
    pub keep_alive: Duration,
    pub enqueue_scheduled: Duration,
    pub reenqueue_orphaned_after: Duration,
}

impl Default for QueueTimings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(20),
            buffer_size: 64,
            keep_alive: Duration::from_secs(5),
            enqueue_scheduled: Duration::from_millis(200),
            reenqueue_orphaned_after: Duration::from_secs(30),
        }
    }
}

/// The channel [`Queue::announce_finished`] publishes on.
pub fn finished_channel(prefix: &str) -> String {
    format!("{prefix}:finished")
}

pub fn namespace(prefix: &str, job_type: &str) -> String {
    format!("{prefix}:{job_type}")
}

pub fn apalis_config(prefix: &str, job_type: &str, timings: &QueueTimings) -> Config {
    Config::default()
        .set_namespace(&namespace(prefix, job_type))
        .set_poll_interval(timings.poll_interval)
        .set_buffer_size(timings.buffer_size)
        .set_keep_alive(timings.keep_alive)
        .set_enqueue_scheduled(timings.enqueue_scheduled)
        .set_reenqueue_orphaned_after(timings.reenqueue_orphaned_after)
}

/// Connects with short timeouts, so that callers learn quickly that Redis is
/// down (the API answers 503) while the manager reconnects in the background.
pub async fn connect(redis_url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(redis_url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2)
        .set_max_delay(1000);
    client.get_connection_manager_with_config(config).await
}

/// Waits for Redis at start-up, logging each failed try.
pub async fn connect_with_retry(redis_url: &str) -> ConnectionManager {
    let mut delay = Duration::from_millis(200);
    loop {
        match connect(redis_url).await {
            Ok(conn) => return conn,
            Err(e) => {
                tracing::warn!(error = %e, "redis not reachable yet; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One entry to put on a queue.
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub job_type: String,
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub task_id: String,
    pub run_at: DateTime<Utc>,
    pub priority: i16,
    /// At the front of its tenant's priority level rather than the back: a
    /// job handed back unstarted keeps its turn.
    pub front: bool,
}

impl Enqueue {
    /// The entry that stands for a stored job (`None` for a row without a
    /// task id, which nothing pushes).
    pub fn for_row(row: &peyk_schema::JobRow) -> Option<Self> {
        Some(Self {
            job_type: row.job_type.clone(),
            job_id: row.id,
            tenant_id: row.tenant_id,
            task_id: row.queue_task_id.clone()?,
            run_at: row.run_at,
            priority: row.priority,
            front: false,
        })
    }

    /// The entry for a job about to be stored (or just stored) from `new`.
    pub fn for_new(new: &peyk_schema::NewJob) -> Option<Self> {
        Some(Self {
            job_type: new.job_type.clone(),
            job_id: new.id,
            tenant_id: new.tenant_id,
            task_id: new.queue_task_id.clone()?,
            run_at: new.run_at,
            priority: new.priority,
            front: false,
        })
    }

    /// The entry for a job whose row says it waits in Redis.
    pub fn for_waiting(job: &peyk_schema::queries::worker::WaitingJob) -> Self {
        Self {
            job_type: job.job_type.clone(),
            job_id: job.id,
            tenant_id: job.tenant_id,
            task_id: job.queue_task_id.clone(),
            run_at: job.run_at,
            priority: job.priority,
            front: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub scheduled: u64,
    pub in_flight: u64,
    /// The waiting tasks by tenant (paused or not); `waiting` is their sum
    /// plus the inbox not yet sorted.
    pub tenants: Vec<TenantDepth>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error("invalid task id `{0}`")]
    InvalidTaskId(String),
}

struct Scripts {
    ack: Script,
    replace_caps: Script,
    charge: Script,
    token_bucket: Script,
    release: Script,
    push: Script,
    delay: Script,
    promote: Script,
    fetch: Script,
    pause_tenant: Script,
    expire_finished: Script,
    hand_back: Script,
}

/// A script that places or takes waiting tasks: `lua/fair.lua`'s functions
/// come first.
fn fair_script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/fair.lua")))
}

/// The producer side (and the bookkeeping) of every queue.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    prefix: String,
    storages: Arc<HashMap<&'static str, JobStorage>>,
    scripts: Arc<Scripts>,
}

impl Queue {
    /// One queue per name (a registry's type names).
    pub fn new(conn: ConnectionManager, prefix: &str, timings: &QueueTimings, names: &[&'static str]) -> Self {
        let storages =
            names.iter().map(|name| (*name, JobStorage::new_with_config(conn.clone(), apalis_config(prefix, name, timings)))).collect();
        Self {
            conn,
            prefix: prefix.to_string(),
            storages: Arc::new(storages),
            scripts: Arc::new(Scripts {
                ack: fair_script(include_str!("lua/ack.lua")),
                replace_caps: fair_script(include_str!("lua/replace_caps.lua")),
                charge: Script::new(include_str!("lua/charge.lua")),
                token_bucket: Script::new(include_str!("lua/token_bucket.lua")),
                release: Script::new(include_str!("lua/release.lua")),
                push: fair_script(include_str!("lua/push.lua")),
                delay: Script::new(include_str!("lua/delay.lua")),
                promote: fair_script(include_str!("lua/promote.lua")),
                fetch: fair_script(include_str!("lua/fetch.lua")),
                pause_tenant: fair_script(include_str!("lua/pause_tenant.lua")),
                expire_finished: Script::new(include_str!("lua/expire_finished.lua")),
                hand_back: fair_script(include_str!("lua/hand_back.lua")),
            }),
        }
    }

    /// The Redis connection the queues use (multiplexed; cheap to clone),
    /// for job types that keep small shared state there (rate limits).
    pub fn redis(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The names of the queues.
    pub fn names(&self) -> Vec<&'static str> {
        self.storages.keys().copied().collect()
    }

    fn storage(&self, job_type: &str) -> Result<JobStorage, QueueError> {
        self.storages.get(job_type).cloned().ok_or_else(|| QueueError::UnknownQueue(job_type.to_string()))
    }

    fn config(&self, job_type: &str) -> Result<Config, QueueError> {
        Ok(self.storage(job_type)?.get_config().clone())
    }

    /// Puts one entry on its queue; see [`Queue::enqueue_many`].
    pub async fn enqueue(&self, entry: &Enqueue) -> Result<(), QueueError> {
        self.enqueue_many(std::slice::from_ref(entry)).await
    }

    /// Puts entries on their queues: into the delayed set when `run_at` is
    /// in the future, else straight into their tenant's waiting set at
    /// their priority. The entries of one queue go in one script call per
    /// thousand, so a batch costs a round trip or a few.
    pub async fn enqueue_many(&self, entries: &[Enqueue]) -> Result<(), QueueError> {
        let now = Utc::now();
        // (job type, at the front?) → entries with their encoded tasks
        let mut immediate: HashMap<(&str, bool), Vec<EncodedEntry<'_>>> = HashMap::new();
        let mut delayed: HashMap<&str, Vec<EncodedEntry<'_>>> = HashMap::new();
        for entry in entries {
            let task_id: TaskId = entry.task_id.parse().map_err(|_| QueueError::InvalidTaskId(entry.task_id.clone()))?;
            let later = entry.run_at > now;
            let message = QueuedJob {
                job_id: entry.job_id,
                tenant: Some(entry.tenant_id),
                priority: entry.priority,
                not_before_ms: later.then(|| entry.run_at.timestamp_millis()),
            };
            let mut parts: Parts<RedisContext> = Parts::default();
            parts.task_id = task_id;
            let body = JsonCodec::<Vec<u8>>::encode(Request::new_with_parts(message, parts))
                .map_err(|e| redis::RedisError::from((redis::ErrorKind::IoError, "encode", e.to_string())))?;
            if later {
                delayed.entry(entry.job_type.as_str()).or_default().push((entry, body));
            } else {
                immediate.entry((entry.job_type.as_str(), entry.front)).or_default().push((entry, body));
            }
        }
        let mut conn = self.conn.clone();
        for ((job_type, front), tasks) in immediate {
            let config = self.config(job_type)?;
            for chunk in tasks.chunks(ENTRIES_PER_CALL) {
                let mut invocation = self.scripts.push.key(config.job_data_hash());
                invocation.arg(namespace(&self.prefix, job_type)).arg(if front { "front" } else { "back" });
                for (entry, body) in chunk {
                    invocation.arg(&entry.task_id).arg(body).arg(entry.tenant_id.to_string()).arg(entry.priority);
                }
                let _: i64 = invocation.invoke_async(&mut conn).await?;
            }
        }
        for (job_type, tasks) in delayed {
            let config = self.config(job_type)?;
            for chunk in tasks.chunks(ENTRIES_PER_CALL) {
                let mut invocation = self.scripts.delay.key(config.job_data_hash());
                invocation.arg(namespace(&self.prefix, job_type));
                for (entry, body) in chunk {
                    invocation.arg(&entry.task_id).arg(body).arg(entry.run_at.timestamp_millis());
                }
                let _: i64 = invocation.invoke_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Tells whoever waits for these jobs or pipelines (`GET /v1/jobs/{id}?wait=`,
    /// [`crate::finished`]) that they ended: one `PUBLISH` of their ids.
    /// Best effort: a waiter that misses it reads the row at its timeout.
    pub async fn announce_finished(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let message = ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
        let mut conn = self.conn.clone();
        if let Err(e) = redis::cmd("PUBLISH").arg(finished_channel(&self.prefix)).arg(message).query_async::<i64>(&mut conn).await {
            tracing::debug!(error = %e, "could not announce finished jobs");
        }
    }

    /// Moves the delayed tasks of `job_type` that fell due into their
    /// tenants' waiting sets; answers how late each was moved.
    pub async fn promote_due(&self, job_type: &str) -> Result<Vec<Duration>, QueueError> {
        let config = self.config(job_type)?;
        let mut conn = self.conn.clone();
        let late_ms: Vec<i64> = self
            .scripts
            .promote
            .key(config.job_data_hash())
            .arg(namespace(&self.prefix, job_type))
            .arg(PROMOTE_AT_ONCE)
            .invoke_async(&mut conn)
            .await?;
        Ok(late_ms.into_iter().map(|ms| Duration::from_millis(ms.max(0) as u64)).collect())
    }

    /// Marks tasks done: removes each from its consumer's in-flight set
    /// (and from its tenant's running count) and records it in the done set (which the sweeper expires), all in one
    /// round trip. Peyk acknowledges itself, in batches, instead of through
    /// apalis's per-task acknowledgement (three sequential round trips, and
    /// an unbounded queue of pending acknowledgements when they lag).
    pub async fn ack(&self, job_type: &str, done: &[(String, String)]) -> Result<(), QueueError> {
        if done.is_empty() {
            return Ok(());
        }
        let config = self.config(job_type)?;
        let mut invocation = self.scripts.ack.key(config.done_jobs_set());
        invocation.arg(namespace(&self.prefix, job_type)).arg(Utc::now().timestamp());
        for (consumer, task_id) in done {
            invocation.arg(format!("{}:{}", config.inflight_jobs_set(), consumer)).arg(task_id);
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Puts a task a consumer could not start back at the tail of its queue.
    pub async fn release(&self, job_type: &str, consumer: &str, task_id: &str) -> Result<(), QueueError> {
        let config = self.config(job_type)?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .release
            .key(format!("{}:{}", config.inflight_jobs_set(), consumer))
            .key(config.active_jobs_list())
            .arg(task_id)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether each task is still known to Redis (waiting, scheduled or in flight).
    pub async fn contains(&self, job_type: &str, task_ids: &[String]) -> Result<Vec<bool>, QueueError> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let data_hash = self.config(job_type)?.job_data_hash();
        let mut pipe = redis::pipe();
        for task_id in task_ids {
            pipe.hexists(&data_hash, task_id);
        }
        let mut conn = self.conn.clone();
        Ok(pipe.query_async(&mut conn).await?)
    }

    /// How many tasks wait (in the inbox and every tenant's set, and by
    /// tenant), are scheduled, and are in flight.
    pub async fn depth(&self, job_type: &str) -> Result<QueueDepth, QueueError> {
        let config = self.config(job_type)?;
        let mut conn = self.conn.clone();
        let (inbox, scheduled, delayed, consumers): (u64, u64, u64, Vec<String>) = redis::pipe()
            .llen(config.active_jobs_list())
            .zcard(config.scheduled_jobs_set())
            .zcard(format!("{}:delayed", namespace(&self.prefix, job_type)))
            .zrange(config.consumers_set(), 0, -1)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for inflight_set in &consumers {
            pipe.scard(inflight_set);
        }
        let in_flight: Vec<u64> = if consumers.is_empty() { Vec::new() } else { pipe.query_async(&mut conn).await? };
        let tenants = self.tenant_depths(job_type).await?;
        let waiting: u64 = tenants.iter().map(|tenant| tenant.waiting).sum();
        Ok(QueueDepth { waiting: inbox + waiting, scheduled: scheduled + delayed, in_flight: in_flight.iter().sum(), tenants })
    }

    /// Deletes up to `limit` finished tasks older than `older_than` (their
    /// results live in PostgreSQL); returns how many it deleted.
    pub async fn expire_finished(&self, job_type: &str, older_than: Duration, limit: usize) -> Result<usize, QueueError> {
        let config = self.config(job_type)?;
        let cutoff = Utc::now().timestamp() - older_than.as_secs() as i64;
        let mut conn = self.conn.clone();
        Ok(self
            .scripts
            .expire_finished
            .key(config.done_jobs_set())
            .key(config.dead_jobs_set())
            .key(config.job_data_hash())
            .key(format!("{}::result", config.job_data_hash()))
            .arg(cutoff)
            .arg(limit)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Puts the tasks a stopping apalis worker fetched but did not finish back
    /// at the front of their tenants' sets, and unregisters the worker.
    pub async fn hand_back(&self, job_type: &str, apalis_worker: &str) -> Result<usize, QueueError> {
        let config = self.config(job_type)?;
        let inflight_set = format!("{}:{}", config.inflight_jobs_set(), apalis_worker);
        let mut conn = self.conn.clone();
        Ok(self
            .scripts
            .hand_back
            .key(inflight_set)
            .key(config.consumers_set())
            .key(config.job_data_hash())
            .arg(namespace(&self.prefix, job_type))
            .invoke_async(&mut conn)
            .await?)
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// A counter that moves whenever an API key is revoked or changed: each
    /// API process reads it a few times a second and forgets the keys it
    /// cached when it moves, so a revocation holds everywhere within a second.
    pub async fn keys_epoch(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let epoch: Option<u64> = conn.get(self.keys_epoch_key()).await?;
        Ok(epoch.unwrap_or(0))
    }

    pub async fn bump_keys_epoch(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        Ok(conn.incr(self.keys_epoch_key(), 1).await?)
    }

    fn keys_epoch_key(&self) -> String {
        format!("{}:keys:epoch", self.prefix)
    }
}
