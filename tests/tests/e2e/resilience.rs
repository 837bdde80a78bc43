//! Nothing is lost: SIGKILL mid-job, graceful shutdown, Redis restarts,
//! a 50,000-job backlog, and Redis not growing with finished jobs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use peyk_tests::gateways::{self, Zarinpal};
use peyk_tests::{webhook, OwnRedis, Reply, Sink, TestEnv};
use serde_json::json;

#[tokio::test]
async fn a_job_of_a_killed_worker_runs_again_elsewhere_within_60_seconds() {
    let env = TestEnv::new("res-kill").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    // The first delivery hangs (the worker is killed during it); later ones answer at once.
    sink.reply([Reply::status(200).delay(Duration::from_secs(120))]);
    let mut first = env.start_worker().await;
    let id = api.submit(&key, &webhook(&format!("{}/hook", sink.url), json!({}))).await;
    api.wait_for_status(&key, &id, "running", Duration::from_secs(10)).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    first.kill9();
    let killed_at = Instant::now();
    let _second = env.start_worker().await;
    let job = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(60)).await;
    let recovered = killed_at.elapsed();
    assert!(recovered < Duration::from_secs(60), "recovered after {recovered:?}");
    assert_eq!(job["attempts"], 2);
    let (_, attempts) = api.get(&format!("/v1/jobs/{id}/attempts"), &key).await;
    let attempts = attempts["data"].as_array().unwrap().clone();
    assert_eq!(attempts[0]["outcome"], "interrupted");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_ne!(attempts[0]["worker"], attempts[1]["worker"], "each worker process has its own identity");
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn graceful_shutdown_finishes_running_jobs_and_hands_back_the_rest() {
    let env = TestEnv::new("res-graceful").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(1500)));
    let mut worker = env.start_worker_with(&[("PEYK_CONCURRENCY", "2"), ("PEYK_CONSUMERS_PER_QUEUE", "1")]).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(api.submit(&key, &webhook(&format!("{}/j{n}", sink.url), json!({}))).await);
    }
    sink.wait_for(2, Duration::from_secs(10)).await;
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "worker exit: {status:?}");
    // The two that were running finished; nothing else started; nothing was lost.
    let mut succeeded = 0;
    for id in &ids {
        let job = api.job(&key, id).await;
        match job["status"].as_str().unwrap() {
            "succeeded" => succeeded += 1,
            "queued" => assert_eq!(job["attempts"], 0),
            other => panic!("unexpected status {other}: {job}"),
        }
    }
    assert_eq!(succeeded, 2, "in-flight jobs finish during the grace period");
    assert_eq!(sink.count(), 2);
    // Another worker runs the rest at once (handed back, not waiting for recovery).
    let _next = env.start_worker().await;
    for id in &ids {
        api.wait_for_status(&key, id, "succeeded", Duration::from_secs(20)).await;
    }
    assert_eq!(sink.count(), 8, "every job delivered exactly once");
}

#[tokio::test]
async fn past_the_grace_period_running_jobs_are_released_to_another_worker() {
    let env = TestEnv::new("res-grace-over").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(200).delay(Duration::from_secs(30))]);
    let mut worker = env.start_worker_with(&[("PEYK_SHUTDOWN_GRACE_SECONDS", "1")]).await;
    let id = api.submit(&key, &webhook(&format!("{}/long", sink.url), json!({}))).await;
    api.wait_for_status(&key, &id, "running", Duration::from_secs(10)).await;
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(10)).await.success());
    let job = api.job(&key, &id).await;
    assert_eq!(job["status"], "queued", "released: {job}");
    let _next = env.start_worker().await;
    let job = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(15)).await;
    assert_eq!(job["attempts"], 2);
    let (_, attempts) = api.get(&format!("/v1/jobs/{id}/attempts"), &key).await;
    assert_eq!(attempts["data"][0]["outcome"], "released");
}

#[tokio::test]
async fn a_redis_restart_loses_no_job() {
    let mut redis = OwnRedis::start().await;
    let mut env = TestEnv::new("res-redis").await;
    env.redis_url = redis.url();
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;

    // Queued while no worker runs; then Redis dies and comes back empty.
    let mut before = Vec::new();
    for n in 0..20 {
        before.push(api.submit(&key, &webhook(&format!("{}/before{n}", sink.url), json!({}))).await);
    }
    redis.stop().await;
    // Until the API's Redis watch notices (a ping that fails or times out
    // twice: up to ~4 s on a loaded machine), a submission is stored in
    // PostgreSQL and answered 202 although its push fails; it must then run
    // like the others. After that, submissions are refused with 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = api.post("/v1/jobs", &key, &webhook(&format!("{}/during", sink.url), json!({}))).await;
        if status == 202 {
            before.push(body["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!((status, body["error"]["code"].as_str()), (503, Some("queue_unavailable")), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "submissions still accepted 10 s after Redis stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = api.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["redis"], "unreachable");

    redis.restart().await;
    // The API recovers on its own.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let (status, body) = api.post("/v1/jobs", &key, &webhook(&format!("{}/after", sink.url), json!({}))).await;
        if status == 202 {
            break body["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "API did not recover: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The worker's sweeper re-pushes the 20 jobs Redis lost.
    let _worker = env.start_worker_with(&[("PEYK_SWEEP_MIN_AGE_SECONDS", "1")]).await;
    for id in before.iter().chain([&after]) {
        api.wait_for_status(&key, id, "succeeded", Duration::from_secs(30)).await;
    }
    assert_eq!(sink.count(), before.len() + 1);

    // A worker survives a restart too: it reconnects and keeps working.
    redis.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        let (status, body) = api.post("/v1/jobs", &key, &webhook(&format!("{}/again", sink.url), json!({}))).await;
        if status == 202 {
            break body["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(30)).await;
    redis.stop().await;
}

#[tokio::test]
async fn a_backlog_of_50000_jobs_is_processed_once_workers_start() {
    let env = TestEnv::new("res-backlog").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    const JOBS: usize = 50_000;
    let started = Instant::now();
    let submitted = futures::stream::iter(0..JOBS)
        .map(|n| {
            let api = &api;
            let key = &key;
            let url = format!("{}/b", sink.url);
            async move { api.submit(key, &webhook(&url, json!({"n": n}))).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<String>>()
        .await;
    eprintln!("submitted {JOBS} in {:?}", started.elapsed());
    assert_eq!(submitted.len(), JOBS);

    let started = Instant::now();
    let _a = env.start_worker_with(&[("PEYK_CONCURRENCY", "128")]).await;
    let _b = env.start_worker_with(&[("PEYK_CONCURRENCY", "128")]).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = env.sql_count("SELECT count(*) AS n FROM jobs WHERE status = 'succeeded'").await;
        if done == JOBS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {JOBS} done after 300 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("drained {JOBS} in {:?}", started.elapsed());
    let bodies: HashSet<i64> =
        sink.received().iter().map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["n"].as_i64().unwrap()).collect();
    assert_eq!(bodies.len(), JOBS, "every job delivered");
    assert_eq!(sink.count(), JOBS, "and none twice");
}

use futures::StreamExt;

#[tokio::test]
async fn finished_jobs_do_not_stay_in_redis() {
    let env = TestEnv::new("res-expire").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_REDIS_RETENTION_SECONDS", "0")]).await;
    let sink = Sink::start().await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(api.submit(&key, &webhook(&format!("{}/x", sink.url), json!({}))).await);
    }
    for id in &ids {
        api.wait_for_status(&key, id, "succeeded", Duration::from_secs(20)).await;
    }
    let mut redis = redis::Client::open(env.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let data: i64 = redis::cmd("HLEN").arg(format!("{}:webhook:data", env.prefix)).query_async(&mut redis).await.unwrap();
        let results: i64 = redis::cmd("HLEN").arg(format!("{}:webhook:data::result", env.prefix)).query_async(&mut redis).await.unwrap();
        let done: i64 = redis::cmd("ZCARD").arg(format!("{}:webhook:done", env.prefix)).query_async(&mut redis).await.unwrap();
        if data == 0 && results == 0 && done == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "redis still holds {data} tasks, {results} results, {done} done entries");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The records stay in PostgreSQL.
    assert_eq!(api.job(&key, &ids[0]).await["status"], "succeeded");
}

/// A job whose every attempt kills its worker (here: the test kills it, as
/// an out-of-memory killer or a native crash would) ends `dead` with
/// `worker_lost` after `max_attempts`, and the fleet keeps serving the other
/// jobs; an oversized email attachment fails from its record, before a byte
/// of it is read.
#[tokio::test]
async fn a_job_that_kills_every_worker_ends_dead_with_worker_lost() {
    let env = TestEnv::new("res-poison").await;
    let key = env.create_key("acme").await;
    env.cli(&["set-limits", "--tenant", "acme", "--sender-domain", "example.com"]).await;
    let api = env.start_api().await;
    let holds = Sink::start().await;
    holds.default_reply(Reply::status(200).delay(Duration::from_secs(120)));
    let fast = Sink::start().await;
    let lease = [("PEYK_LEASE_SECONDS", "3")];
    let mut poison = webhook(&format!("{}/poison", holds.url), json!({}));
    poison["max_attempts"] = json!(2);
    let id = api.submit(&key, &poison).await;
    for attempt in 1..=2 {
        let mut worker = env.start_worker_with(&lease).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = api.job(&key, &id).await;
            if job["status"] == "running" && job["attempts"] == attempt {
                break;
            }
            assert!(Instant::now() < deadline, "attempt {attempt} never started: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        holds.wait_for(attempt as usize, Duration::from_secs(10)).await;
        worker.kill9();
        let _ = worker.wait_exit(Duration::from_secs(5)).await;
    }
    // The survivor does not run it a third time: dead, worker_lost, two
    // attempts; and it serves the other queues meanwhile, payments included.
    let zarinpal = Zarinpal::start().await;
    let mut survivor_env: Vec<(&str, &str)> = lease.to_vec();
    let zarinpal_env = zarinpal.env();
    survivor_env.extend(peyk_tests::env_pairs(&zarinpal_env));
    let _survivor = env.start_worker_with(&survivor_env).await;
    let account = json!({ "credentials": { "merchant_id": gateways::ZARINPAL_MERCHANT }, "sandbox": true });
    assert_eq!(api.request(reqwest::Method::PUT, "/v1/payment-accounts/zarinpal", Some(&key), Some(&account)).await.0, 200);
    let authority = zarinpal.create_payment(10_000);
    zarinpal.pay(&authority);
    let payment = json!({ "gateway": "zarinpal", "reference": authority, "amount": 10_000, "currency": "IRR", "order_id": "o-1" });
    let verification = api.submit(&key, &json!({ "type": "payment_verification", "payload": payment })).await;
    let other = api.submit(&key, &webhook(&format!("{}/other", fast.url), json!({}))).await;
    let job = api.wait_for_status(&key, &id, "dead", Duration::from_secs(30)).await;
    assert_eq!((job["error"]["code"].as_str(), job["attempts"].as_i64()), (Some("worker_lost"), Some(2)), "{job}");
    let (_, attempts) = api.get(&format!("/v1/jobs/{id}/attempts"), &key).await;
    let outcomes: Vec<&str> = attempts["data"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap_or("")).collect();
    assert_eq!(outcomes, ["interrupted", "dead"], "{attempts}");
    assert_eq!(holds.count(), 2, "never sent a third time");
    api.wait_for_status(&key, &other, "succeeded", Duration::from_secs(10)).await;
    let verified = api.wait_for_status(&key, &verification, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(verified["result"]["status"], "verified", "{verified}");

    // 30 MiB attached (limit 20): failed at once, from the file's record.
    let big = api.upload(&key, "scan.pdf", vec![b'%'; 30 * 1024 * 1024]).await;
    let email = json!({ "type": "email", "payload": { "from": "clinic@example.com", "to": ["a@example.com"], "subject": "s", "text": "t", "attachments": [{ "file_id": big }] } });
    let id = api.submit(&key, &email).await;
    let job = api.wait_for_status(&key, &id, "failed", Duration::from_secs(20)).await;
    assert_eq!((job["error"]["code"].as_str(), job["attempts"].as_i64()), (Some("attachments_too_large"), Some(1)), "{job}");
}
