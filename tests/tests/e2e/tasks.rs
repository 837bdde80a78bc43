//! The job API a Celery user expects: HTTP tasks on the app's own
//! endpoints (signed, retried, their answer the result), per-job callbacks
//! through the outbox, and refusals answered at submission instead of
//! after a `202`.

use std::time::Duration;

use peyk_tests::kavenegar::Kavenegar;
use peyk_tests::signatures::{verify, verify_with_python};
use peyk_tests::{webhook, Api, Reply, Sink, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const WAIT: Duration = Duration::from_secs(20);

async fn put_target(api: &Api, key: &str, name: &str, body: Value) -> (u16, Value) {
    api.request(Method::PUT, &format!("/v1/task-targets/{name}"), Some(key), Some(&body)).await
}

fn task(name: &str, args: Value) -> Value {
    json!({ "type": "task", "payload": { "name": name, "args": args } })
}

/// Jobs of the type in the test's database, whatever their status.
async fn stored_jobs(env: &TestEnv, job_type: &str) -> i64 {
    env.sql_count(&format!("SELECT count(*) AS n FROM jobs WHERE job_type = '{job_type}'")).await
}

#[tokio::test]
async fn task_targets_belong_to_their_tenant_and_show_the_secret_only_when_set() {
    let env = TestEnv::new("task-targets").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("shop").await;
    let api = env.start_api().await;

    let (status, created) = put_target(&api, &key, "reports.rebuild", json!({ "url": "https://clinic.example/peyk/tasks" })).await;
    assert_eq!(status, 200, "{created}");
    let generated = created["secret"].as_str().unwrap().to_string();
    assert!(generated.starts_with("whsec_"));
    assert_eq!((created["max_attempts"].as_i64(), created["timeout_seconds"].as_i64()), (Some(5), Some(60)));
    let (_, read) = api.get("/v1/task-targets/reports.rebuild", &key).await;
    assert!(read.get("secret").is_none(), "GET never shows the secret: {read}");
    // A replacement without a secret keeps it; with one, takes it.
    let (_, kept) = put_target(&api, &key, "reports.rebuild", json!({ "url": "https://clinic.example/t", "timeout_seconds": 30 })).await;
    assert_eq!((kept["secret"].as_str(), kept["timeout_seconds"].as_i64()), (Some(generated.as_str()), Some(30)));
    let (_, replaced) = put_target(&api, &key, "reports.rebuild", json!({ "url": "https://clinic.example/t", "secret": SECRET })).await;
    assert_eq!(replaced["secret"], SECRET);

    let (status, _) = api.get("/v1/task-targets/reports.rebuild", &other).await;
    assert_eq!(status, 404, "another tenant's target does not exist for this one");
    let (_, list) = api.get("/v1/task-targets", &other).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    let bad = json!({ "url": "ftp://x", "timeout_seconds": 901, "min_backoff_seconds": 100, "max_backoff_seconds": 50 });
    let (status, refused) = put_target(&api, &key, "bad%20name", bad).await;
    let fields: Vec<&str> =
        refused["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!((status, fields), (422, vec!["name", "url", "timeout_seconds", "max_backoff_seconds"]), "{refused}");

    let (status, _) = api.request(Method::DELETE, "/v1/task-targets/reports.rebuild", Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.request(Method::DELETE, "/v1/task-targets/reports.rebuild", Some(&key), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_task_posts_its_arguments_signed_and_the_apps_answer_is_its_result() {
    let env = TestEnv::new("task-run").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let app = Sink::start().await;
    app.default_reply(Reply::status(200).header("content-type", "application/json").body(r#"{"rows": 3, "file": "report-1405-09.pdf"}"#));
    let (status, _) =
        put_target(&api, &key, "reports.rebuild", json!({ "url": format!("{}/peyk/tasks", app.url), "secret": SECRET })).await;
    assert_eq!(status, 200);

    let mut submission = task("reports.rebuild", json!({ "month": "1405-09", "clinic": 12, "note": "ماهانه" }));
    submission["metadata"] = json!({ "report": "1405-09" });
    let (status, job) = api.post("/v1/jobs", &key, &submission).await;
    assert_eq!((status, job["max_attempts"].as_i64()), (202, Some(5)), "the target's max_attempts: {job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = api.wait_for_status(&key, &id, "succeeded", WAIT).await;
    assert_eq!(job["result"], json!({ "rows": 3, "file": "report-1405-09.pdf" }));

    let received = app.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/peyk/tasks");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({ "task": "reports.rebuild", "args": { "month": "1405-09", "clinic": 12, "note": "ماهانه" }, "job_id": id, "attempt": 1 })
    );
    assert!(verify(SECRET, &request.headers, &request.body), "{:?}", request.headers);
    assert!(verify_with_python(SECRET, &request.headers, &request.body), "standardwebhooks refuses Peyk's signature");
    assert!(!verify_with_python(OTHER_SECRET, &request.headers, &request.body), "the check can fail");

    // Like any job: delayed, and a pipeline's step whose result the next step reads.
    let mut later = task("reports.rebuild", json!({}));
    later["delay_seconds"] = json!(1);
    let (_, delayed) = api.post("/v1/jobs", &key, &later).await;
    assert_eq!(delayed["status"], "scheduled");
    let (status, pipeline) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                task("reports.rebuild", json!({ "month": "1405-10" })),
                { "type": "webhook", "payload": { "url": format!("{}/notify", app.url), "body": { "rows": { "from": "steps.0.result.rows" } } } },
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{pipeline}");
    let (_, pipeline) = api.get(&format!("/v1/pipelines/{}?wait=20", pipeline["id"].as_str().unwrap()), &key).await;
    assert_eq!(pipeline["status"], "succeeded", "{pipeline}");
    api.wait_for_status(&key, delayed["id"].as_str().unwrap(), "succeeded", WAIT).await;
    let notified = app.received().into_iter().find(|r| r.path == "/notify").expect("the pipeline's second step ran");
    assert_eq!(serde_json::from_slice::<Value>(&notified.body).unwrap(), json!({ "rows": 3 }));
}

#[tokio::test]
async fn a_task_fails_at_once_when_the_app_says_so_and_waits_as_long_as_it_asks() {
    let env = TestEnv::new("task-retry").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let app = Sink::start().await;
    let target =
        json!({ "url": format!("{}/t", app.url), "secret": SECRET, "max_attempts": 3, "min_backoff_seconds": 1, "max_backoff_seconds": 2 });
    put_target(&api, &key, "risk.recompute", target).await;

    // 422 with the app's own error: failed after one attempt.
    app.reply([Reply::status(422).body(r#"{"error": {"code": "no_such_patient", "message": "patient 7 is gone"}}"#)]);
    let id = api.submit(&key, &task("risk.recompute", json!({ "patient": 7 }))).await;
    let job = api.wait_for_status(&key, &id, "failed", WAIT).await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("no_such_patient")), "{job}");
    assert_eq!(job["error"]["message"], "the task answered 422: patient 7 is gone");

    // 503 with Retry-After 3: the next attempt waits 3 s, not the 1–2 s backoff.
    app.reply([Reply::status(503).header("retry-after", "3"), Reply::status(200).body(r#"{"score": 0.42}"#)]);
    let id = api.submit(&key, &task("risk.recompute", json!({ "patient": 8 }))).await;
    let job = api.wait_for_status(&key, &id, "succeeded", WAIT).await;
    assert_eq!((job["attempts"].as_i64(), &job["result"]), (Some(2), &json!({ "score": 0.42 })));
    let attempts: Vec<_> = app.received().into_iter().skip(1).collect();
    let gap = attempts[1].at - attempts[0].at;
    assert!(gap >= Duration::from_millis(2900), "retried after {gap:?}, before the 3 s the app asked for");

    // Always 500: dead after the target's 3 attempts.
    app.default_reply(Reply::status(500));
    let id = api.submit(&key, &task("risk.recompute", json!({ "patient": 9 }))).await;
    let job = api.wait_for_status(&key, &id, "dead", WAIT).await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(3), Some("http_500")), "{job}");
}

#[tokio::test]
async fn a_callback_gets_the_finished_job_once_signed_even_when_a_worker_is_killed_mid_job() {
    let env = TestEnv::new("task-callback").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let endpoint = Sink::start().await;
    let app = Sink::start().await;
    // The first delivery hangs until its worker is killed; the rerun answers at once.
    endpoint.reply([Reply::status(200).delay(Duration::from_secs(120))]);
    let mut first = env.start_worker_with(&[("PEYK_LEASE_SECONDS", "3")]).await;
    let mut job = webhook(&format!("{}/hook", endpoint.url), json!({ "appointment": 4242 }));
    job["callback_url"] = json!(format!("{}/peyk/done", app.url));
    job["callback_secret"] = json!(SECRET);
    job["metadata"] = json!({ "appointment": "4242" });
    let (status, submitted) = api.post("/v1/jobs", &key, &job).await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["callback_url"], format!("{}/peyk/done", app.url));
    assert!(submitted.get("callback_secret").is_none(), "the secret is never shown");
    let id = submitted["id"].as_str().unwrap().to_string();
    endpoint.wait_for(1, WAIT).await;
    first.kill9();
    let _second = env.start_worker_with(&[("PEYK_LEASE_SECONDS", "3")]).await;
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(60)).await;

    app.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let callbacks: Vec<_> = app.received().into_iter().filter(|r| r.path == "/peyk/done").collect();
    assert_eq!(callbacks.len(), 1, "one callback for one finished job, though two attempts ran");
    let callback = &callbacks[0];
    assert!(verify(SECRET, &callback.headers, &callback.body) && verify_with_python(SECRET, &callback.headers, &callback.body));
    let body: Value = serde_json::from_slice(&callback.body).unwrap();
    assert_eq!((body["type"].as_str(), callback.headers["webhook-event-type"].to_str().unwrap()), (Some("job.succeeded"), "job.succeeded"));
    let data = &body["data"];
    assert_eq!((data["id"].as_str(), data["status"].as_str(), data["attempts"].as_i64()), (Some(id.as_str()), Some("succeeded"), Some(2)));
    assert_eq!(data["metadata"]["appointment"], "4242");
    assert_eq!(data["result"]["status_code"], 200);

    // A failure is called back too (`job.failed`, with the error); unsigned without a secret.
    let mut failing = webhook(&format!("{}/gone", endpoint.url), json!({}));
    endpoint.reply([Reply::status(410)]);
    failing["callback_url"] = json!(format!("{}/peyk/failed", app.url));
    let failed_id = api.submit(&key, &failing).await;
    api.wait_for_status(&key, &failed_id, "failed", WAIT).await;
    let received = app.wait_for(callbacks.len() + 1, WAIT).await;
    let failed = received.iter().find(|r| r.path == "/peyk/failed").unwrap();
    let body: Value = serde_json::from_slice(&failed.body).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["error_code"].as_str()), (Some("job.failed"), Some("http_410")));
    assert!(failed.headers.get("webhook-signature").is_none());

    // Refused at submission: a secret without a URL, a URL that is not http.
    let mut bad = webhook("https://example.com/h", json!({}));
    bad["callback_url"] = json!("ftp://x");
    let (status, refused) = api.post("/v1/jobs", &key, &bad).await;
    assert_eq!((status, refused["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("callback_url")));
    bad.as_object_mut().unwrap().remove("callback_url");
    bad["callback_secret"] = json!(SECRET);
    let (status, refused) = api.post("/v1/jobs", &key, &bad).await;
    assert_eq!((status, refused["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("callback_secret")));
}

/// The field a refusal names.
fn field(refused: &Value) -> &str {
    refused["error"]["details"]["errors"][0]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn what_can_be_known_at_submission_is_answered_then_and_creates_no_job() {
    let env = TestEnv::new("task-admission").await;
    let key = env.create_key("clinic").await;
    let kavenegar = Kavenegar::start().await;
    let provider = kavenegar.env();
    let mut worker_env = peyk_tests::env_pairs(&provider);
    worker_env.push(("PEYK_SMS_STATUS_CHECK_SECONDS", "30"));
    let api = env.start_api().await;

    // A task without a target (single, batch, pipeline step, schedule).
    let (status, refused) = api.post("/v1/jobs", &key, &task("nope", json!({}))).await;
    assert_eq!((status, refused["error"]["code"].as_str(), field(&refused)), (422, Some("unknown_task"), "payload.name"), "{refused}");
    let (_, batch) =
        api.post("/v1/jobs/batch", &key, &json!({ "jobs": [task("nope", json!({})), webhook("https://example.com/h", json!({}))] })).await;
    assert_eq!((batch["data"][0]["status"].as_i64(), batch["data"][1]["status"].as_i64()), (Some(422), Some(202)), "{batch}");
    let steps = json!({ "steps": [webhook("https://example.com/h", json!({})), task("nope", json!({}))] });
    let (status, refused) = api.post("/v1/pipelines", &key, &steps).await;
    assert_eq!((status, field(&refused)), (422, "steps[1].payload.name"), "{refused}");
    let schedule = json!({ "name": "nightly", "cron": "0 2 * * *", "job": task("nope", json!({})) });
    let (status, refused) = api.post("/v1/schedules", &key, &schedule).await;
    assert_eq!((status, field(&refused)), (422, "job.payload.name"), "{refused}");
    assert_eq!(stored_jobs(&env, "task").await, 0);

    // A payment verification for a gateway without an account.
    let verification = json!({ "type": "payment_verification", "payload": {
        "gateway": "zarinpal", "reference": "A00000000000000000000000000217885159", "amount": 1500000, "currency": "IRR", "order_id": "o-1" } });
    let (status, refused) = api.post("/v1/jobs", &key, &verification).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str(), field(&refused)),
        (422, Some("no_gateway_account"), "payload.gateway"),
        "{refused}"
    );
    assert_eq!(stored_jobs(&env, "payment_verification").await, 0);

    // An OTP over the per-number rule: 429, Retry-After, the rule; the first goes out.
    let otp = |template: &str| json!({ "type": "sms", "payload": { "mode": "lookup", "receptor": "09121234567", "template": template, "token": "4821" } });
    let _worker = env.start_worker_with(&worker_env).await;
    let first = api.submit(&key, &otp("verify")).await;
    api.wait_for_status(&key, &first, "succeeded", WAIT).await;
    let response = api.http.post(format!("{}/v1/jobs", api.url)).bearer_auth(&key).json(&otp("verify")).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry_after), "Retry-After {retry_after}");
    let refused: Value = response.json().await.unwrap();
    assert_eq!(
        (refused["error"]["code"].as_str(), refused["error"]["details"]["rule"].as_str()),
        (Some("rate_limited"), Some("receptor:otp:1/60"))
    );
    assert_eq!(stored_jobs(&env, "sms").await, 1);
    assert_eq!(kavenegar.calls("verify/lookup"), 1);

    // A template Kavenegar said it does not have: the next one is refused at once.
    let unknown = |receptor: &str| json!({ "type": "sms", "payload": { "mode": "lookup", "receptor": receptor, "template": "no-such-template", "token": "1" } });
    let id = api.submit(&key, &unknown("09351234567")).await;
    let job = api.wait_for_status(&key, &id, "failed", WAIT).await;
    assert_eq!(job["error"]["code"], "template_not_found");
    let (status, refused) = api.post("/v1/jobs", &key, &unknown("09351234568")).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str(), field(&refused)),
        (422, Some("unknown_template"), "payload.template"),
        "{refused}"
    );
    assert_eq!(stored_jobs(&env, "sms").await, 2);

    // No LLM on the worker (which serves medical_analysis): 503 naming the setting.
    let reported = || async {
        let (_, ready) = api.request(Method::GET, "/readyz?providers=1", None, None).await;
        ready["providers"].as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "llm"))
    };
    for _ in 0..100 {
        if reported().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await; // the API's copy of the reports is at most 2 s old
    let analysis = json!({ "type": "medical_analysis", "payload": { "text": "Dry cough for three days.", "analysis_type": "summary" } });
    let response = api.http.post(format!("{}/v1/jobs", api.url)).bearer_auth(&key).json(&analysis).send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["retry-after"].to_str().unwrap()), (503, "60"));
    let refused: Value = response.json().await.unwrap();
    assert_eq!(
        (refused["error"]["code"].as_str(), refused["error"]["details"]["setting"].as_str()),
        (Some("provider_not_configured"), Some("PEYK_LLM_BASE_URL"))
    );
    assert_eq!(stored_jobs(&env, "medical_analysis").await, 0);
    let (status, ready) = api.request(Method::GET, "/readyz?providers=1", None, None).await;
    assert_eq!(status, 200);
    let providers = ready["providers"].as_array().unwrap();
    let llm = providers.iter().find(|p| p["name"] == "llm").expect("the worker reports its LLM");
    assert_eq!(
        (llm["configured"].as_bool(), llm["setting"].as_str(), llm["workers"].as_i64()),
        (Some(false), Some("PEYK_LLM_BASE_URL"), Some(1))
    );
    let sms = providers.iter().find(|p| p["name"] == "kavenegar").unwrap();
    assert_eq!((sms["configured"].as_bool(), sms["reachable"].as_bool()), (Some(true), Some(true)), "{ready}");
}

#[tokio::test]
async fn an_analysis_taken_before_any_worker_reported_fails_at_once_naming_the_setting() {
    let env = TestEnv::new("task-unconfigured").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    // No worker yet: nothing is known, the job is taken (it waits for a worker).
    let analysis = json!({ "type": "medical_analysis", "payload": { "text": "Dry cough for three days.", "analysis_type": "summary" } });
    let id = api.submit(&key, &analysis).await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "medical_analysis")]).await;
    let job = api.wait_for_status(&key, &id, "failed", WAIT).await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("provider_not_configured")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("PEYK_LLM_BASE_URL"));
}
