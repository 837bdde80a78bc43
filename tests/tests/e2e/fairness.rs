//! Tenants share the workers: one tenant's backlog does not hold back
//! another's jobs, priorities order a tenant's own jobs (also after a delay
//! and a retry) but never let it overtake another tenant's share.

use std::time::{Duration, Instant};

use peyk_tests::{webhook, Api, OwnRedis, Received, Reply, Sink, TestEnv};
use serde_json::json;

/// Queues `count` webhook jobs to `{sink}/{tag}{n}` in batches of 1,000.
async fn backlog(api: &Api, key: &str, sink: &Sink, tag: &str, count: usize) {
    let jobs: Vec<_> = (0..count).map(|n| webhook(&format!("{}/{tag}{n}", sink.url), json!({}))).collect();
    for chunk in jobs.chunks(1000) {
        let (status, body) = api.post("/v1/jobs/batch", key, &json!({ "jobs": chunk })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], chunk.len(), "{body}");
    }
}

fn paths(sink: &Sink) -> Vec<String> {
    paths_of(&sink.received())
}

fn paths_of(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.path.clone()).collect()
}

#[tokio::test]
async fn a_tenants_jobs_start_within_a_second_behind_another_tenants_backlog() {
    let env = TestEnv::new("fair-starve").await;
    let big = env.create_key("big-campaign").await;
    let small = env.create_key("clinic").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(10)));
    // At 8 at a time and 10 ms each, this backlog alone takes 4 s or more.
    backlog(&api, &big, &sink, "big", 3000).await;
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook"), ("PEYK_CONCURRENCY", "8")]).await;
    sink.wait_for(200, Duration::from_secs(30)).await;

    let mut submitted = Vec::new();
    for n in 0..20 {
        submitted.push((format!("/small{n}"), Instant::now()));
        api.submit(&small, &webhook(&format!("{}/small{n}", sink.url), json!({}))).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let received = loop {
        let received = sink.received();
        if submitted.iter().all(|(path, _)| received.iter().any(|r| &r.path == path)) {
            break received;
        }
        assert!(Instant::now() < deadline, "the clinic's jobs did not all run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waits: Vec<Duration> =
        submitted.iter().map(|(path, at)| received.iter().find(|r| &r.path == path).unwrap().at.saturating_duration_since(*at)).collect();
    let worst = waits.iter().max().unwrap();
    let big_done = received.iter().filter(|r| r.path.starts_with("/big")).count();
    assert!(*worst < Duration::from_secs(1), "a clinic job waited {worst:?} behind the campaign ({waits:?})");
    assert!(big_done < 2500, "the campaign had nearly drained ({big_done} of 3000 done), so this proves nothing");
}

#[tokio::test]
async fn priorities_order_a_tenants_jobs_also_after_a_delay_and_a_retry() {
    let env = TestEnv::new("fair-priority").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    // The priority-7 job goes to a sink of its own that fails its first request.
    let flaky = Sink::start().await;
    flaky.reply([Reply::status(500)]);
    let sink = Sink::start().await;
    for target in [&flaky, &sink] {
        target.default_reply(Reply::status(200).delay(Duration::from_millis(300)));
    }
    for n in 0..16 {
        api.submit(&key, &webhook(&format!("{}/n{n}", sink.url), json!({}))).await;
    }
    let mut p5 = webhook(&format!("{}/p5", sink.url), json!({}));
    p5["priority"] = json!(5);
    let mut p7 = webhook(&format!("{}/p7", flaky.url), json!({}));
    p7["priority"] = json!(7);
    p7["max_attempts"] = json!(3);
    let mut p8 = webhook(&format!("{}/p8-delayed", sink.url), json!({}));
    p8["priority"] = json!(8);
    p8["delay_seconds"] = json!(3);
    for job in [&p5, &p7, &p8] {
        api.submit(&key, job).await;
    }
    let _worker = env
        .start_worker_with(&[
            ("PEYK_QUEUES", "webhook"),
            ("PEYK_CONCURRENCY", "1"),
            ("PEYK_CONSUMERS_PER_QUEUE", "1"),
            ("PEYK_RETRY_BASE_SECONDS", "0.5"),
        ])
        .await;
    flaky.wait_for(2, Duration::from_secs(30)).await;
    sink.wait_for(18, Duration::from_secs(30)).await;
    let mut received = [flaky.received(), sink.received()].concat();
    received.sort_by_key(|r| r.at);
    let order = paths_of(&received);
    let first = |path: &str| order.iter().position(|p| p == path).unwrap();
    let last = |path: &str| order.iter().rposition(|p| p == path).unwrap();
    assert!(first("/p7") < first("/p5") && first("/p5") < first("/n0"), "levels out of order: {order:?}");
    // Each comes back at its priority once due, ahead of the rest of the plain backlog (about 5 s of it).
    assert!(last("/p7") < 12, "the retry lost its priority: {order:?}");
    assert!(first("/p8-delayed") < 12, "the delayed job lost its priority: {order:?}");
    let plain: Vec<String> = order.iter().filter(|p| p.starts_with("/n")).cloned().collect();
    let expected: Vec<String> = (0..16).map(|n| format!("/n{n}")).collect();
    assert_eq!(plain, expected, "FIFO within a level");
}

#[tokio::test]
async fn a_high_priority_tenant_does_not_overtake_another_tenants_share() {
    let env = TestEnv::new("fair-share").await;
    let loud = env.create_key("loud").await;
    let quiet = env.create_key("quiet").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    for n in 0..6 {
        let mut job = webhook(&format!("{}/loud{n}", sink.url), json!({}));
        job["priority"] = json!(10);
        api.submit(&loud, &job).await;
    }
    for n in 0..6 {
        api.submit(&quiet, &webhook(&format!("{}/quiet{n}", sink.url), json!({}))).await;
    }
    let _worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook"), ("PEYK_CONCURRENCY", "1"), ("PEYK_CONSUMERS_PER_QUEUE", "1")]).await;
    sink.wait_for(12, Duration::from_secs(20)).await;
    let tenants: Vec<bool> = paths(&sink).iter().map(|p| p.starts_with("/loud")).collect();
    assert!(tenants.windows(2).all(|pair| pair[0] != pair[1]), "turns did not alternate: {:?}", paths(&sink));
}

#[tokio::test]
async fn paused_queues_and_tenants_keep_their_jobs_in_order_until_resumed() {
    let env = TestEnv::new("fair-pause").await;
    let admin = env.create_admin_key().await;
    let clinic = env.create_key("clinic").await;
    let shop = env.create_key("shop").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    let _worker = env
        .start_worker_with(&[
            ("PEYK_QUEUES", "webhook"),
            ("PEYK_CONCURRENCY", "1"),
            ("PEYK_CONSUMERS_PER_QUEUE", "1"),
            ("PEYK_CONTROL_SYNC_SECONDS", "0.2"),
        ])
        .await;

    // Only admin keys reach the admin API.
    let (status, body) = api.post("/v1/admin/queues/webhook/pause", &clinic, &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("missing_scope")), "{body}");
    let (status, _) = api.post("/v1/admin/queues/no-such-queue/pause", &admin, &json!({})).await;
    assert_eq!(status, 404);

    // A paused queue takes nothing; jobs arriving meanwhile keep their order.
    let (status, body) = api.post("/v1/admin/queues/webhook/pause", &admin, &json!({})).await;
    assert_eq!((status, &body["paused"]), (200, &json!(true)), "{body}");
    for n in 0..3 {
        api.submit(&clinic, &webhook(&format!("{}/c{n}", sink.url), json!({}))).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 0, "a paused queue ran jobs");
    let (_, queues) = api.get("/v1/admin/queues", &admin).await;
    let webhook_queue = queues["data"].as_array().unwrap().iter().find(|q| q["queue"] == "webhook").unwrap().clone();
    assert_eq!(webhook_queue["waiting"], 3, "{webhook_queue}");
    assert_eq!(webhook_queue["tenants"][0]["tenant"], "clinic", "{webhook_queue}");
    assert!(api.metrics().await.contains("peyk_queue_paused{queue=\"webhook\"} 1"));
    api.post("/v1/admin/queues/webhook/resume", &admin, &json!({})).await;
    assert_eq!(paths_of(&sink.wait_for(3, Duration::from_secs(10)).await), ["/c0", "/c1", "/c2"]);

    // One tenant paused (through the CLI: stored, then applied by the worker) while another goes on.
    env.cli(&["pause", "--queue", "webhook", "--tenant", "shop"]).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for n in 0..3 {
        api.submit(&shop, &webhook(&format!("{}/s{n}", sink.url), json!({}))).await;
        api.submit(&clinic, &webhook(&format!("{}/c{}", sink.url, n + 3), json!({}))).await;
    }
    sink.wait_for(6, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(sink.received().iter().all(|r| r.path.starts_with("/c")), "a paused tenant's job ran: {:?}", paths_of(&sink.received()));
    let (_, queues) = api.get("/v1/admin/queues", &admin).await;
    let shop_row = queues["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "webhook")
        .and_then(|q| q["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "shop").cloned())
        .expect("the paused tenant is listed");
    assert_eq!((&shop_row["waiting"], &shop_row["paused"]), (&json!(3), &json!(true)), "{shop_row}");
    let shop_id = shop_row["tenant_id"].as_str().unwrap().to_string();
    let (status, _) = api.post(&format!("/v1/admin/queues/webhook/tenants/{shop_id}/resume"), &admin, &json!({})).await;
    assert_eq!(status, 200);
    let received = sink.wait_for(9, Duration::from_secs(10)).await;
    let shop_order: Vec<String> = received.iter().map(|r| r.path.clone()).filter(|p| p.starts_with("/s")).collect();
    assert_eq!(shop_order, ["/s0", "/s1", "/s2"]);
}

#[tokio::test]
async fn two_backlogs_survive_a_killed_worker_and_a_redis_restart_and_share_the_worker_again() {
    let mut redis = OwnRedis::start().await;
    let mut env = TestEnv::new("fair-durable").await;
    env.redis_url = redis.url();
    let first_key = env.create_key("first").await;
    let second_key = env.create_key("second").await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(20)));
    backlog(&api, &first_key, &sink, "first", 400).await;
    backlog(&api, &second_key, &sink, "second", 400).await;
    let settings = [
        ("PEYK_QUEUES", "webhook"),
        ("PEYK_CONCURRENCY", "4"),
        ("PEYK_LEASE_SECONDS", "3"),
        ("PEYK_SWEEP_INTERVAL_SECONDS", "1"),
        ("PEYK_SWEEP_MIN_AGE_SECONDS", "1"),
    ];
    let mut worker = env.start_worker_with(&settings).await;
    sink.wait_for(100, Duration::from_secs(30)).await;
    // Killed mid-delivery; then Redis goes and comes back empty.
    worker.kill9();
    redis.stop().await;
    redis.restart().await;
    let restarted_at = sink.count();
    let _worker = env.start_worker_with(&settings).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    while env.sql_count("SELECT count(*) AS n FROM jobs WHERE status = 'succeeded'").await < 800 {
        assert!(Instant::now() < deadline, "not every job succeeded after the kill and the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = paths(&sink);
    for tag in ["first", "second"] {
        for n in 0..400 {
            let path = format!("/{tag}{n}");
            assert!(received.contains(&path), "{path} was lost");
        }
    }
    // Once restored from PostgreSQL, the two backlogs share the worker again.
    let after: Vec<&String> = received[restarted_at..].iter().collect();
    let half = &after[..after.len() / 2];
    let first_share = half.iter().filter(|p| p.starts_with("/first")).count() as f64 / half.len() as f64;
    assert!((0.3..=0.7).contains(&first_share), "after the restart one tenant took {:.0} % of the turns", first_share * 100.0);
}
