//! Group commit for hot statements.
//!
//! Callers submit one item and await its answer; a background task gathers
//! whatever items are waiting (up to `max_batch`) and runs them as one
//! statement. Under load that turns hundreds of single-row statements and
//! commits a second into a few multi-row ones, which is what lets PostgreSQL
//! keep up on small machines; when idle, an item goes alone at once (the
//! batcher never waits to fill a batch).

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::db::DbError;

type Reply<O, E> = oneshot::Sender<Result<O, Arc<E>>>;

/// Batches items of type `I` into calls that answer `O` each, or fail with `E`.
pub struct Batcher<I, O, E = DbError> {
    tx: mpsc::Sender<(I, Reply<O, E>)>,
}

impl<I, O, E> Clone for Batcher<I, O, E> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static, E: Send + Sync + 'static> Batcher<I, O, E> {
    /// `run` takes a batch and returns one output per input, in order.
    /// At most `parallel` batches run at once.
    pub fn start<F, Fut>(max_batch: usize, parallel: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(max_batch * parallel * 2);
        tokio::spawn(gather(rx, max_batch, parallel, Arc::new(run)));
        Self { tx }
    }

    pub async fn call(&self, input: I) -> Result<O, Arc<E>> {
        self.send(input).await.outcome().await
    }

    /// Hands `input` to the batcher and answers once it waits there: items
    /// are run in the order they were handed over, so a caller that needs
    /// that order but not yet the outcome can go on (and await
    /// [`Pending::outcome`] later).
    pub async fn send(&self, input: I) -> Pending<O, E> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((input, reply)).await.is_err() {
            unreachable!("the batcher task lives as long as the process");
        }
        Pending(answer)
    }
}

/// An item handed to a [`Batcher`], not yet run.
pub struct Pending<O, E>(oneshot::Receiver<Result<O, Arc<E>>>);

impl<O, E> Pending<O, E> {
    pub async fn outcome(self) -> Result<O, Arc<E>> {
        self.0.await.expect("the batcher answers every item")
    }
}

async fn gather<I, O, E, F, Fut>(mut rx: mpsc::Receiver<(I, Reply<O, E>)>, max_batch: usize, parallel: usize, run: Arc<F>)
where
    I: Send + 'static,
    O: Send + 'static,
    E: Send + Sync + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<O>, E>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(parallel));
    while let Some(first) = rx.recv().await {
        let permit = permits.clone().acquire_owned().await.expect("semaphore is never closed");
        // Take whatever else is already waiting; never wait for more.
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (inputs, replies): (Vec<I>, Vec<Reply<O, E>>) = batch.into_iter().unzip();
        let count = inputs.len();
        let mut running = Box::pin(run(inputs));
        // Polled once here, before the next batch is formed, so batches start
        // in the order their items were handed over: the pusher's batches
        // write to one Redis connection, and a client's jobs must reach their
        // queue in the order it submitted them. Left to the spawned task, a
        // batch can start after the next one (a task spawned later takes the
        // worker thread's LIFO slot first, or the thread is descheduled).
        // A panic there goes on in the batch's task, as it would have
        // without this poll, rather than ending the batcher.
        let first = poll_fn(|cx| Poll::Ready(catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))))).await;
        tokio::spawn(async move {
            let result = match first {
                Ok(Poll::Ready(result)) => result,
                Ok(Poll::Pending) => running.await,
                Err(panic) => resume_unwind(panic),
            };
            drop(permit);
            match result {
                Ok(outputs) => {
                    assert_eq!(outputs.len(), count, "a batch returns one output per input");
                    for (output, reply) in outputs.into_iter().zip(replies) {
                        let _ = reply.send(Ok(output));
                    }
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Four one-item batches handed over at once on one worker thread: each
    /// batch notes its item when it starts. Spawned unpolled, the last batch
    /// took the thread's LIFO slot and started first (3, 0, 1, 2).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn batches_start_in_the_order_their_items_were_handed_over() {
        for _ in 0..20 {
            let started = Arc::new(Mutex::new(Vec::<usize>::new()));
            let batcher = Batcher::<usize, (), Infallible>::start(1, 4, {
                let started = started.clone();
                move |items: Vec<usize>| {
                    let started = started.clone();
                    async move {
                        started.lock().unwrap().extend(&items);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok(vec![(); items.len()])
                    }
                }
            });
            let mut pending = Vec::new();
            for item in 0..4 {
                pending.push(batcher.send(item).await);
            }
            for item in pending {
                item.outcome().await.unwrap();
            }
            assert_eq!(*started.lock().unwrap(), vec![0, 1, 2, 3]);
        }
    }
}
