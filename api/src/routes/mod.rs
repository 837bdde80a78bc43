//! The router: every route, the body limit, request metrics, and JSON
//! answers for requests that match nothing.

pub mod admin;
pub mod callbacks;
pub mod email_templates;
pub mod event_types;
pub mod files;
pub mod health;
pub mod job_batch;
pub mod job_events;
pub mod jobs;
pub mod keys;
pub mod openapi;
pub mod payments;
pub mod pipelines;
pub mod schedules;
pub mod sms;
pub mod task_targets;
pub mod transcripts;
pub mod usage;
pub mod webhook_attempts;
pub mod webhook_endpoints;
pub mod webhook_messages;

use std::time::Instant;

use crate::http_metrics::{HTTP_DURATION, HTTP_REQUESTS};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

/// Every route, each declared once with its OpenAPI operation (the
/// handler's `#[utoipa::path]`): the router and the document
/// (`/openapi.json`) are both made from this list, so neither can name a
/// route the other lacks. Uploads and batches come apart: they get their
/// own, larger body limits.
pub struct Declared {
    pub uploads: OpenApiRouter<AppState>,
    pub batches: OpenApiRouter<AppState>,
    pub api: OpenApiRouter<AppState>,
}

pub fn declared() -> Declared {
    let uploads = OpenApiRouter::new()
        .routes(routes!(files::upload))
        .routes(routes!(transcripts::openai_transcriptions))
        .routes(routes!(transcripts::openai_translations));
    let batches = OpenApiRouter::new().routes(routes!(job_batch::submit_batch));
    let api = OpenApiRouter::new()
        .routes(routes!(jobs::submit, jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::erase_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::list_attempts))
        .routes(routes!(job_events::job_events))
        .routes(routes!(transcripts::download))
        .routes(routes!(transcripts::list_models))
        .routes(routes!(files::get_file, files::delete_file))
        .routes(routes!(sms::outbox))
        .routes(routes!(pipelines::submit))
        .routes(routes!(pipelines::get_pipeline))
        .routes(routes!(pipelines::cancel_pipeline))
        .routes(routes!(schedules::create_schedule, schedules::list_schedules))
        .routes(routes!(schedules::get_schedule, schedules::update_schedule, schedules::delete_schedule))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(schedules::trigger_schedule))
        .routes(routes!(schedules::schedule_history))
        .routes(routes!(email_templates::list_templates))
        .routes(routes!(email_templates::put_template, email_templates::delete_template))
        .routes(routes!(task_targets::list_targets))
        .routes(routes!(task_targets::put_target, task_targets::get_target, task_targets::delete_target))
        .routes(routes!(payments::list_accounts))
        .routes(routes!(payments::put_account, payments::delete_account))
        .routes(routes!(payments::register, payments::list))
        .routes(routes!(payments::get))
        .routes(routes!(payments::verify))
        .routes(routes!(callbacks::gateway_callback))
        .routes(routes!(callbacks::list_sources))
        .routes(routes!(callbacks::put_source, callbacks::delete_source))
        .routes(routes!(callbacks::receive))
        .routes(routes!(callbacks::list_events))
        .routes(routes!(webhook_endpoints::create_endpoint, webhook_endpoints::list_endpoints))
        .routes(routes!(webhook_endpoints::get_endpoint, webhook_endpoints::update_endpoint, webhook_endpoints::delete_endpoint))
        .routes(routes!(webhook_endpoints::get_secret))
        .routes(routes!(webhook_endpoints::rotate_secret))
        .routes(routes!(webhook_endpoints::endpoint_attempts))
        .routes(routes!(webhook_messages::list_messages))
        .routes(routes!(webhook_messages::get_message))
        .routes(routes!(webhook_messages::message_attempts))
        .routes(routes!(webhook_messages::replay_message))
        .routes(routes!(event_types::event_types))
        .routes(routes!(admin::list_queues))
        .routes(routes!(admin::pause_queue))
        .routes(routes!(admin::resume_queue))
        .routes(routes!(admin::pause_tenant))
        .routes(routes!(admin::resume_tenant))
        .routes(routes!(admin::list_tenants))
        .routes(routes!(usage::own_usage))
        .routes(routes!(usage::all_usage))
        .routes(routes!(admin::update_tenant))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::list_audit))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::openapi_json));
    Declared { uploads, batches, api }
}

pub fn router(state: AppState, config: &Config) -> Router {
    let Declared { uploads, batches, api } = declared();
    let uploads = uploads.layer(DefaultBodyLimit::max(config.max_upload_bytes));
    let batches = batches.layer(DefaultBodyLimit::max(config.max_batch_body_bytes));
    let api = api.layer(DefaultBodyLimit::max(config.max_body_bytes));
    let (routes, _document) = api.merge(uploads).merge(batches).split_for_parts();
    // A misdeclared scope stops the start, not a request.
    std::sync::LazyLock::force(&crate::auth::ROUTE_SCOPES);
    // The key, its scope, then its tenant's rate (`rate_limit::admit`).
    let routes = routes.layer(middleware::from_fn_with_state(state.clone(), crate::auth::authenticate));
    openapi::with_docs(routes.with_state(state.clone()))
        .merge(crate::console::router().with_state(state))
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
