//! `GET /v1/jobs/{id}/events`: a job as it runs, as Server-Sent Events —
//! its status and progress when they change, what it publishes as it goes
//! (a transcription's segments, from the job's live stream:
//! `peyk_queue::queue::live`), and at the end the job's record.
//!
//! Events from the live stream carry its entry ids; a client that
//! reconnects with `Last-Event-ID` (browsers' `EventSource` does it by
//! itself) gets the entries after that one, so no segment is lost or
//! repeated. Status events carry no id: they describe the present, and a
//! reconnect starts with the present one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use peyk_queue::queue::live::{is_event_id, LiveEvent};
use peyk_schema::queries::jobs;
use peyk_schema::{JobRow, TenantId};
use serde_json::json;
use uuid::Uuid;

use super::jobs::parse_job_id;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ErrorBody, JobView};

/// How often a follower looks for new live entries, and for a new status.
const POLL: Duration = Duration::from_millis(250);
const STATUS_EVERY: u32 = 2;
/// Live entries sent per read.
const BATCH: usize = 200;

/// A job's events as they happen (Server-Sent Events).
///
/// Events: `status` (`{"status", "progress", "attempts"}`, at the start and
/// whenever one changes), `attempt` (`{"attempt": n}`: a new attempt starts;
/// drop what earlier attempts sent), `segment` (a transcription's segment
/// as soon as it is decoded: `{"id", "start", "end", "text"}`, with an
/// event id), `done` (the job's record, once it has ended; the stream ends
/// after it) and `error` (Redis or the database stopped answering: reconnect
/// with `Last-Event-ID`). Comments (`:`) keep idle connections open.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", security(("api_key" = ["jobs:read"])),
    params(
        ("id" = String, Path, description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: the stream resumes after it"),
        ("last_event_id" = Option<String>, Query, description = "The same, for clients that cannot set headers"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not an event id of this API", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "The database or the queue is unreachable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn job_events(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut after = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    for (name, value) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "last_event_id" => after = Some(value.into_owned()),
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: last_event_id")),
        }
    }
    let after = after.filter(|id| !id.is_empty());
    if let Some(id) = after.as_deref().filter(|id| !is_event_id(id)) {
        return Err(ApiError::bad_parameter("Last-Event-ID", format!("`{id}` is not an event id this stream sent")));
    }
    let id = parse_job_id(&id)?;
    jobs::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    let events = follow(state, tenant.0, id, after).map(|happening| {
        Ok::<_, Infallible>(match happening {
            Happening::Status(data) => Event::default().event("status").data(data.to_string()),
            Happening::Live(entry) => Event::default().id(entry.id).event(entry.kind).data(entry.data),
            Happening::Ended(row) => Event::default().event("done").data(serde_json::to_string(&JobView::from(*row)).unwrap_or_default()),
            Happening::Unavailable(problem) => {
                Event::default().event("error").data(json!({ "code": "unavailable", "message": problem }).to_string())
            }
        })
    });
    Ok(event_stream(events))
}

/// An SSE response that proxies pass on as it is written: nginx and others
/// hold responses back unless told not to.
pub(crate) fn event_stream(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let stream = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let no_buffering = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    (no_buffering, stream).into_response()
}

/// What a follower of a job sees, in order.
pub(crate) enum Happening {
    /// `{"status", "progress", "attempts"}`: first, then on every change.
    Status(serde_json::Value),
    /// An entry of the job's live stream (`attempt`, `segment`…).
    Live(LiveEvent),
    /// The job's record, once it has ended and every live entry before it
    /// was seen. Last.
    Ended(Box<JobRow>),
    /// Redis or the database stopped answering. Last.
    Unavailable(String),
}

/// A job's happenings from the live entry after `after` on, until it ends.
pub(crate) fn follow(state: AppState, tenant: TenantId, job: Uuid, after: Option<String>) -> impl Stream<Item = Happening> + Send {
    let follower = Follower { state, tenant, job, after, status: None, ended: None, queued: VecDeque::new(), ticks: 0 };
    futures::stream::unfold(Some(follower), |follower| async move {
        let mut follower = follower?;
        loop {
            if let Some(happening) = follower.queued.pop_front() {
                return Some((happening, Some(follower)));
            }
            match follower.next().await {
                Ok(Some(row)) => return Some((Happening::Ended(Box::new(row)), None)),
                Ok(None) => {}
                Err(problem) => return Some((Happening::Unavailable(problem), None)),
            }
        }
    })
}

/// One client's position in one job's happenings.
struct Follower {
    state: AppState,
    tenant: TenantId,
    job: Uuid,
    /// The last live entry seen.
    after: Option<String>,
    /// The last status seen: (status, progress, attempts).
    status: Option<(String, Option<i16>, i32)>,
    /// The job's record once it has ended: answered after the live stream
    /// is read once more.
    ended: Option<JobRow>,
    queued: VecDeque<Happening>,
    ticks: u32,
}

impl Follower {
    /// Queues what is new; answers the record once the job has ended and
    /// everything before it was queued.
    async fn next(&mut self) -> Result<Option<JobRow>, String> {
        let live = self.state.queue.read_live(self.job, self.after.as_deref(), BATCH).await.map_err(|e| format!("the queue: {e}"))?;
        if !live.is_empty() {
            self.after = live.last().map(|e| e.id.clone());
            self.queued.extend(live.into_iter().map(Happening::Live));
            return Ok(None);
        }
        if let Some(row) = self.ended.take() {
            return Ok(Some(row));
        }
        if self.ticks.is_multiple_of(STATUS_EVERY) {
            let row = jobs::get(&self.state.pool, self.tenant, self.job).await.map_err(|e| format!("the database: {e}"))?;
            let Some(row) = row else { return Err("the job was deleted".into()) };
            let status = (row.status.clone(), row.progress, row.attempts);
            if self.status.as_ref() != Some(&status) {
                self.queued.push_back(Happening::Status(json!({ "status": status.0, "progress": status.1, "attempts": status.2 })));
                self.status = Some(status);
            }
            if row.status().is_terminal() {
                // Read the live stream once more first: what the job
                // published before it ended is there by now.
                self.ended = Some(row);
                return Ok(None);
            }
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.queued.is_empty() {
            tokio::time::sleep(POLL).await;
        }
        Ok(None)
    }
}
