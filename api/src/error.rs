//! The API's one error type and its JSON shape:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.
//! Anything the client sent wrong is a 4xx that says which field and why;
//! only our own failures are 5xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use peyk_jobs::ValidationErrors;
use peyk_schema::DbError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: json!({}) }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required: `Authorization: Bearer <key>`")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 422 naming every invalid field.
    pub fn validation(errors: ValidationErrors) -> Self {
        let message = format!("invalid request: {errors}");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).with_details(json!({ "errors": errors }))
    }

    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::validation(ValidationErrors::single(field, problem))
    }

    /// 400 for a query-string parameter.
    pub fn bad_parameter(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", format!("{field}: {problem}"))
            .with_details(json!({ "errors": [{ "field": field, "problem": problem }] }))
    }

    pub fn queue_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", "the job queue (Redis) is unreachable; try again shortly")
    }

    /// `429` with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).with_details(json!({ "retry_after_seconds": seconds }))
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; it has been logged")
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        Self::from_db(&error)
    }
}

impl ApiError {
    fn from_db(error: &DbError) -> Self {
        if error.is_unavailable() {
            tracing::error!(error = %error, "database unavailable");
            Self::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the database is unreachable; try again shortly")
        } else {
            Self::internal(error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        let mut response = (self.status, axum::Json(body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                let seconds = self.details["retry_after_seconds"].as_u64().unwrap_or(1);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

impl From<std::sync::Arc<DbError>> for ApiError {
    fn from(error: std::sync::Arc<DbError>) -> Self {
        Self::from_db(&error)
    }
}
