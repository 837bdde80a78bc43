//! Webhook delivery: Standard Webhooks signatures checked by an independent
//! implementation, SSRF refusal, redirects, Retry-After, timeouts.

use std::time::Duration;

use peyk_tests::signatures::verify;
use peyk_tests::{webhook, Reply, Sink, TestEnv};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn deliveries_are_signed_and_keep_their_id_across_retries() {
    let env = TestEnv::new("wh-sign").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(500), Reply::status(200)]);
    let mut job = webhook(&format!("{}/signed", sink.url), json!({"event": "invoice.paid", "amount": 1200, "text": "سلام"}));
    job["payload"]["secret"] = json!(SECRET);
    job["payload"]["event_type"] = json!("invoice.paid");
    job["payload"]["headers"] = json!({"x-tenant-ref": "abc", "Authorization": "Bearer s3cret-t0ken"});
    let id = api.submit(&key, &job).await;
    let shown = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(10)).await;
    // Header values are credentials: shown by name only, delivered whole.
    assert_eq!(shown["payload"]["headers"], json!({"x-tenant-ref": "****", "Authorization": "****"}), "{shown}");
    let (_, listed) = api.get("/v1/jobs", &key).await;
    assert!(!listed.to_string().contains("s3cret-t0ken") && !listed.to_string().contains(SECRET), "{listed}");

    let received = sink.received();
    assert_eq!(received.len(), 2);
    for delivery in &received {
        assert!(verify(SECRET, &delivery.headers, &delivery.body), "signature does not verify: {:?}", delivery.headers);
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &delivery.headers, &delivery.body));
        assert_eq!(delivery.headers["content-type"], "application/json");
        assert_eq!(delivery.headers["webhook-event-type"], "invoice.paid");
        assert_eq!(delivery.headers["x-tenant-ref"], "abc");
        assert_eq!(delivery.headers["authorization"], "Bearer s3cret-t0ken");
        let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["text"], "سلام");
        let timestamp: i64 = delivery.headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 30);
    }
    assert_eq!(received[0].headers["webhook-id"], received[1].headers["webhook-id"], "retries keep the message id");
    // A tampered body does not verify.
    assert!(!verify(SECRET, &received[0].headers, b"{\"event\":\"invoice.paid\",\"amount\":9999}"));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let env = TestEnv::new("wh-ssrf").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    // A proxy in the environment must not carry deliveries past the guard.
    let proxy = Sink::start().await;
    let mut settings = vec![("PEYK_WEBHOOK_ALLOWED_NETWORKS", "")];
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        settings.push((name, proxy.url.as_str()));
    }
    let _worker = env.start_worker_with(&settings).await;
    let sink = Sink::start().await;
    let port = sink.url.rsplit(':').next().unwrap().to_string();
    let mut ids = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://[::1]:{port}/x"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://10.1.2.3/x".to_string(),
    ] {
        ids.push((url.clone(), api.submit(&key, &webhook(&url, json!({}))).await));
    }
    for (url, id) in ids {
        let job = api.wait_for_status(&key, &id, "failed", Duration::from_secs(10)).await;
        assert_eq!(job["error"]["code"], "blocked_address", "{url}: {job}");
        assert_eq!(job["attempts"], 1, "refusal is permanent: {url}");
        let message = job["error"]["message"].as_str().unwrap();
        assert!(message.contains("PEYK_WEBHOOK_ALLOWED_NETWORKS"), "{message}");
        if url.contains("localhost") {
            assert!(!message.contains("127.0.0.1") && !message.contains("::1"), "the resolved address is not told: {message}");
        }
    }
    assert_eq!(sink.count(), 0, "nothing may reach the private address");
    assert_eq!(proxy.count(), 0, "nor the proxy of the environment");
}

#[tokio::test]
async fn redirects_are_not_followed_and_gone_is_permanent() {
    let env = TestEnv::new("wh-redirect").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(302).header("location", &format!("{}/elsewhere", sink.url)), Reply::status(410)]);
    let redirected = api.submit(&key, &webhook(&format!("{}/moved", sink.url), json!({}))).await;
    let job = api.wait_for_status(&key, &redirected, "failed", Duration::from_secs(10)).await;
    assert_eq!(job["error"]["code"], "http_302");
    assert!(job["error"]["message"].as_str().unwrap().contains("not followed"));
    let gone = api.submit(&key, &webhook(&format!("{}/gone", sink.url), json!({}))).await;
    let job = api.wait_for_status(&key, &gone, "failed", Duration::from_secs(10)).await;
    assert_eq!((job["error"]["code"].as_str(), job["attempts"].as_i64()), (Some("http_410"), Some(1)));
    let paths: Vec<String> = sink.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/moved", "/gone"], "the redirect target must never be called");
}

#[tokio::test]
async fn retry_after_is_honoured_and_timeouts_are_retried() {
    let env = TestEnv::new("wh-retry-after").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker_with(&[("PEYK_RETRY_MAX_SECONDS", "30")]).await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(429).header("retry-after", "3"), Reply::status(200)]);
    let id = api.submit(&key, &webhook(&format!("{}/limited", sink.url), json!({}))).await;
    let received = sink.wait_for(2, Duration::from_secs(15)).await;
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_secs(3), "retried after {gap:?}, before Retry-After: 3");
    assert!(gap < Duration::from_secs(5), "retried after {gap:?}");
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(5)).await;

    // A slow endpoint: the attempt times out and is retried.
    sink.reply([Reply::status(200).delay(Duration::from_secs(3))]);
    let mut slow = webhook(&format!("{}/slow", sink.url), json!({}));
    slow["payload"]["timeout_seconds"] = json!(1);
    let id = api.submit(&key, &slow).await;
    let job = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(15)).await;
    assert_eq!(job["attempts"], 2);
    let (_, attempts) = api.get(&format!("/v1/jobs/{id}/attempts"), &key).await;
    assert_eq!(attempts["data"][0]["error"]["code"], "timeout");

    // Connection refused: retried, then dead.
    let closed = format!("http://127.0.0.1:{}/nobody", peyk_tests::free_port());
    let mut job = webhook(&closed, json!({}));
    job["max_attempts"] = json!(2);
    let id = api.submit(&key, &job).await;
    let job = api.wait_for_status(&key, &id, "dead", Duration::from_secs(15)).await;
    assert_eq!(job["error"]["code"], "connection_failed");
}
