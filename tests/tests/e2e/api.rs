//! The HTTP API: bad input, tenancy, idempotency, listing, documents, health.

use peyk_tests::{webhook, TestEnv};
use serde_json::{json, Value};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_naming_the_field() {
    let env = TestEnv::new("bad-input").await;
    let key = env.create_key("acme").await;
    let api = env.start_api_with(&[("PEYK_MAX_BODY_BYTES", "4096")]).await;
    let url = format!("{}/v1/jobs", api.url);

    // Unknown type: lists the valid ones.
    let (status, body) = api.post("/v1/jobs", &key, &json!({"type": "fax", "payload": {}})).await;
    assert_eq!(status, 422);
    assert_eq!(error_code(&body), "unknown_job_type");
    assert_eq!(error_fields(&body), ["type"]);
    assert!(body["error"]["details"]["valid_types"].as_array().unwrap().contains(&json!("webhook")));

    // Invalid payload: each field named with its path.
    let (status, body) = api
        .post(
            "/v1/jobs",
            &key,
            &json!({"type": "webhook", "payload": {"url": "ftp://x", "body": {}, "timeout_seconds": 500, "secret": "abc"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "validation_failed");
    assert_eq!(error_fields(&body), ["payload.url", "payload.secret", "payload.timeout_seconds"]);

    // Missing field and wrong type inside the payload.
    let (status, body) = api.post("/v1/jobs", &key, &json!({"type": "webhook", "payload": {"body": {}}})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("url"), "{body}");
    let (status, body) = api.post("/v1/jobs", &key, &json!({"type": "webhook", "payload": {"url": 5, "body": {}}})).await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&body), ["payload.url"]);

    // Top-level options.
    let good = webhook("https://example.com/x", json!({}));
    let mut bad = good.clone();
    bad["max_attempts"] = json!(0);
    bad["priority"] = json!(11);
    bad["delay_seconds"] = json!(5);
    bad["run_at"] = json!("2030-01-01T00:00:00Z");
    let (status, body) = api.post("/v1/jobs", &key, &bad).await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&body), ["max_attempts", "priority", "delay_seconds"]);
    let mut bad = good.clone();
    bad["max_attempts"] = json!("three");
    let (status, body) = api.post("/v1/jobs", &key, &bad).await;
    assert_eq!((status, error_fields(&body)), (422, vec!["max_attempts".to_string()]));
    let mut bad = good.clone();
    bad["colour"] = json!("red");
    let (status, body) = api.post("/v1/jobs", &key, &bad).await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");

    // Malformed JSON, wrong content type, too large.
    let response =
        api.http.post(&url).bearer_auth(&key).header("content-type", "application/json").body("{\"type\": ").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(&response.json().await.unwrap()), "malformed_json");
    let response = api.http.post(&url).bearer_auth(&key).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(error_code(&response.json().await.unwrap()), "unsupported_media_type");
    let huge = webhook("https://example.com/x", json!({"blob": "x".repeat(10_000)}));
    let (status, body) = api.post("/v1/jobs", &key, &huge).await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));

    // Query parameters.
    for (query, field) in
        [("cursor=zzz", "cursor"), ("limit=0", "limit"), ("status=done", "status"), ("type=fax", "type"), ("colour=red", "colour")]
    {
        let (status, body) = api.get(&format!("/v1/jobs?{query}"), &key).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(error_fields(&body), [field], "{query}");
    }

    // Unknown route and method: JSON too.
    let (status, body) = api.get("/v2/nothing", &key).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = api.request(reqwest::Method::DELETE, "/v1/jobs", Some(&key), None).await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));

    // Nothing the client sent caused a 5xx, and nothing was stored.
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 0);
}

#[tokio::test]
async fn keys_are_required_and_tenants_are_isolated() {
    let env = TestEnv::new("tenancy").await;
    let acme = env.create_key("acme").await;
    let globex = env.create_key("globex").await;
    let api = env.start_api().await;
    let job = webhook("https://example.com/x", json!({"n": 1}));

    let (status, body) = api.request(reqwest::Method::POST, "/v1/jobs", None, Some(&job)).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, _) = api.post("/v1/jobs", "peyk_not-a-real-key", &job).await;
    assert_eq!(status, 401);
    let (status, _) = api.post("/v1/jobs", "Basic abc", &job).await;
    assert_eq!(status, 401);

    let id = api.submit(&acme, &job).await;
    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/attempts")] {
        assert_eq!(api.get(&path, &globex).await.0, 404, "{path}");
        assert_eq!(api.get(&path, &acme).await.0, 200, "{path}");
    }
    assert_eq!(api.post(&format!("/v1/jobs/{id}/cancel"), &globex, &json!({})).await.0, 404);
    assert_eq!(api.post(&format!("/v1/jobs/{id}/retry"), &globex, &json!({})).await.0, 404);
    let (_, list) = api.get("/v1/jobs", &globex).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = api.get("/v1/jobs", &acme).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Keys are stored hashed: the plain key appears nowhere in the database.
    let plain =
        env.sql_count(&format!("SELECT count(*) AS n FROM api_keys WHERE encode(key_hash, 'escape') LIKE '%{}%'", &acme[5..])).await;
    assert_eq!(plain, 0);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_job_or_409() {
    let env = TestEnv::new("idempotency").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let mut job = webhook("https://example.com/x", json!({"order": 42}));
    job["idempotency_key"] = json!("order-42");

    let (first_status, first) = api.post("/v1/jobs", &key, &job).await;
    assert_eq!(first_status, 202);
    let (again_status, again) = api.post("/v1/jobs", &key, &job).await;
    assert_eq!(again_status, 200);
    assert_eq!(again["id"], first["id"]);

    let mut different = job.clone();
    different["payload"]["body"] = json!({"order": 43});
    let (status, body) = api.post("/v1/jobs", &key, &different).await;
    assert_eq!((status, error_code(&body)), (409, "idempotency_key_reused"));
    assert_eq!(body["error"]["details"]["job_id"], first["id"]);

    // Another tenant may use the same key for its own job.
    let other = env.create_key("globex").await;
    let (status, body) = api.post("/v1/jobs", &other, &job).await;
    assert_eq!(status, 202);
    assert_ne!(body["id"], first["id"]);

    // Concurrent duplicates: exactly one job is created.
    let mut racing = job.clone();
    racing["idempotency_key"] = json!("race");
    let answers = futures::future::join_all((0..20).map(|_| api.post("/v1/jobs", &key, &racing))).await;
    let created = answers.iter().filter(|(status, _)| *status == 202).count();
    let replayed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, replayed), (1, 19));
    let ids: std::collections::HashSet<_> = answers.iter().map(|(_, body)| body["id"].clone()).collect();
    assert_eq!(ids.len(), 1);

    // Nothing extra was enqueued: three jobs in PostgreSQL and in Redis.
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 3);
    let mut redis = redis::Client::open(env.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let queued: i64 = redis::cmd("HLEN").arg(format!("{}:webhook:data", env.prefix)).query_async(&mut redis).await.unwrap();
    assert_eq!(queued, 3);
    let metrics = api.metrics().await;
    assert!(metrics.contains("peyk_jobs_enqueued_total{type=\"webhook\"} 3"), "{metrics}");
}

#[tokio::test]
async fn a_batch_answers_each_item_as_a_single_submission_would() {
    let env = TestEnv::new("batch").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let sink = peyk_tests::Sink::start().await;
    let hook = |n: i64| webhook(&format!("{}/batch", sink.url), json!({ "n": n }));
    let keyed = |n: i64, key: &str| {
        let mut job = hook(n);
        job["idempotency_key"] = json!(key);
        job
    };
    // Keys used before the batch: one with the same body, one with another.
    assert_eq!(api.post("/v1/jobs", &key, &keyed(7, "earlier-same")).await.0, 202);
    let (_, earlier) = api.post("/v1/jobs", &key, &keyed(8, "earlier-other")).await;

    let mut delayed = hook(3);
    delayed["delay_seconds"] = json!(1);
    delayed["priority"] = json!(5);
    let items = json!([
        hook(0),                                   // 0: 202
        { "type": "webhook", "payload": { "url": "ftp://x", "body": {} } }, // 1: 422 payload.url
        { "type": "fax", "payload": {} },          // 2: 422 unknown type
        5,                                         // 3: 422 not an object
        keyed(1, "in-batch"),                      // 4: 202
        keyed(1, "in-batch"),                      // 5: 200, replay of 4
        keyed(2, "in-batch"),                      // 6: 409
        keyed(7, "earlier-same"),                  // 7: 200
        keyed(9, "earlier-other"),                 // 8: 409
        delayed,                                   // 9: 202, scheduled
        { "type": "webhook", "payload": { "url": "https://example.com", "body": {} }, "max_attempts": 99 }, // 10: 422 max_attempts
        { "type": "transcription", "payload": { "file_id": uuid::Uuid::now_v7(), "model": "tiny.en" } }, // 11: 422, no such file
    ]);
    let (status, answer) = api.post("/v1/jobs/batch", &key, &json!({ "jobs": items })).await;
    assert_eq!(status, 200, "{answer}");
    let data = answer["data"].as_array().unwrap();
    let statuses: Vec<u64> = data.iter().map(|item| item["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [202, 422, 422, 422, 202, 200, 409, 200, 409, 202, 422, 422], "{answer}");
    assert!(data.iter().enumerate().all(|(i, item)| item["index"] == i), "{answer}");
    assert_eq!((answer["accepted"].as_u64(), answer["replayed"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(2), Some(7)));
    let fields = |i: usize| error_fields(&json!({ "error": data[i]["error"] }));
    assert_eq!(fields(1), ["payload.url"]);
    assert_eq!(fields(2), ["type"]);
    assert_eq!(fields(3), ["body"]);
    assert_eq!(fields(10), ["max_attempts"]);
    assert_eq!(fields(11), ["payload.file_id"]);
    assert_eq!(data[5]["id"], data[4]["id"]);
    assert_eq!(data[6]["error"]["code"], "idempotency_key_reused");
    assert_eq!(data[8]["error"]["details"]["job_id"], earlier["id"]);
    assert_eq!(data[9]["job_status"], "scheduled");
    let (_, scheduled) = api.get(&format!("/v1/jobs/{}", data[9]["id"].as_str().unwrap()), &key).await;
    assert_eq!(scheduled["priority"], 5, "{scheduled}");

    // Stored once each, queued, and run.
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 5);
    let _worker = env.start_worker().await;
    for i in [0, 4, 9] {
        api.wait_for_status(&key, data[i]["id"].as_str().unwrap(), "succeeded", std::time::Duration::from_secs(15)).await;
    }
    let metrics = api.metrics().await;
    assert!(metrics.contains("peyk_jobs_enqueued_total{type=\"webhook\"} 5"), "{metrics}");

    // The batch itself: 1 to 1,000 jobs.
    for jobs in [json!([]), Value::Array(vec![hook(0); 1001])] {
        let (status, body) = api.post("/v1/jobs/batch", &key, &json!({ "jobs": jobs })).await;
        assert_eq!((status, error_fields(&body)), (422, vec!["jobs".to_string()]), "{body}");
    }
    let (status, body) = api.post("/v1/jobs/batch", &key, &json!({ "job": [] })).await;
    assert_eq!(status, 422, "{body}");
    // A full batch is accepted in one request.
    let (status, body) = api.post("/v1/jobs/batch", &key, &json!({ "jobs": vec![hook(1); 1000] })).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1000)));
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 1005);
}

#[tokio::test]
async fn listing_is_newest_first_with_cursor_pages_and_filters() {
    let env = TestEnv::new("listing").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(api.submit(&key, &webhook("https://example.com/x", json!({"n": n}))).await);
    }
    let cancelled = &ids[1];
    assert_eq!(api.post(&format!("/v1/jobs/{cancelled}/cancel"), &key, &json!({})).await.0, 200);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=2&cursor={c}"),
            None => "/v1/jobs?limit=2".to_string(),
        };
        let (status, page) = api.get(&path, &key).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let (_, only_cancelled) = api.get("/v1/jobs?status=cancelled", &key).await;
    let data = only_cancelled["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], json!(cancelled));
    let (_, by_type) = api.get("/v1/jobs?type=webhook&status=queued", &key).await;
    assert_eq!(by_type["data"].as_array().unwrap().len(), 4);

    // A status filter looks through 10,000 jobs a page: behind 10,050 newer
    // jobs (inserted as they would be, UUIDv7 ids after the others), the
    // first page is empty and says where to go on; the next finds the job.
    env.sql_exec(&format!(
        "INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, run_at)
         SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1000), 12, '0') || '7000' || '8'
                 || lpad(to_hex(g), 15, '0'))::uuid, tenant_id, 'webhook', 'succeeded', '{{}}', 1, now()
           FROM jobs, generate_series(1, 10050) g WHERE jobs.id = '{cancelled}'"
    ))
    .await;
    let (_, first) = api.get("/v1/jobs?status=cancelled", &key).await;
    assert_eq!(first["data"], json!([]), "{first}");
    let next = first["next_cursor"].as_str().expect("a cursor past the jobs looked through");
    let (_, second) = api.get(&format!("/v1/jobs?status=cancelled&cursor={next}"), &key).await;
    assert_eq!(second["data"][0]["id"], json!(cancelled), "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
    let (_, unfiltered) = api.get("/v1/jobs?limit=200", &key).await;
    assert_eq!(unfiltered["data"].as_array().unwrap().len(), 200, "unfiltered pages stay full");
}

#[tokio::test]
async fn metadata_is_kept_returned_everywhere_and_filters_the_list_on_its_index() {
    let env = TestEnv::new("metadata").await;
    let clinic = env.create_key("clinic").await;
    let other = env.create_key("other").await;
    let api = env.start_api().await;
    let with =
        |metadata: Value| json!({ "type": "webhook", "payload": { "url": "https://example.com/x", "body": {} }, "metadata": metadata });
    let a = api.submit(&clinic, &with(json!({ "appointment": "4242", "clinic": "tehran-3" }))).await;
    let b = api.submit(&clinic, &with(json!({ "appointment": "4242", "clinic": "shiraz-1" }))).await;
    api.submit(&clinic, &with(json!({ "appointment": "4243" }))).await;
    api.submit(&clinic, &webhook("https://example.com/x", json!({}))).await;
    api.submit(&other, &with(json!({ "appointment": "4242" }))).await;

    let (_, job) = api.get(&format!("/v1/jobs/{a}"), &clinic).await;
    assert_eq!(job["metadata"], json!({ "appointment": "4242", "clinic": "tehran-3" }), "{job}");
    let ids = |page: &Value| -> Vec<String> { page["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().into()).collect() };
    let (status, page) = api.get("/v1/jobs?metadata[appointment]=4242", &clinic).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [b.clone(), a.clone()], "only this tenant's jobs of appointment 4242, newest first");
    let (_, page) = api.get("/v1/jobs?metadata[appointment]=4242&metadata[clinic]=tehran-3", &clinic).await;
    assert_eq!(ids(&page), std::slice::from_ref(&a), "several keys: all of them");
    let (_, page) = api.get("/v1/jobs", &clinic).await;
    assert!(page["data"].as_array().unwrap().iter().any(|j| j["metadata"] == json!({})), "none given: {{}}");

    // Bad metadata is refused naming the field; nothing is stored.
    let (status, body) = api.post("/v1/jobs", &clinic, &with(json!({ "appointment": 4242 }))).await;
    assert_eq!((status, error_fields(&body).iter().any(|f| f.starts_with("metadata"))), (422, true), "{body}");
    let (status, body) = api.post("/v1/jobs", &clinic, &with(json!({ "has space": "x", "long": "x".repeat(501) }))).await;
    assert_eq!((status, error_fields(&body)), (422, vec!["metadata.has space".to_string(), "metadata.long".into()]), "{body}");
    let (status, body) = api.get("/v1/jobs?metadata[has%20space]=1", &clinic).await;
    assert_eq!((status, error_fields(&body)), (400, vec!["metadata[has space]".to_string()]), "{body}");
    assert_eq!(env.sql_count("SELECT count(*) AS n FROM jobs").await, 5);

    // A batch item and a pipeline carry theirs; a pipeline's steps carry the pipeline's.
    let (status, batch) = api.post("/v1/jobs/batch", &clinic, &json!({ "jobs": [with(json!({ "batch": "7" }))] })).await;
    assert_eq!((status, &batch["accepted"]), (200, &json!(1)), "{batch}");
    let (status, pipeline) = api
        .post(
            "/v1/pipelines",
            &clinic,
            &json!({ "steps": [{ "type": "webhook", "payload": { "url": "https://example.com/p", "body": {} } }], "metadata": { "visit": "9" } }),
        )
        .await;
    assert_eq!((status, &pipeline["metadata"]), (202, &json!({ "visit": "9" })), "{pipeline}");
    let (_, page) = api.get("/v1/jobs?metadata[visit]=9", &clinic).await;
    assert_eq!(page["data"][0]["pipeline_id"], pipeline["id"], "{page}");
    let (_, page) = api.get("/v1/jobs?metadata[batch]=7", &clinic).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");

    // On many rows the filter is answered from the GIN index, not by reading the tenant's jobs
    // (the list's query, which names the index's condition: jobs without metadata are not in it).
    env.sql_exec(
        "INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, priority, run_at, metadata)
         SELECT gen_random_uuid(), (SELECT tenant_id FROM jobs WHERE metadata->>'appointment' = '4243'), 'webhook', 'queued', '{}',
                1, 0, now(), jsonb_build_object('patient', g::text)
           FROM generate_series(1, 100000) g",
    )
    .await;
    env.sql_exec("ANALYZE jobs").await;
    env.sql_exec(
        "CREATE FUNCTION plan_mentions(query text, needle text) RETURNS bigint LANGUAGE plpgsql AS $$
         DECLARE line text;
         BEGIN
           FOR line IN EXECUTE 'EXPLAIN ' || query LOOP
             IF position(needle IN line) > 0 THEN RETURN 1; END IF;
           END LOOP;
           RETURN 0;
         END $$",
    )
    .await;
    let uses_index = env
        .sql_count(
            "SELECT plan_mentions($q$SELECT * FROM jobs WHERE tenant_id = (SELECT tenant_id FROM jobs WHERE metadata->>'appointment' = '4243')
                                      AND metadata @> '{\"patient\": \"77777\"}' AND jobs.metadata <> '{}'::jsonb ORDER BY id DESC LIMIT 51$q$, 'jobs_metadata') AS n",
        )
        .await;
    assert_eq!(uses_index, 1, "the metadata filter does not use its index");
    let started = std::time::Instant::now();
    let (_, page) = api.get("/v1/jobs?metadata[patient]=77777", &clinic).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?} for one job among 100,000", started.elapsed());
}

#[tokio::test]
async fn job_records_have_every_field_and_hide_secrets() {
    let env = TestEnv::new("record").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let mut job = webhook("https://example.com/x", json!({"a": 1}));
    job["payload"]["secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (status, record) = api.post("/v1/jobs", &key, &job).await;
    assert_eq!(status, 202);
    for field in [
        "id",
        "type",
        "status",
        "attempts",
        "max_attempts",
        "payload",
        "result",
        "error",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "run_at",
    ] {
        assert!(record.get(field).is_some(), "missing {field}: {record}");
    }
    assert_eq!(record["status"], "queued");
    assert_eq!(record["max_attempts"], 8);
    assert_eq!(record["payload"]["secret"], "whsec_****");
    let (_, attempts) = api.get(&format!("/v1/jobs/{}/attempts", record["id"].as_str().unwrap()), &key).await;
    assert_eq!(attempts["data"], json!([]));
}

#[tokio::test]
async fn health_readiness_metrics_and_documents() {
    let env = TestEnv::new("ops").await;
    let api = env.start_api().await;
    let (status, body) = api.request(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = api.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"], json!({"redis": "ok", "postgres": "ok"}));

    let metrics = api.metrics().await;
    for name in [
        "peyk_jobs_enqueued_total",
        "peyk_queue_depth{queue=\"webhook\",state=\"waiting\"}",
        "peyk_workers{queue=\"webhook\"}",
        "peyk_http_requests_total",
        "peyk_http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    let (status, doc) = api.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/{id}/attempts",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["WebhookJob"]["properties"]["url"].is_object(), "webhook payload schema missing");
    // One variant per submittable type, chosen by `type`; internal types absent.
    assert!(schemas["SubmitJob"]["oneOf"].is_array(), "{}", schemas["SubmitJob"]);
    let mapping = &schemas["SubmitJob"]["discriminator"]["mapping"];
    assert_eq!(mapping["webhook"], "#/components/schemas/SubmitWebhookJob");
    for internal in ["webhook_delivery", "sms_status", "payment_reconcile"] {
        assert!(mapping.get(internal).is_none(), "{internal} must not be submittable: {mapping}");
    }
    let docs = api.http.get(format!("{}/docs", api.url)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("<html"));

    // With a metrics token, /metrics answers only to it.
    let guarded = env.start_api_with(&[("PEYK_METRICS_TOKEN", "scrape-t0ken")]).await;
    let (status, body) = guarded.request(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")), "{body}");
    assert_eq!(guarded.request(reqwest::Method::GET, "/metrics", Some("wrong"), None).await.0, 401);
    let scraped = guarded.http.get(format!("{}/metrics", guarded.url)).bearer_auth("scrape-t0ken").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("peyk_queue_depth"));

    // PostgreSQL unreachable: readiness says which one.
    let broken = TestEnv { database_url: format!("postgres://postgres@127.0.0.1:{}/none", peyk_tests::free_port()), ..env };
    let api = broken.start_api().await;
    let (status, body) = api.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"], json!({"redis": "ok", "postgres": "unreachable"}));
}

/// The document is valid OpenAPI (checked by openapi-spec-validator), names
/// every route the router serves and no other, and every answer an operation
/// gives (no key, ids that do not exist, an empty or malformed body, a wrong
/// method) is among the statuses it documents.
#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_every_route_and_answer() {
    let env = TestEnv::new("openapi").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    let (status, doc) = api.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);

    let python = std::env::var("PEYK_TEST_PYTHON").expect("PEYK_TEST_PYTHON is set by infrastructure/dev/test.sh");
    let file = std::env::temp_dir().join(format!("peyk-openapi-{}.json", std::process::id()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let checked = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator", file.to_str().unwrap()])
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    assert!(checked.status.success(), "{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));

    let methods = ["get", "put", "post", "delete", "patch"];
    let mut checked_answers = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/docs" {
            continue;
        }
        let concrete = path
            .replace("{gateway}", "zarinpal")
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{tenant}", &uuid::Uuid::now_v7().to_string())
            .replace("{name}", "no-such-name")
            .replace("{source}", "no-such-source");
        for method in methods {
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let Some(operation) = item.get(method) else {
                // The router serves no method the document does not list.
                let (status, body) = api.request(verb, &concrete, Some(&key), None).await;
                assert_eq!(status, 405, "{method} {path} is not documented but answered {status}: {body}");
                continue;
            };
            let documented: Vec<String> = operation["responses"].as_object().unwrap().keys().cloned().collect();
            let has_body = operation.get("requestBody").is_some();
            // No key; a key and no body; an empty JSON object; malformed JSON.
            let mut tries: Vec<(bool, Option<&str>)> = vec![(false, None), (true, None)];
            if has_body {
                tries.extend([(true, Some("{}")), (true, Some("{"))]);
            }
            for (with_key, body) in tries {
                let mut request = api.http.request(verb.clone(), format!("{}{concrete}", api.url));
                if with_key {
                    request = request.bearer_auth(&key);
                }
                if let Some(body) = body {
                    request = request.header("content-type", "application/json").body(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let route_exists = !(status == 404 && answer["error"]["message"] == "no such route") && status != 405;
                assert!(route_exists, "{method} {path} is documented but not routed: {status} {answer}");
                assert!(
                    documented.contains(&status.to_string()),
                    "{method} {path} (key: {with_key}, body: {body:?}) answered {status}, documented: {documented:?}: {answer}"
                );
                checked_answers += 1;
            }
        }
    }
    assert!(checked_answers > 100, "only {checked_answers} answers checked");
}

/// A Python client generated from the served document (openapi-python-client,
/// pinned in infrastructure/dev/test.sh) has a module for every operation the
/// document lists, every module of it imports, and the generator warns of
/// nothing: no endpoint or schema it had to skip.
#[tokio::test]
async fn a_generated_python_client_covers_every_operation_without_warnings() {
    let env = TestEnv::new("openapi-client").await;
    let api = env.start_api().await;
    let (status, doc) = api.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);

    let python = std::env::var("PEYK_TEST_CODEGEN_PYTHON")
        .expect("PEYK_TEST_CODEGEN_PYTHON (openapi-python-client's venv) is set by infrastructure/dev/test.sh");
    let dir = std::env::temp_dir().join(format!("peyk-openapi-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (document, config, client) = (dir.join("openapi.json"), dir.join("config.yaml"), dir.join("peyk_client"));
    std::fs::write(&document, doc.to_string()).unwrap();
    // No post hooks: the generated code is read here, not formatted.
    std::fs::write(&config, "post_hooks: []\n").unwrap();
    let generated = std::process::Command::new(&python)
        .args(["-m", "openapi_python_client", "generate", "--meta", "none", "--fail-on-warning"])
        .arg("--path")
        .arg(&document)
        .arg("--config")
        .arg(&config)
        .arg("--output-path")
        .arg(&client)
        .env("NO_COLOR", "1")
        .output()
        .expect("run openapi-python-client");
    let output = format!("{}{}", String::from_utf8_lossy(&generated.stdout), String::from_utf8_lossy(&generated.stderr));
    assert!(generated.status.success(), "openapi-python-client failed:\n{output}");
    assert!(!output.to_lowercase().contains("warning") && !output.to_lowercase().contains("error"), "the generator warned:\n{output}");

    // Every operation: (method, path, its first tag, its operationId), from the document.
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in methods {
            if let Some(operation) = item.get(method) {
                let tag = operation["tags"][0].as_str().unwrap_or("default");
                operations.push((method, path.clone(), tag.to_string(), operation["operationId"].clone()));
            }
        }
    }
    assert!(operations.len() > 50, "only {} operations in the document", operations.len());
    // The folder and module names the generator gives them, by its own
    // naming: `PythonIdentifier` (snake case, Python's reserved words
    // suffixed) of the tag and of the operationId, or of the method and path
    // where there is no operationId.
    let names: Vec<Value> = operations.iter().map(|(method, path, tag, id)| json!([tag, id, method, path])).collect();
    let mut naming = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\n\
             from openapi_python_client.strings import PythonIdentifier as P\n\
             from openapi_python_client.parser.openapi import generate_operation_id as generated\n\
             from openapi_python_client.schema.untrusted_string import UntrustedString as U\n\
             print(json.dumps([[P(t, 'tag'), P(o, 'field_') if o is not None else generated(path=U(p), method=m, prefix='field_')]\n\
                               for t, o, m, p in json.load(sys.stdin)]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the generator's naming");
    std::io::Write::write_all(&mut naming.stdin.take().unwrap(), serde_json::to_string(&names).unwrap().as_bytes()).unwrap();
    let named = naming.wait_with_output().unwrap();
    assert!(named.status.success());
    let modules: Vec<[String; 2]> = serde_json::from_slice(&named.stdout).unwrap();

    // `--meta none`: the output folder is the package itself.
    let package = client.join("api");
    // Path parameters carry their Python names in the generated URL.
    let placeholders = |path: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in path.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' => inside = false,
                _ if !inside => out.push(c),
                _ => {}
            }
        }
        out
    };
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for ((method, path, _, _), [tag, module]) in operations.iter().zip(&modules) {
        assert!(seen.insert((tag.clone(), module.clone())), "two operations share the module {tag}/{module}.py ({method} {path})");
        let file = package.join(tag).join(format!("{module}.py"));
        let Ok(code) = std::fs::read_to_string(&file) else {
            missing.push(format!("{} {path}: no {}", method.to_uppercase(), file.display()));
            continue;
        };
        let url = code.lines().find_map(|line| line.trim().strip_prefix("\"url\": \"")).map(|rest| rest.split('"').next().unwrap());
        let serves = code.contains(&format!("\"method\": \"{method}\"")) && url.map(placeholders) == Some(placeholders(path));
        if !serves {
            missing.push(format!("{} {path}: {} is another operation's", method.to_uppercase(), file.display()));
        }
    }
    assert!(missing.is_empty(), "operations without a generated module:\n{}", missing.join("\n"));

    // And the client is usable: every module of it imports.
    let imported = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib, pkgutil, sys\n\
             sys.path.insert(0, sys.argv[1])\n\
             import peyk_client\n\
             for module in pkgutil.walk_packages(peyk_client.__path__, 'peyk_client.'):\n    \
                 importlib.import_module(module.name)",
        ])
        .arg(&dir)
        .output()
        .expect("import the generated client");
    assert!(imported.status.success(), "the generated client does not import:\n{}", String::from_utf8_lossy(&imported.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/docs` works with no network: Peyk serves the page and its viewer
/// itself. A real headless Chromium, with every host but 127.0.0.1 cut off
/// (`--host-resolver-rules`), loads the page; the viewer must render the
/// document (an operation's summary appears, which only `/openapi.json`
/// holds), and Chromium's own network log must show that every request the
/// page made (its navigation, scripts, fetches, images, fonts, workers) went
/// to this API and nowhere else. Chromium's requests for itself (component
/// updates, sign-in, the clock: no initiator, not a frame) are not the
/// page's and are left out. (Checked the other way too: the former page,
/// which loaded Scalar from cdn.jsdelivr.net, fails here on that request.)
#[tokio::test]
async fn the_docs_page_renders_with_no_request_to_another_host() {
    let chromium = std::env::var("PEYK_TEST_CHROMIUM").expect("PEYK_TEST_CHROMIUM is set by infrastructure/dev/test.sh");
    assert!(std::path::Path::new(&chromium).is_file(), "no Chromium at {chromium} (Debian package chromium)");
    let env = TestEnv::new("docs-offline").await;
    let api = env.start_api().await;

    // The page: ours, with no outside address, under a strict policy.
    let response = api.http.get(format!("{}/docs", api.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_string()
    };
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    let policy = header(&response, "content-security-policy");
    for directive in ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "font-src 'self' data:", "img-src 'self' data:"] {
        assert!(policy.contains(directive), "{directive} missing from {policy}");
    }
    let page = response.text().await.unwrap();
    assert!(!page.contains("//"), "an outside address in the page:\n{page}");
    let summary = "Submit a job";
    assert!(!page.contains(summary), "the page itself must not hold the document's text");
    // The viewer's file: named by its version, kept by browsers.
    let script = page.split("<script src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script in the page");
    assert!(script.starts_with("/docs/") && script.ends_with(".js"), "{script}");
    let response = api.http.get(format!("{}{script}", api.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/javascript; charset=utf-8");
    assert!(header(&response, "cache-control").contains("max-age=31536000"));
    assert!(response.bytes().await.unwrap().len() > 100_000);

    let dir = std::env::temp_dir().join(format!("peyk-chromium-{}-{}", std::process::id(), uuid::Uuid::now_v7()));
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let net_log = dir.join("net-log.json");
    let mut command = tokio::process::Command::new(&chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg(format!("{}/docs", api.url))
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("Chromium did not finish within 120 s")
        .expect("run Chromium");
    let dom = String::from_utf8_lossy(&output.stdout).to_string();
    let console = String::from_utf8_lossy(&output.stderr).to_string();
    let log = std::fs::read_to_string(&net_log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "Chromium failed: {}\n{console}", output.status);

    // (a) The viewer rendered the document.
    assert!(dom.contains(summary), "the viewer did not render the document; DOM:\n{}\nconsole:\n{console}", &dom[..dom.len().min(4000)]);
    assert!(dom.contains("/v1/jobs"), "no path of the document in the DOM");

    // (b) Every request of the page went to this API.
    let log: Value = serde_json::from_str(&log).unwrap_or_else(|error| panic!("Chromium's net log is not JSON ({error})"));
    let event_type = |name: &str| log["constants"]["logEventTypes"][name].as_u64().unwrap_or_else(|| panic!("no {name} in the net log"));
    let (start_job, stream_job) = (event_type("URL_REQUEST_START_JOB"), event_type("HTTP_STREAM_JOB_CONTROLLER"));
    let mut page_requests = Vec::new();
    for event in log["events"].as_array().expect("events in the net log") {
        let params = &event["params"];
        let Some(url) = params["url"].as_str() else { continue };
        let kind = event["type"].as_u64();
        let of_the_page = if kind == Some(start_job) {
            // A page's request names the page's origin as its initiator; a
            // navigation (the page itself, a frame, a redirect of the page) is a frame.
            params["initiator"].as_str() != Some("not an origin")
                || params["request_type"].as_str().is_some_and(|kind| kind.contains("frame"))
        } else {
            // A connection opened ahead for the page, where Chromium logs one.
            kind == Some(stream_job) && params["is_preconnect"].as_bool() == Some(true)
        };
        if of_the_page {
            page_requests.push(url.to_string());
        }
    }
    let own = format!("{}/", api.url);
    let elsewhere: Vec<&String> = page_requests.iter().filter(|url| !url.starts_with(&own)).collect();
    assert!(elsewhere.is_empty(), "the page made requests to other hosts: {elsewhere:#?}");
    // The log holds the page's requests: this check can fail.
    for path in ["/docs", script, "/openapi.json"] {
        let url = format!("{}{path}", api.url);
        assert!(page_requests.contains(&url), "{url} is not in the net log: {page_requests:#?}");
    }

    // The policy refused nothing the viewer needs: the one thing it refuses
    // is the viewer's own attempt at an outside logo (never requested).
    let refused: Vec<&str> = console.lines().filter(|line| line.contains("Content Security Policy")).collect();
    for line in &refused {
        assert!(line.contains("'https://cdn.redoc.ly/redoc/logo-mini.svg'"), "the policy refused something else: {line}");
    }
}
