//! A job's life: every status, retries to dead, manual retry, cancel,
//! delayed jobs, priority.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peyk_tests::{webhook, Reply, Sink, TestEnv};
use serde_json::json;

fn outcomes(attempts: &serde_json::Value) -> Vec<String> {
    attempts["data"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap_or("running").to_string()).collect()
}

#[tokio::test]
async fn succeeded_job_passes_through_running() {
    let env = TestEnv::new("life-ok").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(200).delay(Duration::from_millis(1500)).body("thanks")]);
    let id = api.submit(&key, &webhook(&format!("{}/hook", sink.url), json!({"x": 1}))).await;
    let running = api.wait_for_status(&key, &id, "running", Duration::from_secs(10)).await;
    assert_eq!(running["attempts"], 1);
    assert!(running["started_at"].is_string());
    let done = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["result"]["status_code"], 200);
    assert_eq!(done["result"]["response_excerpt"], "thanks");
    assert!(done["result"]["latency_ms"].as_f64().unwrap() >= 1500.0);
    assert_eq!(done["progress"], 100);
    assert!(done["finished_at"].is_string());
    assert!(done["error"].is_null());
    let (_, attempts) = api.get(&format!("/v1/jobs/{id}/attempts"), &key).await;
    assert_eq!(outcomes(&attempts), ["succeeded"]);
    assert!(attempts["data"][0]["worker"].as_str().unwrap().len() > 8);
}

#[tokio::test]
async fn client_errors_fail_at_once_and_server_errors_retry_until_dead_then_manual_retry() {
    let env = TestEnv::new("life-fail").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;

    // 400: permanent, one attempt.
    sink.reply([Reply::status(400).body("bad")]);
    let failed = api.submit(&key, &webhook(&format!("{}/a", sink.url), json!({}))).await;
    let job = api.wait_for_status(&key, &failed, "failed", Duration::from_secs(10)).await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["error"]["code"], "http_400");
    assert_eq!(job["result"]["status_code"], 400);

    // 500 three times with max_attempts 3: dead after exactly 3 attempts.
    sink.reply([Reply::status(500), Reply::status(503), Reply::status(502)]);
    let mut body = webhook(&format!("{}/b", sink.url), json!({}));
    body["max_attempts"] = json!(3);
    let dead = api.submit(&key, &body).await;
    let job = api.wait_for_status(&key, &dead, "dead", Duration::from_secs(20)).await;
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["error"]["code"], "http_502");
    let (_, attempts) = api.get(&format!("/v1/jobs/{dead}/attempts"), &key).await;
    assert_eq!(outcomes(&attempts), ["retrying", "retrying", "dead"]);
    // Backoff: attempts are spread out, not back to back.
    let starts: Vec<DateTime<Utc>> =
        attempts["data"].as_array().unwrap().iter().map(|a| a["started_at"].as_str().unwrap().parse().unwrap()).collect();
    assert!((starts[1] - starts[0]).num_milliseconds() >= 100, "{starts:?}");
    assert_eq!(sink.count(), 4);
    let metrics = api.metrics().await;
    assert!(metrics.contains("peyk_queue_depth{queue=\"webhook\",state=\"dead\"} 1"), "{metrics}");

    // A finished job cannot be cancelled; a queued one cannot be retried.
    let (status, _) = api.post(&format!("/v1/jobs/{dead}/cancel"), &key, &json!({})).await;
    assert_eq!(status, 409);

    // Manual retry of the dead and the failed job: both run again and succeed.
    for id in [&dead, &failed] {
        let (status, job) = api.post(&format!("/v1/jobs/{id}/retry"), &key, &json!({})).await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["status"], "queued");
        let job = api.wait_for_status(&key, id, "succeeded", Duration::from_secs(10)).await;
        assert_eq!(job["attempts"], 1);
    }
    let (_, attempts) = api.get(&format!("/v1/jobs/{dead}/attempts"), &key).await;
    assert_eq!(outcomes(&attempts), ["retrying", "retrying", "dead", "succeeded"]);
    let (status, _) = api.post(&format!("/v1/jobs/{dead}/retry"), &key, &json!({})).await;
    assert_eq!(status, 409, "a succeeded job is not retried");

    let metrics = reqwest::get(format!("{}/metrics", _worker.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("peyk_jobs_finished_total{status=\"dead\",type=\"webhook\"} 1"), "{metrics}");
    assert!(metrics.contains("peyk_job_retries_total{code=\"http_500\",type=\"webhook\"} 1"), "{metrics}");
}

#[tokio::test]
async fn cancelled_jobs_never_run_and_a_running_one_has_its_result_discarded() {
    let env = TestEnv::new("life-cancel").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;

    // Scheduled then cancelled: never delivered.
    let mut delayed = webhook(&format!("{}/later", sink.url), json!({}));
    delayed["delay_seconds"] = json!(1.5);
    let (_, scheduled) = api.post("/v1/jobs", &key, &delayed).await;
    assert_eq!(scheduled["status"], "scheduled");
    let id = scheduled["id"].as_str().unwrap();
    let (status, job) = api.post(&format!("/v1/jobs/{id}/cancel"), &key, &json!({})).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")));

    // Running then cancelled: the endpoint is called, but the job stays cancelled.
    sink.reply([Reply::status(200).delay(Duration::from_secs(2))]);
    let running = api.submit(&key, &webhook(&format!("{}/slow", sink.url), json!({}))).await;
    api.wait_for_status(&key, &running, "running", Duration::from_secs(10)).await;
    let (status, _) = api.post(&format!("/v1/jobs/{running}/cancel"), &key, &json!({})).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = api.job(&key, &running).await;
    assert_eq!(job["status"], "cancelled");
    assert!(job["result"].is_null(), "result must be discarded: {job}");
    let (_, attempts) = api.get(&format!("/v1/jobs/{running}/attempts"), &key).await;
    assert_eq!(outcomes(&attempts), ["cancelled"]);

    let paths: Vec<String> = sink.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/slow"], "the cancelled scheduled job must never run");
    assert_eq!(api.job(&key, id).await["status"], "cancelled");
}

#[tokio::test]
async fn delayed_jobs_run_no_earlier_than_asked_and_within_a_second() {
    let env = TestEnv::new("life-delay").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;

    let mut cases = Vec::new();
    for (n, delay) in [1.3, 2.0, 2.7].into_iter().enumerate() {
        let mut job = webhook(&format!("{}/d{n}", sink.url), json!({}));
        job["delay_seconds"] = json!(delay);
        let submitted = Instant::now();
        let (status, record) = api.post("/v1/jobs", &key, &job).await;
        assert_eq!((status, record["status"].as_str()), (202, Some("scheduled")));
        cases.push((format!("/d{n}"), submitted, Duration::from_secs_f64(delay)));
    }
    let run_at = (Utc::now() + chrono::Duration::milliseconds(2200)).to_rfc3339();
    let mut job = webhook(&format!("{}/at", sink.url), json!({}));
    job["run_at"] = json!(run_at);
    let submitted = Instant::now();
    api.submit(&key, &job).await;
    cases.push(("/at".into(), submitted, Duration::from_millis(2150)));

    let received = sink.wait_for(4, Duration::from_secs(10)).await;
    for (path, submitted, delay) in cases {
        let got = received.iter().find(|r| r.path == path).unwrap();
        let after = got.at - submitted;
        assert!(after >= delay, "{path} ran after {after:?}, before its delay {delay:?}");
        assert!(after <= delay + Duration::from_secs(1), "{path} ran after {after:?}, more than 1 s past {delay:?}");
    }
}

#[tokio::test]
async fn priority_jobs_go_ahead_of_the_queue() {
    let env = TestEnv::new("life-priority").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    for n in 0..10 {
        api.submit(&key, &webhook(&format!("{}/normal{n}", sink.url), json!({}))).await;
    }
    let mut urgent = webhook(&format!("{}/urgent", sink.url), json!({}));
    urgent["priority"] = json!(5);
    api.submit(&key, &urgent).await;
    let _worker = env.start_worker_with(&[("PEYK_CONCURRENCY", "1"), ("PEYK_CONSUMERS_PER_QUEUE", "1")]).await;
    let received = sink.wait_for(11, Duration::from_secs(20)).await;
    assert_eq!(received[0].path, "/urgent");
    assert_eq!(received[1].path, "/normal0");
}

#[tokio::test]
async fn waiting_on_a_job_answers_when_it_ends_or_at_the_timeout_without_polling_the_database() {
    let env = TestEnv::new("wait").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(2000)));
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;

    for bad in ["wait=61", "wait=-1", "wait=soon", "timeout=3"] {
        let (status, body) = api.get(&format!("/v1/jobs/{}?{bad}", uuid::Uuid::now_v7()), &key).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_parameter")), "{bad}: {body}");
    }

    // Answered as soon as the job ends.
    let id = api.submit(&key, &webhook(&format!("{}/slow", sink.url), json!({}))).await;
    let started = Instant::now();
    let (status, job) = api.get(&format!("/v1/jobs/{id}?wait=20"), &key).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("succeeded")), "{job}");
    assert!(started.elapsed() < Duration::from_secs(6), "answered {:?} after the submission", started.elapsed());

    // Not ended: answered as it is at the timeout.
    let (_, later) = api
        .post(
            "/v1/jobs",
            &key,
            &json!({ "type": "webhook", "payload": { "url": format!("{}/later", sink.url), "body": {} }, "delay_seconds": 3600 }),
        )
        .await;
    let started = Instant::now();
    let (_, job) = api.get(&format!("/v1/jobs/{}?wait=1.5", later["id"].as_str().unwrap()), &key).await;
    assert_eq!(job["status"], "scheduled");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(3), "{waited:?}");

    // The same for a pipeline: answered once its last step ended.
    let step = |path: &str| json!({ "type": "webhook", "payload": { "url": format!("{}/{path}", sink.url), "body": {} } });
    let (status, pipeline) = api.post("/v1/pipelines", &key, &json!({ "steps": [step("one"), step("two")] })).await;
    assert_eq!(status, 202, "{pipeline}");
    let started = Instant::now();
    let (_, pipeline) = api.get(&format!("/v1/pipelines/{}?wait=30", pipeline["id"].as_str().unwrap()), &key).await;
    assert_eq!(pipeline["status"], "succeeded", "{pipeline}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered {:?} after the submission", started.elapsed());

    // 500 waiters on one job: about two reads each, whatever the wait (a poll every 250 ms would be 4,000 more).
    const WAITERS: i64 = 500;
    let id = api.submit(&key, &webhook(&format!("{}/slow", sink.url), json!({}))).await;
    // A backend idle within a second of its last report sends its counts up to 10 s later.
    let stats_flushed = Duration::from_secs(11);
    tokio::time::sleep(stats_flushed).await;
    let commits = "SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()";
    let before = env.sql_count(commits).await;
    let path = format!("/v1/jobs/{id}?wait=30");
    let waits: Vec<_> = (0..WAITERS).map(|_| api.get(&path, &key)).collect();
    let answers = futures::future::join_all(waits).await;
    assert!(answers.iter().all(|(status, job)| *status == 200 && job["status"] == "succeeded"), "{:?}", answers[0]);
    tokio::time::sleep(stats_flushed).await;
    let transactions = env.sql_count(commits).await - before;
    // Two reads per waiter, and what the worker and the API do meanwhile (about 150 in these 14 s).
    assert!(transactions < 2 * WAITERS + 250, "{transactions} transactions for {WAITERS} waiters");
}
