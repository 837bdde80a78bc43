//! Secrets at rest: no gateway credential or signing secret is in a dump of
//! the database, and a new key seals everything again while jobs run.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use peyk_tests::signatures::verify;
use peyk_tests::sink::Sink;
use peyk_tests::{TestEnv, TEST_SECRETS_KEY};
use reqwest::Method;
use serde_json::json;
use sha2::Sha256;

/// The key rotated to (32 bytes of 0x22).
const NEW_KEY: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";

const STRIPE_KEY: &str = "sk_live_51HxPlainTextMustNeverBeStored";
const ENDPOINT_SECRET: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
const TARGET_SECRET: &str = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA==";
const SOURCE_SECRET: &str = "whsec_enl4d3Z1dHNycXBvbm1sa2ppaGdmZWRjYmE=";

fn key_id(base64: &str) -> String {
    peyk_schema::sealed::key_id(&STANDARD.decode(base64).unwrap().try_into().unwrap())
}

fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap()).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn no_secret_is_in_a_dump_and_a_new_key_seals_everything_while_jobs_run() {
    let env = TestEnv::new("secrets").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let events = Sink::start().await;
    let mut answers = Vec::new();
    for (path, body) in [
        ("/v1/payment-accounts/stripe", json!({ "credentials": { "secret_key": STRIPE_KEY } })),
        ("/v1/task-targets/notify", json!({ "url": "https://example.com/tasks", "secret": TARGET_SECRET })),
        ("/v1/inbound-sources/lab", json!({ "secret": SOURCE_SECRET })),
    ] {
        let (status, answer) = api.request(Method::PUT, path, Some(&key), Some(&body)).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answers.push(answer);
    }
    let inbound_path = answers[2]["path"].as_str().unwrap().to_string();
    let (status, endpoint) = api
        .post("/v1/webhook-endpoints", &key, &json!({ "url": events.url, "secret": ENDPOINT_SECRET, "event_types": ["job.succeeded"] }))
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    // A rotated endpoint keeps its old secret for a while: sealed too.
    let (status, _) = api
        .post(
            &format!("/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
            &key,
            &json!({ "secret": ENDPOINT_SECRET, "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(status, 200);

    let plain = env.pg_dump().await;
    for secret in [STRIPE_KEY, ENDPOINT_SECRET, TARGET_SECRET, SOURCE_SECRET] {
        assert!(!plain.contains(secret) && !plain.contains(secret.trim_start_matches("whsec_")), "{secret} is in the dump");
    }
    let old_id = key_id(TEST_SECRETS_KEY);
    assert!(plain.matches(&format!("peyk:v1:{old_id}:")).count() >= 5, "sealed with the test key");

    // Every process gets the new key, the old one only to read; jobs run
    // (each announced to the endpoint, signed) while the secrets are sealed again.
    drop(api);
    let both = [("PEYK_SECRETS_KEY", NEW_KEY), ("PEYK_SECRETS_OLD_KEYS", TEST_SECRETS_KEY)];
    let api = env.start_api_with(&both).await;
    let _worker = env.start_worker_with(&both).await;
    let sink = Sink::start().await;
    let submitting = async {
        let mut ids = Vec::new();
        for n in 0..100 {
            ids.push(api.submit(&key, &json!({ "type": "webhook", "payload": { "url": format!("{}/n{n}", sink.url), "body": {} } })).await);
        }
        ids
    };
    let (ids, rotated) = tokio::join!(submitting, env.cli_with(&["rotate-secrets-key", "--batch", "2"], &both));
    assert!(rotated.contains(&format!("sealed with key {}", key_id(NEW_KEY))), "{rotated}");
    for id in &ids {
        api.wait_for_status(&key, id, "succeeded", Duration::from_secs(60)).await;
    }
    assert_eq!(sink.count(), 100);
    let announced = events.wait_for(100, Duration::from_secs(60)).await;
    assert!(
        announced.iter().all(|event| verify(ENDPOINT_SECRET, &event.headers, &event.body)),
        "every event signed with the endpoint's secret"
    );

    let after = env.pg_dump().await;
    assert!(!after.contains(&format!("peyk:v1:{old_id}:")), "nothing left under the old key");
    assert!(after.matches(&format!("peyk:v1:{}:", key_id(NEW_KEY))).count() >= 5);

    // The old key can go: everything still reads.
    drop(api);
    let api = env.start_api_with(&[("PEYK_SECRETS_KEY", NEW_KEY)]).await;
    let (_, secret) = api.get(&format!("/v1/webhook-endpoints/{endpoint_id}/secret"), &key).await;
    assert_eq!(secret["secret"], ENDPOINT_SECRET, "{secret}");
    let (_, accounts) = api.get("/v1/payment-accounts", &key).await;
    assert_eq!(accounts["data"][0]["gateway"], "stripe", "{accounts}");
    let body = r#"{"type":"lab.ready"}"#;
    let now = chrono::Utc::now().timestamp();
    let response = api
        .http
        .post(format!("{}{inbound_path}", api.url))
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sign(SOURCE_SECRET, "msg_1", now, body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the inbound source's secret still verifies: {}", response.text().await.unwrap());
    assert!(!accounts.to_string().contains(STRIPE_KEY));
}
