//! Retention and erasure: the sweeper erases what outlived its tenant's
//! retention and nothing else (time moved by settings: days of 0 instead of
//! waiting a month); `DELETE /v1/jobs/{id}` leaves none of a job's content in
//! any table or file, and keeps its bare record.

use std::path::Path;
use std::time::{Duration, Instant};

use peyk_tests::{webhook, Api, Sink, SmtpSink, TestEnv};
use serde_json::{json, Value};

async fn create_endpoint(api: &Api, key: &str, url: &str) {
    let body = json!({ "url": url, "event_types": ["job.succeeded", "job.failed"] });
    let (status, endpoint) = api.post("/v1/webhook-endpoints", key, &body).await;
    assert_eq!(status, 201, "{endpoint}");
}

fn sms(text: &str) -> Value {
    json!({ "type": "sms", "payload": { "mode": "send", "receptors": ["09121234567"], "message": text } })
}

async fn job(api: &Api, key: &str, id: &str) -> Value {
    let (status, job) = api.get(&format!("/v1/jobs/{id}"), key).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

#[tokio::test]
async fn retention_erases_what_outlived_it_and_nothing_else() {
    let env = TestEnv::new("retention").await;
    let clinic = env.create_key("clinic").await;
    let shop = env.create_key("shop").await;
    // The clinic keeps sensitive content, uploads and trails 0 days; other
    // content the default 90. The shop keeps the defaults.
    env.cli(&[
        "set-limits",
        "--tenant",
        "clinic",
        "--retention-sensitive-days",
        "0",
        "--retention-upload-days",
        "0",
        "--retention-trail-days",
        "0",
    ])
    .await;
    let api = env.start_api().await;
    let sink = Sink::start().await;
    create_endpoint(&api, &clinic, &format!("{}/clinic-events", sink.url)).await;
    create_endpoint(&api, &shop, &format!("{}/shop-events", sink.url)).await;

    let clinic_sms = api.submit(&clinic, &sms("CLINIC-PATIENT-TEXT")).await;
    let shop_sms = api.submit(&shop, &sms("SHOP-ORDER-TEXT")).await;
    let clinic_hook = api.submit(&clinic, &webhook(&format!("{}/hook", sink.url), json!({ "note": "CLINIC-WEBHOOK-BODY" }))).await;
    let mut refused = webhook("http://127.0.0.1:1/nobody-listens", json!({}));
    refused["max_attempts"] = json!(1);
    let clinic_failed = api.submit(&clinic, &refused).await;
    let unused = api.upload(&clinic, "unused.bin", b"CLINIC-UNUSED-UPLOAD".to_vec()).await;
    let needed = api.upload(&clinic, "needed.bin", b"CLINIC-NEEDED-UPLOAD".to_vec()).await;
    let shop_upload = api.upload(&shop, "shop.bin", b"SHOP-UPLOAD".to_vec()).await;
    // Due in an hour: its upload is kept while it waits.
    let waiting = api.submit(&clinic, &json!({ "type": "transcription", "payload": { "file_id": needed }, "delay_seconds": 3600 })).await;

    let worker = env.start_worker_with(&[("PEYK_RETENTION_SWEEP_SECONDS", "0.3")]).await;
    for (key, id, status) in [
        (&clinic, &clinic_sms, "succeeded"),
        (&shop, &shop_sms, "succeeded"),
        (&clinic, &clinic_hook, "succeeded"),
        (&clinic, &clinic_failed, "dead"),
    ] {
        api.wait_for_status(key, id, status, Duration::from_secs(30)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let erased = env
            .sql_count(
                "SELECT count(*) AS n FROM webhook_messages m JOIN tenants t ON t.id = m.tenant_id
                 WHERE t.name = 'clinic' AND m.erased_at IS NULL",
            )
            .await;
        let sms_erased = job(&api, &clinic, &clinic_sms).await["erased_at"].is_string();
        let unused_erased = api.get(&format!("/v1/files/{unused}"), &clinic).await.1["erased_at"].is_string();
        if erased == 0 && sms_erased && unused_erased {
            break;
        }
        assert!(Instant::now() < deadline, "not erased within 20 s: {erased} messages left, sms {sms_erased}, upload {unused_erased}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Sensitive content of the clinic: gone, the bare record kept.
    let erased = job(&api, &clinic, &clinic_sms).await;
    assert_eq!(
        (erased["status"].as_str(), &erased["payload"], &erased["result"]),
        (Some("succeeded"), &json!({}), &Value::Null),
        "{erased}"
    );
    assert!(erased["finished_at"].is_string() && erased["attempts"] == 1, "{erased}");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM sms_outbox WHERE message IS NOT NULL AND receptor = '09121234567' AND tenant_id = (SELECT id FROM tenants WHERE name = 'clinic')").await, 0);
    // The clinic's other content keeps its 90 days; its trail goes.
    let hook = job(&api, &clinic, &clinic_hook).await;
    assert_eq!((hook["payload"]["body"]["note"].as_str(), &hook["erased_at"]), (Some("CLINIC-WEBHOOK-BODY"), &Value::Null), "{hook}");
    let failed = job(&api, &clinic, &clinic_failed).await;
    assert!(!failed["error"]["message"].as_str().unwrap_or_default().is_empty(), "the job's own error is content (90 days): {failed}");
    let (_, attempts) = api.get(&format!("/v1/jobs/{clinic_failed}/attempts"), &clinic).await;
    assert_eq!(attempts["data"][0]["error"]["message"], "", "attempt errors are trail (0 days): {attempts}");
    assert!(attempts["data"][0]["error"]["code"].is_string(), "{attempts}");
    // Uploads: the unused one erased, bytes and all; the one a waiting job names kept.
    let (_, file) = api.get(&format!("/v1/files/{unused}"), &clinic).await;
    assert_eq!((file["filename"].as_str(), file["sha256"].as_str()), (Some(""), Some("")), "{file}");
    assert!(!any_file_holds(&env.files_dir(), b"CLINIC-UNUSED-UPLOAD"));
    assert!(any_file_holds(&env.files_dir(), b"CLINIC-NEEDED-UPLOAD"));
    assert_eq!(api.get(&format!("/v1/files/{needed}"), &clinic).await.1["erased_at"], Value::Null);
    assert_eq!(job(&api, &clinic, &waiting).await["payload"]["file_id"], needed.as_str());
    // A job naming an erased upload is refused, naming the field.
    let (status, body) = api.post("/v1/jobs", &clinic, &json!({ "type": "transcription", "payload": { "file_id": unused } })).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].as_str()), (422, Some("payload.file_id")), "{body}");

    // The shop keeps everything (defaults: 30, 90, 7, 30 days).
    let shop_job = job(&api, &shop, &shop_sms).await;
    assert_eq!((shop_job["payload"]["message"].as_str(), &shop_job["erased_at"]), (Some("SHOP-ORDER-TEXT"), &Value::Null));
    assert_eq!(api.get(&format!("/v1/files/{shop_upload}"), &shop).await.1["erased_at"], Value::Null);
    let shop_messages =
        "SELECT count(*) AS n FROM webhook_messages m JOIN tenants t ON t.id = m.tenant_id WHERE t.name = 'shop' AND m.erased_at IS NULL";
    assert!(env.sql_count(shop_messages).await > 0);

    // A backup holds the shop's text and none of the clinic's.
    let dump = env.pg_dump().await;
    assert!(dump.contains("SHOP-ORDER-TEXT"));
    assert!(!dump.contains("CLINIC-PATIENT-TEXT"), "the clinic's SMS text is still in the database");

    let metrics = env.http.get(format!("{}/metrics", worker.metrics_url)).send().await.unwrap().text().await.unwrap();
    for what in ["job", "message", "attempt_error", "sms", "upload"] {
        assert!(metrics.contains(&format!("peyk_retention_erased_total{{what=\"{what}\"}}")), "{what}: {metrics}");
    }
}

#[tokio::test]
async fn retention_is_set_per_tenant_by_admins_with_each_field_checked() {
    let env = TestEnv::new("retention-admin").await;
    let key = env.create_key("clinic").await;
    let admin = env.create_admin_key().await;
    let api = env.start_api().await;
    let (_, tenants) = api.get("/v1/admin/tenants", &admin).await;
    let clinic = tenants["data"].as_array().unwrap().iter().find(|t| t["name"] == "clinic").unwrap().clone();
    assert_eq!(clinic["retention"], json!({ "sensitive_days": null, "content_days": null, "upload_days": null, "trail_days": null }));
    let path = format!("/v1/admin/tenants/{}", clinic["id"].as_str().unwrap());

    let (status, body) = api
        .request(reqwest::Method::PATCH, &path, Some(&admin), Some(&json!({ "retention": { "sensitive_days": -1, "trail_days": 40000 } })))
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["retention.sensitive_days", "retention.trail_days"]);
    let (status, body) = api.request(reqwest::Method::PATCH, &path, Some(&admin), Some(&json!({ "retention": { "forever": true } }))).await;
    assert_eq!(status, 422, "{body}");

    let (status, body) = api
        .request(reqwest::Method::PATCH, &path, Some(&admin), Some(&json!({ "retention": { "sensitive_days": 7.5, "upload_days": 1 } })))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention"], json!({ "sensitive_days": 7.5, "content_days": null, "upload_days": 1.0, "trail_days": null }));
    let (status, body) =
        api.request(reqwest::Method::PATCH, &path, Some(&admin), Some(&json!({ "retention": { "sensitive_days": null } }))).await;
    assert_eq!((status, &body["retention"]["sensitive_days"], &body["retention"]["upload_days"]), (200, &Value::Null, &json!(1.0)));
    // A tenant's own key may not change it.
    let (status, body) =
        api.request(reqwest::Method::PATCH, &path, Some(&key), Some(&json!({ "retention": { "sensitive_days": 0 } }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("missing_scope")));
}

#[tokio::test]
async fn deleting_a_job_leaves_none_of_its_content_in_any_table_or_file() {
    const MARK: &str = "ERASE-ME-7f3a";
    let env = TestEnv::new("erase").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("shop").await;
    let api = env.start_api().await;
    let smtp = SmtpSink::start("erase").await;
    let sink = Sink::start().await;
    create_endpoint(&api, &key, &format!("{}/events", sink.url)).await;
    let _worker = env.start_worker_with(&[("PEYK_SMTP_URL", &smtp.url()), ("PEYK_EMAIL_FROM", "noreply@clinic.test")]).await;

    let own = api.upload(&key, &format!("{MARK}-report.pdf"), format!("%PDF-1.4 {MARK}-ATTACHMENT").into_bytes()).await;
    let shared = api.upload(&key, "letterhead.pdf", b"%PDF-1.4 letterhead".to_vec()).await;
    let email = json!({ "type": "email", "metadata": { "patient": MARK }, "callback_url": format!("{}/callback", sink.url), "payload": {
        "to": ["patient@example.com"], "subject": format!("{MARK} results"), "text": format!("{MARK}: your results are attached"),
        "attachments": [{ "file_id": own, "filename": "report.pdf" }, { "file_id": shared, "filename": "letterhead.pdf" }] } });
    let id = api.submit(&key, &email).await;
    // Another job, due in an hour, needs the shared upload.
    let later = json!({ "type": "email", "delay_seconds": 3600, "payload": {
        "to": ["patient@example.com"], "subject": "later", "text": "later",
        "attachments": [{ "file_id": shared, "filename": "letterhead.pdf" }] } });
    let waiting = api.submit(&key, &later).await;
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(30)).await;
    smtp.wait_for(1, Duration::from_secs(10)).await;
    sink.wait_for(2, Duration::from_secs(20)).await; // the endpoint's event and the job's callback
    assert!(env.pg_dump().await.contains(MARK), "the test's mark is in the database before the erasure");

    // Not finished: refused. Another tenant's: not found.
    let (status, body) = api.request(reqwest::Method::DELETE, &format!("/v1/jobs/{waiting}"), Some(&key), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_not_finished")), "{body}");
    let (status, _) = api.request(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"), Some(&other), None).await;
    assert_eq!(status, 404);

    let (status, erased) = api.request(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"), Some(&key), None).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["files_erased"], json!([own]), "{erased}");
    assert_eq!(erased["files_kept"], json!([shared]), "{erased}");
    assert_eq!(erased["messages_erased"], 2, "{erased}");
    let bare = &erased["job"];
    assert_eq!((&bare["payload"], &bare["result"], &bare["metadata"]), (&json!({}), &Value::Null, &json!({})), "{bare}");
    assert_eq!((bare["status"].as_str(), bare["type"].as_str()), (Some("succeeded"), Some("email")));
    assert!(bare["erased_at"].is_string() && bare["created_at"].is_string() && bare["finished_at"].is_string());
    assert!(bare.get("callback_url").is_none(), "{bare}");

    let dump = env.pg_dump().await;
    assert!(
        !dump.contains(MARK),
        "the job's content is still in the database: {}",
        dump.lines().filter(|l| l.contains(MARK)).collect::<Vec<_>>().join("\n")
    );
    assert!(!any_file_holds(&env.files_dir(), MARK.as_bytes()), "the job's upload is still in the file store");
    assert!(any_file_holds(&env.files_dir(), b"letterhead"), "the upload another job needs is kept");
    let (_, file) = api.get(&format!("/v1/files/{own}"), &key).await;
    assert!(file["erased_at"].is_string() && file["filename"] == "", "{file}");

    // Again: nothing more to erase; the erased job cannot run again.
    let (status, again) = api.request(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"), Some(&key), None).await;
    assert_eq!((status, &again["job"]["erased_at"]), (200, &bare["erased_at"]), "{again}");
    let (status, body) = api.post(&format!("/v1/jobs/{id}/retry"), &key, &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_retryable")), "{body}");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM audit_log WHERE action = 'job.erased'").await, 2);

    // DELETE /v1/files/{id} erases an upload the same way.
    let (status, file) = api.request(reqwest::Method::DELETE, &format!("/v1/files/{shared}"), Some(&key), None).await;
    assert_eq!((status, file["filename"].as_str()), (200, Some("")), "{file}");
    assert!(file["erased_at"].is_string() && file["size_bytes"].as_i64() > Some(0));
    assert!(!any_file_holds(&env.files_dir(), b"letterhead"));
}
