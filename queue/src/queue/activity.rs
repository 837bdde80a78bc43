//! What the console's overview shows of a queue beyond its depth, read from
//! Redis without touching PostgreSQL: the consumers alive (each worker's
//! keep-alive in the queue's consumers set), how many tasks ever entered the
//! waiting room (the FIFO sequence, which grows by one per task placed: its
//! change over time is the in-rate), how many finished in the last minute
//! (the done set's scores are acknowledgement times), and how long the next
//! task of the longest-waiting tenant has waited (its task id is a ULID,
//! made when the job was queued).

use std::time::Duration;

use super::{namespace, Queue, QueueError};
use chrono::Utc;

/// A consumer is alive while its keep-alive (every 5 s) is this recent.
const ALIVE_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct QueueActivity {
    /// The workers with a live consumer of this queue.
    pub workers: Vec<String>,
    /// Tasks placed in the waiting room since the queue began (a counter).
    pub entered_total: u64,
    /// Tasks acknowledged (finished, whatever the outcome) in the last minute.
    pub finished_last_minute: u64,
    /// How long the oldest of the tenants' next tasks has waited.
    pub oldest_wait: Option<Duration>,
}

impl Queue {
    pub async fn activity(&self, job_type: &str) -> Result<QueueActivity, QueueError> {
        let config = self.config(job_type)?;
        let ns = namespace(&self.prefix, job_type);
        let now = Utc::now();
        let alive_since = now.timestamp() - ALIVE_WITHIN.as_secs() as i64;
        let mut conn = self.conn.clone();
        let (consumers, entered, finished, tenants): (Vec<String>, Option<u64>, u64, Vec<String>) = redis::pipe()
            .zrangebyscore(config.consumers_set(), alive_since, "+inf")
            .get(format!("{ns}:fair:seq"))
            .zcount(config.done_jobs_set(), now.timestamp() - 60, "+inf")
            .smembers(format!("{ns}:fair:waiting"))
            .query_async(&mut conn)
            .await?;
        let mut workers: Vec<String> = consumers.iter().filter_map(|set| worker_of(set)).map(str::to_string).collect();
        workers.sort_unstable();
        workers.dedup();
        let oldest_wait = if tenants.is_empty() {
            None
        } else {
            let mut pipe = redis::pipe();
            for tenant in &tenants {
                pipe.zrange(format!("{ns}:fair:t:{tenant}"), 0, 0);
            }
            let heads: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
            let now_ms = now.timestamp_millis().max(0) as u64;
            heads
                .iter()
                .flatten()
                .filter_map(|task_id| ulid::Ulid::from_string(task_id).ok())
                .map(|id| Duration::from_millis(now_ms.saturating_sub(id.timestamp_ms())))
                .max()
        };
        Ok(QueueActivity { workers, entered_total: entered.unwrap_or(0), finished_last_minute: finished, oldest_wait })
    }
}

/// `{in-flight set}:{worker}.{queue}.{index}` → `worker`.
fn worker_of(inflight_set: &str) -> Option<&str> {
    let consumer = inflight_set.rsplit(':').next()?;
    let mut parts = consumer.rsplitn(3, '.');
    let (_index, _queue, worker) = (parts.next()?, parts.next()?, parts.next()?);
    Some(worker)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_worker_is_read_from_its_consumer_name() {
        assert_eq!(super::worker_of("peyk:webhook:inflight:vm-1234.ab12.webhook.0"), Some("vm-1234.ab12"));
        assert_eq!(super::worker_of("nothing"), None);
    }
}
