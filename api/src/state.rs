//! What every handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peyk_jobs::queue::Queue;
use peyk_schema::DbPool;

use crate::auth::KeyCache;
use crate::submit::Inserter;

#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub queue: Queue,
    pub keys: Arc<KeyCache>,
    pub inserter: Inserter,
    pub redis_up: Arc<AtomicBool>,
}

impl AppState {
    pub fn redis_is_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn mark_redis(&self, up: bool) {
        self.redis_up.store(up, Ordering::Relaxed);
    }
}

/// Pings Redis twice a second, so that submissions are refused with 503
/// (instead of hanging) while it is down, and accepted again as soon as it is back.
/// Two failed pings in a row mark it down: one slow answer under load is not an outage.
pub async fn watch_redis(state: AppState) {
    let mut failures = 0;
    loop {
        let ok = tokio::time::timeout(Duration::from_millis(1500), state.queue.ping()).await.map(|r| r.is_ok()).unwrap_or(false);
        failures = if ok { 0 } else { failures + 1 };
        let up = failures < 2;
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
