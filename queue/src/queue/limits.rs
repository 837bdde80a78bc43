//! Per-tenant limits kept in Redis, shared by every API process: the
//! request-rate token bucket.

use std::time::Duration;

use peyk_schema::Batcher;

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
    /// Takes one token for each request, in order, in one round trip.
    pub async fn take_tokens(&self, requests: &[(String, Rate)]) -> Result<Vec<Token>, QueueError> {
        let mut invocation = self.scripts.token_bucket.prepare_invoke();
        for (tenant, rate) in requests {
            invocation.key(format!("{}:rate:{tenant}", self.prefix)).arg(rate.per_second.max(1)).arg(rate.burst.max(1));
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(answer
            .chunks_exact(4)
            .map(|token| Token {
                allowed: token[0] == 1,
                remaining: token[1].max(0) as u64,
                retry_after: Duration::from_millis(token[2].max(0) as u64),
                reset: Duration::from_millis(token[3].max(0) as u64),
            })
            .collect())
    }
}

/// Takes the tokens of concurrent requests together: one script call for
/// whatever requests are waiting, instead of one round trip each (at 32
/// connections of submissions, the bucket was Redis's largest cost).
pub type TokenTaker = Batcher<(String, Rate), Token, QueueError>;

pub fn start_token_taker(queue: Queue) -> TokenTaker {
    Batcher::start(256, 2, move |requests: Vec<(String, Rate)>| {
        let queue = queue.clone();
        async move { queue.take_tokens(&requests).await }
    })
}
