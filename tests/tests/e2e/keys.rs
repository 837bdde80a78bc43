//! API keys: scopes (each operation's, as the served document declares it,
//! allowed and refused), listing, revocation across API processes within a
//! second, expiry, unknown keys remembered, and the audit log.

use std::time::{Duration, Instant};

use peyk_tests::{Api, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};

const TENANT_SCOPES: [&str; 7] =
    ["jobs:read", "jobs:write", "files", "payments:read", "payments:write", "payments:admin", "webhooks:admin"];

async fn issue(api: &Api, admin: &str, body: Value) -> Value {
    let (status, created) = api.post("/v1/admin/keys", admin, &body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn key(created: &Value) -> String {
    created["key"].as_str().unwrap().to_string()
}

/// Every operation of the served document that names a scope: refused
/// (`403`, naming it) to a key with every other scope, let through to a
/// key with only that one; public operations need no key.
#[tokio::test]
async fn each_operation_allows_its_scope_and_refuses_the_others() {
    let env = TestEnv::new("keys-scopes").await;
    let api = env.start_api().await;
    let admin = env.create_admin_key().await;
    let mut only = std::collections::HashMap::new();
    let mut without = std::collections::HashMap::new();
    for scope in TENANT_SCOPES.iter().chain(&["admin"]) {
        let created = issue(&api, &admin, json!({ "tenant": "clinic", "name": format!("only {scope}"), "scopes": [scope] })).await;
        assert_eq!(created["scopes"], json!([scope]), "{created}");
        only.insert(scope.to_string(), key(&created));
        let others: Vec<&str> = TENANT_SCOPES.iter().chain(&["admin"]).filter(|s| *s != scope).copied().collect();
        without.insert(scope.to_string(), key(&issue(&api, &admin, json!({ "tenant": "clinic", "scopes": others })).await));
    }

    let (_, document) = api.request(Method::GET, "/openapi.json", None, None).await;
    let (mut secured, mut public) = (0, 0);
    for (path, item) in document["paths"].as_object().unwrap() {
        let concrete = path.split('/').map(|part| if part.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { part.to_string() });
        let concrete = concrete.collect::<Vec<_>>().join("/");
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let scopes = operation["security"][0]["api_key"].as_array().cloned();
            let Some(scopes) = scopes else {
                // Public: no key needed (an answer other than 401).
                let (status, answer) = api.request(method.clone(), &concrete, None, body.as_ref()).await;
                assert_ne!(status, 401, "{method} {path} is public: {answer}");
                public += 1;
                continue;
            };
            assert_eq!(scopes.len(), 1, "{method} {path} names one scope");
            let scope = scopes[0].as_str().unwrap();
            let (status, answer) = api.request(method.clone(), &concrete, Some(&without[scope]), body.as_ref()).await;
            assert_eq!(
                (status, &answer["error"]["code"], &answer["error"]["details"]["scope"]),
                (403, &json!("missing_scope"), &json!(scope)),
                "{method} {path}: {answer}"
            );
            let (status, answer) = api.request(method.clone(), &concrete, Some(&only[scope]), body.as_ref()).await;
            assert!(![401, 403].contains(&status), "{method} {path} with `{scope}`: {status} {answer}");
            let (status, _) = api.request(method.clone(), &concrete, None, body.as_ref()).await;
            assert_eq!(status, 401, "{method} {path} without a key");
            secured += 1;
        }
    }
    assert!(secured >= 65 && public >= 5, "{secured} secured and {public} public operations checked");
    // A job submitted with `jobs:write` alone, read with `jobs:read` alone.
    let id =
        api.submit(&only["jobs:write"], &json!({ "type": "webhook", "payload": { "url": "https://example.com/hook", "body": {} } })).await;
    assert_eq!(api.job(&only["jobs:read"], &id).await["id"], id.as_str());
}

/// A revoked key is refused by another API process within a second; keys
/// list without their secret; an expired key is refused with its own code;
/// the audit log says who did each.
#[tokio::test]
async fn revoked_keys_stop_everywhere_within_a_second_and_expired_ones_stop() {
    let env = TestEnv::new("keys-revoke").await;
    let (first, second) = (env.start_api().await, env.start_api().await);
    let admin = env.create_admin_key().await;
    let created =
        issue(&first, &admin, json!({ "tenant": "shop", "name": "checkout server", "scopes": ["jobs:read", "jobs:write"] })).await;
    let tenant_key = key(&created);
    assert_eq!(created["prefix"], &tenant_key[..12]);
    // Both processes hold it in their cache.
    for api in [&first, &second] {
        assert_eq!(api.get("/v1/jobs", &tenant_key).await.0, 200);
    }

    let (status, revoked) =
        first.request(Method::DELETE, &format!("/v1/admin/keys/{}", created["id"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!(status, 200, "{revoked}");
    let started = Instant::now();
    assert_eq!(first.get("/v1/jobs", &tenant_key).await.0, 401, "the revoking process at once");
    while second.get("/v1/jobs", &tenant_key).await.0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(1), "the second process still takes the revoked key after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("refused by the second process {:?} after the revocation", started.elapsed());

    // Listed with prefix, name, scopes and last use; never the key or its hash.
    let (_, listed) = first.get("/v1/admin/keys?include_revoked=true", &admin).await;
    let row = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == created["id"]).expect("listed").clone();
    assert_eq!((&row["name"], &row["scopes"]), (&json!("checkout server"), &json!(["jobs:read", "jobs:write"])), "{row}");
    assert!(row["revoked_at"].is_string() && row["last_used_at"].is_string(), "{row}");
    assert!(!listed.to_string().contains(&tenant_key) && row.get("key").is_none() && row.get("key_hash").is_none(), "{listed}");
    let (_, working) = first.get("/v1/admin/keys", &admin).await;
    assert!(working["data"].as_array().unwrap().iter().all(|k| k["revoked_at"].is_null()), "{working}");

    // The command line: a key that lives two seconds, revoked by prefix.
    let short = env.create_key_with(&["--tenant", "shop", "--scope", "jobs:read", "--expires-in", "2s"]).await;
    assert_eq!(second.get("/v1/jobs", &short).await.0, 200);
    assert_eq!(second.post("/v1/jobs", &short, &json!({})).await.0, 403);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, answer) = second.get("/v1/jobs", &short).await;
    assert_eq!((status, &answer["error"]["code"]), (401, &json!("key_expired")), "{answer}");
    let listed = env.cli_stdout(&["list-keys", "--tenant", "shop"]).await;
    assert!(listed.contains(&short[..12]) && !listed.contains(&tenant_key[..12]), "{listed}");
    env.cli(&["revoke-key", &short[..12]]).await;
    assert!(!env.cli_stdout(&["list-keys", "--tenant", "shop"]).await.contains(&short[..12]));

    // Who did what.
    let (status, audit) = first.get("/v1/admin/audit?action=key.revoked", &admin).await;
    assert_eq!(status, 200, "{audit}");
    let actors: Vec<(&str, &str)> =
        audit["data"].as_array().unwrap().iter().map(|e| (e["actor"].as_str().unwrap(), e["target"].as_str().unwrap())).collect();
    assert_eq!(actors.len(), 2, "{audit}");
    assert_eq!(actors[1], (&admin[..12], created["id"].as_str().unwrap()), "{audit}");
    assert_eq!(actors[0].0, "cli", "{audit}");
    assert_eq!(first.get("/v1/admin/audit", &tenant_key).await.0, 401);
}

/// Bad keys cost one database lookup each, however often they are sent;
/// credentials changed, secrets read and jobs cancelled are audited with
/// the key that did it.
#[tokio::test]
async fn unknown_keys_are_remembered_and_sensitive_actions_audited() {
    let env = TestEnv::new("keys-audit").await;
    let api = env.start_api().await;
    let admin = env.create_admin_key().await;
    let tenant_key = env.create_key("clinic").await;
    let lookups = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("peyk_api_key_lookups_total{found=\"no\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = lookups(&api.metrics().await);
    let stranger = format!("peyk_{}", "x".repeat(43));
    for _ in 0..50 {
        assert_eq!(api.get("/v1/jobs", &stranger).await.0, 401);
    }
    assert_eq!(lookups(&api.metrics().await) - before, 1, "one lookup for fifty requests");

    let (status, _) = api
        .request(
            Method::PUT,
            "/v1/payment-accounts/zarinpal",
            Some(&tenant_key),
            Some(&json!({ "credentials": { "merchant_id": "7a1b3c5d-0000-4000-8000-000000000001" } })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, endpoint) = api.post("/v1/webhook-endpoints", &tenant_key, &json!({ "url": "https://example.com/events" })).await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/v1/webhook-endpoints/{endpoint_id}/secret"), &tenant_key).await.0, 200);
    let job = api
        .submit(
            &tenant_key,
            &json!({ "type": "webhook", "payload": { "url": "https://example.com/hook", "body": {} }, "delay_seconds": 3600 }),
        )
        .await;
    assert_eq!(api.post(&format!("/v1/jobs/{job}/cancel"), &tenant_key, &json!({})).await.0, 200);

    let (_, audit) = api.get("/v1/admin/audit?limit=200", &admin).await;
    let entries = audit["data"].as_array().unwrap();
    let by = |action: &str| entries.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("no {action} in {audit}")).clone();
    for (action, target) in [
        ("payment_account.changed", "zarinpal"),
        ("webhook_endpoint.created", endpoint_id),
        ("webhook_endpoint.secret_read", endpoint_id),
        ("job.cancelled", job.as_str()),
    ] {
        let entry = by(action);
        assert_eq!((entry["actor"].as_str().unwrap(), entry["target"].as_str().unwrap()), (&tenant_key[..12], target), "{entry}");
        assert!(entry["tenant_id"].is_string() && entry["actor_key_id"].is_string(), "{entry}");
    }
    // No secret in the log.
    assert!(!audit.to_string().contains("7a1b3c5d-0000-4000-8000-000000000001"), "{audit}");
    let (status, answer) = api.get("/v1/admin/audit", &tenant_key).await;
    assert_eq!((status, &answer["error"]["details"]["scope"]), (403, &json!("admin")), "{answer}");
}
