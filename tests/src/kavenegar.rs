//! A local server speaking Kavenegar's REST wire format (v1): the API key in
//! the path, form bodies, `{"return": {...}, "entries": [...]}` answers,
//! errors as `return.status` with the matching HTTP status (or inside an
//! HTTP 200, as some answers do). It keeps every message it "sent", so
//! tests can count what would have reached a phone.
//!
//! Implemented: `sms/send`, `sms/sendarray`, `verify/lookup`, `sms/status`,
//! `sms/statuslocalmessageid`. A repeated `localid` returns the message
//! already sent instead of sending another. Tests script failures per
//! method with [`Kavenegar::fail_next`] and can hold the next answer
//! ([`Kavenegar::hold_next`]) to simulate a worker dying mid-call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const TEST_API_KEY: &str = "4F6A2B7C3D8E9F00-test";
/// Templates approved in the test account.
pub const TEMPLATES: &[&str] = &["verify", "appointment-reminder", "report-ready"];

#[derive(Debug, Clone)]
pub struct Sent {
    pub messageid: i64,
    pub method: String,
    pub receptor: String,
    pub localid: Option<String>,
    /// The text, or for lookups the template name.
    pub text: String,
    pub tokens: Vec<(String, String)>,
    pub kind: String,
    pub sender: String,
    /// How many times `sms/status` was asked about it.
    pub status_checks: u32,
}

/// A scripted answer instead of the normal one.
#[derive(Debug, Clone)]
pub enum Failure {
    /// `return.status` = `status` with HTTP status `http` (200 for errors
    /// inside a successful response).
    Api { status: i64, http: u16 },
    /// A bare HTTP error page, no envelope.
    Page { http: u16 },
}

#[derive(Default)]
struct Inner {
    sent: Vec<Sent>,
    calls: HashMap<String, u32>,
    failures: HashMap<String, VecDeque<Failure>>,
    hold: HashMap<String, Arc<Notify>>,
    next_id: i64,
}

#[derive(Clone, Default)]
pub struct Kavenegar {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Kavenegar {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = Kavenegar { url, inner: Arc::new(Mutex::new(Inner { next_id: 80_000_000, ..Default::default() })) };
        let app = Router::new().route("/v1/{key}/{group}/{method}", post(handle)).with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// Worker environment pointing SMS jobs at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_KAVENEGAR_API_KEY", TEST_API_KEY.to_string()), ("PEYK_KAVENEGAR_BASE_URL", self.url.clone())]
    }

    /// The next call of `method` (e.g. `sms/send`) fails like this.
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.inner.lock().unwrap().failures.entry(method.into()).or_default().push_back(failure);
    }

    /// The next call of `method` is carried out (the message is "sent") but
    /// not answered until [`Kavenegar::release`].
    pub fn hold_next(&self, method: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.inner.lock().unwrap().hold.insert(method.into(), notify.clone());
        notify
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.inner.lock().unwrap().sent.clone()
    }

    pub fn calls(&self, method: &str) -> u32 {
        self.inner.lock().unwrap().calls.get(method).copied().unwrap_or(0)
    }
}

fn envelope(status: i64, message: &str, entries: Value) -> Value {
    json!({ "return": { "status": status, "message": message }, "entries": entries })
}

fn api_error(status: i64, http: u16) -> Response {
    let code = StatusCode::from_u16(http).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(envelope(status, "خطا", Value::Null))).into_response()
}

fn entry(sent: &Sent) -> Value {
    json!({
        "messageid": sent.messageid,
        "message": sent.text,
        "status": 1,
        "statustext": "در صف ارسال",
        "sender": sent.sender,
        "receptor": sent.receptor,
        "date": chrono::Utc::now().timestamp(),
        // Kavenegar's SDKs see numbers as strings too: send cost as one.
        "cost": "1200",
        "localid": sent.localid,
    })
}

async fn handle(
    State(server): State<Kavenegar>,
    Path((key, group, method)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let method = format!("{group}/{}", method.trim_end_matches(".json"));
    let (failure, hold) = {
        let mut inner = server.inner.lock().unwrap();
        *inner.calls.entry(method.clone()).or_default() += 1;
        (inner.failures.get_mut(&method).and_then(VecDeque::pop_front), inner.hold.remove(&method))
    };
    if key != TEST_API_KEY {
        return api_error(403, 403);
    }
    match failure {
        Some(Failure::Api { status, http }) => return api_error(status, http),
        Some(Failure::Page { http }) => {
            return (StatusCode::from_u16(http).unwrap(), "<html><body>upstream error</body></html>").into_response()
        }
        None => {}
    }
    let answer = answer(&server, &method, &form);
    if let Some(hold) = hold {
        hold.notified().await;
    }
    answer
}

fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name).cloned().unwrap_or_default()
}

fn list(form: &HashMap<String, String>, name: &str) -> Vec<String> {
    let raw = field(form, name);
    if raw.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<Value>>(&raw)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect()
    } else {
        raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

fn valid_receptor(r: &str) -> bool {
    r.len() == 11 && r.starts_with("09") && r.chars().all(|c| c.is_ascii_digit())
}

fn answer(server: &Kavenegar, method: &str, form: &HashMap<String, String>) -> Response {
    let mut inner = server.inner.lock().unwrap();
    let record = |inner: &mut Inner,
                  receptor: &str,
                  localid: Option<String>,
                  text: String,
                  tokens: Vec<(String, String)>,
                  kind: &str,
                  sender: String| {
        if let Some(existing) = localid.as_ref().and_then(|l| inner.sent.iter().find(|s| s.localid.as_ref() == Some(l))) {
            return entry(existing);
        }
        inner.next_id += 1;
        let sent = Sent {
            messageid: inner.next_id,
            method: method.to_string(),
            receptor: receptor.to_string(),
            localid,
            text,
            tokens,
            kind: kind.to_string(),
            sender,
            status_checks: 0,
        };
        let value = entry(&sent);
        inner.sent.push(sent);
        value
    };
    match method {
        "sms/send" => {
            let receptors = list(form, "receptor");
            let localids = list(form, "localid");
            let message = field(form, "message");
            if receptors.is_empty() || message.is_empty() {
                return api_error(406, 406);
            }
            if receptors.iter().any(|r| !valid_receptor(r)) {
                return api_error(411, 411);
            }
            let sender = form.get("sender").cloned().unwrap_or_else(|| "10004346".into());
            let entries: Vec<Value> = receptors
                .iter()
                .enumerate()
                .map(|(i, r)| record(&mut inner, r, localids.get(i).cloned(), message.clone(), vec![], "sms", sender.clone()))
                .collect();
            Json(envelope(200, "تایید شد", json!(entries))).into_response()
        }
        "sms/sendarray" => {
            let receptors = list(form, "receptor");
            let messages = list(form, "message");
            let senders = list(form, "sender");
            let mut localids = list(form, "localid");
            if localids.is_empty() {
                localids = list(form, "localmessageids");
            }
            if receptors.len() != messages.len() || receptors.len() != senders.len() {
                return api_error(419, 419);
            }
            let entries: Vec<Value> = receptors
                .iter()
                .enumerate()
                .map(|(i, r)| record(&mut inner, r, localids.get(i).cloned(), messages[i].clone(), vec![], "sms", senders[i].clone()))
                .collect();
            Json(envelope(200, "تایید شد", json!(entries))).into_response()
        }
        "verify/lookup" => {
            let receptor = field(form, "receptor");
            let template = field(form, "template");
            let token = field(form, "token");
            if !valid_receptor(&receptor) {
                return api_error(411, 411);
            }
            if token.is_empty() {
                return api_error(406, 406);
            }
            if !TEMPLATES.contains(&template.as_str()) {
                return api_error(424, 424);
            }
            let kind = form.get("type").cloned().unwrap_or_else(|| "sms".into());
            if kind == "call" && !token.chars().all(|c| c.is_ascii_digit()) {
                return api_error(428, 428);
            }
            let tokens: Vec<(String, String)> = ["token", "token2", "token3", "token10", "token20"]
                .iter()
                .filter_map(|t| form.get(*t).map(|v| (t.to_string(), v.clone())))
                .collect();
            let value = record(&mut inner, &receptor, None, template, tokens, &kind, "2000500666".into());
            Json(envelope(200, "تایید شد", json!([value]))).into_response()
        }
        "sms/status" => {
            let ids = list(form, "messageid");
            let entries: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let id: i64 = id.parse().unwrap_or(0);
                    match inner.sent.iter_mut().find(|s| s.messageid == id) {
                        // Sent to the carrier at the first check, delivered after.
                        Some(sent) => {
                            sent.status_checks += 1;
                            let (status, text) = if sent.status_checks == 1 {
                                (4, "ارسال به مخابرات")
                            } else {
                                (10, "رسیده به گیرنده")
                            };
                            json!({ "messageid": id, "status": status, "statustext": text })
                        }
                        None => json!({ "messageid": id, "status": 100, "statustext": "شناسه پیامک نامعتبر است" }),
                    }
                })
                .collect();
            Json(envelope(200, "تایید شد", json!(entries))).into_response()
        }
        "sms/statuslocalmessageid" => {
            let entries: Vec<Value> = list(form, "localid")
                .iter()
                .map(|l| match inner.sent.iter().find(|s| s.localid.as_deref() == Some(l.as_str())) {
                    Some(sent) => json!({ "messageid": sent.messageid, "localid": l, "status": 1, "statustext": "در صف ارسال" }),
                    None => json!({ "messageid": 0, "localid": l, "status": 100, "statustext": "شناسه نامعتبر" }),
                })
                .collect();
            Json(envelope(200, "تایید شد", json!(entries))).into_response()
        }
        _ => api_error(404, 404),
    }
}
