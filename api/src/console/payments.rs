//! The console's payment pages: the tenant's payments with their status,
//! and one payment with the callbacks its gateway sent and every
//! verification (the job and its attempts). Scope `payments:read`, as the
//! signed-in key's tenant (an admin picks one).

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use peyk_schema::queries::api_keys::Scope;
use peyk_schema::queries::payments as q;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::pages::{chosen_tenant, failure, given, page, refusal, tenant_choices, with_tenant};
use super::render;
use super::session::Session;
use crate::error::ApiError;
use crate::routes::jobs;
use crate::routes::payments::{self as routes, ListPayments};
use crate::state::AppState;

/// The most callbacks and verifications one payment's page shows.
const SHOWN: i64 = 50;

#[derive(Deserialize, Default)]
pub struct PaymentsQuery {
    tenant: Option<String>,
    status: Option<String>,
    gateway: Option<String>,
    order_id: Option<String>,
    cursor: Option<Uuid>,
}

pub async fn list(State(state): State<AppState>, session: Session, Query(query): Query<PaymentsQuery>) -> Response {
    let path = "/console/payments";
    if let Some(refused) = refusal(&session, Scope::PaymentsRead, path) {
        return refused;
    }
    let found = async {
        let tenant = chosen_tenant(&session, &query.tenant)?;
        let filter = ListPayments {
            order_id: given(&query.order_id).map(str::to_string),
            status: given(&query.status).map(str::to_string),
            gateway: given(&query.gateway).map(str::to_string),
            before: query.cursor,
            limit: Some(50),
        };
        let Json(payments) = routes::list(State(state.clone()), tenant, Ok(Query(filter))).await?;
        let next_page = payments["next"].as_str().map(|cursor| {
            let mut pairs = vec![("cursor", cursor)];
            for (name, value) in [("status", &query.status), ("gateway", &query.gateway), ("order_id", &query.order_id)] {
                if let Some(value) = given(value) {
                    pairs.push((name, value));
                }
            }
            with_tenant(&session, tenant, &pairs)
        });
        Ok::<_, ApiError>(json!({
            "payments": payments["data"],
            "next_page": next_page,
            "tenants": tenant_choices(&state, &session, tenant).await?,
            "tenant_query": with_tenant(&session, tenant, &[]),
            "statuses": ["pending", "verified", "already_verified", "amount_mismatch", "failed"],
            "gateways": ["zarinpal", "idpay", "bitpay", "stripe"],
            "filter_status": given(&query.status),
            "filter_gateway": given(&query.gateway),
            "filter_order": given(&query.order_id),
        }))
    };
    match found.await {
        Ok(own) => render(StatusCode::OK, "payments.html", page(session.view, Some(&session), "payments", path, own)),
        Err(error) => failure(&session, path, error),
    }
}

/// One payment: its status, the callbacks as they arrived, and each
/// verification job with its attempts.
pub async fn show(State(state): State<AppState>, session: Session, Path(id): Path<String>, Query(query): Query<PaymentsQuery>) -> Response {
    let path = format!("/console/payments/{id}");
    if let Some(refused) = refusal(&session, Scope::PaymentsRead, &path) {
        return refused;
    }
    let found = async {
        let tenant = chosen_tenant(&session, &query.tenant)?;
        let payment_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("payment"))?;
        let row = q::get(&state.pool, tenant.0, payment_id).await?.ok_or_else(|| ApiError::not_found("payment"))?;
        let callbacks = q::events_of_payment(&state.pool, tenant.0, payment_id, SHOWN).await?;
        // The verifications: the jobs the callbacks queued, and the last
        // one queued by any means (an API call, the reconciler).
        let mut job_ids: Vec<Uuid> = callbacks.iter().filter_map(|event| event.job_id).collect();
        job_ids.extend(row.verification_job_id);
        job_ids.sort();
        job_ids.dedup();
        let mut verifications = Vec::new();
        for job_id in job_ids.into_iter().rev().take(SHOWN as usize) {
            let job = jobs::get_job(State(state.clone()), tenant, Path(job_id.to_string()), RawQuery(None)).await;
            let Ok(Json(job)) = job else { continue }; // erased by retention meanwhile
            let Json(attempts) = jobs::list_attempts(State(state.clone()), tenant, Path(job_id.to_string())).await?;
            verifications.push(json!({ "job": job, "attempts": attempts.data }));
        }
        let callbacks: Vec<Value> = callbacks
            .into_iter()
            .map(|event| {
                let body = pretty_body(&event.body);
                json!({ "event": event, "body": body })
            })
            .collect();
        Ok::<_, ApiError>(json!({
            "payment": peyk_jobs::payments::result_of(&row, false),
            "created_at": row.created_at,
            "checked_at": row.checked_at,
            "finished_at": row.finished_at,
            "callbacks": callbacks,
            "verifications": verifications,
            "tenant_query": with_tenant(&session, tenant, &[]),
        }))
    };
    match found.await {
        Ok(own) => render(StatusCode::OK, "payment.html", page(session.view, Some(&session), "payments", &path, own)),
        Err(error) => failure(&session, &path, error),
    }
}

/// A callback's body as it came, indented when it is JSON.
fn pretty_body(body: &str) -> String {
    serde_json::from_str::<Value>(body).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_else(|| body.to_string())
}
