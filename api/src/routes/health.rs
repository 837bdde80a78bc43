//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::state::AppState;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn postgres_ok(state: &AppState) -> bool {
    let check = async {
        let mut conn = state.pool.get().await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), check).await, Ok(Some(_)))
}

/// Redis and PostgreSQL are reachable; 503 names the one that is not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, postgres) = tokio::join!(
        async { matches!(tokio::time::timeout(Duration::from_secs(2), state.queue.ping()).await, Ok(Ok(()))) },
        postgres_ok(&state)
    );
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let body = json!({ "status": if redis && postgres { "ready" } else { "not_ready" }, "checks": { "redis": word(redis), "postgres": word(postgres) } });
    let status = if redis && postgres { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// Prometheus metrics of this API process, with queue depths and live
/// workers read from Redis at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if state.redis_is_up() {
        let _ = tokio::time::timeout(Duration::from_secs(2), peyk_jobs::metrics::refresh_queue_gauges(&state.queue, &state.pool)).await;
    }
    peyk_jobs::metrics::refresh_connection_gauges(&state.pool, state.redis_is_up());
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], peyk_jobs::metrics::render())
}
