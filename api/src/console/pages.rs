//! The console's pages and actions. Each reads and acts through the API's
//! own handlers with the signed-in key's owner, so a page shows exactly what
//! the key would get from the API and an action does what the API's does
//! (validation, audit log, the same errors).

use axum::extract::{Form, Path, Query, RawQuery, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use minijinja::context;
use peyk_jobs::registry;
use peyk_schema::queries::api_keys::Scope;
use peyk_schema::queries::jobs::{self as job_queries, ListFilter};
use peyk_schema::JobStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::render;
use super::session::{self, Session, View, CALENDAR_COOKIE, LANGUAGE_COOKIE};
use crate::auth::{Admin, Caller, Tenant};
use crate::error::ApiError;
use crate::routes::{admin, jobs};
use crate::state::AppState;

/// The most dead jobs one bulk retry takes (the confirmation says when
/// more match).
const BULK_RETRY_MAX: i64 = 10_000;

/// What every page's template reads, with the page's own values.
pub(super) fn page(view: View, session: Option<&Session>, title: &str, path: &str, own: Value) -> minijinja::Value {
    let common = context! {
        lang => view.language.code(),
        dir => view.language.direction(),
        calendar => view.calendar.code(),
        title,
        path,
        signed_in => session.is_some(),
        admin => session.is_some_and(|s| s.owner.admin()),
        csrf => session.map(|s| s.csrf.clone()),
        now => chrono::Utc::now().to_rfc3339(),
    };
    context! { ..minijinja::Value::from_serialize(&own), ..common }
}

/// An API error as a page.
pub(super) fn failure(session: &Session, path: &str, error: ApiError) -> Response {
    let message = match error.status {
        StatusCode::NOT_FOUND => super::locale::text(session.view.language, "not_found").to_string(),
        _ => error.message,
    };
    render(error.status, "message.html", page(session.view, Some(session), "console", path, json!({ "message": message })))
}

/// The page that refuses a key without `scope`; `None` when it has it.
pub(super) fn refusal(session: &Session, scope: Scope, path: &str) -> Option<Response> {
    if session.owner.scopes.contains(scope) {
        None
    } else {
        let message = super::locale::text(session.view.language, "forbidden");
        Some(render(
            StatusCode::FORBIDDEN,
            "message.html",
            page(session.view, Some(session), "console", path, json!({ "message": message })),
        ))
    }
}

pub async fn home(session: Result<Session, Response>) -> Redirect {
    Redirect::to(if session.is_ok() { "/console/overview" } else { "/console/sign-in" })
}

pub async fn sign_in_page(view: View) -> Response {
    render(StatusCode::OK, "sign_in.html", page(view, None, "sign_in", "/console/sign-in", json!({})))
}

#[derive(Deserialize)]
pub struct SignInForm {
    key: String,
}

pub async fn sign_in(State(state): State<AppState>, view: View, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    match session::start(&state, form.key.trim(), secure(&state, &headers)).await {
        Ok(cookie) => ([(SET_COOKIE, cookie)], Redirect::to("/console/overview")).into_response(),
        Err(error) if error.status.is_client_error() => {
            render(StatusCode::UNAUTHORIZED, "sign_in.html", page(view, None, "sign_in", "/console/sign-in", json!({ "failed": true })))
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    confirm: Option<String>,
}

pub async fn sign_out(State(state): State<AppState>, session: Session, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    if let Err(error) = session.check_action(&headers, form.csrf.as_deref()) {
        return error.into_response();
    }
    match session::end(&state, &headers, secure(&state, &headers)).await {
        Ok(cookie) => ([(SET_COOKIE, cookie)], Redirect::to("/console/sign-in")).into_response(),
        Err(error) => error.into_response(),
    }
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.console.secure_cookies || session::behind_tls(headers)
}

#[derive(Deserialize)]
pub struct Preferences {
    lang: Option<String>,
    calendar: Option<String>,
    back: Option<String>,
}

/// Switches the language or calendar of this browser and goes back.
pub async fn preferences(State(state): State<AppState>, headers: HeaderMap, Query(choice): Query<Preferences>) -> Response {
    let secure = secure(&state, &headers);
    let mut cookies = Vec::new();
    if let Some(language) = choice.lang.as_deref().and_then(super::locale::Language::parse) {
        cookies.push(session::preference(LANGUAGE_COOKIE, language.code(), secure));
    }
    if let Some(calendar) = choice.calendar.as_deref().and_then(super::locale::Calendar::parse) {
        cookies.push(session::preference(CALENDAR_COOKIE, calendar.code(), secure));
    }
    // Only back into the console: never an open redirect.
    let back = choice.back.filter(|b| b.starts_with("/console") && !b.starts_with("//")).unwrap_or_else(|| "/console".into());
    let mut response = Redirect::to(&back).into_response();
    for cookie in cookies {
        match cookie {
            Ok((name, value)) => {
                response.headers_mut().append(name, value);
            }
            Err(error) => return error.into_response(),
        }
    }
    response
}

#[derive(Deserialize, Default)]
pub struct JobFilter {
    id: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

pub async fn jobs(State(state): State<AppState>, session: Session, Query(filter): Query<JobFilter>) -> Response {
    if let Some(id) = filter.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        return Redirect::to(&format!("/console/jobs/{}", urlencode(id))).into_response();
    }
    job_list(state, session, filter, false).await
}

pub async fn dead(State(state): State<AppState>, session: Session, Query(filter): Query<JobFilter>) -> Response {
    job_list(state, session, JobFilter { status: Some("dead".into()), ..filter }, true).await
}

async fn job_list(state: AppState, session: Session, filter: JobFilter, dead: bool) -> Response {
    let path_base = if dead { "/console/dead" } else { "/console/jobs" };
    if let Some(refused) = refusal(&session, Scope::JobsRead, path_base) {
        return refused;
    }
    // The serializer is not Send: done with before the await.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("type", &filter.job_type), ("status", &filter.status), ("cursor", &filter.cursor)] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        }
        query.finish()
    };
    let tenant = Tenant(session.owner.tenant);
    let Json(list) = match jobs::list_jobs(State(state), tenant, RawQuery(Some(query))).await {
        Ok(list) => list,
        Err(error) => return failure(&session, path_base, error),
    };
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    let own = json!({
        "jobs": list.data,
        "next_cursor": list.next_cursor,
        "types": registry::catalogue().names(),
        "statuses": statuses,
        "filter_type": filter.job_type.unwrap_or_default(),
        "filter_status": if dead { String::new() } else { filter.status.unwrap_or_default() },
        "dead": dead,
        "path_base": path_base,
    });
    render(StatusCode::OK, "jobs.html", page(session.view, Some(&session), if dead { "dead_letters" } else { "jobs" }, path_base, own))
}

pub async fn job(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let path = format!("/console/jobs/{}", urlencode(&id));
    if let Some(refused) = refusal(&session, Scope::JobsRead, &path) {
        return refused;
    }
    let tenant = || Tenant(session.owner.tenant);
    let job = match jobs::get_job(State(state.clone()), tenant(), Path(id.clone()), RawQuery(None)).await {
        Ok(Json(job)) => job,
        Err(error) => return failure(&session, &path, error),
    };
    let attempts = match jobs::list_attempts(State(state), tenant(), Path(id)).await {
        Ok(Json(list)) => list.data,
        Err(error) => return failure(&session, &path, error),
    };
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    let own = json!({
        "payload": pretty(&job.payload),
        "result": job.result.as_ref().map(pretty),
        "attempts": attempts,
        "job": job,
    });
    render(StatusCode::OK, "job.html", page(session.view, Some(&session), "job", &path, own))
}

pub async fn retry_job(state: State<AppState>, session: Session, headers: HeaderMap, id: Path<String>, form: Form<ActionForm>) -> Response {
    job_action(state, session, headers, id, form, true).await
}

pub async fn cancel_job(
    state: State<AppState>,
    session: Session,
    headers: HeaderMap,
    id: Path<String>,
    form: Form<ActionForm>,
) -> Response {
    job_action(state, session, headers, id, form, false).await
}

async fn job_action(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
    retry: bool,
) -> Response {
    let path = format!("/console/jobs/{}", urlencode(&id));
    if let Err(error) = session.check_action(&headers, form.csrf.as_deref()) {
        return error.into_response();
    }
    if let Some(refused) = refusal(&session, Scope::JobsWrite, &path) {
        return refused;
    }
    let caller = Caller(session.owner);
    let done = if retry {
        jobs::retry_job(State(state), caller, Path(id)).await.map(drop)
    } else {
        jobs::cancel_job(State(state), caller, Path(id)).await.map(drop)
    };
    match done {
        Ok(()) => Redirect::to(&path).into_response(),
        Err(error) => failure(&session, &path, error),
    }
}

/// Retries every dead job of the filter: first a confirmation that says how
/// many match, then (with `confirm=yes`) the retries, newest first.
pub async fn retry_dead(State(state): State<AppState>, session: Session, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    let path = "/console/dead";
    if let Err(error) = session.check_action(&headers, form.csrf.as_deref()) {
        return error.into_response();
    }
    if let Some(refused) = refusal(&session, Scope::JobsWrite, path) {
        return refused;
    }
    let job_type = form.job_type.filter(|t| !t.is_empty());
    if let Some(unknown) = job_type.as_deref().filter(|t| registry::catalogue().get(t).is_none()) {
        return failure(&session, path, ApiError::bad_parameter("type", format!("unknown job type `{unknown}`")));
    }
    let filter = ListFilter { job_type: job_type.clone(), status: Some(JobStatus::Dead), limit: BULK_RETRY_MAX + 1, ..Default::default() };
    let mut ids = match job_queries::list_ids(&state.pool, session.owner.tenant, &filter).await {
        Ok(ids) => ids,
        Err(error) => return failure(&session, path, error.into()),
    };
    let more = ids.len() as i64 > BULK_RETRY_MAX;
    ids.truncate(BULK_RETRY_MAX as usize);
    if form.confirm.as_deref() != Some("yes") {
        let own = json!({ "count": ids.len(), "more": more, "filter_type": job_type.unwrap_or_default() });
        return render(StatusCode::OK, "confirm.html", page(session.view, Some(&session), "dead_letters", path, own));
    }
    let mut retried = 0;
    for id in ids {
        // A job retried meanwhile (409) is skipped; any other error stops.
        match jobs::retry_job(State(state.clone()), Caller(session.owner), Path(id.to_string())).await {
            Ok(_) => retried += 1,
            Err(error) if error.status == StatusCode::CONFLICT => {}
            Err(error) => return failure(&session, path, error),
        }
    }
    let words = super::locale::text(session.view.language, "retried");
    let message = format!("{retried} {words}");
    render(StatusCode::OK, "message.html", page(session.view, Some(&session), "dead_letters", path, json!({ "message": message })))
}

pub async fn queues(State(state): State<AppState>, session: Session) -> Response {
    let path = "/console/queues";
    if let Some(refused) = refusal(&session, Scope::Admin, path) {
        return refused;
    }
    match admin::queue_views(&state).await {
        Ok(queues) => {
            render(StatusCode::OK, "queues.html", page(session.view, Some(&session), "queues", path, json!({ "queues": queues })))
        }
        Err(error) => failure(&session, path, error),
    }
}

pub async fn queue_action(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((queue, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let path = "/console/queues";
    if let Err(error) = session.check_action(&headers, form.csrf.as_deref()) {
        return error.into_response();
    }
    if let Some(refused) = refusal(&session, Scope::Admin, path) {
        return refused;
    }
    let admin = Admin(Caller(session.owner));
    let done = match action.as_str() {
        "pause" => admin::pause_queue(State(state), admin, Path(queue)).await,
        "resume" => admin::resume_queue(State(state), admin, Path(queue)).await,
        _ => return failure(&session, path, ApiError::not_found("action")),
    };
    match done {
        Ok(_) => Redirect::to(path).into_response(),
        Err(error) => failure(&session, path, error),
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
