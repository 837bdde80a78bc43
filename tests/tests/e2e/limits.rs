//! Per-tenant limits: the request rate (a token bucket in Redis, `429` and
//! `RateLimit-*` headers) and caps on a tenant's running jobs per queue.

use std::time::{Duration, Instant};

use peyk_tests::{webhook, Api, Reply, Sink, TestEnv};
use serde_json::json;

/// `GET /v1/jobs` with `key`: the status and the `RateLimit-Remaining` header.
async fn list(api: &Api, key: &str) -> (u16, Option<u64>, reqwest::header::HeaderMap) {
    let response = api.http.get(format!("{}/v1/jobs", api.url)).bearer_auth(key).send().await.unwrap();
    let remaining = response.headers().get("ratelimit-remaining").and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status().as_u16(), remaining, response.headers().clone())
}

#[tokio::test]
async fn a_tenant_over_its_request_rate_gets_429_with_retry_after_and_others_do_not() {
    let env = TestEnv::new("limits-rate").await;
    let busy = env.create_key("busy").await;
    let calm = env.create_key("calm").await;
    let admin = env.create_admin_key().await;
    let api =
        env.start_api_with(&[("PEYK_TENANT_REQUESTS_PER_SECOND", "1"), ("PEYK_TENANT_BURST", "5"), ("PEYK_KEY_CACHE_SECONDS", "1")]).await;

    let mut remaining = Vec::new();
    for _ in 0..5 {
        let (status, left, headers) = list(&api, &busy).await;
        assert_eq!(status, 200);
        assert_eq!(headers["ratelimit-limit"], "5");
        remaining.push(left.unwrap());
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let response = api.http.get(format!("{}/v1/jobs", api.url)).bearer_auth(&busy).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Submissions count too, and are refused without storing anything.
    let (status, _) = api.post("/v1/jobs", &busy, &webhook("https://example.com/hook", json!({}))).await;
    assert_eq!(status, 429);
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 0);

    // Another tenant, and an admin key, are not held back.
    assert_eq!(list(&api, &calm).await.0, 200);
    let (status, _) = api.get("/v1/admin/tenants", &admin).await;
    assert_eq!(status, 200);

    // The bucket refills at the rate; a tenant's own rate replaces the default.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(list(&api, &busy).await.0, 200);
    let (_, tenants) = api.get("/v1/admin/tenants", &admin).await;
    let busy_id = tenants["data"].as_array().unwrap().iter().find(|t| t["name"] == "busy").unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) =
        api.request(reqwest::Method::PATCH, &format!("/v1/admin/tenants/{busy_id}"), Some(&admin), Some(&json!({"burst": -1}))).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("burst")), "{body}");
    let (status, body) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/admin/tenants/{busy_id}"),
            Some(&admin),
            Some(&json!({"requests_per_second": 50, "burst": 50})),
        )
        .await;
    assert_eq!((status, &body["burst"]), (200, &json!(50)), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // the key cache lets go
    for _ in 0..20 {
        assert_eq!(list(&api, &busy).await.0, 200);
    }
}

/// The most attempts of `tenant` that overlapped in time, from PostgreSQL.
async fn most_at_once(env: &TestEnv, tenant: &str, since_id: i64) -> i64 {
    env.sql_count(&format!(
        "SELECT coalesce(max(c), 0) AS n FROM (
           SELECT (SELECT count(*) FROM job_attempts b JOIN jobs jb ON jb.id = b.job_id
                    WHERE jb.tenant_id = ja.tenant_id AND b.id > {since_id}
                      AND b.started_at <= a.started_at AND coalesce(b.finished_at, 'infinity') > a.started_at) AS c
             FROM job_attempts a JOIN jobs ja ON ja.id = a.job_id
            WHERE ja.tenant_id = (SELECT id FROM tenants WHERE name = '{tenant}') AND a.id > {since_id}) t"
    ))
    .await
}

async fn submit_many(api: &Api, key: &str, sink: &Sink, tag: &str, count: usize) {
    let jobs: Vec<_> = (0..count).map(|n| webhook(&format!("{}/{tag}{n}", sink.url), json!({}))).collect();
    let (status, body) = api.post("/v1/jobs/batch", key, &json!({ "jobs": jobs })).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(count)), "{body}");
}

async fn wait_succeeded(env: &TestEnv, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.sql_count("SELECT count(*) AS n FROM jobs WHERE status = 'succeeded'").await < count {
        assert!(Instant::now() < deadline, "the jobs did not all succeed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cap_on_running_jobs_is_never_exceeded_and_lifting_it_takes_effect() {
    let env = TestEnv::new("limits-cap").await;
    let capped = env.create_key("capped").await;
    let free = env.create_key("free").await;
    let admin = env.create_admin_key().await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_millis(150)));
    env.cli(&["set-limits", "--tenant", "capped", "--max-running", "webhook=2"]).await;
    let _worker =
        env.start_worker_with(&[("PEYK_QUEUES", "webhook"), ("PEYK_CONCURRENCY", "8"), ("PEYK_CONTROL_SYNC_SECONDS", "0.2")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the worker applies the cap

    submit_many(&api, &capped, &sink, "capped", 24).await;
    submit_many(&api, &free, &sink, "free", 24).await;
    wait_succeeded(&env, 48).await;
    assert_eq!(most_at_once(&env, "capped", 0).await, 2, "the capped tenant ran more (or fewer) than 2 at once");
    assert!(most_at_once(&env, "free", 0).await > 2, "the other tenant was held back too");

    // Lifted through the admin API: the next jobs run side by side.
    let (_, tenants) = api.get("/v1/admin/tenants", &admin).await;
    let row = tenants["data"].as_array().unwrap().iter().find(|t| t["name"] == "capped").unwrap().clone();
    assert_eq!(row["max_running"], json!({"webhook": 2}), "{row}");
    let id = row["id"].as_str().unwrap();
    let (status, body) = api
        .request(reqwest::Method::PATCH, &format!("/v1/admin/tenants/{id}"), Some(&admin), Some(&json!({"max_running": {"webhook": 0}})))
        .await;
    assert_eq!((status, &body["max_running"]), (200, &json!({})), "{body}");
    let (status, body) = api
        .request(reqwest::Method::PATCH, &format!("/v1/admin/tenants/{id}"), Some(&admin), Some(&json!({"max_running": {"nope": 1}})))
        .await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("max_running.nope")), "{body}");
    let before = env.sql_count("SELECT coalesce(max(id), 0) AS n FROM job_attempts").await;
    submit_many(&api, &capped, &sink, "again", 24).await;
    wait_succeeded(&env, 72).await;
    assert!(most_at_once(&env, "capped", before).await > 2, "the lifted cap still held");
}

/// Tokens and quota charges of concurrent requests are taken together in
/// one Redis call (`TokenTaker`, `Charger`); each request still gets exactly
/// its own: as many through as the bucket and the quota hold, no more.
#[tokio::test]
async fn concurrent_requests_take_exactly_the_tokens_and_quota_there_are() {
    let env = TestEnv::new("limits-concurrent").await;
    let key = env.create_key("busy").await;
    env.cli(&["set-limits", "--tenant", "busy", "--jobs-per-day", "12"]).await;
    let api = env.start_api_with(&[("PEYK_TENANT_REQUESTS_PER_SECOND", "1"), ("PEYK_TENANT_BURST", "30")]).await;
    let hook = |n: u32| webhook(&format!("https://example.com/hook{n}"), json!({}));

    let answers = futures::future::join_all((0..60).map(|n| {
        let request = api.http.post(format!("{}/v1/jobs", api.url)).bearer_auth(&key).json(&hook(n));
        async move {
            let response = request.send().await.unwrap();
            let remaining: Option<u64> = response.headers().get("ratelimit-remaining").and_then(|v| v.to_str().ok()?.parse().ok());
            let body: serde_json::Value = response.json().await.unwrap();
            (body["error"]["code"].as_str().map(str::to_string), remaining)
        }
    }))
    .await;
    let count = |code: Option<&str>| answers.iter().filter(|(c, _)| c.as_deref() == code).count();
    // 30 tokens (one more if a second passed): 12 stored, the rest over the quota.
    let (stored, over_quota, over_rate) = (count(None), count(Some("quota_exceeded")), count(Some("rate_limited")));
    assert_eq!(stored, 12, "{answers:?}");
    assert!((30..=31).contains(&(stored + over_quota)), "{answers:?}");
    assert_eq!(stored + over_quota + over_rate, 60, "{answers:?}");
    let mut left: Vec<u64> = answers.iter().filter(|(c, _)| c.as_deref() != Some("rate_limited")).filter_map(|(_, r)| *r).collect();
    left.sort_unstable();
    left.dedup();
    assert!(left.len() >= 29, "each admitted request left the bucket one token lower: {left:?}");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 12);
}

/// Above 100 requests a second each API process leases a few tokens at a
/// time (`TenantTokens`): two processes flooded at once still let through
/// no more than the shared bucket holds, and no fewer than it holds less a
/// lease each.
#[tokio::test]
async fn leased_tokens_of_two_api_processes_never_pass_the_shared_limit() {
    let env = TestEnv::new("limits-leases").await;
    let key = env.create_key("busy").await;
    // A lease is min(rate / 100, burst / 10) = 3 tokens.
    let limits = [("PEYK_TENANT_REQUESTS_PER_SECOND", "300"), ("PEYK_TENANT_BURST", "100")];
    let (first, second) = (env.start_api_with(&limits).await, env.start_api_with(&limits).await);

    let started = Instant::now();
    let answers = futures::future::join_all((0..800).map(|n| {
        let api = if n % 2 == 0 { &first } else { &second };
        let request = api.http.get(format!("{}/v1/jobs", api.url)).bearer_auth(&key);
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (response.status().as_u16(), retry_after)
        }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = answers.iter().filter(|(status, _)| *status == 200).count() as f64;
    let refused: Vec<_> = answers.iter().filter(|(status, _)| *status == 429).collect();
    assert_eq!(admitted as usize + refused.len(), 800, "{answers:?}");
    assert!(admitted <= 100.0 + 300.0 * elapsed + 1.0, "{admitted} admitted in {elapsed:.2} s");
    assert!(admitted >= 100.0 - 2.0 * 3.0, "{admitted} admitted in {elapsed:.2} s");
    assert!(!refused.is_empty() && refused.iter().all(|(_, retry_after)| *retry_after >= Some(1)), "{refused:?}");
}

/// A tenant without quotas is counted in the API and its count reaches
/// Redis within a quarter second (`UsageTally`), refunds of replays too.
#[tokio::test]
async fn usage_without_a_quota_is_counted_soon_after() {
    let env = TestEnv::new("limits-tally").await;
    let key = env.create_key("free").await;
    let api = env.start_api().await;
    for n in 0..3 {
        api.submit(&key, &webhook(&format!("https://example.com/hook{n}"), json!({}))).await;
    }
    let mut keyed = webhook("https://example.com/keyed", json!({}));
    keyed["idempotency_key"] = json!("once");
    for expected in [202, 200] {
        assert_eq!(api.post("/v1/jobs", &key, &keyed).await.0, expected);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let used = loop {
        let (_, usage) = api.get("/v1/usage", &key).await;
        if usage["used"]["jobs"] == json!(4) || Instant::now() > deadline {
            break usage;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(used["used"]["jobs"], json!(4), "three jobs and one keyed job, its replay refunded: {used}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, later) = api.get("/v1/usage", &key).await;
    assert_eq!(later["used"]["jobs"], json!(4), "{later}");
}

#[tokio::test]
async fn quotas_refuse_past_the_limit_naming_it_and_count_only_what_was_stored() {
    let env = TestEnv::new("limits-quota").await;
    let clinic = env.create_key("clinic").await;
    let shop = env.create_key("shop").await;
    let admin = env.create_admin_key().await;
    env.cli(&["set-limits", "--tenant", "clinic", "--jobs-per-day", "4"]).await;
    let api = env.start_api_with(&[("PEYK_QUOTA_SMS_PER_DAY", "5"), ("PEYK_KEY_CACHE_SECONDS", "1")]).await;
    let hook = |n: u32| webhook(&format!("https://example.com/hook{n}"), json!({}));

    for n in 0..3 {
        api.submit(&clinic, &hook(n)).await;
    }
    let mut keyed = hook(9);
    keyed["idempotency_key"] = json!("k");
    let (status, _) = api.post("/v1/jobs", &clinic, &keyed).await;
    assert_eq!(status, 202);
    // A replay is not a new job and costs nothing; a batch that does not fit is refused whole.
    let (status, _) = api.post("/v1/jobs", &clinic, &keyed).await;
    assert_eq!(status, 200);
    let (status, body) = api.post("/v1/jobs/batch", &clinic, &json!({"jobs": [hook(5)]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{body}");
    let response = api.http.post(format!("{}/v1/jobs", api.url)).bearer_auth(&clinic).json(&hook(6)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    let details = &body["error"]["details"];
    assert_eq!((&details["quota"], &details["limit"], &details["used"]), (&json!("jobs_per_day"), &json!(4), &json!(4.0)), "{body}");
    assert!(details["resets_at"].is_string(), "{body}");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 4);

    // SMS count one per number, against the server's default quota.
    let sms = |numbers: &[&str]| json!({"type": "sms", "payload": {"mode": "send", "receptors": numbers, "message": "نوبت شما فردا"}});
    let (status, _) = api.post("/v1/jobs", &shop, &sms(&["09121111111", "09122222222", "09123333333"])).await;
    assert_eq!(status, 202);
    let (status, body) = api.post("/v1/jobs", &shop, &sms(&["09124444444", "09125555555", "09126666666"])).await;
    assert_eq!((status, &body["error"]["details"]["quota"]), (429, &json!("sms_per_day")), "{body}");
    let (status, _) = api.post("/v1/jobs", &shop, &sms(&["09124444444", "09125555555"])).await;
    assert_eq!(status, 202);

    let (_, own) = api.get("/v1/usage", &clinic).await;
    assert_eq!(
        (&own["used"]["jobs"], &own["quotas"]["jobs_per_day"], &own["quotas"]["sms_per_day"]),
        (&json!(4), &json!(4), &json!(5)),
        "{own}"
    );
    let (_, own) = api.get("/v1/usage", &shop).await;
    assert_eq!((&own["used"]["sms"], &own["used"]["jobs"]), (&json!(5), &json!(2)), "{own}");
    let (status, all) = api.get("/v1/admin/usage", &admin).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = all["data"].as_array().unwrap().iter().map(|t| t["tenant"].as_str().unwrap()).collect();
    assert_eq!(names, ["clinic", "shop"], "{all}");

    // Back to the default (none): accepted again once the cache lets go.
    let (_, tenants) = api.get("/v1/admin/tenants", &admin).await;
    let id = tenants["data"].as_array().unwrap().iter().find(|t| t["name"] == "clinic").unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) =
        api.request(reqwest::Method::PATCH, &format!("/v1/admin/tenants/{id}"), Some(&admin), Some(&json!({"jobs_per_day": null}))).await;
    assert_eq!((status, &body["jobs_per_day"]), (200, &json!(null)), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = api.post("/v1/jobs", &clinic, &hook(7)).await;
    assert_eq!(status, 202);
}
