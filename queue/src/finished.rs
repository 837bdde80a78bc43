//! Waiting for jobs (and pipelines) to end without asking the database
//! again and again: workers publish the ids of what they finished once it
//! is committed ([`crate::queue::Queue::announce_finished`]), and each API
//! process keeps one Redis subscription that wakes every waiter of those
//! ids. A waiter reads the row once before it waits and once after; 500
//! waiters cost 1,000 reads, however long they wait. While the
//! subscription is down, waiters read the row once a second instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::queue::finished_channel;

/// What wakes the waiters of one id, and how many there are.
type Waiting = HashMap<Uuid, (Arc<Notify>, usize)>;

/// Every waiter of this process, by the id it waits for.
#[derive(Clone, Default)]
pub struct Waiters {
    waiting: Arc<Mutex<Waiting>>,
    live: Arc<AtomicBool>,
}

/// One waiter's registration; dropping it unregisters.
pub struct Watch {
    id: Uuid,
    pub notify: Arc<Notify>,
    waiters: Waiters,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting.lock().expect("not poisoned");
        if let Some((_, count)) = waiting.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// Subscribes (and re-subscribes after any loss) to what the workers
    /// announce under `prefix`.
    pub fn start(redis_url: &str, prefix: &str) -> Self {
        let waiters = Self::default();
        let (url, channel, me) = (redis_url.to_string(), finished_channel(prefix), waiters.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.listen(&url, &channel).await {
                    tracing::debug!(error = %e, "finished-jobs subscription lost; waiters poll until it is back");
                }
                me.live.store(false, Ordering::Release);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        waiters
    }

    async fn listen(&self, url: &str, channel: &str) -> redis::RedisResult<()> {
        let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        self.live.store(true, Ordering::Release);
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let ids: String = message.get_payload()?;
            self.wake(ids.split(',').filter_map(|id| id.parse().ok()));
        }
        Ok(())
    }

    fn wake(&self, ids: impl Iterator<Item = Uuid>) {
        let waiting = self.waiting.lock().expect("not poisoned");
        for id in ids {
            if let Some((notify, _)) = waiting.get(&id) {
                notify.notify_waiters();
            }
        }
    }

    /// Whether announcements arrive (else a waiter must look by itself).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Registers a waiter of `id`. Create its `notify.notified()` future
    /// (and `enable` it) before reading the row, so that an announcement
    /// between the read and the wait is not missed.
    pub fn watch(&self, id: Uuid) -> Watch {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        let entry = waiting.entry(id).or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Watch { id, notify: entry.0.clone(), waiters: self.clone() }
    }
}
