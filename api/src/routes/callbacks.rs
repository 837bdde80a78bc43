//! Inbound events: gateway callbacks (`/v1/callbacks/{gateway}/{tenant}`)
//! and other providers' Standard Webhooks (`/v1/inbound/{tenant}/{source}`).
//!
//! Both are public (the sender has no API key) and answer fast: the raw
//! event is recorded once — a replay finds its dedupe key and changes
//! nothing — and any verification it calls for is a job stored in the same
//! transaction, so no callback is recorded without its verification. The
//! gateway's word in a callback is never trusted: only the verification
//! job, asking the gateway itself, decides whether a payment was made.
//!
//! Zarinpal, IDPay and BitPay callbacks arrive through the payer's browser;
//! with a `return_url` on the account the browser is sent on there.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::inbound;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use peyk_jobs::metrics;
use peyk_jobs::payments::{stripe, Gateway};
use peyk_jobs::webhook::signing::SigningSecret;
use peyk_jobs::ValidationErrors;
use peyk_queue::queue::Enqueue;
use peyk_schema::queries::payments as q;
use peyk_schema::{InboundEventRow, NewJob, PaymentAccountRow, PaymentRow, TenantId};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::paging;
use crate::routes::jobs::push;
use crate::routes::payments::verification_job;
use crate::state::AppState;
use crate::views::ErrorBody;

/// What a callback says, read from its gateway's format.
struct Callback {
    /// The payment's reference (authority, id, id_get, PaymentIntent id).
    reference: Option<String>,
    /// Unique per event, for recording it once.
    dedupe_key: String,
    event_type: Option<String>,
    /// Whether the gateway says the payment is ready to verify.
    ready: bool,
    /// BitPay's trans_id.
    trans_id: Option<String>,
}

/// The raw request, as it is recorded.
struct Raw<'a> {
    method: &'a Method,
    query: Option<String>,
    content_type: Option<String>,
    body: &'a Bytes,
}

impl Raw<'_> {
    /// Query and form fields together (gateways send either, or both).
    fn fields(&self) -> HashMap<String, String> {
        let mut fields: HashMap<String, String> = HashMap::new();
        if let Some(query) = &self.query {
            fields.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        let content_type = self.content_type.as_deref().unwrap_or("");
        if content_type.starts_with("application/json") {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(self.body) {
                for (key, value) in map {
                    if let Some(text) = peyk_jobs::lenient::as_string(&value) {
                        fields.insert(key, text);
                    }
                }
            }
        } else {
            fields.extend(url::form_urlencoded::parse(self.body).into_owned());
        }
        fields
    }

    fn event(
        &self,
        tenant: Uuid,
        source: &str,
        callback: &Callback,
        payment: Option<&PaymentRow>,
        job: Option<&NewJob>,
    ) -> InboundEventRow {
        InboundEventRow {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            source: source.to_string(),
            dedupe_key: callback.dedupe_key.clone(),
            event_type: callback.event_type.clone(),
            method: self.method.to_string(),
            query: self.query.clone(),
            content_type: self.content_type.clone(),
            body: stored_body(self.body),
            payment_id: payment.map(|p| p.id),
            job_id: job.map(|j| j.id),
            received_at: chrono::Utc::now(),
        }
    }
}

/// Bytes of a callback's body that are stored: every gateway's callback fits
/// (a Stripe event is 2–3 KiB); anything longer is cut, so unauthenticated
/// senders cannot make Peyk store megabytes.
const MAX_STORED_BODY: usize = 4096;

fn stored_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_STORED_BODY {
        return text.into_owned();
    }
    let mut end = MAX_STORED_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes not stored]", &text[..end], text.len() - end)
}

fn required(fields: &HashMap<String, String>, name: &str) -> Result<String, ApiError> {
    fields.get(name).filter(|v| !v.is_empty()).cloned().ok_or_else(|| ApiError::invalid_field(name, "is missing"))
}

/// Reads a browser gateway's callback fields.
fn read_browser_callback(gateway: Gateway, fields: &HashMap<String, String>) -> Result<Callback, ApiError> {
    Ok(match gateway {
        Gateway::Zarinpal => {
            let (authority, status) = (required(fields, "Authority")?, required(fields, "Status")?);
            Callback {
                dedupe_key: format!("{authority}:{status}"),
                ready: status == "OK",
                reference: Some(authority),
                event_type: Some(status),
                trans_id: None,
            }
        }
        Gateway::Idpay => {
            let (id, status) = (required(fields, "id")?, required(fields, "status")?);
            let status = status.trim().to_string();
            // 10: paid, waiting for the merchant's verification.
            Callback {
                dedupe_key: format!("{id}:{status}"),
                ready: status == "10",
                reference: Some(id),
                event_type: Some(status),
                trans_id: None,
            }
        }
        Gateway::Bitpay => {
            let (trans_id, id_get) = (required(fields, "trans_id")?, required(fields, "id_get")?);
            Callback {
                dedupe_key: format!("{id_get}:{trans_id}"),
                ready: true,
                reference: Some(id_get),
                event_type: None,
                trans_id: Some(trans_id),
            }
        }
        Gateway::Stripe => unreachable!("Stripe events are read by read_stripe_event"),
    })
}

/// Checks and reads a Stripe event: the signature over the raw body with the
/// account's endpoint secret, then `id`, `type` and the PaymentIntent.
fn read_stripe_event(account: &PaymentAccountRow, headers: &HeaderMap, body: &Bytes) -> Result<Callback, ApiError> {
    let credentials: stripe::Credentials = peyk_jobs::payments::credentials(account).map_err(|e| ApiError::internal(e.message))?;
    let secret = credentials.webhook_secret.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_webhook_secret",
            "the Stripe account has no `webhook_secret`: events cannot be authenticated",
        )
    })?;
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    stripe::verify_signature(&secret, signature, body, chrono::Utc::now().timestamp())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_signature", e.to_string()))?;
    let event: Value = serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    let id = event["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| ApiError::invalid_field("id", "is missing"))?;
    let event_type = event["type"].as_str().unwrap_or_default().to_string();
    let object = &event["data"]["object"];
    let intent = (object["object"] == "payment_intent").then(|| object["id"].as_str().map(str::to_owned)).flatten();
    // Every PaymentIntent event is worth a verification: it re-reads the
    // intent, so out-of-order events cannot mislead it.
    Ok(Callback { dedupe_key: id.to_string(), ready: intent.is_some(), reference: intent, event_type: Some(event_type), trans_id: None })
}

/// A gateway's callback.
#[utoipa::path(method(get, post), path = "/v1/callbacks/{gateway}/{tenant}", tag = "payments",
    params(("gateway" = String, Path, description = "zarinpal | idpay | bitpay | stripe"), ("tenant" = Uuid, Path)),
    request_body(content = String, description = "The callback exactly as the gateway sends it: Zarinpal `Authority`/`Status` and BitPay `trans_id`/`id_get` in the query (GET) or a form; IDPay's form or JSON; a Stripe event (JSON) with `Stripe-Signature`", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Recorded (or a replay, recorded before): `{received, duplicate, payment_id, verification_job_id}`"),
        (status = 303, description = "Browser callbacks with a `return_url` on the account: sent there"),
        (status = 400, description = "Bad Stripe signature", body = ErrorBody),
        (status = 404, description = "No such tenant or account", body = ErrorBody),
        (status = 422, description = "A field the gateway always sends is missing", body = ErrorBody),
        (status = 429, description = "Too many requests from this address (`Retry-After`)", body = ErrorBody),
    ))]
pub async fn gateway_callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((gateway, tenant)): Path<(String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let gateway = Gateway::parse(&gateway).ok_or_else(|| ApiError::not_found("gateway"))?;
    limit_sender(&state, peer, &headers).inspect_err(|_| {
        metrics::PAYMENT_CALLBACKS.with_label_values(&[gateway.name(), "rate_limited"]).inc();
    })?;
    let tenant = Uuid::parse_str(&tenant).map_err(|_| ApiError::not_found("payment account"))?;
    let raw = Raw { method: &method, query, content_type: content_type(&headers), body: &body };
    let (account, callback, payment) = if gateway == Gateway::Stripe {
        // The event is read (and its reference known) only once the
        // account's secret has authenticated it.
        let account = state.payment_account(tenant, gateway.name()).await?.ok_or_else(|| ApiError::not_found("payment account"))?;
        let callback = read_stripe_event(&account, &headers, &body).inspect_err(|_| {
            metrics::PAYMENT_CALLBACKS.with_label_values(&[gateway.name(), "rejected"]).inc();
        })?;
        let payment = find_payment(&state, tenant, gateway, &callback).await?;
        (account, callback, payment)
    } else {
        // The account (usually cached) and the payment are looked up in parallel.
        let callback = read_browser_callback(gateway, &raw.fields())?;
        let (account, payment) =
            tokio::join!(state.payment_account(tenant, gateway.name()), find_payment(&state, tenant, gateway, &callback));
        (account?.ok_or_else(|| ApiError::not_found("payment account"))?, callback, payment?)
    };

    // A verification is worth queuing while the payment may still change:
    // the callback's word is only a reason to ask the gateway, never an
    // outcome, and whether one is queued is up to `record_events`' bounds.
    let job = match &payment {
        Some(payment) if callback.ready && payment.may_change() => Some(verification_job(payment, callback.trans_id.as_deref())?),
        _ => None,
    };
    let event = raw.event(tenant, gateway.name(), &callback, payment.as_ref(), job.as_ref());
    let record = q::CallbackRecord { event, job: job.clone(), trans_id: callback.trans_id.clone(), limits: state.limits.callbacks };
    let recording = state.callbacks.call(record).await?;
    let (recorded, job) = (recording.recorded, job.filter(|_| recording.queued));
    if let Some(entry) = job.as_ref().and_then(Enqueue::for_new) {
        // The job is committed: the gateway need not wait for Redis too
        // (should the push fail, the sweeper queues the stored row).
        tokio::spawn({
            let state = state.clone();
            async move { push(&state, entry).await }
        });
    }

    let status = match (&payment, &job) {
        (None, _) => "unknown_payment",
        (Some(p), _) if p.is_final() => p.status.as_str(),
        (Some(_), Some(_)) => "verifying",
        (Some(_), None) => "received",
    };
    // Callbacks for unknown payments are counted, whether or not this one
    // was among those stored (a sample per minute).
    let counted = match (recorded, status) {
        (_, "unknown_payment") => status,
        (false, _) => "duplicate",
        (true, "verifying") => status,
        (true, _) => "received",
    };
    metrics::PAYMENT_CALLBACKS.with_label_values(&[gateway.name(), counted]).inc();
    if let (Some(return_url), true) = (&account.return_url, gateway != Gateway::Stripe) {
        if let Ok(mut url) = url::Url::parse(return_url) {
            {
                let mut pairs = url.query_pairs_mut();
                if let Some(p) = &payment {
                    pairs.append_pair("payment_id", &p.id.to_string()).append_pair("order_id", &p.order_id);
                }
                pairs.append_pair("status", status);
            }
            return Ok(Redirect::to(url.as_str()).into_response());
        }
    }
    Ok(Json(json!({
        "received": true,
        "duplicate": !recorded,
        "status": status,
        "payment_id": payment.as_ref().map(|p| p.id),
        "verification_job_id": job.as_ref().map(|j| j.id),
    }))
    .into_response())
}

/// The public endpoints' per-sender limit (`PEYK_PUBLIC_RATE_PER_MINUTE`).
fn limit_sender(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let address = state.public_limiter.client_address(peer, headers);
    state.public_limiter.check(address).map_err(|wait| ApiError::rate_limited("too many requests from this address", wait))
}

async fn find_payment(state: &AppState, tenant: Uuid, gateway: Gateway, callback: &Callback) -> Result<Option<PaymentRow>, ApiError> {
    match &callback.reference {
        Some(reference) => Ok(q::find(&state.pool, tenant, gateway.name(), reference).await?),
        None => Ok(None),
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

// ---- Standard Webhooks from other providers ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSource {
    /// The provider's signing secret (`whsec_…`); generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

fn valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Create or replace an inbound source: a provider that will post Standard
/// Webhooks to `/v1/inbound/{tenant}/{name}` signed with `secret`.
#[utoipa::path(put, path = "/v1/inbound-sources/{name}", tag = "inbound", security(("api_key" = ["payments:admin"])),
    params(("name" = String, Path, description = "lowercase letters, digits, `-`, `_`")), request_body = PutSource,
    responses((status = 200, description = "`{name, secret, path}`"), (status = 422, body = ErrorBody)))]
pub async fn put_source(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ValidJson(body): ValidJson<PutSource>,
) -> Result<Json<Value>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let mut errors = ValidationErrors::new();
    if !valid_source_name(&name) {
        errors.add("name", "must be 1 to 64 lowercase letters, digits, `-` or `_`");
    }
    if let Some(secret) = &body.secret {
        if let Err(problem) = SigningSecret::parse(secret) {
            errors.add("secret", problem);
        }
    }
    errors.into_result().map_err(ApiError::validation)?;
    let secret_given = body.secret.is_some();
    let secret = body.secret.unwrap_or_else(SigningSecret::generate);
    q::put_source(&state.pool, tenant.0, &name, &secret).await?;
    caller.audit(&state, "inbound_source.changed", &name, json!({ "secret_given": secret_given })).await?;
    Ok(Json(json!({ "name": name, "secret": secret, "path": format!("/v1/inbound/{}/{name}", tenant.0 .0) })))
}

#[utoipa::path(get, path = "/v1/inbound-sources", tag = "inbound", security(("api_key" = ["payments:admin"])),
    responses((status = 200, description = "`{\"data\": [{name, created_at}]}` (secrets are not shown)")))]
pub async fn list_sources(State(state): State<AppState>, tenant: Tenant) -> Result<Json<Value>, ApiError> {
    let sources: Vec<Value> = q::source_names(&state.pool, tenant.0)
        .await?
        .into_iter()
        .map(|(name, created_at)| json!({ "name": name, "created_at": created_at }))
        .collect();
    Ok(Json(json!({ "data": sources })))
}

#[utoipa::path(delete, path = "/v1/inbound-sources/{name}", tag = "inbound", security(("api_key" = ["payments:admin"])),
    params(("name" = String, Path)), responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_source(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let tenant = Tenant(caller.tenant());
    if !q::delete_source(&state.pool, tenant.0, &name).await? {
        return Err(ApiError::not_found("inbound source"));
    }
    caller.audit(&state, "inbound_source.deleted", &name, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Receives a Standard Webhook: checks `webhook-signature` with the
/// source's secret (timestamps within 5 minutes) and stores the event once
/// per `webhook-id`.
#[utoipa::path(post, path = "/v1/inbound/{tenant}/{source}", tag = "inbound",
    params(("tenant" = Uuid, Path), ("source" = String, Path)),
    request_body(content = String, description = "The provider's event, signed with `webhook-id`, `webhook-timestamp` and `webhook-signature`", content_type = "application/json"),
    responses(
        (status = 200, description = "`{received, duplicate, event_id}`"),
        (status = 401, description = "Missing, stale or wrong signature", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 429, description = "Too many requests from this address (`Retry-After`)", body = ErrorBody),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((tenant, source)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    limit_sender(&state, peer, &headers)?;
    let tenant = Uuid::parse_str(&tenant).map_err(|_| ApiError::not_found("inbound source"))?;
    let secret = q::source_secret(&state.pool, tenant, &source).await?.ok_or_else(|| ApiError::not_found("inbound source"))?;
    let secret = SigningSecret::parse(&secret).map_err(ApiError::internal)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let id = header("webhook-id");
    inbound::verify(&secret, &id, &header("webhook-timestamp"), &header("webhook-signature"), &body, chrono::Utc::now().timestamp())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))?;
    let event_type = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["type"].as_str().map(str::to_owned));
    let callback = Callback { dedupe_key: id, event_type, reference: None, ready: false, trans_id: None };
    let raw = Raw { method: &method, query: None, content_type: content_type(&headers), body: &body };
    let event = raw.event(tenant, &source, &callback, None, None);
    // Signed by the provider: stored once per webhook-id, not sampled.
    let signed = q::CallbackLimits { unknown_per_minute: 0, ..state.limits.callbacks };
    let event_id = event.id;
    let recorded = state.callbacks.call(q::CallbackRecord { event, job: None, trans_id: None, limits: signed }).await?.recorded;
    Ok(Json(json!({ "received": true, "duplicate": !recorded, "event_id": recorded.then_some(event_id) })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// A gateway name or an inbound source name.
    pub source: Option<String>,
    pub before: Option<Uuid>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

/// Inbound events as they arrived (gateway callbacks and Standard Webhooks),
/// newest first.
#[utoipa::path(get, path = "/v1/inbound-events", tag = "inbound", security(("api_key" = ["payments:read"])), params(ListEvents),
    responses((status = 200, description = "`{\"data\": [events], \"next\": cursor}`"), (status = 400, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<ListEvents>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("query", e.body_text()))?;
    let limit = paging::limit(query.limit)?;
    let rows = q::list_events(&state.pool, TenantId(tenant.0 .0), query.source.as_deref(), query.before, limit).await?;
    let next = paging::next(&rows, limit, |row| row.id);
    Ok(Json(json!({ "data": rows, "next": next })))
}
