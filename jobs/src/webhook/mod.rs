//! Outbound webhook delivery: one signed HTTP POST of a JSON body to a URL.
//!
//! 2xx is success. 5xx, 429, timeouts and connection errors are retried
//! (429 and 503 honour `Retry-After`); every other status, 410 included, and
//! any redirect fail at once. The message id is derived from the job id, so
//! every retry carries the same `webhook-id` and receivers can deduplicate.
//!
//! [`deliver`] is the request itself; endpoint deliveries of events
//! (`crate::events`) go through it too.

pub mod client;
pub mod signing;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::observe_provider;
use crate::{Job, JobContext, JobError, ValidationErrors};
use client::{blocked_address_in, WebhookClient};
use signing::SigningSecret;

/// How much of the response body the result keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
const DEFAULT_TIMEOUT_SECONDS: u32 = 15;
const MAX_TIMEOUT_SECONDS: u32 = 60;
/// Headers Peyk sets itself; a payload may not override them.
const RESERVED_HEADERS: [&str; 7] =
    ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host", "transfer-encoding"];

/// Payload of a `webhook` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookJob {
    /// Where to POST (http or https).
    #[schema(example = "https://example.com/hooks/peyk")]
    pub url: String,
    /// The JSON body to deliver.
    pub body: serde_json::Value,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Standard Webhooks signing secret (`whsec_` + base64 of 24–64 bytes).
    /// Without it the request is sent unsigned (still with `webhook-id` and
    /// `webhook-timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Sent as the `webhook-event-type` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Per-attempt timeout, 1–60 seconds (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl Job for WebhookJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "webhook";
    const DEFAULT_MAX_ATTEMPTS: i32 = 8;
    const RESULT_FIELDS: &'static [&'static str] = &["status_code", "latency_ms", "response_excerpt", "message_id"];
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(MAX_TIMEOUT_SECONDS as u64 + 5);

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Err(problem) = check_url(&self.url) {
            // Credentials belong in a header of the job's own.
            let hint = if problem.contains("credentials") { "; use `headers`" } else { "" };
            errors.add("url", format!("{problem}{hint}"));
        }
        if let Some(headers) = &self.headers {
            for (name, value) in headers {
                let field = format!("headers.{name}");
                match HeaderName::from_bytes(name.as_bytes()) {
                    Err(_) => errors.add(field, "is not a valid header name"),
                    Ok(parsed) if RESERVED_HEADERS.contains(&parsed.as_str()) => {
                        errors.add(field, "is set by Peyk and cannot be overridden")
                    }
                    Ok(_) if HeaderValue::from_str(value).is_err() => errors.add(field, "has characters not allowed in a header value"),
                    Ok(_) => {}
                }
            }
        }
        if let Some(secret) = &self.secret {
            if let Err(problem) = SigningSecret::parse(secret) {
                errors.add("secret", problem);
            }
        }
        if let Some(event_type) = &self.event_type {
            if event_type.is_empty() || event_type.len() > 128 {
                errors.add("event_type", "must be 1 to 128 characters");
            } else if HeaderValue::from_str(event_type).is_err() {
                errors.add("event_type", "has characters not allowed in a header value");
            }
        }
        if let Some(timeout) = self.timeout_seconds {
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
                errors.add("timeout_seconds", format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"));
            }
        }
        errors.into_result()
    }

    /// The secret, and every header's value (credentials go there: the
    /// names stay, so the tenant sees what was set).
    fn redact(payload: &mut serde_json::Value) {
        if let Some(secret) = payload.get_mut("secret") {
            if secret.is_string() {
                *secret = serde_json::Value::String("whsec_****".into());
            }
        }
        if let Some(serde_json::Value::Object(headers)) = payload.get_mut("headers") {
            for value in headers.values_mut() {
                *value = serde_json::Value::String("****".into());
            }
        }
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let body = serde_json::to_vec(&self.body).map_err(|e| JobError::permanent("invalid_body", e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers.iter().flatten() {
            // Validated at submission; skipping is only a guard.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.insert(name, value);
            }
        }
        let secrets = match &self.secret {
            Some(secret) => vec![SigningSecret::parse(secret).map_err(|p| JobError::permanent("invalid_secret", p))?],
            None => Vec::new(),
        };
        let delivery = Delivery {
            url: &self.url,
            // From the job id, so that every retry carries the same `webhook-id`.
            msg_id: &format!("msg_{}", ctx.job_id.simple()),
            body,
            headers,
            secrets,
            event_type: self.event_type.as_deref(),
            timeout: Duration::from_secs(self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS) as u64),
            answer_limit: RESPONSE_EXCERPT_BYTES,
        };
        deliver(&ctx.clients.webhook, delivery).await
    }
}

/// Why a URL cannot be delivered to (scheme, host, credentials); the
/// address itself is checked at delivery, by the client.
pub fn check_url(text: &str) -> Result<(), String> {
    match url::Url::parse(text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => Err("must be an http or https URL".into()),
        Ok(url) if url.host().is_none() => Err("must name a host".into()),
        Ok(url) if !url.username().is_empty() || url.password().is_some() => Err("must not carry credentials".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("is not a valid URL ({e})")),
    }
}

/// One request as Peyk sends it: a `webhook` job's, or an endpoint's
/// delivery of an event.
pub struct Delivery<'a> {
    pub url: &'a str,
    /// `webhook-id`: the same for every retry of one message.
    pub msg_id: &'a str,
    pub body: Vec<u8>,
    /// Extra headers; the Standard Webhooks ones are set over them.
    pub headers: HeaderMap,
    /// Each signs the request; several (during a secret rotation) are sent
    /// space-separated in one `webhook-signature`, as the standard allows.
    /// None: unsigned.
    pub secrets: Vec<SigningSecret>,
    /// Sent as `webhook-event-type`.
    pub event_type: Option<&'a str>,
    pub timeout: Duration,
    /// How much of the answer's body `response_excerpt` keeps (usually
    /// [`RESPONSE_EXCERPT_BYTES`]; a task's whole answer for `task` jobs).
    pub answer_limit: usize,
}

/// POSTs a delivery and classifies the answer. `Ok` (2xx) and the error's
/// `details` both carry `status_code`, `latency_ms` and `response_excerpt`
/// when the endpoint answered (`latency_ms` alone when it did not).
pub async fn deliver(client: &WebhookClient, delivery: Delivery<'_>) -> Result<serde_json::Value, JobError> {
    let url = url::Url::parse(delivery.url).map_err(|e| JobError::permanent("invalid_url", e.to_string()))?;
    if let Err(blocked) = client.check_literal_host(&url) {
        observe_provider("webhook", "refused", None);
        return Err(JobError::permanent("blocked_address", blocked.to_string()));
    }
    let msg_id = delivery.msg_id;
    let timestamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let body = delivery.body;

    let mut headers = delivery.headers;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("webhook-id", header_value(msg_id));
    headers.insert("webhook-timestamp", header_value(&timestamp.to_string()));
    if !delivery.secrets.is_empty() {
        let signatures: Vec<String> = delivery.secrets.iter().map(|secret| secret.sign(msg_id, timestamp, &body)).collect();
        headers.insert("webhook-signature", header_value(&signatures.join(" ")));
    }
    if let Some(event_type) = delivery.event_type {
        headers.insert("webhook-event-type", header_value(event_type));
    }

    let started = Instant::now();
    let sent = client.http.post(url).headers(headers).body(body).timeout(delivery.timeout).send().await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Err(transport_error(&error, started.elapsed())),
    };
    let status = response.status();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(parse_retry_after);
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let excerpt = read_excerpt(response, delivery.answer_limit).await;
    let took = started.elapsed();
    let latency_ms = took.as_secs_f64() * 1000.0;
    let outcome = match status.as_u16() {
        200..=299 => "success",
        500..=599 => "server_error",
        _ => "client_error",
    };
    observe_provider("webhook", outcome, Some(took));
    let outcome = serde_json::json!({
        "status_code": status.as_u16(),
        "latency_ms": (latency_ms * 100.0).round() / 100.0,
        "response_excerpt": excerpt,
        "message_id": msg_id,
    });

    if status.is_success() {
        return Ok(outcome);
    }
    let code = format!("http_{}", status.as_u16());
    let error = if status.is_redirection() {
        JobError::permanent(
            code,
            format!("endpoint answered {status} (redirect to {}); redirects are not followed", location.as_deref().unwrap_or("nowhere")),
        )
    } else if status.is_server_error() || status.as_u16() == 429 {
        JobError::retry(code, format!("endpoint answered {status}")).retry_after(retry_after)
    } else if status.as_u16() == 408 {
        JobError::retry(code, format!("endpoint answered {status}"))
    } else {
        JobError::permanent(code, format!("endpoint answered {status}; client errors are not retried"))
    };
    Err(error.with_details(outcome))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The job error for a request that got no answer, with its provider metric
/// recorded (a refused address was never contacted: counted, not timed).
fn transport_error(error: &reqwest::Error, elapsed: Duration) -> JobError {
    if let Some(blocked) = blocked_address_in(error) {
        observe_provider("webhook", "refused", None);
        return JobError::permanent("blocked_address", blocked.to_string());
    }
    let details = serde_json::json!({ "latency_ms": (elapsed.as_secs_f64() * 100_000.0).round() / 100.0 });
    let (code, what, outcome) = if error.is_timeout() {
        ("timeout", "the endpoint did not answer in time", "timeout")
    } else if error.is_connect() {
        ("connection_failed", "could not connect to the endpoint", "connection_error")
    } else {
        ("transport_error", "the request to the endpoint failed", "connection_error")
    };
    observe_provider("webhook", outcome, Some(elapsed));
    // The chain's innermost cause is the useful part ("connection refused").
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    JobError::retry(code, format!("{what}: {cause}")).with_details(details)
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

async fn read_excerpt(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::with_capacity(256);
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(url: &str) -> WebhookJob {
        WebhookJob { url: url.into(), body: serde_json::json!({}), headers: None, secret: None, event_type: None, timeout_seconds: None }
    }

    #[test]
    fn validation_names_each_field() {
        let mut bad = job("ftp://example.com");
        bad.headers = Some(BTreeMap::from([("webhook-id".to_string(), "x".to_string())]));
        bad.secret = Some("nope".into());
        bad.timeout_seconds = Some(0);
        let errors = bad.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "headers.webhook-id", "secret", "timeout_seconds"]);
        assert!(job("https://example.com/x").validate().is_ok());
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after(&HeaderValue::from_static("7")), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let parsed = parse_retry_after(&HeaderValue::from_str(&later).unwrap()).unwrap();
        assert!(parsed > Duration::from_secs(110) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn redaction_hides_the_secret_and_header_values() {
        let mut payload =
            serde_json::json!({"url": "https://x", "secret": "whsec_abc", "headers": {"Authorization": "Bearer t0ken", "X-Tenant": "7"}});
        WebhookJob::redact(&mut payload);
        assert_eq!(payload["secret"], "whsec_****");
        assert_eq!(payload["headers"], serde_json::json!({"Authorization": "****", "X-Tenant": "****"}));
    }
}
