//! `/v1/payment-accounts` (a tenant's gateway credentials) and
//! `/v1/payments` (payments to expect, and their verified outcomes).
//!
//! The flow: the tenant creates the payment at its gateway, registers it
//! here (`POST /v1/payments`) with the amount it expects, and sends the
//! payer to the gateway with `callback_url` = Peyk's
//! `/v1/callbacks/{gateway}/{tenant_id}`. The callback queues a
//! `payment_verification` job; the outcome is stored once and announced as
//! `payment.succeeded` / `payment.failed` to the tenant's webhook endpoints.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::payments::{self, Gateway, PaymentVerificationJob};
use peyk_jobs::{Job, JobKind, ValidationErrors};
use peyk_schema::queries::payments as q;
use peyk_schema::{PaymentAccountRow, PaymentRow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::paging;
use crate::routes::jobs::enqueue;
use crate::state::AppState;
use crate::views::ErrorBody;

/// A gateway account's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAccount {
    /// Zarinpal `{merchant_id}`; IDPay `{api_key}`; BitPay `{api_key}`;
    /// Stripe `{secret_key, webhook_secret?}`. Stored, never shown again.
    #[schema(value_type = Object, example = json!({"merchant_id": "1344b5d4-0048-11e8-94db-005056a205be"}))]
    pub credentials: Value,
    /// Use the gateway's sandbox (Zarinpal's and BitPay's test hosts,
    /// IDPay's `X-SANDBOX` header).
    #[serde(default)]
    pub sandbox: bool,
    /// Where to send the payer's browser after its callback reached Peyk
    /// (Peyk adds `payment_id`, `order_id` and `status`). Without it the
    /// browser gets a small JSON answer.
    #[serde(default)]
    pub return_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub gateway: String,
    pub sandbox: bool,
    pub return_url: Option<String>,
    /// The path to give the gateway as callback URL (after your public host).
    #[schema(example = "/v1/callbacks/zarinpal/0190c0de-7d3a-7cc1-a3c5-1f2e3d4c5b6a")]
    pub callback_path: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PaymentAccountRow> for AccountView {
    fn from(row: PaymentAccountRow) -> Self {
        Self {
            callback_path: format!("/v1/callbacks/{}/{}", row.gateway, row.tenant_id),
            gateway: row.gateway,
            sandbox: row.sandbox,
            return_url: row.return_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn parse_gateway(name: &str) -> Result<Gateway, ApiError> {
    Gateway::parse(name).ok_or_else(|| ApiError::invalid_field("gateway", "must be one of zarinpal, idpay, bitpay, stripe"))
}

/// Create or replace the account at a gateway.
#[utoipa::path(put, path = "/v1/payment-accounts/{gateway}", tag = "payments", security(("api_key" = ["payments:admin"])),
    params(("gateway" = String, Path, description = "zarinpal | idpay | bitpay | stripe")),
    request_body = PutAccount,
    responses((status = 200, body = AccountView), (status = 422, description = "Bad gateway or credentials", body = ErrorBody)))]
pub async fn put_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(gateway): Path<String>,
    ValidJson(body): ValidJson<PutAccount>,
) -> Result<Json<AccountView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let gateway = parse_gateway(&gateway)?;
    let mut errors = ValidationErrors::new();
    if let Err(invalid) = payments::validate_credentials(gateway, &body.credentials) {
        errors.0.extend(invalid.0);
    }
    if let Some(url) = &body.return_url {
        if !matches!(url::Url::parse(url), Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some()) {
            errors.add("return_url", "must be an http or https URL");
        }
    }
    errors.into_result().map_err(ApiError::validation)?;
    let now = Utc::now();
    let row = PaymentAccountRow {
        tenant_id: tenant.0 .0,
        gateway: gateway.name().to_string(),
        credentials: peyk_schema::SealedJson(body.credentials),
        sandbox: body.sandbox,
        return_url: body.return_url,
        created_at: now,
        updated_at: now,
    };
    let stored = q::upsert_account(&state.pool, &row).await?;
    state.accounts.put((stored.tenant_id, gateway.name()), stored.clone());
    caller.audit(&state, "payment_account.changed", gateway.name(), json!({ "sandbox": stored.sandbox })).await?;
    Ok(Json(stored.into()))
}

/// The tenant's gateway accounts (credentials are never shown).
#[utoipa::path(get, path = "/v1/payment-accounts", tag = "payments", security(("api_key" = ["payments:admin"])),
    responses((status = 200, description = "`{\"data\": [accounts]}`")))]
pub async fn list_accounts(State(state): State<AppState>, tenant: Tenant) -> Result<Json<Value>, ApiError> {
    let accounts: Vec<AccountView> = q::accounts(&state.pool, tenant.0).await?.into_iter().map(AccountView::from).collect();
    Ok(Json(json!({ "data": accounts })))
}

#[utoipa::path(delete, path = "/v1/payment-accounts/{gateway}", tag = "payments", security(("api_key" = ["payments:admin"])),
    params(("gateway" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_account(State(state): State<AppState>, caller: Caller, Path(gateway): Path<String>) -> Result<StatusCode, ApiError> {
    let tenant = Tenant(caller.tenant());
    let gateway = parse_gateway(&gateway)?;
    state.accounts.remove(&(tenant.0 .0, gateway.name()));
    if !q::delete_account(&state.pool, tenant.0, gateway.name()).await? {
        return Err(ApiError::not_found("payment account"));
    }
    caller.audit(&state, "payment_account.deleted", gateway.name(), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers a payment to expect: the same fields as a
/// `payment_verification` job.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("api_key" = ["payments:write"])),
    request_body = PaymentVerificationJob,
    responses(
        (status = 201, description = "Registered (pending until its callback or a verification)"),
        (status = 200, description = "Already registered with the same fields: the stored payment"),
        (status = 409, description = "The reference is registered with another order or amount", body = ErrorBody),
        (status = 422, description = "Invalid field, or no account at the gateway", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    tenant: Tenant,
    ValidJson(mut payment): ValidJson<PaymentVerificationJob>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    payment.validate().map_err(ApiError::validation)?;
    payment.normalize();
    if q::account(&state.pool, tenant.0 .0, payment.gateway.name()).await?.is_none() {
        let problem = format!("no {} account: PUT /v1/payment-accounts/{} first", payment.gateway.name(), payment.gateway.name());
        return Err(ApiError::invalid_field("gateway", problem));
    }
    let (row, created) = q::register(&state.pool, &payment.new_row(tenant.0 .0)).await?;
    if !created
        && (row.amount, row.currency.as_str(), row.order_id.as_str())
            != (payment.amount, payment.currency.as_str(), payment.order_id.as_str())
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "payment_conflict",
            "this reference is registered with another order, amount or currency",
        )
        .with_details(json!({ "payment": payments::result_of(&row, true) })));
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(payments::result_of(&row, !created))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPayments {
    pub order_id: Option<String>,
    /// pending | verified | already_verified | amount_mismatch | failed
    pub status: Option<String>,
    pub gateway: Option<String>,
    /// The `next` cursor of the previous page.
    pub before: Option<Uuid>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

/// The tenant's payments, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("api_key" = ["payments:read"])), params(ListPayments),
    responses((status = 200, description = "`{\"data\": [payments], \"next\": cursor}`"), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<ListPayments>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("query", e.body_text()))?;
    let limit = paging::limit(query.limit)?;
    if let Some(status) = &query.status {
        if !["pending", "verified", "already_verified", "amount_mismatch", "failed"].contains(&status.as_str()) {
            return Err(ApiError::bad_parameter("status", "must be pending, verified, already_verified, amount_mismatch or failed"));
        }
    }
    if let Some(gateway) = &query.gateway {
        Gateway::parse(gateway).ok_or_else(|| ApiError::bad_parameter("gateway", "must be zarinpal, idpay, bitpay or stripe"))?;
    }
    let filter = q::PaymentFilter { order_id: query.order_id, status: query.status, gateway: query.gateway, before: query.before, limit };
    let rows = q::list(&state.pool, tenant.0, &filter).await?;
    let next = paging::next(&rows, limit, |row| row.id);
    Ok(Json(json!({ "data": rows.iter().map(|row| payments::result_of(row, false)).collect::<Vec<_>>(), "next": next })))
}

async fn find_payment(state: &AppState, tenant: &Tenant, id: &str) -> Result<PaymentRow, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("payment"))?;
    q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("payment"))
}

#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments", security(("api_key" = ["payments:read"])),
    params(("id" = Uuid, Path)), responses((status = 200, description = "The payment"), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(payments::result_of(&find_payment(&state, &tenant, &id).await?, false)))
}

/// Queues a verification of a registered payment now (e.g. when the tenant
/// got the callback itself). Verifying a settled payment returns its stored
/// outcome.
#[utoipa::path(post, path = "/v1/payments/{id}/verify", tag = "payments", security(("api_key" = ["payments:write"])),
    params(("id" = Uuid, Path)), responses((status = 202, description = "`{\"job_id\": …}`"), (status = 404, body = ErrorBody)))]
pub async fn verify(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let row = find_payment(&state, &tenant, &id).await?;
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    let job = verification_job(&row, None)?;
    let job_row = state.inserter.call(job).await?.ok_or_else(|| ApiError::internal("a new job id collided"))?;
    enqueue(&state, &job_row).await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "payment_id": row.id, "job_id": job_row.id }))))
}

/// The job that verifies a stored payment, ready to insert.
pub fn verification_job(row: &PaymentRow, trans_id: Option<&str>) -> Result<peyk_schema::NewJob, ApiError> {
    let job =
        PaymentVerificationJob::for_payment(row, trans_id).ok_or_else(|| ApiError::internal("stored payment of an unknown gateway"))?;
    let payload = serde_json::to_value(&job).map_err(ApiError::internal)?;
    Ok(peyk_queue::submit::system_job(row.tenant_id, &JobKind::described::<PaymentVerificationJob>(), payload, Utc::now()))
}
