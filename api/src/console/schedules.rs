//! The console's schedules: the list with each next run, one schedule's
//! next runs and history with pause, resume and trigger, and the form that
//! creates one, whose validation messages (the API's) stand by their fields.

use std::collections::BTreeMap;

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use peyk_jobs::registry;
use peyk_schema::queries::api_keys::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use super::pages::{failure, page, refusal, refused_action};
use super::render;
use super::session::Session;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::routes::schedules as api;
use crate::state::AppState;

/// The form's fields, as typed (shown again with the messages).
#[derive(Deserialize, Default, serde::Serialize)]
pub struct ScheduleForm {
    #[serde(default, skip_serializing)]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    calendar: String,
    #[serde(default, rename = "type")]
    job_type: String,
    #[serde(default)]
    payload: String,
}

pub async fn list(State(state): State<AppState>, session: Session, RawQuery(query): RawQuery) -> Response {
    let form = ScheduleForm {
        timezone: "Asia/Tehran".into(),
        calendar: "gregorian".into(),
        job_type: "webhook".into(),
        payload: "{\"url\": \"https://example.com/hook\", \"body\": {}}".into(),
        ..Default::default()
    };
    list_with(state, session, query, form, BTreeMap::new(), StatusCode::OK).await
}

async fn list_with(
    state: AppState,
    session: Session,
    query: Option<String>,
    form: ScheduleForm,
    errors: BTreeMap<&'static str, String>,
    status: StatusCode,
) -> Response {
    let path = "/console/schedules";
    if let Some(refused) = refusal(&session, Scope::JobsRead, path) {
        return refused;
    }
    // Only the cursor passes: the console asks for its own page size.
    let cursor = query.as_deref().and_then(|q| crate::routes::jobs::url_pairs(q).into_iter().find(|(k, _)| k == "cursor"));
    let query = cursor.map(|(_, cursor)| format!("cursor={cursor}"));
    let Json(list) = match api::list_schedules(State(state), Tenant(session.owner.tenant), RawQuery(query)).await {
        Ok(list) => list,
        Err(error) => return failure(&session, path, error),
    };
    let own = json!({
        "schedules": list.data,
        "next_cursor": list.next_cursor,
        "types": registry::catalogue().submittable_names(),
        "form": form,
        "errors": errors,
    });
    render(status, "schedules.html", page(session.view, Some(&session), "schedules", path, own))
}

/// Creates the schedule the form describes; the form again with the
/// messages by their fields when the API refuses it.
pub async fn create(State(state): State<AppState>, session: Session, headers: HeaderMap, Form(form): Form<ScheduleForm>) -> Response {
    let path = "/console/schedules";
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::JobsWrite, path) {
        return refused;
    }
    let payload = match serde_json::from_str::<Value>(&form.payload) {
        Ok(payload) => payload,
        Err(e) => {
            let errors = BTreeMap::from([("payload", format!("not valid JSON: {e}"))]);
            return list_with(state, session, None, form, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let spec = json!({
        "name": form.name,
        "cron": form.cron,
        "timezone": form.timezone,
        "calendar": form.calendar,
        "job": { "type": form.job_type, "payload": payload },
    });
    let created = match serde_json::from_value(spec) {
        Ok(spec) => api::create_schedule(State(state.clone()), Tenant(session.owner.tenant), ValidJson(spec)).await,
        Err(e) => Err(ApiError::bad_parameter("form", e.to_string())),
    };
    match created {
        Ok((_, Json(schedule))) => Redirect::to(&format!("/console/schedules/{}", schedule.id)).into_response(),
        Err(error) if error.status.is_client_error() => {
            let status = error.status;
            list_with(state, session, None, form, by_field(&error), status).await
        }
        Err(error) => failure(&session, path, error),
    }
}

/// The API's field errors (`details.errors`), under the form field each
/// belongs to; the rest under `other`.
fn by_field(error: &ApiError) -> BTreeMap<&'static str, String> {
    let mut fields: BTreeMap<&'static str, String> = BTreeMap::new();
    let listed = error.details["errors"].as_array().cloned().unwrap_or_default();
    if listed.is_empty() {
        fields.insert("other", error.message.clone());
    }
    for item in listed {
        let field = item["field"].as_str().unwrap_or_default();
        let problem = item["problem"].as_str().unwrap_or_default();
        let form_field = match field {
            "name" => "name",
            "timezone" => "timezone",
            "calendar" => "calendar",
            "job.type" => "type",
            f if f.starts_with("cron") || f == "every_seconds" => "cron",
            f if f.starts_with("job.payload") || f.starts_with("payload") => "payload",
            _ => "other",
        };
        let text = if form_field == "other" { format!("{field}: {problem}") } else { problem.to_string() };
        fields.entry(form_field).and_modify(|t| *t = format!("{t}; {text}")).or_insert(text);
    }
    fields
}

pub async fn show(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let path = format!("/console/schedules/{id}");
    if let Some(refused) = refusal(&session, Scope::JobsRead, &path) {
        return refused;
    }
    let query = RawQuery(Some("next_runs=5".into()));
    match api::get_schedule(State(state), Tenant(session.owner.tenant), Path(id), query).await {
        Ok(Json(schedule)) => {
            let payload = schedule.spec.job.as_ref().map(|job| job.payload.clone()).unwrap_or_default();
            let own = json!({ "schedule": schedule, "payload": serde_json::to_string_pretty(&payload).unwrap_or_default() });
            render(StatusCode::OK, "schedule.html", page(session.view, Some(&session), "schedules", &path, own))
        }
        Err(error) => failure(&session, &path, error),
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
}

/// Pause, resume or fire now.
pub async fn act(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let path = format!("/console/schedules/{id}");
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::JobsWrite, &path) {
        return refused;
    }
    let tenant = Tenant(session.owner.tenant);
    let done = match action.as_str() {
        "pause" => api::pause_schedule(State(state), tenant, Path(id)).await.map(drop),
        "resume" => api::resume_schedule(State(state), tenant, Path(id)).await.map(drop),
        "trigger" => api::trigger_schedule(State(state), tenant, Path(id)).await.map(drop),
        _ => Err(ApiError::not_found("action")),
    };
    match done {
        Ok(()) => Redirect::to(&path).into_response(),
        Err(error) => failure(&session, &path, error),
    }
}
