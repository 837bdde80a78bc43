//! The chat-completions call to any OpenAI-compatible provider (OpenAI,
//! llama.cpp's server, vLLM, Ollama…), with async-openai's request and
//! response types.
//!
//! Why not async-openai's `Client`: it retries 429/5xx itself with its own
//! backoff and hides the HTTP status and `Retry-After`. Peyk retries jobs
//! itself (durably, with `Retry-After` honoured and visible in the job's
//! attempts), so this module makes exactly one HTTP request per call and
//! classifies the answer: 429 and 5xx are retryable with the provider's
//! `Retry-After`; 400/401/403/404 fail at once with the provider's message.
//!
//! Nothing here logs request or response bodies: they carry medical text.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_openai::types::chat::{CompletionUsage, CreateChatCompletionRequest, CreateChatCompletionResponse};
use prometheus::{IntCounterVec, Opts};
use serde::Deserialize;

use crate::env::{env_or, env_parse, env_seconds, EnvError};
use crate::metrics::{observe_provider, register};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// A provider's error message is kept to this many characters in job errors.
const MESSAGE_CHARS: usize = 300;
/// The longest a single request may be given: three requests (answer,
/// schema-fallback, correction) must fit in the job's attempt timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(90);

pub static LLM_TOKENS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("peyk_llm_tokens_total", "Tokens used at the LLM provider, by model and kind (prompt, completion)"),
            &["model", "kind"],
        )
        .unwrap(),
    )
});

pub static LLM_INVALID_OUTPUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("peyk_llm_invalid_outputs_total", "Model answers that did not match the requested schema"),
            &["model"],
        )
        .unwrap(),
    )
});

/// Settings read once at worker start.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Whether the operator named a provider (`PEYK_LLM_BASE_URL`, or
    /// `PEYK_LLM_API_KEY` for OpenAI itself). Without either, analyses fail
    /// at once naming the setting (and the API refuses them when every
    /// worker says so) instead of trying `api.openai.com`, which many of
    /// Peyk's users cannot reach.
    pub configured: bool,
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub timeout: Duration,
    /// Redact identifiers before text leaves for the provider.
    pub redact: bool,
    /// Ask for `json_schema` (strict) first; `false` starts with `json_object`.
    pub json_schema: bool,
}

impl LlmConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        let base_url = env_or("PEYK_LLM_BASE_URL", DEFAULT_BASE_URL).trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base_url).map_err(|e| EnvError::new(format!("PEYK_LLM_BASE_URL={base_url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EnvError::new("PEYK_LLM_BASE_URL must be an http or https URL"));
        }
        let timeout = env_seconds("PEYK_LLM_TIMEOUT_SECONDS", 60.0)?;
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(EnvError::new(format!("PEYK_LLM_TIMEOUT_SECONDS must be more than 0 and at most {}", MAX_TIMEOUT.as_secs())));
        }
        let format = env_or("PEYK_LLM_RESPONSE_FORMAT", "json_schema");
        if !matches!(format.as_str(), "json_schema" | "json_object") {
            return Err(EnvError::new("PEYK_LLM_RESPONSE_FORMAT must be json_schema or json_object"));
        }
        Ok(Self {
            configured: !env_or("PEYK_LLM_BASE_URL", "").trim().is_empty() || !env_or("PEYK_LLM_API_KEY", "").trim().is_empty(),
            redact: env_parse("PEYK_LLM_REDACT", !is_loopback(&parsed))?,
            base_url,
            api_key: env_or("PEYK_LLM_API_KEY", ""),
            model: env_or("PEYK_LLM_MODEL", DEFAULT_MODEL),
            timeout,
            json_schema: format == "json_schema",
        })
    }
}

/// A provider on this machine: text sent there does not leave it, so
/// redaction is off by default. Anything else (a private-network address
/// too) counts as a third party.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why a call gave no answer, and what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmError {
    /// Worth trying again later (429, 5xx, timeouts, connection errors),
    /// no earlier than `retry_after` when the provider said so.
    Retry { code: String, message: String, retry_after: Option<Duration> },
    /// Trying again cannot help (400, 401, 403, 404…).
    Permanent { code: String, message: String, status: u16 },
}

/// One answer: the model's text and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    pub usage: Option<CompletionUsage>,
    pub finish_reason: Option<String>,
    /// The model that answered, as the provider names it.
    pub model: String,
    pub took: Duration,
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    pub config: LlmConfig,
    url: String,
    /// Set once the provider refused `json_schema`: later jobs go straight
    /// to `json_object` instead of paying a refused request each.
    schema_unsupported: std::sync::Arc<AtomicBool>,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            // Hundreds of jobs at once share a few keep-alive connections.
            .pool_max_idle_per_host(512)
            .build()?;
        let url = format!("{}/chat/completions", config.base_url);
        LLM_TOKENS.with_label_values(&[&config.model, "prompt"]);
        LLM_TOKENS.with_label_values(&[&config.model, "completion"]);
        for outcome in ["success", "client_error", "server_error", "timeout", "connection_error"] {
            crate::metrics::PROVIDER_REQUESTS.with_label_values(&["llm", outcome]);
        }
        Ok(Self { http, config, url, schema_unsupported: Default::default() })
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(LlmConfig::from_env()?)
    }

    /// Whether to ask for `json_schema` (strict) rather than `json_object`.
    pub fn use_json_schema(&self) -> bool {
        self.config.json_schema && !self.schema_unsupported.load(Ordering::Relaxed)
    }

    pub fn mark_schema_unsupported(&self) {
        if !self.schema_unsupported.swap(true, Ordering::Relaxed) {
            tracing::warn!(model = %self.config.model, "the LLM provider refused response_format json_schema; using json_object from now on");
        }
    }

    /// One `POST {base}/chat/completions`, no retries.
    pub async fn complete(&self, request: &CreateChatCompletionRequest) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let result = self.send(request).await;
        let took = started.elapsed();
        let outcome = match &result {
            Ok(_) => "success",
            Err(LlmError::Permanent { .. }) => "client_error",
            Err(LlmError::Retry { code, .. }) if code == "timeout" => "timeout",
            Err(LlmError::Retry { code, .. }) if code == "connection_error" => "connection_error",
            Err(LlmError::Retry { code, .. }) if code == "rate_limited" => "client_error",
            Err(LlmError::Retry { .. }) => "server_error",
        };
        let reached = !matches!(&result, Err(LlmError::Retry { code, .. }) if code == "connection_error");
        observe_provider("llm", outcome, reached.then_some(took));
        let mut completion = result?;
        completion.took = took;
        if let Some(usage) = &completion.usage {
            LLM_TOKENS.with_label_values(&[&self.config.model, "prompt"]).inc_by(usage.prompt_tokens as u64);
            LLM_TOKENS.with_label_values(&[&self.config.model, "completion"]).inc_by(usage.completion_tokens as u64);
        }
        Ok(completion)
    }

    async fn send(&self, request: &CreateChatCompletionRequest) -> Result<Completion, LlmError> {
        let mut builder = self.http.post(&self.url).json(request);
        if !self.config.api_key.is_empty() {
            builder = builder.bearer_auth(&self.config.api_key);
        }
        let response = builder.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(transport_error)?;
        if status == 200 {
            return parse_completion(&body).ok_or_else(|| LlmError::Retry {
                code: "invalid_provider_response".into(),
                message: "the provider answered 200 without a readable chat completion".into(),
                retry_after: None,
            });
        }
        Err(classify(status, &body, retry_after))
    }
}

fn transport_error(e: reqwest::Error) -> LlmError {
    // `without_url`: nothing secret is in the URL, but keep errors short.
    let e = e.without_url();
    let (code, what) = if e.is_timeout() {
        ("timeout", "no answer from the LLM provider in time")
    } else if e.is_connect() {
        ("connection_error", "could not connect to the LLM provider")
    } else {
        ("connection_error", "the connection to the LLM provider failed")
    };
    LlmError::Retry { code: code.into(), message: format!("{what}: {e}"), retry_after: None }
}

/// `Retry-After` (seconds or an HTTP date), or OpenAI's `retry-after-ms`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// OpenAI's error body: `{"error": {"message", "type", "code"}}` (some
/// servers send `{"error": "text"}` or `{"detail": …}`).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

/// (message, type, code) of an error answer, as far as the body says.
pub fn error_fields(body: &[u8]) -> (String, Option<String>, Option<String>) {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let as_text = |v: &serde_json::Value| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()));
    match parsed.error.or(parsed.detail) {
        Some(serde_json::Value::Object(error)) => (
            error.get("message").and_then(as_text).unwrap_or_default(),
            error.get("type").and_then(as_text),
            error.get("code").and_then(as_text),
        ),
        Some(serde_json::Value::String(message)) => (message, None, None),
        Some(other) => (other.to_string(), None, None),
        None => (String::from_utf8_lossy(&body[..body.len().min(MESSAGE_CHARS)]).trim().to_string(), None, None),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MESSAGE_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MESSAGE_CHARS).collect();
    short.push('…');
    short
}

/// What an HTTP error status means for the job.
pub fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> LlmError {
    let (message, kind, code) = error_fields(body);
    let said = if message.is_empty() { String::new() } else { format!(": {}", shorten(&message)) };
    let permanent =
        |code: &str, what: &str| LlmError::Permanent { code: code.into(), message: format!("{what} (HTTP {status}){said}"), status };
    match status {
        // A spent quota is a 429 too, but waiting does not refill it.
        429 if code.as_deref() == Some("insufficient_quota") || kind.as_deref() == Some("insufficient_quota") => {
            permanent("insufficient_quota", "the LLM account has no quota left")
        }
        429 => LlmError::Retry {
            code: "rate_limited".into(),
            message: format!("the LLM provider is rate limiting (HTTP 429){said}"),
            retry_after,
        },
        408 | 409 | 425 | 500..=599 => LlmError::Retry {
            code: format!("http_{status}"),
            message: format!("the LLM provider failed (HTTP {status}){said}"),
            retry_after,
        },
        400 if code.as_deref() == Some("context_length_exceeded") => permanent("text_too_long", "the text is too long for the model"),
        400 | 422 => permanent("provider_rejected", "the LLM provider refused the request"),
        401 | 403 => permanent("provider_unauthorized", "the LLM provider refused the API key (check PEYK_LLM_API_KEY)"),
        404 => permanent("model_not_found", "the LLM provider has no such model or endpoint (check PEYK_LLM_MODEL and PEYK_LLM_BASE_URL)"),
        413 => permanent("text_too_long", "the request is too large for the LLM provider"),
        _ => permanent("provider_rejected", "the LLM provider refused the request"),
    }
}

/// Whether a refusal is about `response_format: json_schema`, so that the
/// request can be repeated with `json_object`. Most servers refuse with a
/// 400 or 422; llama-cpp-python's server (0.3) answers its request
/// validation error with a 500 that names `response_format` (seen against
/// a real one: without this, every analysis job died after its retries).
pub fn refuses_json_schema(error: &LlmError) -> bool {
    let about_format = |message: &str| {
        let m = message.to_ascii_lowercase();
        m.contains("json_schema") || m.contains("response_format") || m.contains("structured output")
    };
    match error {
        LlmError::Permanent { status: 400 | 422, message, .. } => about_format(message),
        LlmError::Retry { code, message, .. } if code == "http_500" => about_format(message),
        _ => false,
    }
}

/// The first choice's text. async-openai's response type first; servers
/// that deviate from it (a missing `created`, an unknown finish reason) are
/// read leniently.
pub fn parse_completion(body: &[u8]) -> Option<Completion> {
    if let Ok(response) = serde_json::from_slice::<CreateChatCompletionResponse>(body) {
        let choice = response.choices.into_iter().next()?;
        let finish_reason = choice.finish_reason.and_then(|r| serde_json::to_value(r).ok()).and_then(|v| v.as_str().map(str::to_string));
        return Some(Completion {
            content: choice.message.content.unwrap_or_default(),
            usage: response.usage,
            finish_reason,
            model: response.model,
            took: Duration::ZERO,
        });
    }
    #[derive(Deserialize)]
    struct Lenient {
        choices: Vec<LenientChoice>,
        #[serde(default)]
        usage: Option<CompletionUsage>,
        #[serde(default)]
        model: Option<String>,
    }
    #[derive(Deserialize)]
    struct LenientChoice {
        message: LenientMessage,
        #[serde(default)]
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct LenientMessage {
        #[serde(default)]
        content: Option<String>,
    }
    let response: Lenient = serde_json::from_slice(body).ok()?;
    let choice = response.choices.into_iter().next()?;
    Some(Completion {
        content: choice.message.content.unwrap_or_default(),
        usage: response.usage,
        finish_reason: choice.finish_reason,
        model: response.model.unwrap_or_default(),
        took: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "error": { "message": message, "type": kind, "code": code } })).unwrap()
    }

    #[test]
    fn statuses_are_classified() {
        let e = classify(429, &body("Rate limit reached", "requests", Some("rate_limit_exceeded")), Some(Duration::from_secs(7)));
        assert_eq!(
            e,
            LlmError::Retry {
                code: "rate_limited".into(),
                message: "the LLM provider is rate limiting (HTTP 429): Rate limit reached".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(
            matches!(classify(429, &body("quota", "insufficient_quota", Some("insufficient_quota")), None), LlmError::Permanent { code, .. } if code == "insufficient_quota")
        );
        assert!(matches!(classify(503, b"<html>down</html>", None), LlmError::Retry { code, .. } if code == "http_503"));
        let e = classify(401, &body("Incorrect API key provided", "invalid_request_error", Some("invalid_api_key")), None);
        assert!(
            matches!(&e, LlmError::Permanent { code, message, .. } if code == "provider_unauthorized" && message.contains("Incorrect API key provided")),
            "{e:?}"
        );
        assert!(
            matches!(classify(404, &body("The model `x` does not exist", "invalid_request_error", Some("model_not_found")), None), LlmError::Permanent { code, .. } if code == "model_not_found")
        );
        assert!(
            matches!(classify(400, &body("too long", "invalid_request_error", Some("context_length_exceeded")), None), LlmError::Permanent { code, .. } if code == "text_too_long")
        );
        let e = classify(
            400,
            &body(
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                "invalid_request_error",
                None,
            ),
            None,
        );
        assert!(refuses_json_schema(&e));
        assert!(!refuses_json_schema(&classify(400, &body("bad temperature", "invalid_request_error", None), None)));
        // llama-cpp-python 0.3.36, as it really answers.
        let llama = br#"{"detail":"1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"}"#;
        assert!(refuses_json_schema(&classify(500, llama, None)));
        assert!(!refuses_json_schema(&classify(500, b"internal error", None)));
        // llama.cpp-style string errors and FastAPI details.
        assert_eq!(error_fields(br#"{"error": "model not loaded"}"#).0, "model not loaded");
        assert_eq!(error_fields(br#"{"detail": "Not Found"}"#).0, "Not Found");
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut headers = reqwest::header::HeaderMap::new();
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&headers).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
    }

    #[test]
    fn completions_strict_and_lenient() {
        let strict = br#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"{\"a\":1}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;
        let c = parse_completion(strict).unwrap();
        assert_eq!((c.content.as_str(), c.finish_reason.as_deref(), c.usage.unwrap().total_tokens), ("{\"a\":1}", Some("stop"), 15));
        let lenient = br#"{"choices":[{"message":{"content":"hi"},"finish_reason":"eos"}]}"#;
        let c = parse_completion(lenient).unwrap();
        assert_eq!((c.content.as_str(), c.finish_reason.as_deref()), ("hi", Some("eos")));
        assert!(parse_completion(b"not json").is_none());
        assert!(parse_completion(br#"{"choices":[]}"#).is_none());
    }

    #[test]
    fn loopback_providers() {
        for (url, local) in [
            ("http://127.0.0.1:8000/v1", true),
            ("http://localhost:11434/v1", true),
            ("http://[::1]:8000/v1", true),
            ("https://api.openai.com/v1", false),
            ("http://10.0.0.5/v1", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(url).unwrap()), local, "{url}");
        }
    }
}
