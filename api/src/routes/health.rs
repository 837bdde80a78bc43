//! Liveness, readiness and metrics.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use diesel_async::RunQueryDsl;
use peyk_jobs::providers::WorkerReport;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::state::AppState;
use crate::views::ErrorBody;

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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// `1` or `true`: add what the workers report of their providers.
    pub providers: Option<String>,
}

/// One provider as the live workers report it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderReadiness {
    /// `llm`, `smtp`, `kavenegar`, `whisper`.
    pub name: String,
    /// The queue (job type) that needs it.
    pub queue: String,
    /// Configured on at least one live worker; when false, jobs that need
    /// it are refused at submission (`provider_not_configured`) or, for
    /// SMS, kept in the local outbox.
    pub configured: bool,
    /// The setting that configures it.
    pub setting: String,
    /// Whether it answered the last cheap check on at least one worker
    /// (absent where there is no check).
    pub reachable: Option<bool>,
    /// Live workers that report it.
    pub workers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Redis and PostgreSQL are reachable; 503 names the one that is not. With
/// `?providers=1`, also each outside provider as the live workers report it
/// (configured or not, reachable or not); providers do not change the status.
#[utoipa::path(get, path = "/readyz", tag = "operations", params(ReadyQuery),
    responses((status = 200, description = "Ready"), (status = 400, description = "Unknown parameter", body = ErrorBody),
        (status = 503, description = "A dependency is unreachable")))]
pub async fn readyz(State(state): State<AppState>, query: Result<Query<ReadyQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("providers", e.body_text()))?;
    let with_providers = match query.providers.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(ApiError::bad_parameter("providers", "must be 1, true, 0 or false")),
    };
    let (redis, postgres) = tokio::join!(
        async { matches!(tokio::time::timeout(Duration::from_secs(2), state.queue.ping()).await, Ok(Ok(()))) },
        postgres_ok(&state)
    );
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let mut body = json!({ "status": if redis && postgres { "ready" } else { "not_ready" }, "checks": { "redis": word(redis), "postgres": word(postgres) } });
    if with_providers {
        body["providers"] = json!(fleet_providers(&state.checks.provider_reports(&state).await));
    }
    let status = if redis && postgres { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

/// The workers' reports merged per provider.
fn fleet_providers(reports: &HashMap<String, WorkerReport>) -> Vec<ProviderReadiness> {
    let mut merged: BTreeMap<String, ProviderReadiness> = BTreeMap::new();
    for status in reports.values().flat_map(|report| &report.providers) {
        let entry = merged.entry(status.name.clone()).or_insert_with(|| ProviderReadiness {
            name: status.name.clone(),
            queue: status.queue.clone(),
            configured: false,
            setting: status.setting.clone(),
            reachable: None,
            workers: 0,
            note: None,
        });
        entry.workers += 1;
        entry.configured |= status.configured;
        entry.reachable = match (entry.reachable, status.reachable) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        if entry.note.is_none() {
            entry.note.clone_from(&status.note);
        }
    }
    merged.into_values().collect()
}

/// Queue depths and the rest read from Redis and PostgreSQL at most this
/// often, however many scrapers ask (each refresh is about nine queries).
const METRICS_REFRESH: Duration = Duration::from_secs(5);

/// Prometheus metrics of this API process, with queue depths and live
/// workers read at scrape time (at most every 5 s). With
/// `PEYK_METRICS_TOKEN` set, only `Authorization: Bearer <token>` gets them.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "`PEYK_METRICS_TOKEN` is set and the request does not carry it", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compared as hashes: the time taken says nothing about the token.
        let digest = |text: &str| sha2::Sha256::digest(text.as_bytes());
        if given.map(digest) != Some(digest(token)) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/metrics needs `Authorization: Bearer <PEYK_METRICS_TOKEN>`",
            ));
        }
    }
    static LAST_REFRESH: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let due = {
        let mut last = LAST_REFRESH.lock().unwrap();
        let due = last.is_none_or(|at| at.elapsed() >= METRICS_REFRESH);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    };
    if due && state.redis_is_up() {
        let _ = tokio::time::timeout(Duration::from_secs(2), peyk_jobs::metrics::refresh_queue_gauges(&state.queue, &state.pool)).await;
    }
    peyk_jobs::metrics::refresh_connection_gauges(&state.pool, state.redis_is_up());
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], peyk_jobs::metrics::render()))
}
