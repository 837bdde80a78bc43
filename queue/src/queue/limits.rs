//! Per-tenant limits kept in Redis, shared by every API process: the
//! request-rate token bucket.

use std::time::Duration;

use super::{Queue, QueueError};

/// A tenant's request rate: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// What one request's token costs and leaves.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub allowed: bool,
    pub remaining: u64,
    /// When refused: how long until a token is back.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

impl Queue {
    /// Takes a request token from `tenant`'s bucket.
    pub async fn take_token(&self, tenant: &str, rate: Rate) -> Result<Token, QueueError> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, wait_ms, full_ms): (i64, i64, u64, u64) = self
            .scripts
            .token_bucket
            .key(format!("{}:rate:{tenant}", self.prefix))
            .arg(rate.per_second.max(1))
            .arg(rate.burst.max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(Token {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after: Duration::from_millis(wait_ms),
            reset: Duration::from_millis(full_ms),
        })
    }
}
