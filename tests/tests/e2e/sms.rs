//! SMS end to end against a local server speaking Kavenegar's wire format:
//! normalised numbers, template lookups and delivery reports, error
//! classes (including errors inside HTTP 200), rate limits, the development
//! outbox, and no second SMS when a worker dies mid-call.

use std::time::Duration;

use peyk_tests::kavenegar::{Failure, Kavenegar};
use peyk_tests::{Api, TestEnv, Worker};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

async fn worker_for(env: &TestEnv, kavenegar: &Kavenegar, extra: &[(&str, &str)]) -> Worker {
    let provider = kavenegar.env();
    let mut all = peyk_tests::env_pairs(&provider);
    all.push(("PEYK_SMS_STATUS_CHECK_SECONDS", "0.3"));
    all.extend_from_slice(extra);
    env.start_worker_with(&all).await
}

fn sms(payload: Value) -> Value {
    json!({ "type": "sms", "payload": payload })
}

fn otp(receptor: &str) -> Value {
    sms(json!({ "mode": "lookup", "receptor": receptor, "template": "verify", "token": "4821" }))
}

async fn wait_for(api: &Api, key: &str, id: &str, status: &str) -> Value {
    api.wait_for_status(key, id, status, WAIT).await
}

#[tokio::test]
async fn an_otp_is_sent_once_and_its_delivery_is_tracked() {
    let env = TestEnv::new("sms-otp").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let kavenegar = Kavenegar::start().await;
    let _worker = worker_for(&env, &kavenegar, &[]).await;

    // Persian digits, spaces and the country code: stored as 09….
    let id = api.submit(&key, &otp("+۹۸ ۹۱۲ ۱۲۳ ۴۵۶۷")).await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["payload"]["receptor"], "09121234567");
    assert_eq!(job["attempts"], 1);
    let message = &job["result"]["messages"][0];
    assert!(message["messageid"].as_i64().unwrap() > 0, "{job}");
    assert_eq!(message["cost"], 1200);
    assert_eq!(job["result"]["cost_rial"], 1200);

    let sent = kavenegar.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].receptor.as_str(), sent[0].text.as_str(), sent[0].kind.as_str()), ("09121234567", "verify", "sms"));
    assert_eq!(sent[0].tokens, [("token".to_string(), "4821".to_string())]);

    // The follow-up status job writes the delivery report onto this job.
    let deadline = tokio::time::Instant::now() + WAIT;
    let delivery = loop {
        let job = api.job(&key, &id).await;
        if job["result"]["delivery"]["state"] == "final" {
            break job["result"]["delivery"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no final delivery report: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(delivery["messages"][0]["state"], "delivered");
    assert_eq!(delivery["messages"][0]["status"], 10);
    assert!(kavenegar.calls("sms/status") >= 2, "sent, then delivered");
    let (_, list) = api.get("/v1/jobs?type=sms_status", &key).await;
    assert_eq!(list["data"][0]["status"], "succeeded", "{list}");
}

#[tokio::test]
async fn send_sendarray_and_voice_calls() {
    let env = TestEnv::new("sms-modes").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let kavenegar = Kavenegar::start().await;
    let _worker = worker_for(&env, &kavenegar, &[]).await;

    let send = api
        .submit(&key, &sms(json!({ "mode": "send", "receptors": ["0912-123-4567", "00989351234567", "٩٣٥١١١٢٢٣٣"], "message": "نوبت شما فردا ساعت ۱۰ است", "sender": "10004346" })))
        .await;
    let array = api
        .submit(
            &key,
            &sms(json!({ "mode": "sendarray", "messages": [
            { "receptor": "09121110000", "message": "گزارش شما آماده است" },
            { "receptor": "09121110001", "message": "Your report is ready" }
        ] })),
        )
        .await;
    let call = api.submit(&key, &sms(json!({ "mode": "call", "receptor": "09121110002", "template": "verify", "token": "9051" }))).await;
    let send = wait_for(&api, &key, &send, "succeeded").await;
    wait_for(&api, &key, &array, "succeeded").await;
    wait_for(&api, &key, &call, "succeeded").await;

    assert_eq!(send["result"]["messages"].as_array().unwrap().len(), 3);
    let sent = kavenegar.sent();
    let receptors: Vec<&str> = sent.iter().map(|s| s.receptor.as_str()).collect();
    for number in ["09121234567", "09351234567", "09351112233", "09121110000", "09121110001", "09121110002"] {
        assert!(receptors.contains(&number), "{number} not sent: {receptors:?}");
    }
    assert_eq!(sent.len(), 6);
    // Every send carried a local id; the voice call went as type=call.
    assert!(sent.iter().filter(|s| s.method != "verify/lookup").all(|s| s.localid.is_some()));
    assert_eq!(sent.iter().find(|s| s.receptor == "09121110002").unwrap().kind, "call");
    assert_eq!(sent.iter().find(|s| s.receptor == "09121110001").unwrap().text, "Your report is ready");
}

#[tokio::test]
async fn bad_numbers_and_tokens_are_refused_at_submission() {
    let env = TestEnv::new("sms-validate").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let cases = [
        (
            json!({ "mode": "send", "receptors": ["09121234567", "021 1234 5678"], "message": "x" }),
            "payload.receptors[1]",
            "`021 1234 5678` is not an Iranian mobile number",
        ),
        (
            json!({ "mode": "lookup", "receptor": "+4915112345678", "template": "verify", "token": "1" }),
            "payload.receptor",
            "+4915112345678",
        ),
        (json!({ "mode": "lookup", "receptor": "09121234567", "template": "verify", "token": "12 34" }), "payload.token", "spaces"),
        (json!({ "mode": "call", "receptor": "09121234567", "template": "verify", "token": "abcd" }), "payload.token", "digits"),
        (json!({ "mode": "send", "receptors": [], "message": "x" }), "payload.receptors", "1 to 200"),
        (json!({ "mode": "send", "receptors": ["09121234567"], "message": "  " }), "payload.message", "empty"),
        (json!({ "mode": "pigeon", "receptor": "09121234567" }), "payload", "pigeon"),
    ];
    for (payload, field, problem) in cases {
        let (status, body) = api.post("/v1/jobs", &key, &sms(payload.clone())).await;
        assert_eq!(status, 422, "{payload} → {body}");
        let error = &body["error"]["details"]["errors"][0];
        assert!(error["field"].as_str().unwrap().starts_with(field), "{payload}: {body}");
        assert!(error["problem"].as_str().unwrap().contains(problem), "{payload}: {body}");
    }
}

#[tokio::test]
async fn provider_errors_are_retried_or_fail_at_once_by_their_meaning() {
    let env = TestEnv::new("sms-errors").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let kavenegar = Kavenegar::start().await;
    let _worker = worker_for(&env, &kavenegar, &[]).await;
    let send = |receptor: &str| sms(json!({ "mode": "send", "receptors": [receptor], "message": "test" }));

    // No credit, reported inside an HTTP 200: permanent, one attempt.
    kavenegar.fail_next("sms/send", Failure::Api { status: 418, http: 200 });
    let id = api.submit(&key, &send("09120000001")).await;
    let job = wait_for(&api, &key, &id, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("insufficient_credit")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("418"), "{job}");

    // Busy, then a proxy's 502 page: retried; the retry after the 502 asks
    // for the local id first and sends once.
    kavenegar.fail_next("sms/send", Failure::Api { status: 409, http: 409 });
    kavenegar.fail_next("sms/send", Failure::Page { http: 502 });
    let id = api.submit(&key, &send("09120000002")).await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["attempts"], 3, "{job}");
    assert!(kavenegar.calls("sms/statuslocalmessageid") >= 2);
    assert_eq!(kavenegar.sent().iter().filter(|s| s.receptor == "09120000002").count(), 1);

    // Template not approved: permanent.
    let id = api.submit(&key, &sms(json!({ "mode": "lookup", "receptor": "09120000003", "template": "promo", "token": "1" }))).await;
    let job = wait_for(&api, &key, &id, "failed").await;
    assert_eq!(job["error"]["code"], "template_not_found", "{job}");

    // Rate limited by Kavenegar (451): retried.
    kavenegar.fail_next("verify/lookup", Failure::Api { status: 451, http: 451 });
    let id = api.submit(&key, &otp("09120000004")).await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["attempts"], 2, "{job}");

    // A lookup that may have gone out (502, no envelope) is not repeated.
    kavenegar.fail_next("verify/lookup", Failure::Page { http: 502 });
    let id = api.submit(&key, &otp("09120000005")).await;
    let job = wait_for(&api, &key, &id, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("outcome_unknown")), "{job}");

    // A wrong API key: permanent.
    let _other = env.start_worker_with(&[("PEYK_KAVENEGAR_API_KEY", "wrong"), ("PEYK_KAVENEGAR_BASE_URL", &kavenegar.url)]).await;
    drop(_worker);
    let id = api.submit(&key, &send("09120000006")).await;
    let job = wait_for(&api, &key, &id, "failed").await;
    assert_eq!(job["error"]["code"], "invalid_api_key", "{job}");
}

#[tokio::test]
async fn rate_limits_refuse_at_submission_without_calling_the_provider() {
    let env = TestEnv::new("sms-limits").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("writing-service").await;
    // The API answers the rules at submission; the worker holds to them too.
    let rules = [("PEYK_SMS_RATE_LIMITS", "receptor:otp:1/60,receptor:otp:5/3600,tenant:any:3/60")];
    let api = env.start_api_with(&rules).await;
    let kavenegar = Kavenegar::start().await;
    let _worker = worker_for(&env, &kavenegar, &rules).await;

    let first = api.submit(&key, &otp("09121234567")).await;
    wait_for(&api, &key, &first, "succeeded").await;
    let (status, refused) = api.post("/v1/jobs", &key, &otp("0912 123 4567")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("rate_limited")), "{refused}");
    let wait = refused["error"]["details"]["retry_after_seconds"].as_u64().unwrap();
    assert!((55..=60).contains(&wait), "{refused}");
    assert_eq!(kavenegar.calls("verify/lookup"), 1);

    // Another tenant's OTP to the same number is its own matter.
    let theirs = api.submit(&other, &otp("09121234567")).await;
    wait_for(&api, &other, &theirs, "succeeded").await;

    // The tenant rule: 3 messages a minute, whatever the kind.
    for n in 0..2 {
        let id = api.submit(&key, &sms(json!({ "mode": "send", "receptors": [format!("0912000000{n}")], "message": "x" }))).await;
        wait_for(&api, &key, &id, "succeeded").await;
    }
    let (status, refused) = api.post("/v1/jobs", &key, &sms(json!({ "mode": "send", "receptors": ["09120000009"], "message": "x" }))).await;
    assert_eq!((status, refused["error"]["details"]["rule"].as_str()), (429, Some("tenant:any:3/60")), "{refused}");
    assert_eq!(kavenegar.sent().len(), 4);
    // A message for later is taken: the rules hold when it is sent.
    let mut later = sms(json!({ "mode": "send", "receptors": ["09120000009"], "message": "x" }));
    later["delay_seconds"] = json!(600);
    api.submit(&key, &later).await;
}

#[tokio::test]
async fn without_a_key_messages_go_to_the_outbox() {
    let env = TestEnv::new("sms-outbox").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("writing-service").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;

    let id = api.submit(&key, &sms(json!({ "mode": "send", "receptors": ["+989121234567"], "message": "سلام، نوبت شما ثبت شد" }))).await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["result"]["provider"], "outbox", "{job}");
    let id = api.submit(&key, &otp("09351234567")).await;
    wait_for(&api, &key, &id, "succeeded").await;

    let (status, outbox) = api.get("/v1/sms/outbox", &key).await;
    assert_eq!(status, 200);
    assert_eq!(outbox["outbox"], true);
    let messages = outbox["data"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{outbox}");
    assert_eq!(messages[0]["receptor"], "09351234567");
    assert_eq!(messages[0]["template"], "verify");
    assert_eq!(messages[0]["tokens"]["token"], "4821");
    assert_eq!(messages[1]["message"], "سلام، نوبت شما ثبت شد");
    let (_, theirs) = api.get("/v1/sms/outbox", &other).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    let (status, body) = api.get("/v1/sms/outbox?limit=0", &key).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (400, Some("limit")));
}

/// Submits `job`; Kavenegar carries out its `method` call but answers only
/// once the worker that made it has been killed (SIGKILL). Returns the job
/// id and a second worker, which takes the job over when the lease runs out.
async fn crash_mid_call(env: &TestEnv, api: &Api, key: &str, kavenegar: &Kavenegar, method: &str, job: Value) -> (String, Worker) {
    let lease = [("PEYK_LEASE_SECONDS", "3")];
    let held = kavenegar.hold_next(method);
    let mut doomed = worker_for(env, kavenegar, &lease).await;
    let id = api.submit(key, &job).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while kavenegar.calls(method) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{method} never reached Kavenegar");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill9();
    doomed.wait_exit(Duration::from_secs(5)).await;
    held.notify_one();
    (id, worker_for(env, kavenegar, &lease).await)
}

#[tokio::test]
async fn a_worker_killed_mid_call_sends_no_second_sms() {
    let env = TestEnv::new("sms-once").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let kavenegar = Kavenegar::start().await;

    // The second worker finds both messages by their local ids and sends
    // nothing more.
    let send = sms(json!({ "mode": "send", "receptors": ["09121234567", "09121234568"], "message": "یادآوری نوبت" }));
    let (id, rescuer) = crash_mid_call(&env, &api, &key, &kavenegar, "sms/send", send).await;
    let job = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(kavenegar.sent().len(), 2, "{:?}", kavenegar.sent());
    assert_eq!(kavenegar.calls("sms/send"), 1);
    assert!(kavenegar.calls("sms/statuslocalmessageid") >= 1);
    let ids: Vec<i64> = job["result"]["messages"].as_array().unwrap().iter().map(|m| m["messageid"].as_i64().unwrap()).collect();
    assert_eq!(ids, kavenegar.sent().iter().map(|s| s.messageid).collect::<Vec<_>>());
    drop(rescuer);

    // A template lookup has no local id: after such a crash it is not sent
    // again but fails, saying why.
    let (id, _rescuer) = crash_mid_call(&env, &api, &key, &kavenegar, "verify/lookup", otp("09121234569")).await;
    let job = api.wait_for_status(&key, &id, "failed", Duration::from_secs(60)).await;
    assert_eq!(job["error"]["code"], "outcome_unknown", "{job}");
    assert_eq!(kavenegar.calls("verify/lookup"), 1);
}
