//! Cluster coordination through the queues' Redis: each worker process
//! records a heartbeat per queue it serves (`{namespace}:workers`, a zset
//! of process → last beat), so the API and the alerts know how many serve a
//! queue; and periodic duties (reconcile, clean-up) go to one process per
//! period through a lease (`{prefix}:lead:{duty}`, `SET NX PX`).

use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;

use super::{namespace, Queue, QueueError};

/// Heartbeats older than this are dropped when the next one is recorded.
const FORGET_AFTER_SECONDS: i64 = 300;

impl Queue {
    fn workers_key(&self, job_type: &str) -> String {
        format!("{}:workers", namespace(&self.prefix, job_type))
    }

    /// Records that worker process `worker` serves `job_type` now.
    pub async fn heartbeat(&self, job_type: &str, worker: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let key = self.workers_key(job_type);
        let now = Utc::now().timestamp();
        let _: () = redis::pipe().zadd(&key, worker, now).zrembyscore(&key, 0, now - FORGET_AFTER_SECONDS).query_async(&mut conn).await?;
        Ok(())
    }

    /// Forgets worker process `worker` for `job_type` (it is stopping).
    pub async fn leave(&self, job_type: &str, worker: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn.zrem(self.workers_key(job_type), worker).await?;
        Ok(())
    }

    /// Worker processes that sent a heartbeat for `job_type` within `within`.
    pub async fn live_workers(&self, job_type: &str, within: Duration) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let since = Utc::now().timestamp() - within.as_secs() as i64;
        Ok(conn.zcount(self.workers_key(job_type), since, "+inf").await?)
    }

    /// Takes a lease on a periodic duty (e.g. payment reconciliation) for
    /// `period`: true for one worker process per period, however many run.
    pub async fn try_lead(&self, duty: &str, period: Duration) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{}:lead:{duty}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(period.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }
}
