//! `/v1/sms/outbox`: the messages SMS jobs kept instead of sending, when no
//! Kavenegar key is configured (development). Empty in production.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use peyk_schema::models::SmsOutboxRow;
use peyk_schema::queries::sms;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::ErrorBody;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// At most this many messages, newest first (1–500, default 50).
    pub limit: Option<i64>,
}

/// List the development SMS outbox.
#[utoipa::path(get, path = "/v1/sms/outbox", tag = "sms", security(("api_key" = ["jobs:read"])),
    params(OutboxQuery),
    responses(
        (status = 200, description = "`{\"outbox\": true, \"data\": [messages]}`: kept, never sent"),
        (status = 400, description = "Bad `limit`", body = ErrorBody),
    ))]
pub async fn outbox(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.map_err(|_| ApiError::bad_parameter("limit", "must be an integer"))?.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", "must be between 1 and 500"));
    }
    let rows: Vec<SmsOutboxRow> = sms::list_outbox(&state.pool, tenant.0, limit).await?;
    Ok(Json(
        json!({ "outbox": true, "note": "messages kept locally because PEYK_KAVENEGAR_API_KEY is not set; none was sent", "data": rows }),
    ))
}
