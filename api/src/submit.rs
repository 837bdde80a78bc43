//! Turning a submission into a stored, queued job.
//!
//! Inserts are batched: concurrent submissions are gathered into one
//! multi-row INSERT (one round trip, one commit) by a background task. At a
//! few thousand submissions a second that is what keeps PostgreSQL's commit
//! rate — and the API's tail latency — low, without weakening durability: a
//! client gets its 202 only after its row is committed.

use std::sync::Arc;

use peyk_schema::queries::jobs::insert_batch;
use peyk_schema::{DbError, DbPool, JobRow, NewJob};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// `Some(row)`: inserted; `None`: the idempotency key already exists.
type Reply = oneshot::Sender<Result<Option<JobRow>, Arc<DbError>>>;

const MAX_BATCH: usize = 256;
/// Batches written at once; more only queue up in the pool.
const PARALLEL_BATCHES: usize = 4;

#[derive(Clone)]
pub struct Inserter {
    tx: mpsc::Sender<(NewJob, Reply)>,
}

impl Inserter {
    pub fn start(pool: DbPool) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * PARALLEL_BATCHES * 2);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    pub async fn insert(&self, job: NewJob) -> Result<Option<JobRow>, Arc<DbError>> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((job, reply)).await.is_err() {
            unreachable!("the inserter task lives as long as the process");
        }
        answer.await.expect("the inserter answers every job")
    }
}

async fn run(pool: DbPool, mut rx: mpsc::Receiver<(NewJob, Reply)>) {
    let permits = Arc::new(Semaphore::new(PARALLEL_BATCHES));
    while let Some(first) = rx.recv().await {
        // Take whatever else is already waiting; never wait for more.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let permit = permits.clone().acquire_owned().await.expect("semaphore is never closed");
        let pool = pool.clone();
        tokio::spawn(async move {
            let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = batch.into_iter().unzip();
            let result = insert_batch(&pool, &jobs).await.map_err(Arc::new);
            drop(permit);
            match result {
                Ok(rows) => {
                    let mut by_id: std::collections::HashMap<uuid::Uuid, JobRow> =
                        rows.into_iter().map(|row| (row.id, row)).collect();
                    for (job, reply) in jobs.iter().zip(replies) {
                        let _ = reply.send(Ok(by_id.remove(&job.id)));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}
