//! Fair taking: each queue's waiting tasks are kept per tenant and per
//! priority level, and consumers take them round-robin across tenants
//! (weighted), highest priority first and FIFO within a level inside each
//! tenant. The layout and the algorithm are in `lua/fair.lua`; this is the
//! Rust side of it, plus pausing a queue or one tenant in it, and caps on
//! how many of a tenant's tasks of a queue are taken at once.

use chrono::Utc;
use redis::AsyncCommands;

use super::{namespace, Queue, QueueError};

/// Priority levels are 0 (the default) to this; higher is taken first. The
/// API checks the range; the scripts clamp to it.
pub const MAX_PRIORITY: i16 = 10;

/// A task one fetch took: its id and its apalis body.
pub type FetchedTask = (String, Vec<u8>);

/// One tenant's waiting tasks in one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDepth {
    /// The tenant id, or `-` for tasks queued before tasks carried one.
    pub tenant: String,
    pub waiting: u64,
    pub paused: bool,
}

impl Queue {
    fn weights_key(&self) -> String {
        format!("{}:tenant_weights", self.prefix)
    }

    /// Records that consumer `consumer` of `job_type` is alive (what
    /// apalis's keep-alive does: the consumers zset, scored by the time,
    /// from which dead consumers' tasks are recovered).
    pub async fn register_consumer(&self, job_type: &str, consumer: &str) -> Result<(), QueueError> {
        let config = self.config(job_type)?;
        let mut conn = self.conn.clone();
        let _: i64 =
            conn.zadd(config.consumers_set(), format!("{}:{consumer}", config.inflight_jobs_set()), Utc::now().timestamp()).await?;
        Ok(())
    }

    /// Takes up to `max` tasks of `job_type` for `consumer`, fairly across
    /// tenants, into the consumer's in-flight set.
    pub async fn fetch(&self, job_type: &str, consumer: &str, max: usize) -> Result<Vec<FetchedTask>, QueueError> {
        let config = self.config(job_type)?;
        let inflight_set = format!("{}:{consumer}", config.inflight_jobs_set());
        let mut conn = self.conn.clone();
        let flat: Vec<redis::Value> = self
            .scripts
            .fetch
            .key(config.consumers_set())
            .key(config.active_jobs_list())
            .key(&inflight_set)
            .key(config.job_data_hash())
            .arg(namespace(&self.prefix, job_type))
            .arg(self.weights_key())
            .arg(max)
            .arg(&inflight_set)
            .invoke_async(&mut conn)
            .await?;
        let mut tasks = Vec::with_capacity(flat.len() / 2);
        let mut values = flat.into_iter();
        while let (Some(id), Some(body)) = (values.next(), values.next()) {
            tasks.push((redis::from_redis_value(&id)?, redis::from_redis_value(&body)?));
        }
        Ok(tasks)
    }

    /// Each tenant with tasks waiting in `job_type`, paused or not (read
    /// through `Queue::depth`).
    pub(super) async fn tenant_depths(&self, job_type: &str) -> Result<Vec<TenantDepth>, QueueError> {
        let ns = namespace(&self.prefix, job_type);
        let mut conn = self.conn.clone();
        let (tenants, paused): (Vec<String>, Vec<String>) =
            redis::pipe().smembers(format!("{ns}:fair:waiting")).smembers(format!("{ns}:fair:paused")).query_async(&mut conn).await?;
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for tenant in &tenants {
            pipe.zcard(format!("{ns}:fair:t:{tenant}"));
        }
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok(tenants
            .into_iter()
            .zip(counts)
            .map(|(tenant, waiting)| TenantDepth { paused: paused.contains(&tenant), tenant, waiting })
            .collect())
    }

    /// Pauses (or resumes) the whole of `job_type`: no consumer takes
    /// anything from it; what waits keeps its order.
    pub async fn set_queue_paused(&self, job_type: &str, paused: bool) -> Result<(), QueueError> {
        self.config(job_type)?;
        let key = format!("{}:paused", namespace(&self.prefix, job_type));
        let mut conn = self.conn.clone();
        if paused {
            let _: () = conn.set(key, 1).await?;
        } else {
            let _: i64 = conn.del(key).await?;
        }
        Ok(())
    }

    /// Pauses (or resumes) one tenant in `job_type`.
    pub async fn set_tenant_paused(&self, job_type: &str, tenant: &str, paused: bool) -> Result<(), QueueError> {
        self.config(job_type)?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .pause_tenant
            .arg(namespace(&self.prefix, job_type))
            .arg(tenant)
            .arg(if paused { "pause" } else { "resume" })
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether `job_type` is paused, and the tenants paused in it.
    pub async fn paused(&self, job_type: &str) -> Result<(bool, Vec<String>), QueueError> {
        let ns = namespace(&self.prefix, job_type);
        let mut conn = self.conn.clone();
        Ok(redis::pipe().exists(format!("{ns}:paused")).smembers(format!("{ns}:fair:paused")).query_async(&mut conn).await?)
    }

    /// Replaces `job_type`'s caps on tenants' running tasks (tenant id → cap;
    /// those not named have none).
    pub async fn replace_caps(&self, job_type: &str, caps: &[(String, u32)]) -> Result<(), QueueError> {
        self.config(job_type)?;
        let mut invocation = self.scripts.replace_caps.arg(namespace(&self.prefix, job_type));
        for (tenant, cap) in caps {
            invocation.arg(tenant).arg(cap);
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Replaces every tenant's weight (those not named have the default, 1).
    pub async fn replace_weights(&self, weights: &[(String, u32)]) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.weights_key());
        if !weights.is_empty() {
            pipe.hset_multiple(self.weights_key(), weights);
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Sets a tenant's share of every queue relative to others (default 1),
    /// or back to the default with `None`.
    pub async fn set_weight(&self, tenant: &str, weight: Option<u32>) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        match weight {
            Some(weight) => {
                let _: i64 = conn.hset(self.weights_key(), tenant, weight).await?;
            }
            None => {
                let _: i64 = conn.hdel(self.weights_key(), tenant).await?;
            }
        }
        Ok(())
    }
}
