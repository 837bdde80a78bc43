//! `/v1/webhook-endpoints`: the tenant's outbound webhook endpoints. Each
//! says which events it wants; events are published by Peyk
//! (`peyk_jobs::events`) and delivered by `webhook_delivery` jobs. A secret
//! is shown at creation, at rotation and by `GET …/secret`, never elsewhere.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::events::catalogue;
use peyk_jobs::webhook::check_url;
use peyk_jobs::webhook::signing::SigningSecret;
use peyk_jobs::ValidationErrors;
use peyk_schema::queries::webhook_endpoints::{self as q, EndpointChanges};
use peyk_schema::WebhookEndpointRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::extract::{OptionalJson, ValidJson};
use crate::state::AppState;
use crate::views::ErrorBody;
use serde_json::json;

use super::webhook_attempts::{check_limit, query, AttemptsQuery, WebhookAttemptList};

const MAX_URL_BYTES: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
const DEFAULT_GRACE_SECONDS: u64 = 86_400;
const MAX_GRACE_SECONDS: u64 = 7 * 86_400;

/// `POST /v1/webhook-endpoints` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where events are POSTed (http or https; no credentials in it).
    #[schema(example = "https://clinic.example/hooks/peyk")]
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Event types wanted (see `GET /v1/event-types`); empty or absent: all.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// `whsec_` + base64 of 24–64 bytes; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /v1/webhook-endpoints/{id}` body: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[serde(default)]
    pub url: Option<String>,
    /// An empty string removes it.
    #[serde(default)]
    pub description: Option<String>,
    /// Empty: every event type.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// `true` re-enables a disabled endpoint and resets its failure clock.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret` body (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The new secret; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the old secret still signs too (both signatures are sent),
    /// 0 – 604800 s; default 86400.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why Peyk disabled it.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed deliveries (null after a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret also signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answers to creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookEndpointView {
    fn of(row: WebhookEndpointRow, show_secret: bool) -> Self {
        let previous_secret_expires_at = row.previous_secret_at(Utc::now()).and(row.previous_secret_expires_at);
        Self {
            id: row.id,
            url: row.url,
            description: row.description,
            event_types: row.event_types,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since,
            previous_secret_expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret: show_secret.then_some(row.secret.into_inner()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub data: Vec<WebhookEndpointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    pub secret: String,
    /// Until when the previous secret also signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Any id that is not ours is a 404, not a 400: ids reveal nothing.
fn endpoint_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("webhook endpoint"))
}

async fn endpoint(state: &AppState, tenant: &Tenant, id: &str) -> Result<WebhookEndpointRow, ApiError> {
    q::get_endpoint(&state.pool, tenant.0, endpoint_id(id)?).await?.ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

fn check_endpoint_url(url: &str, errors: &mut ValidationErrors) {
    if url.len() > MAX_URL_BYTES {
        errors.add("url", format!("must be at most {MAX_URL_BYTES} bytes"));
    } else if let Err(problem) = check_url(url) {
        errors.add("url", problem);
    }
}

fn check_description(description: &str, errors: &mut ValidationErrors) {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.add("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
}

/// Checks each type against the catalogue; returns them without repeats.
fn check_event_types(types: &[String], errors: &mut ValidationErrors) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for (i, event_type) in types.iter().enumerate() {
        if !catalogue::is_event_type(event_type) {
            let known: Vec<&str> = catalogue::EVENT_TYPES.iter().map(|(t, _)| *t).collect();
            errors.add(format!("event_types[{i}]"), format!("unknown event type; known: {}", known.join(", ")));
        } else if !kept.contains(event_type) {
            kept.push(event_type.clone());
        }
    }
    kept
}

fn check_secret(secret: &str, errors: &mut ValidationErrors) {
    if let Err(problem) = SigningSecret::parse(secret) {
        errors.add("secret", problem);
    }
}

/// Register an endpoint.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "Created; the answer shows the secret", body = WebhookEndpointView),
        (status = 409, description = "The tenant has `PEYK_MAX_WEBHOOK_ENDPOINTS` endpoints already (`too_many_endpoints`)", body = ErrorBody),
        (status = 422, description = "Invalid URL, event type or secret", body = ErrorBody),
    ))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateEndpoint>,
) -> Result<Response, ApiError> {
    let tenant = Tenant(caller.tenant());
    let mut errors = ValidationErrors::new();
    check_endpoint_url(&body.url, &mut errors);
    if let Some(description) = &body.description {
        check_description(description, &mut errors);
    }
    let event_types = check_event_types(body.event_types.as_deref().unwrap_or_default(), &mut errors);
    // Transcripts go over https only (by default); `job.*` events of such
    // types are refused to a plain-http endpoint when they are sent.
    if event_types.iter().any(|t| t == catalogue::TRANSCRIPTION_COMPLETED) {
        if let Some(problem) = peyk_jobs::events::settings::get().plain_http_refused("transcription", &body.url) {
            errors.add("url", problem);
        }
    }
    if let Some(secret) = &body.secret {
        check_secret(secret, &mut errors);
    }
    errors.into_result().map_err(ApiError::validation)?;
    // Each event fans out to every endpoint: without a cap a tenant could
    // aim Peyk at a third party many times over.
    let cap = state.limits.max_webhook_endpoints;
    if q::count_endpoints(&state.pool, tenant.0).await? >= cap {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_endpoints",
            format!("a tenant has at most {cap} webhook endpoints (PEYK_MAX_WEBHOOK_ENDPOINTS); delete one first"),
        )
        .with_details(json!({ "limit": cap })));
    }
    let now = Utc::now();
    let row = WebhookEndpointRow {
        id: Uuid::now_v7(),
        tenant_id: tenant.0 .0,
        url: body.url,
        description: body.description.filter(|d| !d.is_empty()),
        event_types,
        enabled: body.enabled.unwrap_or(true),
        secret: body.secret.unwrap_or_else(SigningSecret::generate).into(),
        previous_secret: None,
        previous_secret_expires_at: None,
        failing_since: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let row = q::insert_endpoint(&state.pool, &row).await?;
    caller.audit(&state, "webhook_endpoint.created", row.id, json!({ "url": row.url })).await?;
    Ok((StatusCode::CREATED, Json(WebhookEndpointView::of(row, true))).into_response())
}

/// The tenant's endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    responses((status = 200, body = WebhookEndpointList)))]
pub async fn list_endpoints(State(state): State<AppState>, tenant: Tenant) -> Result<Json<WebhookEndpointList>, ApiError> {
    let rows = q::list_endpoints(&state.pool, tenant.0).await?;
    Ok(Json(WebhookEndpointList { data: rows.into_iter().map(|row| WebhookEndpointView::of(row, false)).collect() }))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookEndpointView), (status = 404, body = ErrorBody)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    Ok(Json(WebhookEndpointView::of(endpoint(&state, &tenant, &id).await?, false)))
}

/// Change an endpoint; `enabled: true` re-enables it and resets its failure clock.
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id")), request_body = UpdateEndpoint,
    responses((status = 200, body = WebhookEndpointView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<UpdateEndpoint>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    let id = endpoint_id(&id)?;
    let mut errors = ValidationErrors::new();
    if let Some(url) = &body.url {
        check_endpoint_url(url, &mut errors);
    }
    if let Some(description) = &body.description {
        check_description(description, &mut errors);
    }
    let event_types = body.event_types.as_deref().map(|types| check_event_types(types, &mut errors));
    errors.into_result().map_err(ApiError::validation)?;
    let mut changes = EndpointChanges {
        url: body.url,
        description: body.description.map(|d| Some(d).filter(|d| !d.is_empty())),
        event_types,
        enabled: body.enabled,
        updated_at: Some(Utc::now()),
        ..Default::default()
    };
    match body.enabled {
        // A fresh start: the failure clock runs again from the next failure.
        Some(true) => {
            changes.failing_since = Some(None);
            changes.disabled_reason = Some(None);
        }
        Some(false) => changes.disabled_reason = Some(Some("disabled through the API".into())),
        None => {}
    }
    let row = q::update_endpoint(&state.pool, tenant.0, id, &changes).await?.ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    Ok(Json(WebhookEndpointView::of(row, false)))
}

/// Delete an endpoint and its attempt log; queued deliveries to it are skipped.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let tenant = Tenant(caller.tenant());
    if !q::delete_endpoint(&state.pool, tenant.0, endpoint_id(&id)?).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    caller.audit(&state, "webhook_endpoint.deleted", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's signing secret.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/secret", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookSecretView), (status = 404, body = ErrorBody)))]
pub async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let row = endpoint(&state, &tenant, &id).await?;
    caller.audit(&state, "webhook_endpoint.secret_read", row.id, json!({})).await?;
    let previous_secret_expires_at = row.previous_secret_at(Utc::now()).and(row.previous_secret_expires_at);
    Ok(Json(WebhookSecretView { secret: row.secret.into_inner(), previous_secret_expires_at }))
}

/// Replace the signing secret; the old one keeps signing too (a second
/// signature) for `grace_seconds`.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id")), request_body = RotateSecret,
    responses((status = 200, body = WebhookSecretView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let id = endpoint_id(&id)?;
    let mut errors = ValidationErrors::new();
    if let Some(secret) = &body.secret {
        check_secret(secret, &mut errors);
    }
    let grace = body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        errors.add("grace_seconds", format!("must be between 0 and {MAX_GRACE_SECONDS}"));
    }
    errors.into_result().map_err(ApiError::validation)?;
    let secret = body.secret.unwrap_or_else(SigningSecret::generate);
    let until = (grace > 0).then(|| Utc::now() + chrono::Duration::seconds(grace as i64));
    let row = q::rotate_secret(&state.pool, tenant.0, id, &secret, until).await?.ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    caller.audit(&state, "webhook_endpoint.secret_rotated", row.id, json!({ "grace_seconds": grace })).await?;
    Ok(Json(WebhookSecretView { secret: row.secret.into_inner(), previous_secret_expires_at: row.previous_secret_expires_at }))
}

/// The endpoint's delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/attempts", tag = "webhooks", security(("api_key" = ["webhooks:admin"])),
    params(("id" = String, Path, description = "Endpoint id"), AttemptsQuery),
    responses((status = 200, body = WebhookAttemptList), (status = 404, body = ErrorBody)))]
pub async fn endpoint_attempts(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    params: Result<Query<AttemptsQuery>, QueryRejection>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    let limit = check_limit(query(params)?.limit)?;
    let row = endpoint(&state, &tenant, &id).await?;
    let rows = q::attempts_for_endpoint(&state.pool, row.id, limit).await?;
    Ok(Json(WebhookAttemptList { data: rows.into_iter().map(Into::into).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_checked_against_the_catalogue() {
        let mut errors = ValidationErrors::new();
        let kept = check_event_types(&["job.succeeded".into(), "nope".into(), "job.succeeded".into()], &mut errors);
        assert_eq!(kept, ["job.succeeded"]);
        assert_eq!(errors.0.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["event_types[1]"]);
    }
}
