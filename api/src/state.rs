//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peyk_jobs::storage::FileStore;
use peyk_queue::queue::Queue;
use peyk_schema::DbPool;

use crate::auth::KeyCache;
use crate::cache::TtlCache;

/// (tenant, gateway) → account. Updated at once in the process that
/// changes an account; other API processes see the change within the TTL.
pub type AccountCache = TtlCache<(uuid::Uuid, &'static str), peyk_schema::PaymentAccountRow>;
pub const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(5);
use crate::config::Limits;
use peyk_queue::submit::{Inserter, Pusher};

/// Cloned for every request (axum's `State`, the middleware, the task that
/// stores a submission): one `Arc`, so that a clone is one atomic increment
/// rather than one per field (which showed in the submission profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub pool: DbPool,
    pub queue: Queue,
    pub keys: Arc<KeyCache>,
    /// Each tenant's quotas, for the submissions' hot path.
    pub quotas: Arc<crate::quota::QuotaCache>,
    /// Payment accounts, for the callback endpoints' hot path.
    pub accounts: Arc<AccountCache>,
    pub inserter: Inserter,
    pub pusher: Pusher,
    /// Request tokens (`rate_limit`), leased from Redis; quota charges
    /// (`quota`), taken in batches.
    pub tokens: peyk_queue::queue::TenantTokens,
    pub charger: peyk_queue::queue::Charger,
    /// Usage no quota limits, added to Redis in batches.
    pub tally: peyk_queue::queue::UsageTally,
    /// Inbound events and the verifications they queue, recorded in batches.
    pub callbacks: peyk_schema::queries::payments::CallbackRecorder,
    pub redis_up: Arc<AtomicBool>,
    pub files: FileStore,
    /// Places for the uploads read and stored at once (`PEYK_MAX_CONCURRENT_UPLOADS`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    pub limits: Limits,
    /// Per-sender rate limit of the public endpoints (callbacks, inbound).
    pub public_limiter: Arc<crate::address_limit::AddressLimiter>,
    /// Requests waiting for a job or pipeline to end (`?wait=`).
    pub waiters: peyk_queue::finished::Waiters,
    /// What submissions are checked against beyond their payload.
    pub checks: Arc<crate::admission::Checks>,
    /// `PEYK_METRICS_TOKEN`: what `/metrics` asks for, when set.
    pub metrics_token: Option<Arc<str>>,
    pub console: crate::config::ConsoleSettings,
}

impl AppState {
    /// The tenant's account at a gateway, from the cache when fresh.
    pub async fn payment_account(
        &self,
        tenant: uuid::Uuid,
        gateway: &'static str,
    ) -> Result<Option<peyk_schema::PaymentAccountRow>, peyk_schema::DbError> {
        if let Some(account) = self.accounts.get(&(tenant, gateway)) {
            return Ok(Some(account));
        }
        let account = peyk_schema::queries::payments::account(&self.pool, tenant, gateway).await?;
        if let Some(account) = &account {
            self.accounts.put((tenant, gateway), account.clone());
        }
        Ok(account)
    }

    pub fn redis_is_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn mark_redis(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }
}

/// Pings Redis twice a second, so that submissions are refused with 503
/// (instead of hanging) while it is down, and accepted again as soon as it is back.
/// A refused or broken connection marks it down at once; a slow answer only
/// when the next ping is slow too (one slow answer under load is not an outage).
pub async fn watch_redis(state: AppState) {
    let mut timeouts = 0;
    loop {
        let up = match tokio::time::timeout(Duration::from_millis(1500), state.queue.ping()).await {
            Ok(Ok(())) => {
                timeouts = 0;
                true
            }
            Ok(Err(_)) => false,
            Err(_) => {
                timeouts += 1;
                timeouts < 2
            }
        };
        if up != state.redis_is_up() {
            if up {
                tracing::info!("redis reachable again");
            } else {
                tracing::error!("redis unreachable; refusing submissions with 503");
            }
        }
        state.mark_redis(up);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
