//! `/v1/webhook-messages`: every event Peyk published for the tenant, with
//! the exact body its endpoints receive, each delivery attempt, and replay.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::events::{catalogue, queue_deliveries};
use peyk_schema::queries::webhook_endpoints::{self as q};
use peyk_schema::WebhookMessageRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::state::AppState;
use crate::views::ErrorBody;

use super::webhook_attempts::{check_limit, query, WebhookAttemptList};

/// `POST /v1/webhook-messages/{id}/replay` body (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayMessage {
    /// Deliver to this endpoint only; default: every enabled endpoint that wants the event now.
    #[serde(default)]
    pub endpoint_id: Option<Uuid>,
}

/// A published event, with the exact body its endpoints receive.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookMessageView {
    /// The `webhook-id` of every delivery of it.
    pub id: String,
    pub event_type: String,
    /// `{"type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<WebhookMessageRow> for WebhookMessageView {
    fn from(row: WebhookMessageRow) -> Self {
        Self { id: row.id, event_type: row.event_type, payload: row.payload, created_at: row.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookMessageList {
    pub data: Vec<WebhookMessageView>,
    /// Pass as `cursor` for the next (older) page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    pub message_id: String,
    /// The `webhook_delivery` jobs queued, one per endpoint.
    pub job_ids: Vec<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only this event type.
    pub event_type: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn message(state: &AppState, tenant: &Tenant, id: &str) -> Result<WebhookMessageRow, ApiError> {
    q::get_message(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("webhook message"))
}

/// Published events, newest first.
#[utoipa::path(get, path = "/v1/webhook-messages", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(MessagesQuery),
    responses((status = 200, body = WebhookMessageList), (status = 400, body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<AppState>,
    tenant: Tenant,
    params: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<WebhookMessageList>, ApiError> {
    let params = query(params)?;
    let limit = check_limit(params.limit)?;
    if let Some(event_type) = &params.event_type {
        if !catalogue::is_event_type(event_type) {
            return Err(ApiError::bad_parameter("event_type", "unknown event type; see GET /v1/event-types"));
        }
    }
    let mut rows = q::list_messages(&state.pool, tenant.0, params.event_type.as_deref(), params.cursor.as_deref(), limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.id.clone())
    } else {
        None
    };
    Ok(Json(WebhookMessageList { data: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// One published event.
#[utoipa::path(get, path = "/v1/webhook-messages/{id}", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Message id (`msg_…`)")),
    responses((status = 200, body = WebhookMessageView), (status = 404, body = ErrorBody)))]
pub async fn get_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<WebhookMessageView>, ApiError> {
    Ok(Json(message(&state, &tenant, &id).await?.into()))
}

/// Every delivery attempt of a message, oldest first.
#[utoipa::path(get, path = "/v1/webhook-messages/{id}/attempts", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = WebhookAttemptList), (status = 404, body = ErrorBody)))]
pub async fn message_attempts(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    let row = message(&state, &tenant, &id).await?;
    let rows = q::attempts_for_message(&state.pool, &row.id).await?;
    Ok(Json(WebhookAttemptList { data: rows.into_iter().map(Into::into).collect() }))
}

/// Deliver a past message again (same `webhook-id` and body), to one
/// endpoint or to every enabled endpoint that wants its type now.
#[utoipa::path(post, path = "/v1/webhook-messages/{id}/replay", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Message id")), request_body = ReplayMessage,
    responses(
        (status = 202, description = "Deliveries queued", body = ReplayView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The endpoint is unknown or disabled", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn replay_message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ReplayMessage>,
) -> Result<Response, ApiError> {
    let row = message(&state, &tenant, &id).await?;
    let endpoints = match body.endpoint_id {
        Some(endpoint_id) => {
            let endpoint = q::get_endpoint(&state.pool, tenant.0, endpoint_id)
                .await?
                .ok_or_else(|| ApiError::invalid_field("endpoint_id", "no such webhook endpoint"))?;
            if !endpoint.enabled {
                return Err(ApiError::invalid_field("endpoint_id", "the endpoint is disabled; enable it first"));
            }
            vec![endpoint.id]
        }
        None => q::subscribed(&state.pool, tenant.0, &row.event_type).await?,
    };
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    let job_ids = queue_deliveries(&state.inserter, &state.pusher, tenant.0 .0, &row.id, &endpoints)
        .await
        .map_err(|e| ApiError::internal(e.message))?;
    Ok((StatusCode::ACCEPTED, Json(ReplayView { message_id: row.id, job_ids })).into_response())
}
