//! A local server speaking OpenAI's chat-completions wire format:
//! `POST /v1/chat/completions` with a bearer key, answers with
//! `choices[0].message.content` and `usage`, errors as
//! `{"error": {"message", "type", "code"}}`.
//!
//! Without a script it answers like a well-behaved model: a valid JSON
//! output for the schema the request names (`response_format.json_schema`,
//! or the schema name quoted in the system message for `json_object`), or
//! plain text for free prompts. Tests script the next answers with
//! [`OpenAi::push`] (errors, 429 with `Retry-After`, pages without JSON,
//! malformed or schema-breaking content, slow answers), can make it refuse
//! `json_schema` like providers without structured outputs, and read every
//! request it got ([`OpenAi::requests`]) to check what left the worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const TEST_API_KEY: &str = "sk-peyk-test-0123456789";
pub const TEST_MODEL: &str = "peyk-test-model";

/// A scripted answer instead of the normal one.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this text as `choices[0].message.content`.
    Content(String),
    /// An OpenAI error body with this HTTP status (and `Retry-After`).
    Error { status: u16, message: String, kind: String, code: Option<String>, retry_after: Option<String> },
    /// A bare page, not JSON (a proxy's 502, say).
    Page { status: u16, body: String },
    /// The normal answer, after this long.
    Slow(Duration),
}

impl Reply {
    pub fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Self {
        Reply::Error { status, message: message.into(), kind: kind.into(), code: code.map(str::to_string), retry_after: None }
    }

    pub fn rate_limited(retry_after: &str) -> Self {
        Reply::Error {
            status: 429,
            message: "Rate limit reached for requests".into(),
            kind: "requests".into(),
            code: Some("rate_limit_exceeded".into()),
            retry_after: Some(retry_after.into()),
        }
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Value>,
    auth: Vec<String>,
}

#[derive(Clone)]
pub struct OpenAi {
    /// Base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    refuse_json_schema: Arc<AtomicBool>,
}

impl OpenAi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let server = OpenAi { url, inner: Default::default(), refuse_json_schema: Default::default() };
        let app = Router::new().route("/v1/chat/completions", post(handle)).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// Worker environment pointing `medical_analysis` jobs at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_LLM_BASE_URL", self.url.clone()), ("PEYK_LLM_API_KEY", TEST_API_KEY.into()), ("PEYK_LLM_MODEL", TEST_MODEL.into())]
    }

    /// The next request gets this answer (in order, one each).
    pub fn push(&self, reply: Reply) {
        self.inner.lock().unwrap().script.push_back(reply);
    }

    /// Answer `json_schema` requests with a 400, as servers without
    /// structured outputs do.
    pub fn refuse_json_schema(&self) {
        self.refuse_json_schema.store(true, Ordering::SeqCst);
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The `Authorization` header of every request.
    pub fn auth_headers(&self) -> Vec<String> {
        self.inner.lock().unwrap().auth.clone()
    }
}

fn error_body(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

async fn handle(State(server): State<OpenAi>, headers: HeaderMap, body: String) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let scripted = {
        let mut inner = server.inner.lock().unwrap();
        inner.requests.push(request.clone());
        inner.auth.push(auth.clone());
        inner.script.pop_front()
    };
    if auth != format!("Bearer {TEST_API_KEY}") {
        return error_body(
            401,
            "Incorrect API key provided: sk-wro***. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    if request["model"] != TEST_MODEL {
        let message = format!("The model `{}` does not exist or you do not have access to it.", request["model"].as_str().unwrap_or(""));
        return error_body(404, &message, "invalid_request_error", Some("model_not_found"));
    }
    if request["messages"].as_array().is_none_or(|m| m.is_empty()) {
        return error_body(400, "'messages' must be a non-empty array", "invalid_request_error", None);
    }
    if server.refuse_json_schema.load(Ordering::SeqCst) && request["response_format"]["type"] == "json_schema" {
        return error_body(
            400,
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            "invalid_request_error",
            None,
        );
    }
    let content = match scripted {
        Some(Reply::Content(content)) => content,
        Some(Reply::Error { status, message, kind, code, retry_after }) => {
            let mut response = error_body(status, &message, &kind, code.as_deref());
            if let Some(after) = retry_after {
                response.headers_mut().insert("retry-after", after.parse().unwrap());
            }
            return response;
        }
        Some(Reply::Page { status, body }) => return (StatusCode::from_u16(status).unwrap(), body).into_response(),
        Some(Reply::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            default_content(&request)
        }
        None => default_content(&request),
    };
    let completion_tokens = (content.chars().count() / 4).max(1) as u64;
    let prompt_tokens = (body.chars().count() / 4) as u64;
    Json(json!({
        "id": "chatcmpl-peyk-test",
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": TEST_MODEL,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null }, "logprobs": null, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens },
    }))
    .into_response()
}

/// The schema name a request asks for: in `response_format`, or quoted in
/// the system message (`json_object` requests).
pub fn schema_name(request: &Value) -> Option<String> {
    if let Some(name) = request["response_format"]["json_schema"]["name"].as_str() {
        return Some(name.to_string());
    }
    let system = request["messages"][0]["content"].as_str()?;
    let start = system.find("`medical_")? + 1;
    let end = start + system[start..].find('`')?;
    Some(system[start..end].to_string())
}

/// A valid answer for each analysis type, like a good model's.
pub fn valid_output(schema: &str) -> Option<Value> {
    Some(match schema {
        "medical_symptoms" => json!({
            "symptoms": [
                { "name": "درد قفسه سینه", "duration": "۲ روز", "severity": "severe", "notes": "با فعالیت بدتر می‌شود" },
                { "name": "تنگی نفس", "duration": null, "severity": "unknown", "notes": null }
            ],
            "red_flags": [{ "finding": "درد قفسه سینه فعالیتی", "reason": "احتمال علت قلبی" }],
            "summary": "درد قفسه سینه از دو روز پیش همراه با تنگی نفس."
        }),
        "medical_soap_note" => json!({
            "subjective": "Cough for one week, worse at night.",
            "objective": "Temperature 38.2 C, wheezing on auscultation.",
            "assessment": "The doctor considers an asthma exacerbation.",
            "plan": "Salbutamol inhaler, review in one week."
        }),
        "medical_triage" => {
            json!({ "urgency": "urgent", "reasons": ["chest pain with shortness of breath"], "red_flags": ["chest pain on exertion"], "recommended_action": "See a doctor within hours." })
        }
        "medical_medications" => json!({
            "medications": [
                { "name": "warfarin", "dose": "5 mg", "frequency": "daily", "route": "oral", "indication": null },
                { "name": "aspirin", "dose": "80 mg", "frequency": "daily", "route": "oral", "indication": "heart" }
            ],
            "interactions_to_check": [{ "drugs": ["warfarin", "aspirin"], "concern": "bleeding risk" }],
            "notes": null
        }),
        "medical_summary" => json!({ "summary": "A short summary.", "key_points": ["point one", "point two"] }),
        _ => return None,
    })
}

fn default_content(request: &Value) -> String {
    match schema_name(request).and_then(|name| valid_output(&name)) {
        Some(output) => output.to_string(),
        None => "Drink water regularly and rest. This is general information.".into(),
    }
}
