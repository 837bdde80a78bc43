//! The apalis side: for each queue this worker serves, a few apalis-redis
//! consumers (each with its own fetch/acknowledge loop, which is what bounds
//! one consumer's throughput) sharing the queue's concurrency.

use std::sync::Arc;

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::Backend;
use apalis_core::builder::{WorkerBuilder, WorkerFactoryFn};
use apalis_core::codec::json::JsonCodec;
use apalis_core::layers::extensions::Data;
use apalis_core::poller::Poller;
use apalis_core::request::Request;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::{Context, Worker};
use apalis_redis::RedisContext;
use tower::layer::util::Identity;

use crate::queue::{apalis_config, JobStorage, QueueTimings, QueuedJob};
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

/// apalis-redis's storage with its acknowledgement layer taken off: it
/// fetches, registers and recovers exactly as before, and the runner
/// acknowledges tasks itself, in batches, after recording their outcome
/// (`Queue::ack`). apalis's own acknowledgement costs three sequential Redis
/// round trips per task in one loop per consumer, and when it lags its queue
/// of pending acknowledgements grows without bound (each call clones the
/// channel's sender, and every sender gets a slot of its own).
struct SelfAcknowledged(JobStorage);

impl Backend<Request<QueuedJob, RedisContext>> for SelfAcknowledged {
    type Stream = <JobStorage as Backend<Request<QueuedJob, RedisContext>>>::Stream;
    type Layer = Identity;
    type Codec = JsonCodec<Vec<u8>>;

    fn poll(self, worker: &Worker<Context>) -> Poller<Self::Stream, Self::Layer> {
        let inner = self.0.poll(worker);
        Poller::new_with_layer(inner.stream, inner.heartbeat, Identity::new())
    }
}

/// Which queue and which apalis consumer a task came through.
#[derive(Clone)]
struct Origin {
    queue: Arc<str>,
    consumer: Arc<str>,
}

async fn handle<C: Clients>(
    entry: QueuedJob,
    task_id: TaskId,
    runner: Data<Arc<Runner<C>>>,
    origin: Data<Origin>,
) -> Result<(), apalis_core::error::Error> {
    // Every outcome is recorded in PostgreSQL by the runner, so apalis always
    // sees success and never applies its own retry logic.
    runner.handle(&origin.queue, &origin.consumer, entry, task_id.to_string()).await;
    Ok(())
}

pub fn start<C: Clients>(
    runner: Arc<Runner<C>>,
    conn: redis::aio::ConnectionManager,
    prefix: &str,
    queue: &str,
    concurrency: usize,
    consumers: usize,
) -> Vec<Consumer> {
    let per_consumer = concurrency.div_ceil(consumers).max(1);
    // Fetch as many as may run, so a consumer's buffer never waits on its own acknowledgements.
    let timings = QueueTimings { buffer_size: per_consumer.max(16), ..QueueTimings::default() };
    (0..consumers)
        .map(|index| {
            let name = format!("{}.{queue}.{index}", runner.worker_id);
            let storage = JobStorage::new_with_config(conn.clone(), apalis_config(prefix, queue, &timings));
            let origin = Origin { queue: queue.into(), consumer: name.as_str().into() };
            let worker = WorkerBuilder::new(&name)
                .data(runner.clone())
                .data(origin)
                .concurrency(per_consumer)
                .backend(SelfAcknowledged(storage))
                .build_fn(handle::<C>);
            let runnable = worker.run();
            let handle = runnable.get_handle();
            Consumer { queue: queue.to_string(), name, handle, task: tokio::spawn(runnable) }
        })
        .collect()
}
