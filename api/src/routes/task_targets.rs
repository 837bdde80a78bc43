//! `/v1/task-targets`: the tenant's HTTP task targets — its own app's
//! endpoints that `task` jobs POST their arguments to (see
//! `peyk_jobs::task` for the exchange). A target's secret is shown in the
//! answer to `PUT` (which sets or keeps it), never by `GET`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::task::{self, MAX_TIMEOUT_SECONDS, NAME_RULE};
use peyk_jobs::webhook::check_url;
use peyk_jobs::webhook::signing::SigningSecret;
use peyk_jobs::ValidationErrors;
use peyk_schema::queries::task_targets as q;
use peyk_schema::TaskTargetRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::state::AppState;
use crate::views::ErrorBody;

const MAX_URL_BYTES: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
const DEFAULT_TIMEOUT_SECONDS: i32 = 60;
const DEFAULT_MAX_ATTEMPTS: i32 = 5;
const DEFAULT_MIN_BACKOFF_SECONDS: i32 = 10;
const DEFAULT_MAX_BACKOFF_SECONDS: i32 = 3600;
const MAX_BACKOFF_SECONDS: i32 = 86_400;

/// `PUT /v1/task-targets/{name}` body. Fields left out take their default
/// (and, for `secret`, keep the target's current one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTaskTarget {
    /// Your app's endpoint (http or https; no credentials in it).
    #[schema(example = "https://clinic.example/peyk/tasks")]
    pub url: String,
    /// `whsec_` + base64 of 24–64 bytes. Absent: the current secret is
    /// kept, or one is generated for a new target.
    #[serde(default)]
    pub secret: Option<String>,
    /// Per-attempt timeout, 1–900 s (default 60).
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
    /// Attempts before a job of this task is `dead`, 1–25 (default 5); a
    /// job may ask for fewer with its own `max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<i32>,
    /// First retry delay, 1–86400 s (default 10); it doubles per attempt
    /// (with jitter) up to `max_backoff_seconds`. A `Retry-After` your app
    /// sends is honoured when longer.
    #[serde(default)]
    pub min_backoff_seconds: Option<i32>,
    /// Longest retry delay, `min_backoff_seconds`–86400 s (default 3600,
    /// or `min_backoff_seconds` when that is longer).
    #[serde(default)]
    pub max_backoff_seconds: Option<i32>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A task target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskTargetView {
    pub name: String,
    pub url: String,
    pub timeout_seconds: i32,
    pub max_attempts: i32,
    pub min_backoff_seconds: i32,
    pub max_backoff_seconds: i32,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to `PUT`: verify each request with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl TaskTargetView {
    fn of(row: TaskTargetRow, with_secret: bool) -> Self {
        Self {
            secret: with_secret.then_some(row.secret.into_inner()),
            name: row.name,
            url: row.url,
            timeout_seconds: row.timeout_seconds,
            max_attempts: row.max_attempts,
            min_backoff_seconds: row.min_backoff_seconds,
            max_backoff_seconds: row.max_backoff_seconds,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskTargetList {
    pub data: Vec<TaskTargetView>,
}

/// Create or replace a task target.
#[utoipa::path(put, path = "/v1/task-targets/{name}", tag = "tasks", security(("api_key" = ["webhooks:admin"])),
    params(("name" = String, Path, description = "The task's name, as `task` jobs give it: 1–128 characters of `A-Z a-z 0-9 _ - . :`")),
    request_body = PutTaskTarget,
    responses(
        (status = 200, description = "Stored; the answer carries the secret", body = TaskTargetView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = ErrorBody),
    ))]
pub async fn put_target(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ValidJson(body): ValidJson<PutTaskTarget>,
) -> Result<Json<TaskTargetView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    validate(&name, &body).map_err(ApiError::validation)?;
    let secret = match body.secret {
        Some(secret) => secret.into(),
        None => match q::get(&state.pool, tenant.0, &name).await? {
            Some(existing) => existing.secret,
            None => SigningSecret::generate().into(),
        },
    };
    let now = Utc::now();
    let min_backoff_seconds = body.min_backoff_seconds.unwrap_or(DEFAULT_MIN_BACKOFF_SECONDS);
    let row = TaskTargetRow {
        tenant_id: tenant.0 .0,
        name,
        url: body.url,
        secret,
        timeout_seconds: body.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        max_attempts: body.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        min_backoff_seconds,
        // A long first delay raises the default ceiling with it.
        max_backoff_seconds: body.max_backoff_seconds.unwrap_or(DEFAULT_MAX_BACKOFF_SECONDS.max(min_backoff_seconds)),
        description: body.description.filter(|d| !d.is_empty()),
        created_at: now,
        updated_at: now,
    };
    let stored = q::upsert(&state.pool, &row).await?;
    caller.audit(&state, "task_target.changed", &stored.name, serde_json::json!({ "url": stored.url })).await?;
    Ok(Json(TaskTargetView::of(stored, true)))
}

fn validate(name: &str, body: &PutTaskTarget) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if !task::valid_name(name) {
        errors.add("name", NAME_RULE);
    }
    if let Err(problem) = check_url(&body.url) {
        errors.add("url", problem);
    } else if body.url.len() > MAX_URL_BYTES {
        errors.add("url", format!("must be at most {MAX_URL_BYTES} bytes"));
    }
    if let Some(Err(problem)) = body.secret.as_deref().map(SigningSecret::parse) {
        errors.add("secret", problem);
    }
    let mut range = |field: &str, value: Option<i32>, min: i32, max: i32| {
        if value.is_some_and(|v| !(min..=max).contains(&v)) {
            errors.add(field, format!("must be between {min} and {max}"));
        }
    };
    range("timeout_seconds", body.timeout_seconds, 1, MAX_TIMEOUT_SECONDS);
    range("max_attempts", body.max_attempts, 1, 25);
    range("min_backoff_seconds", body.min_backoff_seconds, 1, MAX_BACKOFF_SECONDS);
    range("max_backoff_seconds", body.max_backoff_seconds, 1, MAX_BACKOFF_SECONDS);
    let min = body.min_backoff_seconds.unwrap_or(DEFAULT_MIN_BACKOFF_SECONDS);
    if body.max_backoff_seconds.unwrap_or(DEFAULT_MAX_BACKOFF_SECONDS.max(min)) < min {
        errors.add("max_backoff_seconds", "must not be less than min_backoff_seconds");
    }
    if body.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.add("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    errors.into_result()
}

/// The tenant's task targets.
#[utoipa::path(get, path = "/v1/task-targets", tag = "tasks", security(("api_key" = ["webhooks:admin"])),
    responses((status = 200, body = TaskTargetList), (status = 401, body = ErrorBody)))]
pub async fn list_targets(State(state): State<AppState>, tenant: Tenant) -> Result<Json<TaskTargetList>, ApiError> {
    let data = q::list(&state.pool, tenant.0).await?.into_iter().map(|row| TaskTargetView::of(row, false)).collect();
    Ok(Json(TaskTargetList { data }))
}

/// Get a task target (without its secret).
#[utoipa::path(get, path = "/v1/task-targets/{name}", tag = "tasks", security(("api_key" = ["webhooks:admin"])),
    params(("name" = String, Path, description = "The task's name")),
    responses((status = 200, body = TaskTargetView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_target(State(state): State<AppState>, tenant: Tenant, Path(name): Path<String>) -> Result<Json<TaskTargetView>, ApiError> {
    let row = q::get(&state.pool, tenant.0, &name).await?.ok_or_else(|| ApiError::not_found("task target"))?;
    Ok(Json(TaskTargetView::of(row, false)))
}

/// Delete a task target. Jobs of the task that have not run yet fail with
/// `unknown_task` when they do.
#[utoipa::path(delete, path = "/v1/task-targets/{name}", tag = "tasks", security(("api_key" = ["webhooks:admin"])),
    params(("name" = String, Path, description = "The task's name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_target(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let tenant = Tenant(caller.tenant());
    if !q::delete(&state.pool, tenant.0, &name).await? {
        return Err(ApiError::not_found("task target"));
    }
    caller.audit(&state, "task_target.deleted", &name, serde_json::json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(url: &str) -> PutTaskTarget {
        PutTaskTarget {
            url: url.into(),
            secret: None,
            timeout_seconds: None,
            max_attempts: None,
            min_backoff_seconds: None,
            max_backoff_seconds: None,
            description: None,
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let fields = |name: &str, b: PutTaskTarget| -> Vec<String> {
            validate(name, &b).err().map(|e| e.0.into_iter().map(|f| f.field).collect()).unwrap_or_default()
        };
        assert!(fields("reports.rebuild", body("https://app.example/t")).is_empty());
        let mut bad = body("ftp://x");
        bad.secret = Some("plain".into());
        bad.timeout_seconds = Some(901);
        bad.min_backoff_seconds = Some(100);
        bad.max_backoff_seconds = Some(50);
        assert_eq!(fields("has space", bad), ["name", "url", "secret", "timeout_seconds", "max_backoff_seconds"]);
    }
}
