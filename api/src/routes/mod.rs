//! The router: every route, the body limit, request metrics, and JSON
//! answers for requests that match nothing.

pub mod callbacks;
pub mod email_templates;
pub mod files;
pub mod health;
pub mod jobs;
pub mod openapi;
pub mod payments;
pub mod pipelines;
pub mod sms;
pub mod transcripts;
pub mod webhook_endpoints;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use crate::config::Config;
use axum::Router;
use peyk_jobs::metrics::{HTTP_DURATION, HTTP_REQUESTS};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState, config: &Config) -> Router {
    // Uploads get their own, larger body limit; everything else the JSON one.
    let uploads = Router::new()
        .route("/v1/files", post(files::upload))
        .route("/v1/audio/transcriptions", post(transcripts::openai_transcriptions))
        .route("/v1/audio/translations", post(transcripts::openai_translations))
        .layer(DefaultBodyLimit::max(config.max_upload_bytes))
        .with_state(state.clone());
    let api = Router::new()
        .route("/v1/files/{id}", get(files::get_file).delete(files::delete_file))
        .route("/v1/jobs/{id}/transcript", get(transcripts::download))
        .route("/v1/sms/outbox", get(sms::outbox))
        .route("/v1/pipelines", post(pipelines::submit))
        .route("/v1/pipelines/{id}", get(pipelines::get_pipeline))
        .route("/v1/pipelines/{id}/cancel", post(pipelines::cancel_pipeline))
        .route("/v1/email/templates", get(email_templates::list_templates))
        .route("/v1/email/templates/{name}", put(email_templates::put_template).delete(email_templates::delete_template))
        .route("/v1/payment-accounts", get(payments::list_accounts))
        .route("/v1/payment-accounts/{gateway}", put(payments::put_account).delete(payments::delete_account))
        .route("/v1/payments", post(payments::register).get(payments::list))
        .route("/v1/payments/{id}", get(payments::get))
        .route("/v1/payments/{id}/verify", post(payments::verify))
        .route("/v1/callbacks/{gateway}/{tenant}", get(callbacks::gateway_callback).post(callbacks::gateway_callback))
        .route("/v1/inbound-sources", get(callbacks::list_sources))
        .route("/v1/inbound-sources/{name}", put(callbacks::put_source).delete(callbacks::delete_source))
        .route("/v1/inbound/{tenant}/{source}", post(callbacks::receive))
        .route("/v1/inbound-events", get(callbacks::list_events))
        .route("/v1/webhook-endpoints", post(webhook_endpoints::create_endpoint).get(webhook_endpoints::list_endpoints))
        .route(
            "/v1/webhook-endpoints/{id}",
            get(webhook_endpoints::get_endpoint).patch(webhook_endpoints::update_endpoint).delete(webhook_endpoints::delete_endpoint),
        )
        .route("/v1/webhook-endpoints/{id}/secret", get(webhook_endpoints::get_secret))
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(webhook_endpoints::rotate_secret))
        .route("/v1/webhook-endpoints/{id}/attempts", get(webhook_endpoints::endpoint_attempts))
        .route("/v1/webhook-messages", get(webhook_endpoints::list_messages))
        .route("/v1/webhook-messages/{id}", get(webhook_endpoints::get_message))
        .route("/v1/webhook-messages/{id}/attempts", get(webhook_endpoints::message_attempts))
        .route("/v1/webhook-messages/{id}/replay", post(webhook_endpoints::replay_message))
        .route("/v1/event-types", get(webhook_endpoints::event_types))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/retry", post(jobs::retry_job))
        .route("/v1/jobs/{id}/attempts", get(jobs::list_attempts))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
        .merge(uploads);
    openapi::with_docs(api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(middleware::from_fn(record_metrics))
}

/// Counts requests and their latency by route template (never the raw
/// path, which would carry ids), method and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    HTTP_REQUESTS.with_label_values(&[&route, &method, &status]).inc();
    HTTP_DURATION.with_label_values(&[&route, &method]).observe(started.elapsed().as_secs_f64());
    response
}
