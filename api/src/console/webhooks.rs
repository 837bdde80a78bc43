//! The console's webhook pages: the tenant's endpoints and the events
//! published to them, each message with its delivery attempts and a
//! replay. Read and done through the API's handlers (scope
//! `webhooks:admin`), as the signed-in key's tenant (an admin picks one).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use peyk_schema::queries::api_keys::Scope;
use serde::Deserialize;
use serde_json::json;

use super::pages::{chosen_tenant, failure, page, refusal, refused_action, tenant_choices, with_tenant};
use super::render;
use super::session::Session;
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::routes::webhook_endpoints::list_endpoints;
use crate::routes::webhook_messages::{get_message, list_messages, message_attempts, replay_message, MessagesQuery, ReplayMessage};
use crate::state::AppState;

#[derive(Deserialize, Default)]
pub struct WebhooksQuery {
    tenant: Option<String>,
    cursor: Option<String>,
    /// Back from a replay: say that the deliveries are queued.
    replayed: Option<String>,
}

/// The endpoints and the newest messages.
pub async fn list(State(state): State<AppState>, session: Session, Query(query): Query<WebhooksQuery>) -> Response {
    let path = "/console/webhooks";
    if let Some(refused) = refusal(&session, Scope::WebhooksAdmin, path) {
        return refused;
    }
    let found = async {
        let tenant = chosen_tenant(&session, &query.tenant)?;
        let Json(endpoints) = list_endpoints(State(state.clone()), tenant).await?;
        let paging = MessagesQuery { event_type: None, limit: Some(50), cursor: query.cursor.clone() };
        let Json(messages) = list_messages(State(state.clone()), tenant, Ok(Query(paging))).await?;
        let tenants = tenant_choices(&state, &session, tenant).await?;
        Ok::<_, ApiError>(json!({
            "endpoints": endpoints.data,
            "messages": messages.data,
            "next_page": messages.next_cursor.map(|cursor| with_tenant(&session, tenant, &[("cursor", &cursor)])),
            "tenants": tenants,
            "tenant_query": with_tenant(&session, tenant, &[]),
        }))
    };
    match found.await {
        Ok(own) => render(StatusCode::OK, "webhooks.html", page(session.view, Some(&session), "webhooks", path, own)),
        Err(error) => failure(&session, path, error),
    }
}

/// One message: its body, every delivery attempt, and the replay form.
pub async fn message(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<WebhooksQuery>,
) -> Response {
    let path = format!("/console/webhooks/messages/{id}");
    if let Some(refused) = refusal(&session, Scope::WebhooksAdmin, &path) {
        return refused;
    }
    let found = async {
        let tenant = chosen_tenant(&session, &query.tenant)?;
        let Json(message) = get_message(State(state.clone()), tenant, Path(id.clone())).await?;
        let Json(attempts) = message_attempts(State(state.clone()), tenant, Path(id.clone())).await?;
        let Json(endpoints) = list_endpoints(State(state.clone()), tenant).await?;
        Ok::<_, ApiError>(json!({
            "payload": serde_json::to_string_pretty(&message.payload).unwrap_or_default(),
            "message": message,
            "attempts": attempts.data,
            "endpoints": endpoints.data,
            "tenant": tenant.0.0,
            "notice": query.replayed.is_some().then(|| super::locale::text(session.view.language, "replayed")),
        }))
    };
    match found.await {
        Ok(own) => render(StatusCode::OK, "webhook_message.html", page(session.view, Some(&session), "webhooks", &path, own)),
        Err(error) => failure(&session, &path, error),
    }
}

#[derive(Deserialize)]
pub struct ReplayForm {
    csrf: Option<String>,
    tenant: Option<String>,
    /// One endpoint's id; empty: every endpoint that wants the event.
    endpoint: Option<String>,
}

/// Delivers the message again, then back to its page (which lists the new
/// attempts as they are made).
pub async fn replay(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let path = format!("/console/webhooks/messages/{id}");
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::WebhooksAdmin, &path) {
        return refused;
    }
    let done = async {
        let tenant = chosen_tenant(&session, &form.tenant)?;
        let endpoint_id = match form.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            Some(id) => Some(id.parse().map_err(|_| ApiError::invalid_field("endpoint_id", "is not an endpoint id"))?),
            None => None,
        };
        replay_message(State(state.clone()), tenant, Path(id.clone()), OptionalJson(ReplayMessage { endpoint_id })).await?;
        Ok::<_, ApiError>(with_tenant(&session, tenant, &[("replayed", "1")]))
    };
    match done.await {
        Ok(query) => Redirect::to(&format!("{path}?{query}")).into_response(),
        Err(error) => failure(&session, &path, error),
    }
}
