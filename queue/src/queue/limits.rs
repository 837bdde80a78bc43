//! Per-tenant limits kept in Redis, shared by every API process: the
//! request-rate token bucket, and the leases through which an API process
//! hands its tokens out.
//!
//! A request's token is taken from a lease the process holds for the
//! tenant, not from Redis: the process takes a few tokens at once from the
//! bucket and takes more while some are left, so most requests do not wait
//! for Redis. A round trip for each request's token cost a third of the
//! API's submissions (8,831 against 13,187 submissions/s at 32 connections
//! without it, 2026-12-06, `bench/run.sh`).
//!
//! A lease is at most a hundredth of a second of the tenant's rate and a
//! tenth of its burst, so below 100 requests a second it is one token and
//! the limit is exact. Tokens are taken from the bucket before they are
//! handed out, so a tenant never gets more than its limit; unused tokens
//! are dropped a second after they were taken, and at the edge of the limit
//! a process may hold up to one lease that another process cannot use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use peyk_schema::Batcher;

use super::{Queue, QueueError};

/// A tenant's request rate: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    /// How many tokens a process takes from the bucket at once.
    fn lease(self) -> u32 {
        (self.per_second / 100).min(self.burst / 10).clamp(1, 1000)
    }
}

/// What one request's token costs and leaves.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    pub allowed: bool,
    /// Tokens left to the tenant: in the bucket and in this process's lease.
    pub remaining: u64,
    /// When refused: how long until a token is back.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

/// What one take from a bucket got.
#[derive(Debug, Clone, Copy)]
pub struct Taken {
    /// Between 0 (refused) and the number asked for.
    pub count: u32,
    /// Whole tokens left in the bucket.
    pub remaining: u64,
    /// When none were taken: how long until a token is back.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

impl Queue {
    /// Takes up to `want` tokens (at least one, or none) from each bucket,
    /// in order, in one round trip.
    pub async fn take_tokens(&self, requests: &[(String, Rate, u32)]) -> Result<Vec<Taken>, QueueError> {
        let mut invocation = self.scripts.token_bucket.prepare_invoke();
        for (tenant, rate, want) in requests {
            invocation.key(format!("{}:rate:{tenant}", self.prefix)).arg(rate.per_second.max(1)).arg(rate.burst.max(1)).arg((*want).max(1));
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(answer
            .chunks_exact(4)
            .map(|taken| Taken {
                count: taken[0].max(0) as u32,
                remaining: taken[1].max(0) as u64,
                retry_after: Duration::from_millis(taken[2].max(0) as u64),
                reset: Duration::from_millis(taken[3].max(0) as u64),
            })
            .collect())
    }
}

/// Takes the tokens of concurrent leases together: one script call for
/// whatever leases are wanted, instead of one round trip each.
pub type TokenTaker = Batcher<(String, Rate, u32), Taken, QueueError>;

pub fn start_token_taker(queue: Queue) -> TokenTaker {
    Batcher::start(256, 2, move |requests: Vec<(String, Rate, u32)>| {
        let queue = queue.clone();
        async move { queue.take_tokens(&requests).await }
    })
}

/// How long a lease's tokens may be handed out after they were taken.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);
/// Tenants remembered before leases that ran out are forgotten.
const LEASES_KEPT: usize = 10_000;

/// The outcome of one take for a lease, awaited by every request that
/// found the lease empty meanwhile.
#[derive(Clone)]
enum Fetched {
    /// Tokens were added to the lease (others may have used them already).
    Some,
    /// The bucket had none: these requests are refused.
    None(Taken),
    /// Redis did not answer.
    Failed(Arc<QueueError>),
}

type Fetch = Shared<BoxFuture<'static, Fetched>>;

struct Lease {
    /// Tokens this process may still hand out, until `expires`.
    left: u32,
    expires: Instant,
    /// The bucket as the last take left it.
    bucket_left: u64,
    full_at: Instant,
    /// A take under way.
    fetch: Option<Fetch>,
    /// After a refusal, no take ahead of need before this.
    no_refill_before: Instant,
}

impl Lease {
    /// Drops the tokens whose time is up.
    fn expire(&mut self, now: Instant) {
        if self.expires <= now {
            self.left = 0;
        }
    }

    fn token(&self, now: Instant) -> Token {
        Token {
            allowed: true,
            remaining: self.bucket_left + u64::from(self.left),
            retry_after: Duration::ZERO,
            reset: self.full_at.saturating_duration_since(now),
        }
    }
}

/// Every tenant's lease in this process.
#[derive(Clone)]
pub struct TenantTokens {
    taker: TokenTaker,
    leases: Arc<Mutex<HashMap<String, Lease>>>,
}

impl TenantTokens {
    pub fn start(queue: Queue) -> Self {
        Self { taker: start_token_taker(queue), leases: Arc::default() }
    }

    /// One request's token: from the lease, else from the bucket (together
    /// with every request that finds the lease empty meanwhile).
    pub async fn take(&self, tenant: &str, rate: Rate) -> Result<Token, Arc<QueueError>> {
        loop {
            let fetch = {
                let mut leases = self.leases.lock().unwrap();
                let now = Instant::now();
                if leases.len() > LEASES_KEPT {
                    leases.retain(|_, lease| lease.expires > now || lease.fetch.is_some());
                }
                let lease = match leases.get_mut(tenant) {
                    Some(lease) => lease,
                    None => leases.entry(tenant.to_string()).or_insert(Lease {
                        left: 0,
                        expires: now,
                        bucket_left: 0,
                        full_at: now,
                        fetch: None,
                        no_refill_before: now,
                    }),
                };
                lease.expire(now);
                if lease.left > 0 {
                    lease.left -= 1;
                    // Take more before they run out, so that requests do not wait.
                    if lease.left < rate.lease() / 2 && lease.fetch.is_none() && lease.no_refill_before <= now {
                        lease.fetch = Some(self.fetch(tenant, rate));
                    }
                    return Ok(lease.token(now));
                }
                lease.fetch.get_or_insert_with(|| self.fetch(tenant, rate)).clone()
            };
            match fetch.await {
                Fetched::Some => continue,
                Fetched::None(taken) => {
                    return Ok(Token { allowed: false, remaining: 0, retry_after: taken.retry_after, reset: taken.reset })
                }
                Fetched::Failed(e) => return Err(e),
            }
        }
    }

    /// Starts taking a lease's worth of tokens for `tenant`; they go into
    /// its lease when they come.
    fn fetch(&self, tenant: &str, rate: Rate) -> Fetch {
        let (taker, leases, tenant) = (self.taker.clone(), self.leases.clone(), tenant.to_string());
        let fetch = async move {
            let taken = taker.call((tenant.clone(), rate, rate.lease())).await;
            let now = Instant::now();
            let mut leases = leases.lock().unwrap();
            let lease = leases.get_mut(&tenant).expect("a lease is kept while its take is under way");
            lease.fetch = None;
            match taken {
                Ok(taken) => {
                    lease.expire(now);
                    lease.left += taken.count;
                    lease.expires = now + LEASE_LIFETIME;
                    lease.bucket_left = taken.remaining;
                    lease.full_at = now + taken.reset;
                    if taken.count > 0 {
                        Fetched::Some
                    } else {
                        lease.no_refill_before = now + taken.retry_after;
                        Fetched::None(taken)
                    }
                }
                Err(e) => Fetched::Failed(e),
            }
        }
        .boxed()
        .shared();
        // Runs whether or not a request awaits it (a take ahead of need).
        tokio::spawn(fetch.clone());
        fetch
    }
}
