//! Local servers speaking the wire formats of the payment gateways Peyk
//! verifies payments with (`/work/shared/providers.md` §2–5): Zarinpal v4,
//! IDPay v1.1, BitPay.ir and Stripe. They stand in for the real, paid
//! gateways in end-to-end tests, so each one answers exactly as the real
//! one is documented to — including the awkward parts (IDPay's numbers as
//! strings, BitPay's bare-number errors served as `text/html`, Zarinpal's
//! `data: []` error envelope) — and is strict about what it accepts, so a
//! client that sends the wrong shape fails here before it fails in
//! production.
//!
//! Tests set payments up directly (`create_payment`, `pay`, ...) instead of
//! going through the gateways' request/redirect steps, which belong to the
//! payer's browser, not to Peyk. Every server counts the verifications it
//! answered with success per payment ([`Zarinpal::verifications`] and the
//! same on the others), so a test can prove Peyk never verified one payment
//! twice even where the gateway itself tolerates it (Zarinpal's 101,
//! IDPay's 101, BitPay's 11).
//!
//! Failures are scripted per method name — `"verify"`, `"unverified"`,
//! `"inquiry"` (Zarinpal, IDPay), `"retrieve"` (Stripe) — with
//! [`Failure`]; the next answer of a method can be held back
//! (`hold_next`) so two verifications can be made to race.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// The test terminal's merchant id (Zarinpal ids are 36-character UUIDs).
pub const ZARINPAL_MERCHANT: &str = "7f3c1a2e-5b4d-4e6f-8a9b-0c1d2e3f4a5b";
/// The test IDPay API key (36 characters, like real ones).
pub const IDPAY_API_KEY: &str = "6a7f99eb-7c20-4412-a972-6dfb7cd253a4";
/// The test BitPay key, in the shape of BitPay's published test key (but
/// not that key: a client that falls back to a built-in default must fail).
pub const BITPAY_API_KEY: &str = "peykt-zzadq-testkeyab-opp13opoz-1sdf455aadzmck0000001";
pub const STRIPE_SECRET_KEY: &str = "sk_test_51PeykTestKey0000000000000000000000000000";

/// A scripted answer instead of the normal one.
#[derive(Debug, Clone)]
pub enum Failure {
    /// This HTTP status and body instead of the answer; the call is not
    /// carried out. The body is sent as JSON when it parses as JSON, as
    /// text otherwise (an error page from a proxy, say).
    Status { http: u16, body: String },
    /// The call is carried out (a payment gets verified) but answered only
    /// after this long: the gateway did its part and the client gave up
    /// waiting, the case where a retry must cope with "already verified".
    Hang(Duration),
    /// The connection is dropped without an answer; the call is not carried
    /// out. The client sees a transport error.
    Close,
}

/// Scripted behaviour and counters shared by the four servers.
#[derive(Clone, Default)]
struct Script(Arc<Mutex<ScriptInner>>);

#[derive(Default)]
struct ScriptInner {
    calls: HashMap<String, u32>,
    failures: HashMap<String, VecDeque<Failure>>,
    hold: HashMap<String, Arc<Notify>>,
    delay: Duration,
    verifications: HashMap<String, u32>,
}

/// What a call that goes ahead still owes before its answer leaves.
struct Pending {
    hold: Option<Arc<Notify>>,
    hang: Option<Duration>,
}

impl Script {
    /// Counts the call and waits the fixed latency; a scripted `Status` or
    /// `Close` comes back as the answer to send instead of carrying it out.
    async fn begin(&self, method: &str) -> Result<Pending, Response> {
        let (delay, failure) = {
            let mut inner = self.0.lock().unwrap();
            *inner.calls.entry(method.into()).or_default() += 1;
            (inner.delay, inner.failures.get_mut(method).and_then(VecDeque::pop_front))
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let hang = match failure {
            Some(Failure::Status { http, body }) => return Err(scripted_status(http, body)),
            Some(Failure::Close) => return Err(dropped_connection()),
            Some(Failure::Hang(after)) => Some(after),
            None => None,
        };
        // Taken only by a call that is carried out, so a hold set behind a
        // scripted failure still catches the call that does the work.
        let hold = self.0.lock().unwrap().hold.remove(method);
        Ok(Pending { hold, hang })
    }

    fn verified(&self, reference: &str) {
        *self.0.lock().unwrap().verifications.entry(reference.into()).or_default() += 1;
    }
}

impl Pending {
    async fn answer(self, response: Response) -> Response {
        if let Some(hold) = self.hold {
            hold.notified().await;
        }
        if let Some(after) = self.hang {
            tokio::time::sleep(after).await;
        }
        response
    }
}

fn scripted_status(http: u16, body: String) -> Response {
    let status = StatusCode::from_u16(http).expect("a valid HTTP status");
    let content_type = if serde_json::from_str::<Value>(&body).is_ok() { "application/json" } else { "text/plain; charset=utf-8" };
    (status, [(CONTENT_TYPE, content_type)], body).into_response()
}

/// A response whose body fails on its first poll: hyper then aborts the
/// connection before flushing the head, so the client sees the connection
/// close with no answer (at worst a truncated body) — a transport error
/// either way, and no test has to wait for a timeout to get one.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async { Err::<Bytes, _>(std::io::Error::other("scripted connection drop")) });
    Response::new(Body::from_stream(stream))
}

/// The controls every server shares; `$server` has a `script: Script`.
macro_rules! scripted {
    ($server:ident) => {
        impl $server {
            /// The next call of `method` fails like this (queued: several
            /// calls queue several failures).
            pub fn fail_next(&self, method: &str, failure: Failure) {
                self.script.0.lock().unwrap().failures.entry(method.into()).or_default().push_back(failure);
            }

            /// The next call of `method` that is carried out does its work
            /// (a payment gets verified) and then waits to answer until the
            /// returned `Notify` is notified (`notify_one`).
            pub fn hold_next(&self, method: &str) -> Arc<Notify> {
                let notify = Arc::new(Notify::new());
                self.script.0.lock().unwrap().hold.insert(method.into(), notify.clone());
                notify
            }

            /// Calls of `method` received, scripted failures included.
            pub fn calls(&self, method: &str) -> u32 {
                self.script.0.lock().unwrap().calls.get(method).copied().unwrap_or(0)
            }

            /// A fixed latency added before every answer (for benchmarks
            /// that need a realistic gateway round trip).
            pub fn set_delay(&self, delay: Duration) {
                self.script.0.lock().unwrap().delay = delay;
            }

            /// Verifications of this payment answered with success, the
            /// "already verified" answers included: more than 1 means the
            /// client verified twice.
            pub fn verifications(&self, reference: impl std::fmt::Display) -> u32 {
                self.script.0.lock().unwrap().verifications.get(&reference.to_string()).copied().unwrap_or(0)
            }
        }
    };
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn serve(listener: tokio::net::TcpListener, app: Router) {
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn answer(http: u16, body: Value) -> Response {
    (StatusCode::from_u16(http).unwrap(), Json(body)).into_response()
}

fn sha256_hex_upper(data: &str) -> String {
    Sha256::digest(data.as_bytes()).iter().map(|b| format!("{b:02X}")).collect()
}

// ---------------------------------------------------------------------------
// Zarinpal v4

#[derive(Debug, Clone, Copy, PartialEq)]
enum ZarinpalStatus {
    /// Created, the payer has not finished at the bank.
    InBank,
    Paid,
    Verified,
    /// Cancelled by the payer or declined.
    Failed,
}

impl ZarinpalStatus {
    fn name(self) -> &'static str {
        match self {
            Self::InBank => "IN_BANK",
            Self::Paid => "PAID",
            Self::Verified => "VERIFIED",
            Self::Failed => "FAILED",
        }
    }
}

struct ZarinpalPayment {
    amount: i64,
    status: ZarinpalStatus,
    ref_id: u64,
    created: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct ZarinpalState {
    /// Keyed by authority; authorities are zero-padded counters, so this
    /// is creation order, which `unVerified.json` lists in.
    payments: BTreeMap<String, ZarinpalPayment>,
    next: u64,
}

/// Zarinpal v4: `POST /pg/v4/payment/{verify,unVerified,inquiry}.json`.
#[derive(Clone)]
pub struct Zarinpal {
    pub url: String,
    script: Script,
    state: Arc<Mutex<ZarinpalState>>,
}

scripted!(Zarinpal);

impl Zarinpal {
    pub async fn start() -> Self {
        let (listener, url) = listen().await;
        let server = Zarinpal { url, script: Script::default(), state: Arc::default() };
        let app = Router::new()
            .route("/pg/v4/payment/verify.json", post(|State(s): State<Zarinpal>, body: Bytes| zarinpal(s, "verify", body)))
            .route("/pg/v4/payment/unVerified.json", post(|State(s): State<Zarinpal>, body: Bytes| zarinpal(s, "unverified", body)))
            .route("/pg/v4/payment/inquiry.json", post(|State(s): State<Zarinpal>, body: Bytes| zarinpal(s, "inquiry", body)))
            .with_state(server.clone());
        serve(listener, app);
        server
    }

    /// Worker environment: one server plays both production and sandbox.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_ZARINPAL_URL", self.url.clone()), ("PEYK_ZARINPAL_SANDBOX_URL", self.url.clone())]
    }

    /// A payment request of `amount` (Rial) as `request.json` would have
    /// created it; returns its authority (36 characters, `A000…`).
    pub fn create_payment(&self, amount: i64) -> String {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let authority = format!("A{:035}", 217_885_000 + state.next);
        let payment = ZarinpalPayment { amount, status: ZarinpalStatus::InBank, ref_id: 0, created: chrono::Utc::now() };
        state.payments.insert(authority.clone(), payment);
        authority
    }

    /// The payer paid (the callback would say `Status=OK`): ready to verify.
    pub fn pay(&self, authority: &str) {
        let mut state = self.state.lock().unwrap();
        let ref_id = 50_000_000 + state.next;
        let payment = state.payments.get_mut(authority).unwrap_or_else(|| panic!("no Zarinpal payment {authority}"));
        payment.status = ZarinpalStatus::Paid;
        payment.ref_id = ref_id;
    }

    /// The payer cancelled (or the bank declined): verify answers -51 and
    /// inquiry `FAILED`.
    pub fn cancel(&self, authority: &str) {
        let mut state = self.state.lock().unwrap();
        state.payments.get_mut(authority).unwrap_or_else(|| panic!("no Zarinpal payment {authority}")).status = ZarinpalStatus::Failed;
    }
}

/// Zarinpal's error envelope: `data` turns into an empty array. The HTTP
/// status of error answers is unconfirmed (ZP-php reads `errors` from
/// non-200 answers too); this server uses 401 for -10 (bad merchant), 422
/// for -9 (validation) and 400 for the rest, so a client must read the
/// envelope whatever the status. A test wanting the envelope inside an
/// HTTP 200 scripts it with [`Failure::Status`].
fn zarinpal_error(code: i64, message: &str, validations: Value) -> Response {
    let http = match code {
        -10 => 401,
        -9 => 422,
        _ => 400,
    };
    answer(http, json!({ "data": [], "errors": { "code": code, "message": message, "validations": validations } }))
}

fn zarinpal_invalid(field: &str) -> Response {
    zarinpal_error(-9, "The input params invalid, validation error.", json!([{ field: format!("The {field} field is required.") }]))
}

fn zarinpal_ok(data: Value) -> Response {
    answer(200, json!({ "data": data, "errors": [] }))
}

async fn zarinpal(server: Zarinpal, method: &'static str, body: Bytes) -> Response {
    let pending = match server.script.begin(method).await {
        Ok(pending) => pending,
        Err(scripted) => return scripted,
    };
    let response = zarinpal_answer(&server, method, &body);
    pending.answer(response).await
}

fn zarinpal_answer(server: &Zarinpal, method: &str, body: &[u8]) -> Response {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return zarinpal_invalid("merchant_id");
    };
    if request.get("merchant_id").and_then(Value::as_str) != Some(ZARINPAL_MERCHANT) {
        return zarinpal_error(-10, "Terminal is not valid, please check merchant_id or ip address.", json!([]));
    }
    let mut state = server.state.lock().unwrap();
    if method == "unverified" {
        // The real list is capped at 100 authorities.
        let authorities: Vec<Value> = state
            .payments
            .iter()
            .filter(|(_, p)| p.status == ZarinpalStatus::Paid)
            .take(100)
            .map(|(authority, p)| {
                json!({
                    "authority": authority,
                    "amount": p.amount,
                    "callback_url": "https://shop.example/zarinpal/callback",
                    "referer": "",
                    "date": p.created.format("%Y-%m-%d %H:%M:%S").to_string(),
                })
            })
            .collect();
        return zarinpal_ok(json!({ "code": 100, "message": "Success", "authorities": authorities }));
    }
    let Some(authority) = request.get("authority").and_then(Value::as_str) else {
        return zarinpal_invalid("authority");
    };
    let Some(payment) = state.payments.get_mut(authority) else {
        return zarinpal_error(-54, "Invalid authority.", json!([]));
    };
    if method == "inquiry" {
        return zarinpal_ok(json!({ "code": 100, "message": "Success", "status": payment.status.name() }));
    }
    // Amount first: a wrong amount must never get a "verified" answer, not
    // even for a payment verified before.
    let Some(amount) = request.get("amount").and_then(Value::as_i64) else {
        return zarinpal_invalid("amount");
    };
    if amount != payment.amount {
        return zarinpal_error(-50, "Session is not valid, amounts values is not the same.", json!([]));
    }
    let code = match payment.status {
        ZarinpalStatus::Paid => {
            payment.status = ZarinpalStatus::Verified;
            100
        }
        ZarinpalStatus::Verified => 101,
        ZarinpalStatus::InBank | ZarinpalStatus::Failed => {
            return zarinpal_error(-51, "Session is not valid, session is not active paid try.", json!([]));
        }
    };
    server.script.verified(authority);
    zarinpal_ok(json!({
        "code": code,
        "message": "Verified",
        "card_hash": sha256_hex_upper("5022291234565995"),
        "card_pan": "502229******5995",
        "ref_id": payment.ref_id,
        "fee_type": "Merchant",
        "fee": payment.amount / 100,
    }))
}

// ---------------------------------------------------------------------------
// IDPay v1.1

struct IdPayPayment {
    order_id: String,
    amount: i64,
    status: i64,
    track_id: i64,
    bank_track_id: i64,
    created: i64,
    verified: Option<i64>,
}

#[derive(Default)]
struct IdPayState {
    payments: HashMap<String, IdPayPayment>,
    next: i64,
    numbers_as_strings: bool,
    sandbox: Vec<bool>,
}

/// IDPay v1.1: `POST /v1.1/payment/{verify,inquiry}` with `X-API-KEY`.
#[derive(Clone)]
pub struct IdPay {
    pub url: String,
    script: Script,
    state: Arc<Mutex<IdPayState>>,
}

scripted!(IdPay);

impl IdPay {
    pub async fn start() -> Self {
        let (listener, url) = listen().await;
        let server = IdPay { url, script: Script::default(), state: Arc::default() };
        let app = Router::new()
            .route("/v1.1/payment/verify", post(|State(s): State<IdPay>, h: HeaderMap, body: Bytes| idpay(s, "verify", h, body)))
            .route("/v1.1/payment/inquiry", post(|State(s): State<IdPay>, h: HeaderMap, body: Bytes| idpay(s, "inquiry", h, body)))
            .with_state(server.clone());
        serve(listener, app);
        server
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_IDPAY_URL", format!("{}/v1.1", self.url))]
    }

    /// A payment as `POST /payment` would have created it, awaiting the
    /// payer (status 1); returns its id (32 hex digits).
    pub fn create_payment(&self, order_id: &str, amount: i64) -> String {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let payment = IdPayPayment {
            order_id: order_id.into(),
            amount,
            status: 1,
            track_id: 10_000_000 + state.next,
            bank_track_id: 80_000_000 + state.next,
            created: chrono::Utc::now().timestamp(),
            verified: None,
        };
        state.payments.insert(id.clone(), payment);
        id
    }

    /// Sets the payment's status: 10 = paid, awaiting verify; 1 = not
    /// paid; 7 = cancelled by the payer; see providers.md §3 for the rest.
    pub fn set_status(&self, id: &str, status: i64) {
        self.state.lock().unwrap().payments.get_mut(id).unwrap_or_else(|| panic!("no IDPay payment {id}")).status = status;
    }

    /// Every number in every answer (errors included) sent as a JSON
    /// string, as IDPay's Postman examples show, instead of as a number, as
    /// its docs say. Clients must accept both.
    pub fn numbers_as_strings(&self, on: bool) {
        self.state.lock().unwrap().numbers_as_strings = on;
    }

    /// Per call, in arrival order: whether it carried `X-SANDBOX: 1|true`.
    pub fn sandbox_flags(&self) -> Vec<bool> {
        self.state.lock().unwrap().sandbox.clone()
    }
}

fn stringify_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => *value = Value::String(n.to_string()),
        Value::Array(items) => items.iter_mut().for_each(stringify_numbers),
        Value::Object(fields) => fields.values_mut().for_each(stringify_numbers),
        _ => {}
    }
}

fn idpay_payment_body(id: &str, p: &IdPayPayment, status: i64) -> Value {
    json!({
        "status": status,
        "track_id": p.track_id,
        "id": id,
        "order_id": p.order_id,
        "amount": p.amount,
        "date": p.created,
        "payment": {
            "track_id": p.bank_track_id,
            "amount": p.amount,
            "card_no": "603799******7999",
            "hashed_card_no": sha256_hex_upper("6037991234567999"),
            "date": p.created + 60,
        },
        "verify": { "date": p.verified },
    })
}

async fn idpay(server: IdPay, method: &'static str, headers: HeaderMap, body: Bytes) -> Response {
    let sandbox = headers.get("x-sandbox").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    server.state.lock().unwrap().sandbox.push(sandbox);
    let pending = match server.script.begin(method).await {
        Ok(pending) => pending,
        Err(scripted) => return scripted,
    };
    let (http, mut value) = idpay_answer(&server, method, &headers, &body);
    if server.state.lock().unwrap().numbers_as_strings {
        stringify_numbers(&mut value);
    }
    pending.answer(answer(http, value)).await
}

fn idpay_error(http: u16, code: i64, message: &str) -> (u16, Value) {
    (http, json!({ "error_code": code, "error_message": message }))
}

fn idpay_answer(server: &IdPay, method: &str, headers: &HeaderMap, body: &[u8]) -> (u16, Value) {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(IDPAY_API_KEY) {
        return idpay_error(403, 12, "API Key یافت نشد.");
    }
    let request = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let text = |name: &str| request.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let Some(id) = text("id") else {
        return idpay_error(406, 31, "کد تراکنش id نباید خالی باشد.");
    };
    let Some(order_id) = text("order_id") else {
        return idpay_error(406, 32, "شماره سفارش order_id نباید خالی باشد.");
    };
    let mut state = server.state.lock().unwrap();
    let payment = state.payments.get_mut(&id).filter(|p| p.order_id == order_id);
    if method == "inquiry" {
        let Some(payment) = payment else {
            return idpay_error(400, 52, "استعلام نتیجه ای نداشت.");
        };
        let mut value = idpay_payment_body(&id, payment, payment.status);
        if let Value::Object(fields) = &mut value {
            fields.insert("wage".into(), json!({ "by": "payee", "type": "amount", "amount": 0 }));
            fields.insert("payer".into(), json!({ "name": "", "phone": "", "mail": "", "desc": "" }));
            // Not settled yet: settlement happens after the tests' horizon.
            fields.insert("settlement".into(), json!({ "track_id": null, "amount": null, "date": null }));
        }
        return (200, value);
    }
    let Some(payment) = payment else {
        return idpay_error(405, 53, "تایید پرداخت امکان پذیر نیست.");
    };
    let status = match payment.status {
        10 => {
            payment.status = 100;
            payment.verified = Some(chrono::Utc::now().timestamp());
            100
        }
        // Verified before, or since settled: IDPay answers 101 and keeps
        // its own record at the status it had.
        100 | 101 | 200 => 101,
        _ => return idpay_error(405, 53, "تایید پرداخت امکان پذیر نیست."),
    };
    server.script.verified(&id);
    (200, idpay_payment_body(&id, payment, status))
}

// ---------------------------------------------------------------------------
// BitPay.ir

struct BitPayPayment {
    amount: i64,
    factor_id: String,
    trans_id: Option<i64>,
    verified: bool,
}

#[derive(Default)]
struct BitPayState {
    payments: HashMap<i64, BitPayPayment>,
    next: i64,
    endpoints: Vec<String>,
}

/// BitPay.ir: form POST `/payment/gateway-result-second` (production) and
/// `/payment-test/gateway-result-second` (test). Method name `"verify"`.
#[derive(Clone)]
pub struct BitPay {
    pub url: String,
    script: Script,
    state: Arc<Mutex<BitPayState>>,
}

scripted!(BitPay);

type FormFields = Result<Form<HashMap<String, String>>, FormRejection>;

impl BitPay {
    pub async fn start() -> Self {
        let (listener, url) = listen().await;
        let server = BitPay { url, script: Script::default(), state: Arc::default() };
        let app = Router::new()
            .route("/payment/gateway-result-second", post(|State(s): State<BitPay>, f: FormFields| bitpay(s, "/payment/", f)))
            .route("/payment-test/gateway-result-second", post(|State(s): State<BitPay>, f: FormFields| bitpay(s, "/payment-test/", f)))
            .with_state(server.clone());
        serve(listener, app);
        server
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_BITPAY_URL", format!("{}/payment/", self.url)), ("PEYK_BITPAY_SANDBOX_URL", format!("{}/payment-test/", self.url))]
    }

    /// A payment as `gateway-send` would have created it; returns its
    /// `id_get`.
    pub fn create_payment(&self, amount: i64, factor_id: &str) -> i64 {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let id_get = 700_000 + state.next;
        state.payments.insert(id_get, BitPayPayment { amount, factor_id: factor_id.into(), trans_id: None, verified: false });
        id_get
    }

    /// The payer paid; returns the `trans_id` the callback would carry.
    pub fn pay(&self, id_get: i64) -> i64 {
        let mut state = self.state.lock().unwrap();
        let trans_id = 3_000_000 + id_get;
        state.payments.get_mut(&id_get).unwrap_or_else(|| panic!("no BitPay payment {id_get}")).trans_id = Some(trans_id);
        trans_id
    }

    /// Per verify call, in arrival order: the prefix it was sent under,
    /// `"/payment/"` or `"/payment-test/"`.
    pub fn endpoints(&self) -> Vec<String> {
        self.state.lock().unwrap().endpoints.clone()
    }
}

/// BitPay is a PHP site that sets no content type: every answer, JSON or
/// bare number, comes as `text/html`, so a client must parse the body
/// whatever the header says.
fn bitpay_text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/html; charset=UTF-8")], body).into_response()
}

async fn bitpay(server: BitPay, endpoint: &'static str, form: FormFields) -> Response {
    server.state.lock().unwrap().endpoints.push(endpoint.into());
    let pending = match server.script.begin("verify").await {
        Ok(pending) => pending,
        Err(scripted) => return scripted,
    };
    // A body that is not a form reads like an empty form to PHP: no `api`.
    let form = form.map(|Form(fields)| fields).unwrap_or_default();
    let response = bitpay_answer(&server, &form);
    pending.answer(response).await
}

fn bitpay_answer(server: &BitPay, form: &HashMap<String, String>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("api") != BITPAY_API_KEY {
        return bitpay_text("-1".into());
    }
    let Ok(trans_id) = field("trans_id").parse::<i64>() else {
        return bitpay_text("-2".into());
    };
    let Ok(id_get) = field("id_get").parse::<i64>() else {
        return bitpay_text("-3".into());
    };
    let mut state = server.state.lock().unwrap();
    let Some(payment) = state.payments.get_mut(&id_get).filter(|p| p.trans_id == Some(trans_id)) else {
        // The shape of errors with json=1 is unconfirmed (providers.md §4):
        // this server sends them bare, as without json=1, so Peyk must
        // accept a bare number as well as a JSON object.
        return bitpay_text("-4".into());
    };
    // 11 ("already verified") is known only from one SDK; it is sent here
    // in the success shape, which Peyk must take as verified-before.
    let status = if payment.verified { 11 } else { 1 };
    payment.verified = true;
    server.script.verified(&id_get.to_string());
    if field("json") != "1" {
        return bitpay_text(status.to_string());
    }
    // `amount` is a string on the real wire; the rest as MP reads it.
    let body = json!({
        "status": status,
        "amount": payment.amount.to_string(),
        "cardNum": "603799******1234",
        "factorId": payment.factor_id,
    });
    bitpay_text(body.to_string())
}

// ---------------------------------------------------------------------------
// Stripe

struct StripeIntent {
    amount: i64,
    amount_received: i64,
    currency: String,
    status: String,
    created: i64,
}

/// Stripe: `GET /v1/payment_intents/{id}` with the secret key. Method name
/// `"retrieve"`; a successful retrieval counts as a verification.
#[derive(Clone)]
pub struct Stripe {
    pub url: String,
    script: Script,
    intents: Arc<Mutex<HashMap<String, StripeIntent>>>,
}

scripted!(Stripe);

impl Stripe {
    pub async fn start() -> Self {
        let (listener, url) = listen().await;
        let server = Stripe { url, script: Script::default(), intents: Arc::default() };
        let app = Router::new().route("/v1/payment_intents/{id}", get(stripe)).with_state(server.clone());
        serve(listener, app);
        server
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PEYK_STRIPE_URL", self.url.clone())]
    }

    /// A PaymentIntent of `amount` (smallest currency unit) in `status`;
    /// `amount_received` is the full amount when the status is `succeeded`,
    /// 0 otherwise. Returns its id (`pi_` + 24 alphanumerics).
    pub fn create_intent(&self, amount: i64, currency: &str, status: &str) -> String {
        let uuid = uuid::Uuid::now_v7().simple().to_string();
        let id = format!("pi_{}", &uuid[uuid.len() - 24..]);
        let amount_received = if status == "succeeded" { amount } else { 0 };
        let intent = StripeIntent {
            amount,
            amount_received,
            currency: currency.to_lowercase(),
            status: status.into(),
            created: chrono::Utc::now().timestamp(),
        };
        self.intents.lock().unwrap().insert(id.clone(), intent);
        id
    }

    pub fn set_status(&self, id: &str, status: &str, amount_received: i64) {
        let mut intents = self.intents.lock().unwrap();
        let intent = intents.get_mut(id).unwrap_or_else(|| panic!("no PaymentIntent {id}"));
        intent.status = status.into();
        intent.amount_received = amount_received;
    }
}

/// The key from `Authorization: Bearer <key>`, or from Basic with the key
/// as user name and no password (what Stripe's own `curl -u` examples send).
fn stripe_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let credentials = String::from_utf8(decoded).ok()?;
    Some(credentials.split_once(':').map_or(credentials.as_str(), |(user, _)| user).to_string())
}

fn stripe_error(http: u16, error: Value) -> Response {
    answer(http, json!({ "error": error }))
}

async fn stripe(State(server): State<Stripe>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let pending = match server.script.begin("retrieve").await {
        Ok(pending) => pending,
        Err(scripted) => return scripted,
    };
    let response = stripe_answer(&server, &id, &headers);
    pending.answer(response).await
}

fn stripe_answer(server: &Stripe, id: &str, headers: &HeaderMap) -> Response {
    match stripe_key(headers) {
        Some(key) if key == STRIPE_SECRET_KEY => {}
        Some(key) => {
            // Stripe echoes the key masked down to its prefix and last 4.
            let masked = match key.len() {
                n if n > 12 && key.is_ascii() => format!("{}****{}", &key[..8], &key[n - 4..]),
                _ => "****".into(),
            };
            let message = format!("Invalid API Key provided: {masked}");
            return stripe_error(401, json!({ "type": "invalid_request_error", "message": message }));
        }
        None => {
            let message = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').";
            return stripe_error(401, json!({ "type": "invalid_request_error", "message": message }));
        }
    }
    let intents = server.intents.lock().unwrap();
    let Some(intent) = intents.get(id) else {
        return stripe_error(
            404,
            json!({
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": format!("No such payment_intent: '{id}'"),
                "param": "intent",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            }),
        );
    };
    server.script.verified(id);
    answer(
        200,
        json!({
            "id": id,
            "object": "payment_intent",
            "amount": intent.amount,
            "amount_received": intent.amount_received,
            "currency": intent.currency,
            "status": intent.status,
            "metadata": {},
            "created": intent.created,
            "livemode": false,
            "latest_charge": null,
        }),
    )
}

/// A `Stripe-Signature` header for a webhook `payload` sent at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "{t}.{payload}" under secret>`,
/// then one `v1=` per `extra_v1` (as during a secret rotation, when Stripe
/// signs with several secrets). Written from Stripe's scheme, not from
/// Peyk's code, so it checks Peyk's verifier independently.
pub fn stripe_signature_header(secret: &str, timestamp: i64, payload: &[u8], extra_v1: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut header = format!("t={timestamp},v1={signature}");
    for extra in extra_v1 {
        header.push_str(&format!(",v1={extra}"));
    }
    header
}
