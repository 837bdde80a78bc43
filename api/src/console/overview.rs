//! The overview: per queue what waits, is scheduled, runs and died, how
//! fast tasks enter and finish, how long the oldest next task has waited,
//! whether it is paused, the workers serving it, and the failed attempts of
//! the last minute — sent again every two seconds over Server-Sent Events.
//! An admin sees every tenant; a tenant key its own waiting and dead jobs
//! and failed attempts.
//!
//! Every figure comes from Redis or a bounded PostgreSQL read (dead jobs
//! counted up to 10,000, failed attempts of the last minute up to 10,000),
//! so a page costs the same on a million jobs as on ten.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures::Stream;
use peyk_schema::queries::{attempts, jobs as job_queries};
use serde_json::{json, Value};

use super::pages::{failure, page};
use super::render;
use super::session::Session;
use crate::error::ApiError;
use crate::routes::admin;
use crate::state::AppState;

/// How often the live table is sent.
const LIVE_EVERY: Duration = Duration::from_secs(2);
/// Counted up to this many (dead jobs, failed attempts of the last minute).
const COUNT_CAP: i64 = 10_000;

/// Each queue's count of tasks that ever entered its waiting room, as this
/// process saw it over the last minute: the in-rate is its change.
static ENTERED: LazyLock<Mutex<Samples>> = LazyLock::new(Default::default);

/// By queue, (when, tasks entered so far).
type Samples = HashMap<String, VecDeque<(Instant, u64)>>;

/// Tasks a second that entered `queue` over the samples of the last minute
/// (`None` until two samples 2 s apart exist).
fn entered_rate(queue: &str, total: u64) -> Option<f64> {
    let now = Instant::now();
    let mut samples = ENTERED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let queue_samples = samples.entry(queue.to_string()).or_default();
    queue_samples.push_back((now, total));
    while queue_samples.front().is_some_and(|(at, _)| now.duration_since(*at) > Duration::from_secs(60)) {
        queue_samples.pop_front();
    }
    let (first_at, first_total) = *queue_samples.front()?;
    let seconds = now.duration_since(first_at).as_secs_f64();
    (seconds >= 2.0).then(|| total.saturating_sub(first_total) as f64 / seconds)
}

/// The overview's figures as this key may see them.
async fn figures(state: &AppState, session: &Session) -> Result<Value, ApiError> {
    let admin = session.owner.admin();
    let views = admin::queue_views(state).await?;
    let tenant = (!admin).then_some(session.owner.tenant);
    let queues: Vec<String> = views.iter().map(|view| view.queue.clone()).collect();
    let dead: HashMap<String, i64> = job_queries::dead_by_type(&state.pool, tenant, &queues, COUNT_CAP + 1).await?.into_iter().collect();
    let own = session.owner.tenant.0.to_string();
    let mut rows = Vec::with_capacity(views.len());
    let mut finished_total = 0;
    let mut workers: HashMap<String, Vec<String>> = HashMap::new();
    for view in views {
        let activity = state.queue.activity(&view.queue).await.map_err(|e| ApiError::internal(format!("queue activity: {e}")))?;
        finished_total += activity.finished_last_minute;
        for worker in &activity.workers {
            workers.entry(worker.clone()).or_default().push(view.queue.clone());
        }
        let dead_here = dead.get(&view.queue).copied().unwrap_or(0);
        let mut row = json!({
            "queue": view.queue,
            "paused": view.paused,
            "dead": if dead_here > COUNT_CAP { format!("{COUNT_CAP}+") } else { dead_here.to_string() },
            "in_per_second": entered_rate(&view.queue, activity.entered_total).map(|r| format!("{r:.1}")),
            "out_per_second": format!("{:.1}", activity.finished_last_minute as f64 / 60.0),
            "oldest_wait_seconds": activity.oldest_wait.map(|d| d.as_secs()),
            "workers": activity.workers.len(),
        });
        if admin {
            row["waiting"] = json!(view.waiting);
            row["scheduled"] = json!(view.scheduled);
            row["in_flight"] = json!(view.in_flight);
            row["tenants"] = json!(view.tenants);
        } else {
            let mine = view.tenants.iter().find(|t| t.tenant_id == own);
            row["waiting"] = json!(mine.map_or(0, |t| t.waiting));
            row["paused"] = json!(view.paused || mine.is_some_and(|t| t.paused));
        }
        rows.push(row);
    }
    let mut workers: Vec<Value> = workers.into_iter().map(|(worker, queues)| json!({ "worker": worker, "queues": queues })).collect();
    workers.sort_by(|a, b| a["worker"].as_str().cmp(&b["worker"].as_str()));
    // Failed attempts of the last minute: for admins, the fleet's, as a
    // share of the tasks finished (Redis counts those for the fleet only);
    // for a tenant, its own, as a count.
    let since = chrono::Utc::now() - chrono::Duration::seconds(60);
    let errors = attempts::errors_since(&state.pool, tenant, since, COUNT_CAP).await?;
    let failure_rate = if admin {
        (finished_total > 0).then(|| format!("{:.1} %", 100.0 * errors as f64 / finished_total.max(errors as u64) as f64))
    } else {
        Some(if errors >= COUNT_CAP { format!("{COUNT_CAP}+") } else { errors.to_string() })
    };
    Ok(json!({ "queues": rows, "workers": workers, "failure_rate": failure_rate }))
}

pub async fn overview(State(state): State<AppState>, session: Session) -> Response {
    let path = "/console/overview";
    match figures(&state, &session).await {
        Ok(own) => render(StatusCode::OK, "overview.html", page(session.view, Some(&session), "overview", path, own)),
        Err(error) => failure(&session, path, error),
    }
}

/// The overview's figures, again every two seconds (Server-Sent Events).
pub async fn live(State(state): State<AppState>, session: Session) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((state, session, true), |(state, session, first)| async move {
        if !first {
            tokio::time::sleep(LIVE_EVERY).await;
        }
        let html = match figures(&state, &session).await {
            Ok(own) => {
                let context = page(session.view, Some(&session), "overview", "/console/overview", own);
                super::TEMPLATES.get_template("queues_table.html").and_then(|t| t.render(context)).unwrap_or_default()
            }
            Err(error) => format!("<p class=\"error\">{}</p>", minijinja::HtmlEscape(&error.message)),
        };
        Some((Ok(Event::default().event("update").data(html)), (state, session, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
