//! `/v1/admin/keys` and `/v1/admin/audit`: operators issue, list and
//! revoke API keys, and read who did what (admin keys only).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_schema::queries::api_keys::{self as q, KeyRow, Revocation};
use peyk_schema::queries::audit::{self, AuditFilter, AuditRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{self, Admin};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::keys::{self, KeyRequest};
use crate::paging;
use crate::state::AppState;
use crate::views::ErrorBody;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant's name (created when new).
    pub tenant: String,
    /// What the key is for, for the people who list keys (at most 100 characters).
    #[serde(default)]
    pub name: String,
    /// What the key may do: `jobs:read`, `jobs:write`, `files`,
    /// `payments:read`, `payments:write`, `payments:admin`,
    /// `webhooks:admin`, `admin`. Absent or empty: every scope but `admin`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the key stops working (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as operators see it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The key's first 12 characters: how to tell it apart.
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (to within a few minutes).
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for KeyView {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            prefix: row.key_prefix,
            name: row.name,
            scopes: row.scopes,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key: shown this once, stored nowhere.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyView>,
}

/// Issue a key for a tenant (created when new). The answer is the only
/// place the key ever appears.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "admin", security(("api_key" = ["admin"])), request_body = CreateKey,
    responses((status = 201, body = CreatedKey)))]
pub async fn create_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ValidJson(body): ValidJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let request = KeyRequest { tenant: body.tenant, name: body.name, scopes: body.scopes, admin: false, expires_at: body.expires_at };
    let scopes = request.validate(Utc::now()).map_err(ApiError::validation)?;
    let (key, row) = keys::issue(&state.pool, &request, scopes, caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view: row.into() })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListKeys {
    /// Only this tenant's keys.
    pub tenant_id: Option<Uuid>,
    /// Revoked keys too (default: only those that work).
    #[serde(default)]
    pub include_revoked: bool,
}

/// Keys, newest first.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("api_key" = ["admin"])), params(ListKeys),
    responses((status = 200, body = KeyList)))]
pub async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<ListKeys>, QueryRejection>,
) -> Result<Json<KeyList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("query", e.body_text()))?;
    let rows = q::list_keys(&state.pool, query.tenant_id, query.include_revoked).await?;
    Ok(Json(KeyList { data: rows.into_iter().map(KeyView::from).collect() }))
}

/// Revoke a key (by id). Every API process refuses it within a second.
/// Revoking a revoked key changes nothing.
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", tag = "admin", security(("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(State(state): State<AppState>, Admin(caller): Admin, Path(id): Path<Uuid>) -> Result<Json<KeyView>, ApiError> {
    match keys::revoke(&state.pool, &id.to_string(), caller.actor()).await? {
        Revocation::Revoked(row) => {
            auth::announce_key_change(&state).await;
            Ok(Json(row.into()))
        }
        Revocation::NotFound | Revocation::Ambiguous(_) => Err(ApiError::not_found("key")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    pub tenant_id: Option<Uuid>,
    /// `key.created`, `key.revoked`, `payment_account.changed`, … (README, "Audit log").
    pub action: Option<String>,
    pub before: Option<Uuid>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    /// The key that acted (`null`: the operator's command line).
    pub actor_key_id: Option<Uuid>,
    /// The key's prefix, or `cli`.
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
}

impl From<AuditRow> for AuditEntryView {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            tenant_id: row.tenant_id,
            actor_key_id: row.actor_key_id,
            actor: row.actor,
            action: row.action,
            target: row.target,
            details: row.details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEntryView>,
    /// The cursor of the next page (`before`), when there may be one.
    pub next: Option<Uuid>,
}

/// The audit log, newest first: keys issued and revoked, credentials and
/// secrets changed or read, jobs cancelled, retried or erased.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("api_key" = ["admin"])), params(ListAudit),
    responses((status = 200, body = AuditList)))]
pub async fn list_audit(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<ListAudit>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("query", e.body_text()))?;
    let limit = paging::limit(query.limit)?;
    let filter = AuditFilter { tenant: query.tenant_id, action: query.action, before: query.before, limit };
    let rows = audit::list(&state.pool, &filter).await?;
    let next = paging::next(&rows, limit, |row| row.id);
    Ok(Json(AuditList { data: rows.into_iter().map(AuditEntryView::from).collect(), next }))
}
