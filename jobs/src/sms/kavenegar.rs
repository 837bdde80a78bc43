//! Kavenegar's REST API (v1): `POST {base}/v1/{API_KEY}/{group}/{method}.json`
//! with a form body, answered by `{"return": {"status", "message"},
//! "entries": [...]}`.
//!
//! Kavenegar reports errors in `return.status` (with a matching HTTP status,
//! and sometimes inside an HTTP 200), so the envelope is checked on every
//! answer. What each status means, and whether trying again can help, is
//! kept in one table ([`status_meaning`]).
//!
//! The API key is part of the URL, so URLs never reach logs or errors.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

// Kavenegar's SDKs disagree on numbers and strings ("cost": "120" or 120):
// accept both.
use crate::lenient::{lenient_i64, lenient_opt_i64, lenient_opt_string};
use crate::metrics::observe_provider;

pub const DEFAULT_BASE_URL: &str = "https://api.kavenegar.com";
const TIMEOUT: Duration = Duration::from_secs(15);
const EXCERPT_BYTES: usize = 200;

/// One message as Kavenegar reports it (send, lookup and status answers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub messageid: i64,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_opt_string")]
    pub localid: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub status: i64,
    #[serde(default)]
    pub statustext: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_opt_string")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_opt_string")]
    pub receptor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_opt_i64")]
    pub date: Option<i64>,
    /// In Rial.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_opt_i64")]
    pub cost: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "return")]
    ret: ReturnBlock,
    #[serde(default)]
    entries: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ReturnBlock {
    #[serde(deserialize_with = "lenient_i64")]
    status: i64,
    #[serde(default)]
    message: String,
}

/// Why a call did not give entries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KavenegarError {
    /// Kavenegar answered with an error status in its envelope.
    #[error("Kavenegar {status}: {meaning} ({message})")]
    Api { status: i64, meaning: &'static str, message: String },
    /// No envelope: a proxy's error page, say. `maybe_sent` when the request
    /// may have been processed anyway (500, 502, 504).
    #[error("HTTP {status} from Kavenegar: {excerpt}")]
    Http { status: u16, excerpt: String, maybe_sent: bool },
    /// The request never left (refused connection, DNS failure).
    #[error("could not connect to Kavenegar: {0}")]
    NotSent(String),
    /// The request left but no answer came (timeout, connection cut): the
    /// message may or may not have been sent.
    #[error("no answer from Kavenegar: {0}")]
    NoAnswer(String),
}

impl KavenegarError {
    /// Whether Kavenegar may have acted on the request.
    pub fn maybe_sent(&self) -> bool {
        match self {
            KavenegarError::Api { .. } | KavenegarError::NotSent(_) => false,
            KavenegarError::Http { maybe_sent, .. } => *maybe_sent,
            KavenegarError::NoAnswer(_) => true,
        }
    }
}

/// How a `return.status` should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Try again later (busy, rate limited).
    Retry,
    /// Trying again cannot help.
    Permanent,
}

/// Kavenegar's status codes: stable code for our errors, meaning, handling.
pub fn status_meaning(status: i64) -> (&'static str, &'static str, Handling) {
    use Handling::*;
    match status {
        400 => ("incomplete_parameters", "parameters are incomplete", Permanent),
        401 => ("account_disabled", "the Kavenegar account is deactivated", Permanent),
        402 => ("operation_failed", "the operation failed", Retry),
        403 => ("invalid_api_key", "the API key is invalid", Permanent),
        404 | 405 => ("bad_method", "unknown method or wrong HTTP verb", Permanent),
        406 => ("missing_parameters", "mandatory parameters are empty", Permanent),
        407 => ("access_denied", "access denied (IP not whitelisted)", Permanent),
        409 => ("provider_busy", "the server is busy", Retry),
        411 => ("invalid_receptor", "the receptor is invalid", Permanent),
        412 => ("invalid_sender", "the sender line is invalid", Permanent),
        413 => ("invalid_message", "the message is empty or too long", Permanent),
        414 => ("too_many_records", "too many records in one request", Permanent),
        417 => ("invalid_date", "the date is invalid", Permanent),
        418 => ("insufficient_credit", "the account has insufficient credit", Permanent),
        419 => ("array_length_mismatch", "sendarray arrays differ in length", Permanent),
        420 => ("links_restricted", "links in the text are restricted", Permanent),
        422 => ("invalid_characters", "the text has invalid characters", Permanent),
        424 => ("template_not_found", "the template does not exist or is not approved", Permanent),
        426 => ("needs_advanced_service", "the method needs the advanced service", Permanent),
        427 => ("line_not_permitted", "the sender line lacks the access level", Permanent),
        428 => ("call_not_possible", "a voice call needs a numeric token", Permanent),
        429 => ("ip_restricted", "requests from this IP are restricted", Permanent),
        431 => ("invalid_token", "a token has spaces, newlines or separators", Permanent),
        432 => ("template_without_token", "the template has no %token parameter", Permanent),
        451 => ("provider_rate_limited", "too many calls", Retry),
        501 => ("test_account", "a test account may only send to its owner", Permanent),
        607 => ("invalid_tag", "the tag name is invalid", Permanent),
        500..=599 => ("provider_error", "the server failed", Retry),
        _ => ("provider_error", "unknown Kavenegar status", Permanent),
    }
}

/// What delivery status codes mean, and whether they are final.
pub fn delivery_status(code: i64) -> (&'static str, bool) {
    match code {
        1 => ("queued", false),
        2 => ("scheduled", false),
        4 | 5 => ("sent", false),
        6 => ("failed", true),
        10 => ("delivered", true),
        11 => ("undelivered", true),
        13 => ("cancelled", true),
        14 => ("blocked", true),
        100 => ("invalid_message_id", true),
        _ => ("unknown", false),
    }
}

#[derive(Clone)]
pub struct KavenegarClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl KavenegarClient {
    /// Where requests go (no key in it).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn new(base_url: &str, api_key: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self { http, base_url: base_url.trim_end_matches('/').to_string(), api_key: api_key.to_string() })
    }

    /// Calls `{group}/{method}.json` with `form`; the entries on success.
    pub async fn call(&self, method: &str, form: &[(&str, String)]) -> Result<Vec<Entry>, KavenegarError> {
        let url = format!("{}/v1/{}/{method}.json", self.base_url, self.api_key);
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str()))).finish();
        let started = Instant::now();
        let result = self.send(url, body).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(KavenegarError::Api { .. } | KavenegarError::Http { .. }) => "error",
            Err(KavenegarError::NotSent(_) | KavenegarError::NoAnswer(_)) => "transport_error",
        };
        let reached = !matches!(result, Err(KavenegarError::NotSent(_)));
        observe_provider("kavenegar", outcome, reached.then(|| started.elapsed()));
        result
    }

    async fn send(&self, url: String, body: String) -> Result<Vec<Entry>, KavenegarError> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            // `without_url`: the URL carries the API key.
            .map_err(|e| {
                if e.is_connect() {
                    KavenegarError::NotSent(e.without_url().to_string())
                } else {
                    KavenegarError::NoAnswer(e.without_url().to_string())
                }
            })?;
        let http_status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| KavenegarError::NoAnswer(e.without_url().to_string()))?;
        parse_answer(http_status, &bytes)
    }
}

/// Reads an answer: the envelope decides whatever the HTTP status says.
pub fn parse_answer(http_status: u16, body: &[u8]) -> Result<Vec<Entry>, KavenegarError> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        let excerpt: String = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_BYTES)]).into_owned();
        // A 503 is a load balancer turning the request away; 500/502/504 may
        // come after Kavenegar acted on it. A 200 without an envelope is a
        // broken answer to a request that was processed.
        let maybe_sent = http_status != 503 && !(400..500).contains(&http_status);
        return Err(KavenegarError::Http { status: http_status, excerpt, maybe_sent });
    };
    if envelope.ret.status != 200 {
        let (_, meaning, _) = status_meaning(envelope.ret.status);
        return Err(KavenegarError::Api { status: envelope.ret.status, meaning, message: envelope.ret.message });
    }
    // `entries` is an array, or a single object for some methods.
    Ok(match envelope.entries {
        Some(serde_json::Value::Array(items)) => items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        Some(object @ serde_json::Value::Object(_)) => serde_json::from_value(object).ok().into_iter().collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_numbers_as_strings() {
        let body = br#"{"return":{"status":200,"message":"ok"},"entries":[{"messageid":"8792343","message":"hi","status":"1","statustext":"queued","sender":"10004346","receptor":"09121234567","date":1356619709,"cost":"120"}]}"#;
        let entries = parse_answer(200, body).unwrap();
        assert_eq!(entries[0].messageid, 8792343);
        assert_eq!(entries[0].cost, Some(120));
        assert_eq!(entries[0].receptor.as_deref(), Some("09121234567"));
    }

    #[test]
    fn errors_inside_http_200_are_errors() {
        let err = parse_answer(200, br#"{"return":{"status":418,"message":"credit"},"entries":null}"#).unwrap_err();
        assert!(matches!(err, KavenegarError::Api { status: 418, .. }));
        assert!(!err.maybe_sent());
    }

    #[test]
    fn pages_without_an_envelope() {
        let err = parse_answer(502, b"<html>Bad Gateway</html>").unwrap_err();
        assert!(matches!(err, KavenegarError::Http { status: 502, maybe_sent: true, .. }));
        assert!(!parse_answer(503, b"busy").unwrap_err().maybe_sent());
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(status_meaning(409).2, Handling::Retry);
        assert_eq!(status_meaning(451).2, Handling::Retry);
        assert_eq!(status_meaning(411), ("invalid_receptor", "the receptor is invalid", Handling::Permanent));
        assert_eq!(status_meaning(418).0, "insufficient_credit");
        assert_eq!(status_meaning(424).0, "template_not_found");
        assert_eq!(delivery_status(10), ("delivered", true));
        assert_eq!(delivery_status(1), ("queued", false));
    }
}
