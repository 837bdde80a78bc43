//! The apalis side: for each queue this worker serves, a few apalis
//! consumers sharing the queue's concurrency. apalis runs the handlers
//! (concurrency, graceful stop); what feeds them is Peyk's own backend,
//! [`FairBackend`], which takes tasks fairly across tenants and only as
//! many as the consumer has free slots for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::Backend;
use apalis_core::builder::{WorkerBuilder, WorkerFactoryFn};
use apalis_core::codec::json::JsonCodec;
use apalis_core::codec::Codec;
use apalis_core::layers::extensions::Data;
use apalis_core::poller::controller::Controller;
use apalis_core::poller::stream::BackendStream;
use apalis_core::poller::Poller;
use apalis_core::request::{Request, RequestStream};
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::{Context, Worker};
use apalis_redis::RedisContext;
use chrono::Utc;
use futures::channel::mpsc;
use futures::{FutureExt, SinkExt};
use tokio::sync::Notify;
use tower::layer::util::Identity;

use crate::metrics::DELAY_LATENESS;
use crate::queue::{apalis_config, JobStorage, Queue, QueueTimings, QueuedJob};
use crate::runner::Runner;
use crate::Clients;

/// One running apalis consumer.
pub struct Consumer {
    pub queue: String,
    /// The apalis worker name; its in-flight set in Redis is named after it.
    pub name: String,
    pub handle: Worker<Context>,
    pub task: tokio::task::JoinHandle<()>,
}

type Task = Request<QueuedJob, RedisContext>;

/// How many tasks a consumer holds (fetched and not yet finished) against
/// how many it may run. Fetching no more than the free slots keeps tasks in
/// the shared queue, where the fair order applies, rather than in one
/// consumer's buffer behind another tenant's long jobs.
struct Slots {
    capacity: usize,
    held: AtomicUsize,
    freed: Notify,
}

impl Slots {
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.held.load(Ordering::Acquire))
    }
}

/// Frees its slot when the task's handler ends, however it ends.
struct Held(Arc<Slots>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

/// Peyk's backend for one consumer: it registers the consumer, takes tasks
/// with the fair fetch script (`Queue::fetch`), and keeps apalis-redis for
/// promoting scheduled tasks and recovering the tasks of consumers that
/// died. Tasks are acknowledged by the runner, in batches, after their
/// outcome is recorded (`Queue::ack`), not by an apalis layer (which costs
/// three sequential round trips per task).
struct FairBackend {
    queue: Queue,
    /// apalis-redis's storage, for what it still does for us.
    storage: JobStorage,
    job_type: String,
    consumer: String,
    slots: Arc<Slots>,
    timings: QueueTimings,
}

/// How often a consumer looks for tasks of dead consumers to recover
/// (apalis looks every poll, 50 times a second).
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

impl Backend<Task> for FairBackend {
    type Stream = BackendStream<RequestStream<Task>>;
    type Layer = Identity;
    type Codec = JsonCodec<Vec<u8>>;

    fn poll(self, worker: &Worker<Context>) -> Poller<Self::Stream, Self::Layer> {
        let (tx, rx) = mpsc::channel(self.slots.capacity);
        let stream: RequestStream<Task> = Box::pin(rx);
        let heartbeat = self.run(worker.clone(), tx).boxed();
        Poller::new_with_layer(BackendStream::new(stream, Controller::new()), heartbeat, Identity::new())
    }
}

impl FairBackend {
    async fn run(mut self, worker: Worker<Context>, mut tx: mpsc::Sender<Result<Option<Task>, apalis_core::error::Error>>) {
        self.recover_orphans().await;
        self.register().await;
        let mut keep_alive = tokio::time::interval(self.timings.keep_alive);
        let mut due = tokio::time::interval(self.timings.enqueue_scheduled);
        let mut orphans = tokio::time::interval(ORPHAN_CHECK);
        let mut poll = tokio::time::interval(self.timings.poll_interval);
        for timer in [&mut keep_alive, &mut due, &mut orphans, &mut poll] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let slots = self.slots.clone();
        loop {
            tokio::select! {
                _ = keep_alive.tick() => self.register().await,
                _ = due.tick() => self.promote_due().await,
                _ = orphans.tick() => self.recover_orphans().await,
                // A slot freed, or the poll interval passed (new work may have come).
                _ = slots.freed.notified() => self.fill(&worker, &mut tx).await,
                _ = poll.tick() => self.fill(&worker, &mut tx).await,
            }
        }
    }

    /// Moves delayed tasks that fell due into their waiting sets (and those
    /// of apalis's `:scheduled`, where older versions left some).
    async fn promote_due(&mut self) {
        match self.queue.promote_due(&self.job_type).await {
            Ok(late) => {
                let histogram = DELAY_LATENESS.with_label_values(&[&self.job_type]);
                late.iter().for_each(|late| histogram.observe(late.as_secs_f64()));
            }
            Err(e) => tracing::warn!(queue = %self.job_type, error = %e, "could not promote delayed tasks"),
        }
        if let Err(e) = self.storage.enqueue_scheduled(self.timings.buffer_size).await {
            tracing::warn!(queue = %self.job_type, error = %e, "could not promote scheduled tasks");
        }
    }

    /// Fetches tasks for every free slot, again at once while each fetch
    /// comes back full.
    async fn fill(&mut self, worker: &Worker<Context>, tx: &mut mpsc::Sender<Result<Option<Task>, apalis_core::error::Error>>) {
        loop {
            let want = self.slots.free().min(self.timings.buffer_size);
            if want == 0 || !worker.is_ready() {
                return;
            }
            let fetched = match self.queue.fetch(&self.job_type, &self.consumer, want).await {
                Ok(fetched) => fetched,
                Err(e) => {
                    tracing::warn!(queue = %self.job_type, error = %e, "could not fetch tasks");
                    if e.to_string().contains("consumer not registered") {
                        self.register().await;
                    }
                    return;
                }
            };
            let count = fetched.len();
            for (task_id, body) in fetched {
                let task: Task = match JsonCodec::<Vec<u8>>::decode(body) {
                    Ok(task) => task,
                    Err(e) => {
                        // Left in flight: recovered (and dropped again) only if this consumer dies.
                        tracing::error!(queue = %self.job_type, %task_id, error = %e, "undecodable task skipped");
                        continue;
                    }
                };
                self.slots.held.fetch_add(1, Ordering::AcqRel);
                if tx.send(Ok(Some(task))).await.is_err() {
                    return; // the worker stopped; the task is handed back with the rest
                }
            }
            if count < want {
                return;
            }
        }
    }

    async fn register(&self) {
        if let Err(e) = self.queue.register_consumer(&self.job_type, &self.consumer).await {
            tracing::warn!(queue = %self.job_type, error = %e, "could not register the consumer");
        }
    }

    /// Puts the tasks of consumers silent for `reenqueue_orphaned_after`
    /// back into the inbox, from where the next fetch places them.
    async fn recover_orphans(&mut self) {
        let dead_since = Utc::now() - chrono::Duration::from_std(self.timings.reenqueue_orphaned_after).unwrap_or_default();
        if let Err(e) = self.storage.reenqueue_orphaned((self.timings.buffer_size * 10) as i32, dead_since).await {
            tracing::warn!(queue = %self.job_type, error = %e, "could not recover orphaned tasks");
        }
    }
}

/// Which queue and which apalis consumer a task came through.
#[derive(Clone)]
struct Origin {
    queue: Arc<str>,
    consumer: Arc<str>,
    slots: Arc<Slots>,
}

async fn handle<C: Clients>(
    entry: QueuedJob,
    task_id: TaskId,
    runner: Data<Arc<Runner<C>>>,
    origin: Data<Origin>,
) -> Result<(), apalis_core::error::Error> {
    let _slot = Held(origin.slots.clone());
    // Every outcome is recorded in PostgreSQL by the runner, so apalis always
    // sees success and never applies its own retry logic.
    runner.handle(&origin.queue, &origin.consumer, entry, task_id.to_string()).await;
    Ok(())
}

pub fn start<C: Clients>(runner: Arc<Runner<C>>, prefix: &str, queue: &str, concurrency: usize, consumers: usize) -> Vec<Consumer> {
    let per_consumer = concurrency.div_ceil(consumers).max(1);
    let timings = QueueTimings { buffer_size: per_consumer.max(16), ..QueueTimings::default() };
    (0..consumers)
        .map(|index| {
            let name = format!("{}.{queue}.{index}", runner.worker_id);
            let slots = Arc::new(Slots { capacity: per_consumer, held: AtomicUsize::new(0), freed: Notify::new() });
            let backend = FairBackend {
                queue: runner.queue.clone(),
                storage: JobStorage::new_with_config(runner.queue.redis(), apalis_config(prefix, queue, &timings)),
                job_type: queue.to_string(),
                consumer: name.clone(),
                slots: slots.clone(),
                timings: timings.clone(),
            };
            let origin = Origin { queue: queue.into(), consumer: name.as_str().into(), slots };
            let worker = WorkerBuilder::new(&name)
                .data(runner.clone())
                .data(origin)
                .concurrency(per_consumer)
                .backend(backend)
                .build_fn(handle::<C>);
            let runnable = worker.run();
            let handle = runnable.get_handle();
            Consumer { queue: queue.to_string(), name, handle, task: tokio::spawn(runnable) }
        })
        .collect()
}
