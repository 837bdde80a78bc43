//! Outbound webhook endpoints and events against the real stack: fan-out of
//! one event to every matching endpoint, Standard Webhooks signatures
//! checked by an implementation written here from the specification, the
//! retry schedule with Retry-After, the failure clock (disabling, and a
//! success resetting it), secret rotation, replay, the attempt log,
//! validation and tenant isolation.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use peyk_tests::{webhook, Api, Reply, Sink, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, the key
/// being the base64-decoded part after `whsec_` (Standard Webhooks).
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The space-separated entries of `webhook-signature`.
fn signatures(delivery: &peyk_tests::sink::Received) -> Vec<String> {
    delivery.headers["webhook-signature"].to_str().unwrap().split(' ').map(str::to_owned).collect()
}

fn verifies(secret: &str, delivery: &peyk_tests::sink::Received) -> bool {
    let id = delivery.headers["webhook-id"].to_str().unwrap();
    let timestamp = delivery.headers["webhook-timestamp"].to_str().unwrap();
    signatures(delivery).contains(&expected_signature(secret, id, timestamp, &delivery.body))
}

fn body_of(delivery: &peyk_tests::sink::Received) -> Value {
    serde_json::from_slice(&delivery.body).unwrap()
}

/// The verifier above agrees with the specification's example.
#[test]
fn the_tests_verifier_matches_the_specification_vector() {
    let signature = expected_signature(SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#);
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

async fn create_endpoint(api: &Api, key: &str, body: Value) -> Value {
    let (status, endpoint) = api.post("/v1/webhook-endpoints", key, &body).await;
    assert_eq!(status, 201, "{endpoint}");
    endpoint
}

async fn get_endpoint(api: &Api, key: &str, id: &str) -> Value {
    let (status, endpoint) = api.get(&format!("/v1/webhook-endpoints/{id}"), key).await;
    assert_eq!(status, 200, "{endpoint}");
    endpoint
}

/// Polls `GET path` until `done` holds for the answer.
async fn poll(api: &Api, key: &str, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = api.get(path, key).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} not as expected within {within:?}: {body:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn field_names(error: &Value) -> Vec<String> {
    error["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn one_event_fans_out_signed_to_every_matching_endpoint_and_is_logged() {
    let env = TestEnv::new("whe-fanout").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let (all, wanted, other, target) = (Sink::start().await, Sink::start().await, Sink::start().await, Sink::start().await);
    let a = create_endpoint(&api, &key, json!({"url": format!("{}/all", all.url), "description": "everything"})).await;
    let b =
        create_endpoint(&api, &key, json!({"url": format!("{}/jobs", wanted.url), "event_types": ["job.succeeded", "job.failed"]})).await;
    let c = create_endpoint(&api, &key, json!({"url": other.url, "event_types": ["payment.failed"]})).await;
    let secret_a = a["secret"].as_str().unwrap().to_string();
    let secret_b = b["secret"].as_str().unwrap().to_string();
    assert!(secret_a.starts_with("whsec_") && secret_a != secret_b, "generated secrets: {secret_a} {secret_b}");

    // The event source: a real job that succeeds.
    let job_id = api.submit(&key, &webhook(&target.url, json!({"n": 1}))).await;
    api.wait_for_status(&key, &job_id, "succeeded", Duration::from_secs(10)).await;
    let to_a = all.wait_for(1, Duration::from_secs(15)).await;
    let to_b = wanted.wait_for(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(other.count(), 0, "an endpoint that does not want job.succeeded got it");
    // Deliveries are internal jobs: they raise no job events of their own.
    assert_eq!((all.count(), wanted.count()), (1, 1), "exactly one event each");

    let (da, db) = (&to_a[0], &to_b[0]);
    assert!(verifies(&secret_a, da) && verifies(&secret_b, db), "signatures do not verify");
    assert!(!verifies(&secret_b, da) && !verifies(SPEC_SECRET, db), "a signature verifies with the wrong secret");
    assert_eq!(signatures(da).len(), 1);
    let message_id = da.headers["webhook-id"].to_str().unwrap().to_string();
    assert!(message_id.starts_with("msg_"), "{message_id}");
    assert_eq!(db.headers["webhook-id"], da.headers["webhook-id"], "one message id for every endpoint");
    assert_eq!(da.headers["webhook-event-type"], "job.succeeded");
    assert_eq!(da.body, db.body, "every endpoint receives the same body");
    let body = body_of(da);
    assert_eq!(body["type"], "job.succeeded");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok(), "{body}");
    assert_eq!((body["data"]["id"].as_str(), body["data"]["type"].as_str()), (Some(job_id.as_str()), Some("webhook")));
    assert_eq!(body["data"]["status"], "succeeded");
    assert_eq!(body["data"]["result"]["status_code"], 200);

    // The message and its attempt log.
    let (_, messages) = api.get("/v1/webhook-messages", &key).await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 1, "{messages}");
    assert_eq!(messages["data"][0]["id"], message_id.as_str());
    assert_eq!(messages["data"][0]["payload"], body);
    let (_, none) = api.get("/v1/webhook-messages?event_type=payment.failed", &key).await;
    assert_eq!(none["data"], json!([]));
    let attempts = poll(&api, &key, &format!("/v1/webhook-messages/{message_id}/attempts"), Duration::from_secs(5), |b| {
        b["data"].as_array().unwrap().len() == 2
    })
    .await;
    let mut endpoints: Vec<&str> = Vec::new();
    for attempt in attempts["data"].as_array().unwrap() {
        assert_eq!((attempt["status_code"].as_i64(), attempt["attempt"].as_i64()), (Some(200), Some(1)), "{attempt}");
        assert_eq!(attempt["response_excerpt"], "ok");
        assert!(attempt["error_code"].is_null());
        assert!(attempt["latency_ms"].as_f64().unwrap() > 0.0, "{attempt}");
        endpoints.push(attempt["endpoint_id"].as_str().unwrap());
    }
    endpoints.sort();
    let mut expected = vec![a["id"].as_str().unwrap(), b["id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(endpoints, expected);
    let (_, of_b) = api.get(&format!("/v1/webhook-endpoints/{}/attempts", b["id"].as_str().unwrap()), &key).await;
    assert_eq!(of_b["data"].as_array().unwrap().len(), 1);
    let (_, of_c) = api.get(&format!("/v1/webhook-endpoints/{}/attempts", c["id"].as_str().unwrap()), &key).await;
    assert_eq!(of_c["data"], json!([]));

    // Secrets are not shown back, except by /secret.
    let (_, list) = api.get("/v1/webhook-endpoints", &key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert!(list["data"].as_array().unwrap().iter().all(|e| e.get("secret").is_none()), "{list}");
    assert!(get_endpoint(&api, &key, a["id"].as_str().unwrap()).await.get("secret").is_none());
    let (_, secret) = api.get(&format!("/v1/webhook-endpoints/{}/secret", a["id"].as_str().unwrap()), &key).await;
    assert_eq!(secret["secret"], secret_a.as_str());
}

#[tokio::test]
async fn retries_follow_the_schedule_honour_retry_after_and_a_success_resets_the_clock() {
    let env = TestEnv::new("whe-retry").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_WEBHOOK_RETRY_SCHEDULE", "0,1,1,1")]).await;
    let (sink, target) = (Sink::start().await, Sink::start().await);
    sink.reply([
        Reply::status(500).body("down"),
        Reply::status(429).header("retry-after", "3").body("slow down"),
        Reply::status(200).body("thanks"),
    ]);
    let endpoint = create_endpoint(&api, &key, json!({"url": sink.url, "event_types": ["job.succeeded"]})).await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    assert!(endpoint["failing_since"].is_null());

    api.submit(&key, &webhook(&target.url, json!({}))).await;
    sink.wait_for(1, Duration::from_secs(15)).await;
    // The failure started the clock.
    poll(&api, &key, &format!("/v1/webhook-endpoints/{endpoint_id}"), Duration::from_secs(5), |e| !e["failing_since"].is_null()).await;

    let received = sink.wait_for(3, Duration::from_secs(20)).await;
    let first_gap = received[1].at - received[0].at;
    assert!(
        first_gap >= Duration::from_millis(750) && first_gap < Duration::from_millis(2500),
        "first retry after {first_gap:?}, schedule says 1 s ± 20 %"
    );
    let second_gap = received[2].at - received[1].at;
    assert!(second_gap >= Duration::from_secs(3), "retried after {second_gap:?}, before Retry-After: 3");
    assert!(second_gap < Duration::from_secs(5), "retried after {second_gap:?}");
    let ids: Vec<_> = received.iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "retries keep the message id: {ids:?}");

    // The success stopped the clock.
    poll(&api, &key, &format!("/v1/webhook-endpoints/{endpoint_id}"), Duration::from_secs(5), |e| e["failing_since"].is_null()).await;
    let attempts = poll(&api, &key, &format!("/v1/webhook-endpoints/{endpoint_id}/attempts"), Duration::from_secs(5), |b| {
        b["data"].as_array().unwrap().len() == 3
    })
    .await;
    // (status code, duration, error code, the body's event id) of each attempt.
    type Logged<'a> = (Option<i64>, Option<i64>, Option<&'a str>, Option<&'a str>);
    let log: Vec<Logged<'_>> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev() // newest first
        .map(|a| (a["attempt"].as_i64(), a["status_code"].as_i64(), a["error_code"].as_str(), a["response_excerpt"].as_str()))
        .collect();
    assert_eq!(
        log,
        [
            (Some(1), Some(500), Some("http_500"), Some("down")),
            (Some(2), Some(429), Some("http_429"), Some("slow down")),
            (Some(3), Some(200), None, Some("thanks"))
        ]
    );
    // The delivery is a job of its own, with as many attempts as the schedule lists.
    let job = api.job(&key, attempts["data"][0]["job_id"].as_str().unwrap()).await;
    assert_eq!((job["type"].as_str(), job["status"].as_str()), (Some("webhook_delivery"), Some("succeeded")));
    assert_eq!((job["attempts"].as_i64(), job["max_attempts"].as_i64()), (Some(3), Some(4)));
}

#[tokio::test]
async fn an_endpoint_failing_past_the_threshold_is_disabled_and_others_hear_of_it() {
    let env = TestEnv::new("whe-disable").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_WEBHOOK_RETRY_SCHEDULE", "0,1,1,1,1,1,1,1"), ("PEYK_WEBHOOK_DISABLE_AFTER", "2")]).await;
    let (failing, watcher, target) = (Sink::start().await, Sink::start().await, Sink::start().await);
    failing.default_reply(Reply::status(503).body("maintenance"));
    let broken = create_endpoint(&api, &key, json!({"url": failing.url, "event_types": ["job.succeeded"]})).await;
    let broken_id = broken["id"].as_str().unwrap().to_string();
    create_endpoint(&api, &key, json!({"url": watcher.url, "event_types": ["endpoint.disabled"]})).await;

    api.submit(&key, &webhook(&target.url, json!({}))).await;
    let notices = watcher.wait_for(1, Duration::from_secs(20)).await;
    let notice = body_of(&notices[0]);
    assert_eq!(notice["type"], "endpoint.disabled");
    assert_eq!(notices[0].headers["webhook-event-type"], "endpoint.disabled");
    assert_eq!(notice["data"]["endpoint_id"], broken_id.as_str());
    assert!(notice["data"]["reason"].as_str().unwrap().contains("http_503"), "{notice}");

    let endpoint = get_endpoint(&api, &key, &broken_id).await;
    assert_eq!(endpoint["enabled"], false);
    assert!(endpoint["disabled_reason"].as_str().unwrap().contains("failed"), "{endpoint}");
    let attempts_made = failing.count();
    assert!(attempts_made >= 3, "disabled after {attempts_made} attempts, before the 2 s threshold could pass");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(failing.count(), attempts_made, "a disabled endpoint got more deliveries");
    assert_eq!(watcher.count(), 1, "the watcher wants endpoint.disabled only, once");
    let (_, attempts) = api.get(&format!("/v1/webhook-endpoints/{broken_id}/attempts"), &key).await;
    let job = api.job(&key, attempts["data"][0]["job_id"].as_str().unwrap()).await;
    assert_eq!((job["status"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some("endpoint_disabled")), "{job}");

    // Re-enabled: the clock starts afresh, and a replay reaches it again.
    let (status, endpoint) =
        api.request(Method::PATCH, &format!("/v1/webhook-endpoints/{broken_id}"), Some(&key), Some(&json!({"enabled": true}))).await;
    assert_eq!(status, 200, "{endpoint}");
    assert_eq!(
        (endpoint["enabled"].as_bool(), endpoint["failing_since"].is_null(), endpoint["disabled_reason"].is_null()),
        (Some(true), true, true)
    );
    failing.default_reply(Reply::status(200).body("back"));
    let message_id = attempts["data"][0]["message_id"].as_str().unwrap();
    let (status, replay) = api.post(&format!("/v1/webhook-messages/{message_id}/replay"), &key, &json!({"endpoint_id": broken_id})).await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay["job_ids"].as_array().unwrap().len(), 1);
    let received = failing.wait_for(attempts_made + 1, Duration::from_secs(10)).await;
    assert_eq!(received.last().unwrap().headers["webhook-id"], message_id);
    poll(&api, &key, &format!("/v1/webhook-endpoints/{broken_id}/attempts"), Duration::from_secs(5), |b| {
        b["data"][0]["status_code"] == 200
    })
    .await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_grace_period_then_only_the_new_one() {
    let env = TestEnv::new("whe-rotate").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let (sink, target) = (Sink::start().await, Sink::start().await);
    let endpoint = create_endpoint(&api, &key, json!({"url": sink.url, "secret": SPEC_SECRET, "event_types": ["job.succeeded"]})).await;
    assert_eq!(endpoint["secret"], SPEC_SECRET);
    let id = endpoint["id"].as_str().unwrap().to_string();

    let (status, rotated) = api.post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &key, &json!({"grace_seconds": 4})).await;
    let rotated_at = Instant::now();
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != SPEC_SECRET);
    assert!(!rotated["previous_secret_expires_at"].is_null());
    let (_, shown) = api.get(&format!("/v1/webhook-endpoints/{id}/secret"), &key).await;
    assert_eq!(shown["secret"], new_secret.as_str());

    // During the grace period: two signatures, one per secret.
    api.submit(&key, &webhook(&target.url, json!({}))).await;
    let first = sink.wait_for(1, Duration::from_secs(15)).await.remove(0);
    assert!(rotated_at.elapsed() < Duration::from_secs(4), "too slow to test the grace period");
    assert_eq!(signatures(&first).len(), 2, "{:?}", first.headers);
    assert!(verifies(SPEC_SECRET, &first) && verifies(&new_secret, &first));

    // After it: only the new secret signs.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(rotated_at.elapsed()) + Duration::from_millis(300)).await;
    api.submit(&key, &webhook(&target.url, json!({}))).await;
    let second = sink.wait_for(2, Duration::from_secs(15)).await.remove(1);
    assert_eq!(signatures(&second).len(), 1, "{:?}", second.headers);
    assert!(verifies(&new_secret, &second) && !verifies(SPEC_SECRET, &second));
    assert_ne!(second.headers["webhook-id"], first.headers["webhook-id"]);

    // A replay of the first message (empty body: every matching endpoint):
    // same id and body, signed with today's secret.
    let message_id = first.headers["webhook-id"].to_str().unwrap();
    let response = api.http.post(format!("{}/v1/webhook-messages/{message_id}/replay", api.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let replayed = sink.wait_for(3, Duration::from_secs(15)).await.remove(2);
    assert_eq!(replayed.headers["webhook-id"], message_id);
    assert_eq!(replayed.body, first.body);
    assert!(verifies(&new_secret, &replayed) && signatures(&replayed).len() == 1);
}

#[tokio::test]
async fn bad_input_names_fields_and_tenants_see_only_their_own() {
    let env = TestEnv::new("whe-validate").await;
    let key = env.create_key("acme").await;
    let other_key = env.create_key("rival").await;
    let api = env.start_api().await;

    let (status, error) = api
        .post(
            "/v1/webhook-endpoints",
            &key,
            &json!({"url": "ftp://example.com", "event_types": ["job.succeeded", "job.exploded"], "secret": "nope"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(field_names(&error), ["url", "event_types[1]", "secret"]);
    let (status, error) = api.post("/v1/webhook-endpoints", &key, &json!({"url": "https://user:pw@example.com/x"})).await;
    assert_eq!((status, field_names(&error)), (422, vec!["url".to_string()]));
    let (status, error) = api.post("/v1/webhook-endpoints", &key, &json!({"url": "https://example.com", "colour": "red"})).await;
    assert_eq!(status, 422, "{error}");

    let endpoint = create_endpoint(&api, &key, json!({"url": "https://example.com/hook", "event_types": ["job.failed"]})).await;
    let id = endpoint["id"].as_str().unwrap().to_string();
    let (status, error) = api
        .request(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&key),
            Some(&json!({"event_types": ["nope"], "url": "mailto:x@y"})),
        )
        .await;
    assert_eq!((status, field_names(&error)), (422, vec!["url".to_string(), "event_types[0]".to_string()]));
    let (status, error) = api
        .post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &key, &json!({"grace_seconds": 10_000_000, "secret": "whsec_short"}))
        .await;
    assert_eq!((status, field_names(&error)), (422, vec!["secret".to_string(), "grace_seconds".to_string()]));

    // Deliveries are queued by Peyk only.
    let (status, error) =
        api.post("/v1/jobs", &key, &json!({"type": "webhook_delivery", "payload": {"endpoint_id": id, "message_id": "msg_x"}})).await;
    assert_eq!((status, field_names(&error)), (422, vec!["type".to_string()]), "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("queued by Peyk itself"));
    let (status, error) = api.post("/v1/pipelines", &key, &json!({"steps": [{"type": "webhook_delivery", "payload": {}}]})).await;
    assert_eq!((status, field_names(&error)), (422, vec!["steps[0].type".to_string()]), "{error}");

    let (_, types) = api.get("/v1/event-types", &key).await;
    let names: Vec<&str> = types["data"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    for name in ["payment.succeeded", "payment.failed", "job.succeeded", "job.failed", "transcription.completed", "endpoint.disabled"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // A message of the first tenant (as the worker would store it).
    env.sql_exec(&format!(
        "INSERT INTO webhook_messages (id, tenant_id, event_type, payload) SELECT 'msg_0000test', tenant_id, 'job.failed', '{{}}' FROM webhook_endpoints WHERE id = '{id}'"
    ))
    .await;
    let (status, _) = api.get("/v1/webhook-messages/msg_0000test", &key).await;
    assert_eq!(status, 200);

    // The other tenant: 404 for every id of the first, and empty lists.
    for (method, path) in [
        (Method::GET, format!("/v1/webhook-endpoints/{id}")),
        (Method::PATCH, format!("/v1/webhook-endpoints/{id}")),
        (Method::DELETE, format!("/v1/webhook-endpoints/{id}")),
        (Method::GET, format!("/v1/webhook-endpoints/{id}/secret")),
        (Method::POST, format!("/v1/webhook-endpoints/{id}/rotate-secret")),
        (Method::GET, format!("/v1/webhook-endpoints/{id}/attempts")),
        (Method::GET, "/v1/webhook-messages/msg_0000test".to_string()),
        (Method::GET, "/v1/webhook-messages/msg_0000test/attempts".to_string()),
        (Method::POST, "/v1/webhook-messages/msg_0000test/replay".to_string()),
    ] {
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let (status, answer) = api.request(method.clone(), &path, Some(&other_key), body.as_ref()).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, theirs) = api.get("/v1/webhook-endpoints", &other_key).await;
    assert_eq!(theirs["data"], json!([]));
    let (_, theirs) = api.get("/v1/webhook-messages", &other_key).await;
    assert_eq!(theirs["data"], json!([]));
    // …and the first tenant cannot replay to an endpoint it does not have.
    let stranger = create_endpoint(&api, &other_key, json!({"url": "https://example.com/theirs"})).await;
    let (status, error) = api.post("/v1/webhook-messages/msg_0000test/replay", &key, &json!({"endpoint_id": stranger["id"]})).await;
    assert_eq!((status, field_names(&error)), (422, vec!["endpoint_id".to_string()]));

    // Deleted: gone for its owner too.
    let (status, _) = api.request(Method::DELETE, &format!("/v1/webhook-endpoints/{id}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.get(&format!("/v1/webhook-endpoints/{id}"), &key).await;
    assert_eq!(status, 404);

    let (_, doc) = api.request(Method::GET, "/openapi.json", None, None).await;
    for path in [
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{id}",
        "/v1/webhook-endpoints/{id}/rotate-secret",
        "/v1/webhook-messages/{id}/replay",
        "/v1/event-types",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }

    // Endpoints per tenant are capped: each event fans out to every one.
    let capped = env.start_api_with(&[("PEYK_MAX_WEBHOOK_ENDPOINTS", "2")]).await;
    let newcomer = env.create_key("newcomer").await;
    for n in 0..2 {
        let (status, _) = capped.post("/v1/webhook-endpoints", &newcomer, &json!({"url": format!("https://example.com/{n}")})).await;
        assert_eq!(status, 201);
    }
    let (status, error) = capped.post("/v1/webhook-endpoints", &newcomer, &json!({"url": "https://example.com/2"})).await;
    assert_eq!(
        (status, &error["error"]["code"], &error["error"]["details"]["limit"]),
        (409, &json!("too_many_endpoints"), &json!(2)),
        "{error}"
    );
}

/// The outbox relay: a message stored with its outcome whose writer died
/// before dispatching it is dispatched by a worker — once, however many
/// workers relay at the same time.
#[tokio::test]
async fn an_event_stranded_by_a_dead_writer_is_delivered_once() {
    let env = TestEnv::new("wh-relay").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let endpoint = create_endpoint(&api, &key, json!({"url": sink.url, "event_types": ["job.succeeded"]})).await;
    let message_id = "msg_0190000000007000800000000000beef";
    env.sql_exec(&format!(
        "INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at)
         SELECT '{message_id}', tenant_id, 'job.succeeded', '{{\"type\": \"job.succeeded\", \"data\": {{}}}}', now() - interval '10 seconds'
           FROM webhook_endpoints WHERE id = '{}'",
        endpoint["id"].as_str().unwrap()
    ))
    .await;
    let _a = env.start_worker().await;
    let _b = env.start_worker().await;
    let received = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(received[0].headers["webhook-id"], message_id);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.count(), 1);
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs WHERE job_type = 'webhook_delivery'").await, 1);
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM webhook_messages WHERE dispatched_at IS NULL").await, 0);
}

/// Transcripts and medical text go to https:// URLs only (by default,
/// `PEYK_WEBHOOK_HTTPS_ONLY_FOR`): refused where the API can tell at once
/// (a callback URL, an endpoint for `transcription.completed`), and at
/// delivery for `job.*` events of those types; other types' events still
/// reach the same plain-http endpoint.
#[tokio::test]
async fn medical_and_transcription_events_are_not_sent_over_plain_http() {
    let env = TestEnv::new("wh-https-only").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;

    let (status, body) = api
        .post("/v1/webhook-endpoints", &key, &json!({ "url": "http://hooks.clinic.ir/t", "event_types": ["transcription.completed"] }))
        .await;
    assert_eq!((status, field_names(&body)), (422, vec!["url".to_string()]), "{body}");
    create_endpoint(&api, &key, json!({ "url": "https://hooks.clinic.ir/t", "event_types": ["transcription.completed"] })).await;
    let analysis = json!({ "type": "medical_analysis", "callback_url": "http://app.clinic.ir/done",
        "payload": { "text": "Dry cough for three days.", "analysis_type": "summary" } });
    let (status, body) = api.post("/v1/jobs", &key, &analysis).await;
    assert_eq!((status, field_names(&body)), (422, vec!["callback_url".to_string()]), "{body}");

    let endpoint =
        create_endpoint(&api, &key, json!({ "url": format!("{}/events", sink.url), "event_types": ["job.succeeded", "job.failed"] })).await;
    let _worker = env.start_worker().await;
    let _speech = env.start_speech_worker(&[]).await;
    let file = api.upload(&key, "notes.txt", b"not audio at all".to_vec()).await;
    let transcription = api.submit(&key, &json!({ "type": "transcription", "payload": { "file_id": file } })).await;
    api.wait_for_status(&key, &transcription, "failed", Duration::from_secs(60)).await;
    let hook = api.submit(&key, &webhook(&format!("{}/hook", sink.url), json!({}))).await;
    api.wait_for_status(&key, &hook, "succeeded", Duration::from_secs(20)).await;

    // The webhook job's event arrives; the transcription's never does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.received().iter().filter(|r| r.path == "/events").count() < 1 {
        assert!(Instant::now() < deadline, "the webhook job's event never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Vec<Value> = sink.received().iter().filter(|r| r.path == "/events").map(body_of).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["id"], hook.as_str());
    let refused = env
        .sql_count(&format!(
            "SELECT count(*) AS n FROM jobs WHERE job_type = 'webhook_delivery' AND error_code = 'insecure_endpoint' AND payload ->> 'endpoint_id' = '{}'",
            endpoint["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(refused, 1, "the transcription's event was refused, for good");
}
