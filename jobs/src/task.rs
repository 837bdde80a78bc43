//! HTTP tasks: the app's own functions, run by Peyk the way Cloud Tasks and
//! QStash run them. A tenant registers a task target (name → URL on its own
//! app, `whsec_` secret, timeout, retry policy; `PUT
//! /v1/task-targets/{name}`) and submits `{"type": "task", "payload":
//! {"name": …, "args": …}}`; each attempt POSTs
//! `{"task", "args", "job_id", "attempt"}` there, signed (Standard
//! Webhooks, `webhook-id` = `msg_` + the job id on every attempt).
//!
//! The app's answer decides:
//! - 2xx: done; its JSON body (up to [`MAX_ANSWER_BYTES`]) is the job's result.
//! - 400, 410, 413 or 422: the task can never succeed (wrong arguments,
//!   gone); the job fails at once. A JSON body `{"error": "…"}` or
//!   `{"error": {"code", "message"}}` becomes the job's error.
//! - anything else (5xx, 429, 404 while the app deploys, a timeout, no
//!   connection): retried on the target's backoff, never sooner than a
//!   `Retry-After` the app sent, up to the target's `max_attempts`.
//! - a redirect: not followed, fails (the target's URL is wrong).
//!
//! The target is read afresh at each attempt, so a changed URL, secret or
//! policy applies from the next attempt on.

use std::time::Duration;

use peyk_schema::queries::task_targets;
use peyk_schema::{TaskTargetRow, TenantId};
use rand::Rng;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::webhook::signing::SigningSecret;
use crate::webhook::{deliver, Delivery, RESPONSE_EXCERPT_BYTES};
use crate::{Job, JobContext, JobError, RetryHint, ValidationErrors};

/// The largest answer kept as a result.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The longest a target's timeout may be.
pub const MAX_TIMEOUT_SECONDS: i32 = 900;
/// Statuses by which the app says the task can never succeed.
pub const PERMANENT_STATUSES: [u16; 4] = [400, 410, 413, 422];

/// Payload of a `task` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskJob {
    /// A task target of the tenant (`PUT /v1/task-targets/{name}`).
    #[schema(example = "rebuild_report")]
    pub name: String,
    /// The task's arguments, delivered as they are (any JSON; default `{}`).
    #[serde(default = "empty_object")]
    #[schema(example = json!({"month": "1405-09", "clinic": 12}))]
    pub args: Value,
}

fn empty_object() -> Value {
    json!({})
}

/// Whether `name` can name a task target: 1–128 characters of `A-Z a-z 0-9
/// _ - . :` (a Python dotted path such as `reports.tasks.rebuild` fits).
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

pub const NAME_RULE: &str = "must be 1 to 128 characters of A-Z a-z 0-9 _ - . :";

fn database(e: impl std::fmt::Display) -> JobError {
    JobError::retry("database_error", format!("task target: {e}"))
}

impl Job for TaskJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "task";
    /// The API sets the target's `max_attempts` on jobs it takes; jobs that
    /// pipelines and schedules queue get this, and the target's limit ends
    /// them earlier (see `run`).
    const DEFAULT_MAX_ATTEMPTS: i32 = 25;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(MAX_TIMEOUT_SECONDS as u64 + 10);

    fn validate(&self) -> Result<(), ValidationErrors> {
        if valid_name(&self.name) {
            Ok(())
        } else {
            Err(ValidationErrors::single("name", NAME_RULE))
        }
    }

    /// `run` works out the delay from the target's policy and the app's
    /// `Retry-After`; it is taken as it is.
    fn retry_delay(_attempt: u32, provider_asked: Option<Duration>) -> Option<Duration> {
        provider_asked
    }

    async fn run(self, ctx: &JobContext) -> Result<Value, JobError> {
        let target =
            task_targets::get(&ctx.clients.backbone.pool, TenantId(ctx.tenant_id), &self.name).await.map_err(database)?.ok_or_else(
                || JobError::permanent("unknown_task", format!("no task target `{0}`: create it with PUT /v1/task-targets/{0}", self.name)),
            )?;
        let secret = SigningSecret::parse(&target.secret).map_err(|p| JobError::permanent("invalid_secret", p))?;
        let body = json!({ "task": self.name, "args": self.args, "job_id": ctx.job_id, "attempt": ctx.attempt });
        let delivery = Delivery {
            url: &target.url,
            msg_id: &format!("msg_{}", ctx.job_id.simple()),
            body: serde_json::to_vec(&body).map_err(|e| JobError::permanent("invalid_args", e.to_string()))?,
            headers: HeaderMap::new(),
            secrets: vec![secret],
            event_type: None,
            timeout: Duration::from_secs(target.timeout_seconds.clamp(1, MAX_TIMEOUT_SECONDS) as u64),
            answer_limit: MAX_ANSWER_BYTES + 1,
        };
        match deliver(&ctx.clients.webhook, delivery).await {
            Ok(outcome) => answer_of(&outcome),
            Err(error) => Err(classify(error, &target, (ctx.attempt, ctx.max_attempts))),
        }
    }
}

/// The job's result: the app's JSON answer (`null` for an empty body, a
/// string for a body that is not JSON).
fn answer_of(outcome: &Value) -> Result<Value, JobError> {
    let text = outcome["response_excerpt"].as_str().unwrap_or("");
    if text.len() > MAX_ANSWER_BYTES {
        return Err(JobError::permanent(
            "answer_too_large",
            format!("the task succeeded but answered more than {MAX_ANSWER_BYTES} bytes; keep large results in your app"),
        ));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

/// The job's error for a failed attempt, under the task's rules (see the
/// module's documentation). `attempt` is this one and the job's own limit.
fn classify(mut error: JobError, target: &TaskTargetRow, (attempt, job_limit): (i32, i32)) -> JobError {
    let status = error.details.as_ref().and_then(|d| d["status_code"].as_u64()).map(|s| s as u16);
    let excerpt = error.details.as_ref().and_then(|d| d["response_excerpt"].as_str()).unwrap_or("").to_string();
    if let Some(status) = status {
        if let Some((code, message)) = app_error(&excerpt) {
            error.code = code.unwrap_or(error.code);
            error.message = format!("the task answered {status}: {message}");
        }
        let permanent = PERMANENT_STATUSES.contains(&status) || (300..400).contains(&status);
        if !permanent && error.hint == RetryHint::Permanent {
            error.hint = RetryHint::Retry { after: None };
        }
        if let Some(details) = error.details.as_mut() {
            // The error keeps an excerpt, as for webhooks, not a whole answer.
            details["response_excerpt"] = json!(truncate(&excerpt, RESPONSE_EXCERPT_BYTES));
        }
    }
    let RetryHint::Retry { after } = error.hint else { return error };
    // Jobs the API took carry the target's limit and end `dead` by the
    // runner's count; those a pipeline or a schedule queued have the type's
    // (higher) one, so the target's ends them here.
    if attempt >= target.max_attempts && attempt < job_limit {
        let message = format!("{} (attempt {attempt} of the target's max_attempts {})", error.message, target.max_attempts);
        return JobError { hint: RetryHint::Permanent, message, ..error };
    }
    let delay = backoff(target, attempt as u32).max(after.unwrap_or_default()).min(Duration::from_secs(86_400));
    JobError { hint: RetryHint::Retry { after: Some(delay) }, ..error }
}

/// The target's exponential backoff with jitter over [50 %, 100 %].
fn backoff(target: &TaskTargetRow, attempt: u32) -> Duration {
    let (min, max) = (target.min_backoff_seconds.max(1) as u64, target.max_backoff_seconds.max(1) as u64);
    let exponential = min.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)).min(max);
    Duration::from_secs(exponential).mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The app's own error in its answer: `{"error": "…"}` or `{"error":
/// {"code", "message"}}` (a code is kept when it is a short snake_case word).
fn app_error(body: &str) -> Option<(Option<String>, String)> {
    let value: Value = serde_json::from_str(body).ok()?;
    let error = value.get("error")?;
    if let Some(message) = error.as_str() {
        return Some((None, truncate(message, 500)));
    }
    let message = truncate(error.get("message")?.as_str()?, 500);
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .filter(|c| (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .map(str::to_owned);
    Some((code, message))
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    fn target(max_attempts: i32) -> TaskTargetRow {
        TaskTargetRow {
            tenant_id: Uuid::nil(),
            name: "t".into(),
            url: "https://app.example/peyk".into(),
            secret: SigningSecret::generate().into(),
            timeout_seconds: 30,
            max_attempts,
            min_backoff_seconds: 10,
            max_backoff_seconds: 60,
            description: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn answered(status: u16, body: &str, error: JobError) -> JobError {
        error.with_details(json!({ "status_code": status, "latency_ms": 1.0, "response_excerpt": body }))
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("reports.tasks.rebuild_report") && valid_name("a:b-c"));
        assert!(!valid_name("") && !valid_name("has space") && !valid_name(&"x".repeat(129)));
    }

    #[test]
    fn a_422_fails_at_once_with_the_apps_error() {
        let body = r#"{"error": {"code": "no_such_patient", "message": "patient 7 is gone"}}"#;
        let error = classify(answered(422, body, JobError::permanent("http_422", "endpoint answered 422")), &target(5), (1, 5));
        assert!(error.is_permanent());
        assert_eq!(error.code, "no_such_patient");
        assert_eq!(error.message, "the task answered 422: patient 7 is gone");
    }

    #[test]
    fn other_client_errors_are_retried_on_the_targets_backoff_and_retry_after_wins() {
        let error = classify(answered(404, "not found", JobError::permanent("http_404", "x")), &target(5), (1, 5));
        let RetryHint::Retry { after: Some(delay) } = error.hint else { panic!("{error:?}") };
        assert!(delay >= Duration::from_secs(5) && delay <= Duration::from_secs(10), "{delay:?}");
        let asked = JobError::retry("http_503", "x").retry_after(Some(Duration::from_secs(45)));
        let RetryHint::Retry { after: Some(delay) } = classify(answered(503, "", asked), &target(5), (1, 5)).hint else { panic!() };
        assert_eq!(delay, Duration::from_secs(45));
    }

    #[test]
    fn the_targets_max_attempts_ends_retries() {
        let failed = || answered(500, "", JobError::retry("http_500", "endpoint answered 500"));
        // The runner ends a job at its own limit (`dead`).
        assert!(!classify(failed(), &target(3), (3, 3)).is_permanent());
        let error = classify(failed(), &target(3), (3, 25));
        assert!(error.is_permanent());
        assert!(error.message.contains("attempt 3 of the target's max_attempts 3"), "{}", error.message);
    }

    #[test]
    fn answers_become_results() {
        assert_eq!(answer_of(&json!({"response_excerpt": "{\"rows\": 3}"})).unwrap(), json!({"rows": 3}));
        assert_eq!(answer_of(&json!({"response_excerpt": ""})).unwrap(), Value::Null);
        assert_eq!(answer_of(&json!({"response_excerpt": "ok"})).unwrap(), json!("ok"));
        let huge = "x".repeat(MAX_ANSWER_BYTES + 1);
        assert_eq!(answer_of(&json!({ "response_excerpt": huge })).unwrap_err().code, "answer_too_large");
    }
}
