use std::time::Duration;

use peyk_tests::{webhook, Sink, TestEnv};

#[tokio::test]
async fn a_webhook_job_is_delivered() {
    let env = TestEnv::new("smoke").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    let id = api.submit(&key, &webhook(&format!("{}/hook", sink.url), serde_json::json!({"hello": "world"}))).await;
    let job = api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(job["result"]["status_code"], 200);
    assert_eq!(sink.count(), 1);
}
