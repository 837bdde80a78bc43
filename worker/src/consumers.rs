//! The apalis side: for each queue this worker serves, a few apalis-redis
//! consumers (each with its own fetch/acknowledge loop, which is what bounds
//! one consumer's throughput) sharing the queue's concurrency.

use std::sync::Arc;

use apalis::layers::WorkerBuilderExt;
use apalis_core::builder::{WorkerBuilder, WorkerFactoryFn};
use apalis_core::layers::extensions::Data;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::{Context, Worker};
use peyk_jobs::queue::{apalis_config, JobStorage, QueueTimings, QueuedJob};

use crate::runner::Runner;

/// One running apalis consumer.
pub struct Consumer {
    pub queue: String,
    /// The apalis worker name; its in-flight set in Redis is named after it.
    pub name: String,
    pub handle: Worker<Context>,
    pub task: tokio::task::JoinHandle<()>,
}

async fn handle(entry: QueuedJob, task_id: TaskId, runner: Data<Arc<Runner>>) -> Result<(), apalis_core::error::Error> {
    // Every outcome is recorded in PostgreSQL by the runner, so apalis always
    // sees success and never applies its own retry logic.
    runner.handle(entry, task_id.to_string()).await;
    Ok(())
}

pub fn start(runner: Arc<Runner>, conn: redis::aio::ConnectionManager, prefix: &str, queue: &str, concurrency: usize, consumers: usize) -> Vec<Consumer> {
    let per_consumer = concurrency.div_ceil(consumers).max(1);
    // Fetch as many as may run, so a consumer's buffer never waits on its own acknowledgements.
    let timings = QueueTimings { buffer_size: per_consumer.max(16), ..QueueTimings::default() };
    (0..consumers)
        .map(|index| {
            let name = format!("{}.{queue}.{index}", runner.worker_id);
            let storage = JobStorage::new_with_config(conn.clone(), apalis_config(prefix, queue, &timings));
            let worker = WorkerBuilder::new(&name)
                .data(runner.clone())
                .concurrency(per_consumer)
                .backend(storage)
                .build_fn(handle);
            let runnable = worker.run();
            let handle = runnable.get_handle();
            Consumer { queue: queue.to_string(), name, handle, task: tokio::spawn(runnable) }
        })
        .collect()
}
