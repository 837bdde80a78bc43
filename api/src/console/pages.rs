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
use peyk_schema::models::TenantId;
use peyk_schema::queries::api_keys::{KeyOwner, Scope};
use peyk_schema::queries::jobs as job_queries;
use peyk_schema::queries::queue_controls as tenant_queries;
use peyk_schema::JobStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::render;
use super::session::{self, Session, View, CALENDAR_COOKIE, LANGUAGE_COOKIE};
use crate::auth::{Admin, Caller, Tenant};
use crate::error::ApiError;
use crate::routes::{admin, jobs, usage};
use crate::state::AppState;

/// The most dead jobs one bulk retry or discard takes (the confirmation
/// says when more match).
const BULK_MAX: i64 = 10_000;

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

/// A form or query field that was filled in.
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The tenant a page acts as: the key's own; an admin's choice (`tenant`
/// in the query or form), by default its own.
pub(super) fn chosen_tenant(session: &Session, asked: &Option<String>) -> Result<Tenant, ApiError> {
    match given(asked) {
        Some(id) if session.owner.admin() => {
            id.parse().map(|id| Tenant(TenantId(id))).map_err(|_| ApiError::bad_parameter("tenant", "is not a tenant id"))
        }
        _ => Ok(Tenant(session.owner.tenant)),
    }
}

/// The tenants an admin may pick from, `chosen` marked; none for others.
pub(super) async fn tenant_choices(state: &AppState, session: &Session, chosen: Tenant) -> Result<Vec<Value>, ApiError> {
    if !session.owner.admin() {
        return Ok(Vec::new());
    }
    let tenants = tenant_queries::tenants(&state.pool).await?;
    Ok(tenants.iter().map(|t| json!({ "id": t.id, "name": t.name, "chosen": t.id == chosen.0 .0 })).collect())
}

/// A query string of `pairs`, with the chosen tenant for an admin (so that
/// links stay with the tenant picked).
pub(super) fn with_tenant(session: &Session, tenant: Tenant, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if session.owner.admin() {
        query.append_pair("tenant", &tenant.0 .0.to_string());
    }
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

/// The answer that stops an action: no or the wrong CSRF token (`403`), or
/// a key without `scope`; `None` when it may go on.
pub(super) fn refused_action(session: &Session, headers: &HeaderMap, csrf: Option<&str>, scope: Scope, path: &str) -> Option<Response> {
    if let Err(error) = session.check_action(headers, csrf) {
        return Some(error.into_response());
    }
    refusal(session, scope, path)
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
    tenant: Option<String>,
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
    /// An idempotency key.
    key: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    status: Option<String>,
    /// Admins: one tenant's jobs (empty: every tenant's).
    tenant: Option<String>,
    /// Created from, until: the browser's `datetime-local`, Tehran time.
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

impl JobFilter {
    /// The API's query string for this filter, so that the API checks it
    /// and says what is wrong as it would to a client.
    fn api_query(&self, view: View) -> Result<String, ApiError> {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("type", &self.job_type), ("status", &self.status), ("idempotency_key", &self.key), ("cursor", &self.cursor)]
        {
            if let Some(value) = given(value) {
                query.append_pair(name, value);
            }
        }
        for (name, field, value) in [("created_after", "from", &self.from), ("created_before", "to", &self.to)] {
            if let Some(value) = given(value) {
                let at = super::locale::parse_tehran_time(value)
                    .ok_or_else(|| ApiError::bad_parameter(field, super::locale::text(view.language, "bad_time")))?;
                query.append_pair(name, &at.to_rfc3339());
            }
        }
        Ok(query.finish())
    }

    /// The tenant whose jobs are shown: a key's own; an admin's choice, or
    /// every tenant's.
    fn tenant(&self, session: &Session) -> Result<Option<TenantId>, ApiError> {
        if session.owner.admin() && given(&self.tenant).is_none() {
            return Ok(None);
        }
        Ok(Some(chosen_tenant(session, &self.tenant)?.0))
    }

    /// This filter as a query string (the next page's link).
    fn link(&self, cursor: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("key", &self.key),
            ("type", &self.job_type),
            ("status", &self.status),
            ("tenant", &self.tenant),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = given(value) {
                query.append_pair(name, value);
            }
        }
        query.append_pair("cursor", cursor);
        query.finish()
    }
}

pub async fn jobs(State(state): State<AppState>, session: Session, Query(filter): Query<JobFilter>) -> Response {
    if let Some(id) = given(&filter.id) {
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
    let found = async {
        let tenant = filter.tenant(&session)?;
        let mut query = jobs::list_filter(&filter.api_query(session.view)?)?;
        // Discarded dead jobs (erased) are no longer dead letters.
        query.not_erased = dead;
        let list = jobs::list_page(&state, tenant, query).await?;
        let tenants = if session.owner.admin() { tenant_queries::tenants(&state.pool).await? } else { Vec::new() };
        Ok::<_, ApiError>((list, tenants))
    };
    let ((list, owners), tenants) = match found.await {
        Ok(found) => found,
        Err(error) => return failure(&session, path_base, error),
    };
    // Each job with its tenant's name (admins see every tenant's).
    let name_of = |owner: TenantId| tenants.iter().find(|t| t.id == owner.0).map_or_else(|| owner.0.to_string(), |t| t.name.clone());
    let shown: Vec<Value> = list
        .data
        .iter()
        .zip(owners)
        .map(|(job, owner)| {
            let mut job = serde_json::to_value(job).unwrap_or_default();
            job["tenant"] = json!(name_of(owner));
            job
        })
        .collect();
    let tenants: Vec<Value> = tenants.iter().map(|t| json!({ "id": t.id, "name": t.name })).collect();
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    let text = |value: &Option<String>| given(value).unwrap_or_default().to_string();
    let own = json!({
        "jobs": shown,
        "next_page": list.next_cursor.as_deref().map(|cursor| filter.link(cursor)),
        "types": registry::catalogue().names(),
        "statuses": statuses,
        "tenants": tenants,
        "filter_type": text(&filter.job_type),
        "filter_status": if dead { String::new() } else { text(&filter.status) },
        "filter_tenant": text(&filter.tenant),
        "filter_key": text(&filter.key),
        "filter_from": text(&filter.from),
        "filter_to": text(&filter.to),
        "dead": dead,
        "path_base": path_base,
    });
    render(StatusCode::OK, "jobs.html", page(session.view, Some(&session), if dead { "dead_letters" } else { "jobs" }, path_base, own))
}

/// Who acts on job `id`: the key's owner; for an admin, as of the job's
/// tenant (admins see and act on every tenant's jobs).
pub(super) async fn owner_for_job(state: &AppState, session: &Session, id: &str) -> Result<KeyOwner, ApiError> {
    let mut owner = session.owner;
    if owner.admin() {
        if let Ok(id) = id.parse() {
            if let Some(tenant) = job_queries::tenant_of(&state.pool, id).await? {
                owner.tenant = tenant;
            }
        }
    }
    Ok(owner)
}

pub async fn job(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let path = format!("/console/jobs/{}", urlencode(&id));
    if let Some(refused) = refusal(&session, Scope::JobsRead, &path) {
        return refused;
    }
    let found = async {
        let tenant = Tenant(owner_for_job(&state, &session, &id).await?.tenant);
        let Json(job) = jobs::get_job(State(state.clone()), tenant, Path(id.clone()), RawQuery(None)).await?;
        let Json(attempts) = jobs::list_attempts(State(state.clone()), tenant, Path(id.clone())).await?;
        let detail = super::job_detail::of(&state, tenant, &job).await?;
        Ok::<_, ApiError>((job, attempts.data, detail))
    };
    let (job, attempts, detail) = match found.await {
        Ok(found) => found,
        Err(error) => return failure(&session, &path, error),
    };
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    let own = json!({
        "payload": pretty(&job.payload),
        "result": job.result.as_ref().map(pretty),
        "attempts": attempts,
        "detail": detail,
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
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::JobsWrite, &path) {
        return refused;
    }
    let done = async {
        let caller = Caller(owner_for_job(&state, &session, &id).await?);
        if retry {
            jobs::retry_job(State(state.clone()), caller, Path(id.clone())).await.map(drop)
        } else {
            jobs::cancel_job(State(state.clone()), caller, Path(id.clone())).await.map(drop)
        }
    };
    match done.await {
        Ok(()) => Redirect::to(&path).into_response(),
        Err(error) => failure(&session, &path, error),
    }
}

/// What a bulk action on dead letters does to each job.
#[derive(Clone, Copy)]
enum DeadAction {
    Retry,
    /// Erase the content (as `DELETE /v1/jobs/{id}`): the job leaves the
    /// dead letters and can no longer be retried.
    Discard,
}

impl DeadAction {
    const ALL: [DeadAction; 2] = [DeadAction::Retry, DeadAction::Discard];

    /// Its word in the path (`/console/dead/{action}`) and the templates.
    fn name(self) -> &'static str {
        match self {
            DeadAction::Retry => "retry",
            DeadAction::Discard => "discard",
        }
    }

    /// The words after the count of jobs it was done to.
    fn done_words(self) -> &'static str {
        match self {
            DeadAction::Retry => "retried",
            DeadAction::Discard => "discarded",
        }
    }
}

pub async fn bulk_dead(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let path = "/console/dead";
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::JobsWrite, path) {
        return refused;
    }
    let Some(action) = DeadAction::ALL.into_iter().find(|a| a.name() == action) else {
        return failure(&session, path, ApiError::not_found("action"));
    };
    match dead_letters(&state, &session, &form, action).await {
        Ok(response) => response,
        Err(error) => failure(&session, path, error),
    }
}

/// Retries or discards every dead job of the filter: first a confirmation
/// that says how many match, then (with `confirm=yes`) the action on each,
/// newest first.
async fn dead_letters(state: &AppState, session: &Session, form: &ActionForm, action: DeadAction) -> Result<Response, ApiError> {
    let path = "/console/dead";
    let filter = JobFilter { job_type: form.job_type.clone(), tenant: form.tenant.clone(), ..Default::default() };
    let tenant = filter.tenant(session)?;
    let mut query = jobs::list_filter(&filter.api_query(session.view)?)?;
    query.status = Some(JobStatus::Dead);
    query.not_erased = true;
    query.limit = BULK_MAX + 1;
    let mut ids = job_queries::list_ids(&state.pool, tenant, &query).await?;
    let more = ids.len() as i64 > BULK_MAX;
    ids.truncate(BULK_MAX as usize);
    if form.confirm.as_deref() != Some("yes") {
        let own = json!({
            "count": ids.len(),
            "more": more,
            "action": action.name(),
            "filter_type": filter.job_type.unwrap_or_default(),
            "filter_tenant": filter.tenant.unwrap_or_default(),
        });
        return Ok(render(StatusCode::OK, "confirm.html", page(session.view, Some(session), "dead_letters", path, own)));
    }
    let mut done = 0;
    for (id, tenant) in ids {
        let caller = Caller(KeyOwner { tenant, ..session.owner });
        let outcome = match action {
            DeadAction::Retry => jobs::retry_job(State(state.clone()), caller, Path(id.to_string())).await.map(drop),
            DeadAction::Discard => jobs::erase_job(State(state.clone()), caller, Path(id.to_string())).await.map(drop),
        };
        // A job retried or erased meanwhile (409, 404) is skipped; any
        // other error stops.
        match outcome {
            Ok(()) => done += 1,
            Err(error) if matches!(error.status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) => {}
            Err(error) => return Err(error),
        }
    }
    let words = super::locale::text(session.view.language, action.done_words());
    let message = format!("{done} {words}");
    Ok(render(StatusCode::OK, "message.html", page(session.view, Some(session), "dead_letters", path, json!({ "message": message }))))
}

/// Queues with each tenant's backlog and pause, and every tenant's limits
/// and usage in the current periods (admins).
pub async fn queues(State(state): State<AppState>, session: Session) -> Response {
    let path = "/console/queues";
    if let Some(refused) = refusal(&session, Scope::Admin, path) {
        return refused;
    }
    let found = async {
        let queues = admin::queue_views(&state).await?;
        let admin_key = || Admin(Caller(session.owner));
        let Json(tenants) = admin::list_tenants(State(state.clone()), admin_key()).await?;
        let Json(usage) = usage::all_usage(State(state.clone()), admin_key()).await?;
        let tenants: Vec<Value> = tenants
            .data
            .into_iter()
            .map(|tenant| {
                let used = usage.data.iter().find(|u| u.tenant_id == tenant.id.to_string()).map(|u| &u.used);
                json!({ "limits": tenant, "used": used })
            })
            .collect();
        Ok::<_, ApiError>(json!({ "queues": queues, "tenants": tenants, "periods": usage.periods }))
    };
    match found.await {
        Ok(own) => render(StatusCode::OK, "queues.html", page(session.view, Some(&session), "queues", path, own)),
        Err(error) => failure(&session, path, error),
    }
}

#[derive(Deserialize)]
pub struct QueueForm {
    csrf: Option<String>,
    /// Pause or resume only this tenant in the queue.
    tenant: Option<String>,
    /// The queue, when the form picks it (not in the path).
    queue: Option<String>,
}

/// Pauses or resumes a queue, or one tenant in it (`tenant` in the form).
pub async fn queue_action(
    state: State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((queue, action)): Path<(String, String)>,
    form: Form<QueueForm>,
) -> Response {
    act_on_queue(state, session, headers, queue, action, form).await
}

/// The same, with the queue picked in the form.
pub async fn picked_queue_action(
    state: State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(action): Path<String>,
    form: Form<QueueForm>,
) -> Response {
    let queue = form.queue.clone().unwrap_or_default();
    act_on_queue(state, session, headers, queue, action, form).await
}

async fn act_on_queue(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    queue: String,
    action: String,
    Form(form): Form<QueueForm>,
) -> Response {
    let path = "/console/queues";
    if let Some(refused) = refused_action(&session, &headers, form.csrf.as_deref(), Scope::Admin, path) {
        return refused;
    }
    let admin = Admin(Caller(session.owner));
    let tenant = given(&form.tenant).map(str::to_string);
    let done = match (action.as_str(), tenant) {
        ("pause", None) => admin::pause_queue(State(state), admin, Path(queue)).await,
        ("resume", None) => admin::resume_queue(State(state), admin, Path(queue)).await,
        ("pause", Some(tenant)) => admin::pause_tenant(State(state), admin, Path((queue, tenant))).await,
        ("resume", Some(tenant)) => admin::resume_tenant(State(state), admin, Path((queue, tenant))).await,
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
