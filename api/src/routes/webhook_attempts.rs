//! A delivery attempt of a message to an endpoint, as both the endpoint's
//! and the message's attempt lists show it, and the paging they share.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use chrono::{DateTime, Utc};
use peyk_schema::WebhookAttemptRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

/// One delivery attempt of a message to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptView {
    pub id: i64,
    pub message_id: String,
    pub endpoint_id: Uuid,
    /// The `webhook_delivery` job (also in `/v1/jobs`).
    pub job_id: Uuid,
    pub attempt: i32,
    /// Null when no answer came.
    pub status_code: Option<i32>,
    pub latency_ms: f64,
    /// The first KiB of the answer.
    pub response_excerpt: Option<String>,
    /// Null on success, e.g. `http_500`, `timeout`, `connection_failed`.
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<WebhookAttemptRow> for WebhookAttemptView {
    fn from(row: WebhookAttemptRow) -> Self {
        Self {
            id: row.id,
            message_id: row.message_id,
            endpoint_id: row.endpoint_id,
            job_id: row.job_id,
            attempt: row.attempt,
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            response_excerpt: row.response_excerpt,
            error_code: row.error_code,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptList {
    pub data: Vec<WebhookAttemptView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

pub(super) fn check_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_parameter("limit", "must be a whole number from 1 to 200")),
    }
}

pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::bad_parameter("query", e.body_text()))
}
