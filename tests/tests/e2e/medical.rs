//! `medical_analysis` end to end: the real API and worker against a local
//! server speaking OpenAI's chat-completions wire format. Every analysis
//! type, redaction before text leaves, retries on 429 (Retry-After), 5xx
//! pages, timeouts and unreadable answers, client errors that fail at once
//! with the provider's message, the correction request after an answer
//! that breaks its schema, the json_object fallback, field-named
//! validation errors. One opt-in test runs against a real local server
//! (`PEYK_TEST_REAL_LLM_URL`).

use std::time::Duration;

use peyk_tests::openai::{OpenAi, Reply, TEST_MODEL};
use peyk_tests::{Api, TestEnv, Worker};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

async fn worker_for(env: &TestEnv, openai: &OpenAi, extra: &[(&str, &str)]) -> Worker {
    let provider = openai.env();
    let mut all = peyk_tests::env_pairs(&provider);
    all.push(("PEYK_QUEUES", "medical_analysis"));
    all.extend_from_slice(extra);
    env.start_worker_with(&all).await
}

fn analysis(payload: Value) -> Value {
    json!({ "type": "medical_analysis", "payload": payload })
}

async fn wait_for(api: &Api, key: &str, id: &str, status: &str) -> Value {
    api.wait_for_status(key, id, status, WAIT).await
}

async fn attempts(api: &Api, key: &str, id: &str) -> Vec<Value> {
    let (status, list) = api.get(&format!("/v1/jobs/{id}/attempts"), key).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_analysis_type_answers_schema_checked_json_with_a_disclaimer() {
    let env = TestEnv::new("llm-types").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let worker = worker_for(&env, &openai, &[]).await;

    let persian = "بیمار ۵۴ ساله از دو روز پیش درد قفسه سینه دارد که با فعالیت بدتر می‌شود و تنگی نفس هم دارد.";
    let cases = [
        ("symptoms", persian, "symptoms"),
        ("soap_note", "Doctor: what brings you in? Patient: I have been coughing for a week, worse at night.", "subjective"),
        ("triage", "Chest pain and shortness of breath since this morning.", "urgency"),
        ("medications", "Takes warfarin 5 mg daily and aspirin 80 mg daily.", "interactions_to_check"),
        ("summary", "Long discharge letter text.", "key_points"),
    ];
    let mut ids = Vec::new();
    for (kind, text, _) in &cases {
        ids.push(
            api.submit(&key, &analysis(json!({ "text": text, "analysis_type": kind, "patient_context": { "age": 54, "sex": "male" } })))
                .await,
        );
    }
    let generate = api
        .submit(&key, &analysis(json!({ "text": "Write a one-line hydration tip.", "analysis_type": "generate", "max_tokens": 64, "temperature": 0.1, "language": "en" })))
        .await;

    for ((kind, _, field), id) in cases.iter().zip(&ids) {
        let job = wait_for(&api, &key, id, "succeeded").await;
        let result = &job["result"];
        assert_eq!(result["analysis_type"], *kind, "{job}");
        assert!(result["output"].get(*field).is_some(), "{kind}: {result}");
        assert!(result["disclaimer"]["en"].as_str().unwrap().contains("not a diagnosis"), "{result}");
        assert!(result["disclaimer"]["fa"].as_str().unwrap().contains("تشخیص"), "{result}");
        assert_eq!(result["response_format"], "json_schema");
        assert_eq!(result["model_calls"], 1);
        assert_eq!(result["model"], TEST_MODEL);
        let usage = &result["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0 && usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap())
        );
        // A provider on loopback: nothing leaves the machine, no redaction by default.
        assert_eq!(result["redaction"]["applied"], false);
    }
    let symptoms = api.job(&key, &ids[0]).await;
    assert_eq!(symptoms["result"]["language"], "fa", "the language of the text");
    assert_eq!(symptoms["result"]["output"]["symptoms"][0]["severity"], "severe");
    assert_eq!(api.job(&key, &ids[1]).await["result"]["language"], "en");
    let generated = wait_for(&api, &key, &generate, "succeeded").await;
    assert!(generated["result"]["output"]["text"].as_str().unwrap().contains("water"), "{generated}");
    assert_eq!(generated["result"]["response_format"], "text");

    // What the provider got: the model, the strict schema, the prompt's language.
    let requests = openai.requests();
    assert_eq!(requests.len(), 6);
    let symptoms_request = requests.iter().find(|r| r["response_format"]["json_schema"]["name"] == "medical_symptoms").unwrap();
    assert_eq!(symptoms_request["model"], TEST_MODEL);
    assert_eq!(symptoms_request["response_format"]["type"], "json_schema");
    assert_eq!(symptoms_request["response_format"]["json_schema"]["strict"], true);
    assert_eq!(symptoms_request["response_format"]["json_schema"]["schema"]["additionalProperties"], false);
    assert!(symptoms_request["messages"][0]["content"].as_str().unwrap().contains("Persian"));
    let user = symptoms_request["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Age: 54") && user.contains("Sex: male") && user.contains(persian), "{user}");
    let generate_request = requests.iter().find(|r| r["response_format"].is_null()).unwrap();
    assert_eq!(generate_request["max_tokens"], 64);
    assert!((generate_request["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert!(openai.auth_headers().iter().all(|h| h == &format!("Bearer {}", peyk_tests::openai::TEST_API_KEY)));

    // Tokens and provider calls as metrics.
    let metrics = api.http.get(format!("{}/metrics", worker.metrics_url)).send().await.unwrap().text().await.unwrap();
    for series in [
        format!("peyk_llm_tokens_total{{kind=\"prompt\",model=\"{TEST_MODEL}\"}}"),
        format!("peyk_llm_tokens_total{{kind=\"completion\",model=\"{TEST_MODEL}\"}}"),
        "peyk_provider_requests_total{outcome=\"success\",provider=\"llm\"} 6".to_string(),
    ] {
        let line = metrics.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in metrics"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
    assert!(metrics.contains("peyk_provider_request_duration_seconds_count{provider=\"llm\"} 6"), "latency recorded per call");

    // The OpenAPI document has the payload and each output's schema.
    let (_, doc) = api.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["MedicalAnalysisJob"]["properties"]["analysis_type"].is_object(), "{}", schemas["MedicalAnalysisJob"]);
    assert_eq!(schemas["MedicalAnalysisOutput_triage"]["properties"]["urgency"]["enum"][0], "emergency");
    assert!(schemas["MedicalAnalysisResult"]["properties"]["disclaimer"].is_object());
}

#[tokio::test]
async fn identifiers_are_removed_before_text_leaves_and_never_logged() {
    let env = TestEnv::new("llm-redact").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    // As for a third-party provider (the default off loopback).
    let worker = worker_for(&env, &openai, &[("PEYK_LLM_REDACT", "true"), ("RUST_LOG", "debug")]).await;

    let text = "بیمار مریم کریمی، کد ملی ۰۴۹۹۳۷۰۸۹۹، موبایل ۰۹۳۵ ۱۲۳ ۴۵۶۷، تلفن منزل ٠٢١-٨٨٨٨-١٢٣٤، ایمیل maryam.k@example.ir. سرفهٔ خشک از ده روز پیش. خانم کریمی سیگار نمی‌کشد.";
    let id = api
        .submit(&key, &analysis(json!({
            "text": text,
            "analysis_type": "symptoms",
            "patient_context": { "name": "مریم کریمی", "history": "Asthma; her daughter is at +98 912 765 4321", "medications": ["salbutamol"] }
        })))
        .await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["result"]["redaction"]["applied"], true);
    assert_eq!(job["result"]["redaction"]["removed"], json!({ "phone": 3, "email": 1, "national_id": 1, "name": 2 }), "{job}");
    // The tenant still sees its own text.
    assert_eq!(job["payload"]["text"], text);

    let sent = openai.requests()[0].to_string();
    for secret in ["مریم", "کریمی", "۰۴۹۹۳۷۰۸۹۹", "۰۹۳۵", "٨٨٨٨", "maryam.k", "765 4321"] {
        assert!(!sent.contains(secret), "{secret} left for the provider: {sent}");
    }
    for placeholder in ["[NAME]", "[NATIONAL_ID]", "[PHONE]", "[EMAIL]"] {
        assert!(sent.contains(placeholder), "{placeholder} missing: {sent}");
    }
    assert!(sent.contains("سرفهٔ خشک از ده روز پیش"), "the medical content is kept");

    // Neither the text nor the model's answer reached the worker's log.
    let log = worker.log();
    assert!(log.contains("medical analysis done"), "worker log not found or empty");
    for private in ["سرفه", "مریم", "درد قفسه سینه", "Asthma"] {
        assert!(!log.contains(private), "`{private}` in the worker log");
    }
}

#[tokio::test]
async fn rate_limits_server_errors_timeouts_and_garbled_answers_are_retried() {
    let env = TestEnv::new("llm-retry").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let _worker = worker_for(&env, &openai, &[("PEYK_LLM_TIMEOUT_SECONDS", "0.5"), ("PEYK_RETRY_BASE_SECONDS", "0.05")]).await;

    openai.push(Reply::rate_limited("1"));
    openai.push(Reply::Page { status: 502, body: "<html>Bad Gateway</html>".into() });
    openai.push(Reply::Slow(Duration::from_secs(2)));
    openai.push(Reply::Page { status: 200, body: "{\"choices\": \"oops\"".into() });
    let mut body = analysis(json!({ "text": "Fever and cough.", "analysis_type": "triage" }));
    body["max_attempts"] = json!(6);
    let id = api.submit(&key, &body).await;
    let job = wait_for(&api, &key, &id, "succeeded").await;
    assert_eq!(job["attempts"], 5, "{job}");
    assert_eq!(job["result"]["output"]["urgency"], "urgent");

    let attempts = attempts(&api, &key, &id).await;
    let codes: Vec<&str> = attempts.iter().filter_map(|a| a["error"]["code"].as_str()).collect();
    assert_eq!(codes, ["rate_limited", "http_502", "timeout", "invalid_provider_response"], "{attempts:?}");
    assert!(attempts[0]["error"]["message"].as_str().unwrap().contains("Rate limit reached"));
    // Retry-After: 1 was honoured (the backoff alone would be 0.05 s).
    let ended = chrono::DateTime::parse_from_rfc3339(attempts[0]["finished_at"].as_str().unwrap()).unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(attempts[1]["started_at"].as_str().unwrap()).unwrap();
    assert!((next - ended).num_milliseconds() >= 950, "second attempt {} ms after the 429", (next - ended).num_milliseconds());
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_providers_message() {
    let env = TestEnv::new("llm-4xx").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let _worker = worker_for(&env, &openai, &[]).await;

    openai.push(Reply::error(400, "Invalid value for 'temperature': must be at most 2.", "invalid_request_error", None));
    let bad = api.submit(&key, &analysis(json!({ "text": "x y z", "analysis_type": "summary" }))).await;
    let job = wait_for(&api, &key, &bad, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("provider_rejected")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("Invalid value for 'temperature'"), "{job}");

    openai.push(Reply::error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        Some("insufficient_quota"),
    ));
    let quota = api.submit(&key, &analysis(json!({ "text": "x y z", "analysis_type": "summary" }))).await;
    let job = wait_for(&api, &key, &quota, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("insufficient_quota")), "{job}");

    // A wrong key (401) and a model the provider does not have (404).
    let env2 = TestEnv::new("llm-4xx-config").await;
    let key2 = env2.create_key("clinic").await;
    let api2 = env2.start_api().await;
    let _wrong_key = worker_for(&env2, &openai, &[("PEYK_LLM_API_KEY", "sk-wrong")]).await;
    let id = api2.submit(&key2, &analysis(json!({ "text": "x", "analysis_type": "triage" }))).await;
    let job = wait_for(&api2, &key2, &id, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("provider_unauthorized")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("Incorrect API key provided"), "{job}");

    let env3 = TestEnv::new("llm-4xx-model").await;
    let key3 = env3.create_key("clinic").await;
    let api3 = env3.start_api().await;
    let _wrong_model = worker_for(&env3, &openai, &[("PEYK_LLM_MODEL", "gpt-9-nonexistent")]).await;
    let id = api3.submit(&key3, &analysis(json!({ "text": "x", "analysis_type": "triage" }))).await;
    let job = wait_for(&api3, &key3, &id, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("model_not_found")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("gpt-9-nonexistent` does not exist"), "{job}");
}

#[tokio::test]
async fn a_bad_answer_gets_one_correction_then_the_job_fails() {
    let env = TestEnv::new("llm-invalid").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let _worker = worker_for(&env, &openai, &[]).await;

    // Not JSON at all, then a good answer: corrected within the attempt.
    openai.push(Reply::Content("Sure! The patient needs {urgency: high".into()));
    let fixed = api.submit(&key, &analysis(json!({ "text": "Chest pain.", "analysis_type": "triage" }))).await;
    let job = wait_for(&api, &key, &fixed, "succeeded").await;
    assert_eq!((job["attempts"].as_i64(), job["result"]["model_calls"].as_i64()), (Some(1), Some(2)), "{job}");
    let requests = openai.requests();
    let correction = &requests[1]["messages"];
    assert_eq!(correction.as_array().unwrap().len(), 4, "system, user, the bad answer, the correction");
    assert_eq!(correction[2]["role"], "assistant");
    assert!(correction[3]["content"].as_str().unwrap().contains("not a JSON object"), "{correction}");

    // Twice against the schema: fails for good, naming the problems.
    let breaking = json!({ "urgency": "very high", "reasons": [], "recommended_action": "go" }).to_string();
    openai.push(Reply::Content(breaking.clone()));
    openai.push(Reply::Content(breaking));
    let broken = api.submit(&key, &analysis(json!({ "text": "Chest pain.", "analysis_type": "triage" }))).await;
    let job = wait_for(&api, &key, &broken, "failed").await;
    assert_eq!((job["attempts"].as_i64(), job["error"]["code"].as_str()), (Some(1), Some("invalid_model_output")), "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    for problem in ["$.urgency: must be one of emergency", "$.red_flags: is required", "$.reasons: must have at least 1"] {
        assert!(message.contains(problem), "{problem} not in {message}");
    }
    assert!(!message.contains("very high"), "model output in the error: {message}");
    let second = &openai.requests()[3]["messages"][3]["content"];
    assert!(second.as_str().unwrap().contains("$.urgency: must be one of"), "{second}");
}

#[tokio::test]
async fn providers_without_structured_outputs_get_json_mode() {
    let env = TestEnv::new("llm-json-mode").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    openai.refuse_json_schema();
    let _worker = worker_for(&env, &openai, &[("PEYK_CONCURRENCY", "1")]).await;

    let first =
        api.submit(&key, &analysis(json!({ "text": "Warfarin 5 mg and aspirin 80 mg daily.", "analysis_type": "medications" }))).await;
    let job = wait_for(&api, &key, &first, "succeeded").await;
    assert_eq!((job["result"]["response_format"].as_str(), job["result"]["model_calls"].as_i64()), (Some("json_object"), Some(2)), "{job}");
    assert_eq!(job["result"]["output"]["interactions_to_check"][0]["drugs"], json!(["warfarin", "aspirin"]));
    // Remembered: the next job asks for JSON mode straight away.
    let second = api.submit(&key, &analysis(json!({ "text": "Metformin 500 mg.", "analysis_type": "medications" }))).await;
    let job = wait_for(&api, &key, &second, "succeeded").await;
    assert_eq!(job["result"]["model_calls"], 1, "{job}");
    let requests = openai.requests();
    assert_eq!(requests[1]["response_format"], json!({ "type": "json_object" }));
    assert!(requests[1]["messages"][0]["content"].as_str().unwrap().contains("\"interactions_to_check\""), "the schema is in the prompt");
}

#[tokio::test]
async fn invalid_payloads_are_refused_naming_the_field() {
    let env = TestEnv::new("llm-validate").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let cases = [
        (json!({ "analysis_type": "symptoms" }), "payload.text", "required"),
        (json!({ "text": "x" }), "payload.analysis_type", "required"),
        (json!({ "text": "x", "analysis_type": "diagnosis" }), "payload.analysis_type", "unknown variant"),
        (
            json!({ "text": "x", "analysis_type": "triage", "patient_context": { "age": 150 } }),
            "payload.patient_context.age",
            "between 0 and 130",
        ),
        (
            json!({ "text": "x", "analysis_type": "triage", "patient_context": { "sex": "robot" } }),
            "payload.patient_context.sex",
            "unknown variant",
        ),
        (json!({ "text": "x", "analysis_type": "triage", "language": "de" }), "payload.language", "unknown variant"),
        (json!({ "text": "x", "analysis_type": "summary", "max_tokens": 100 }), "payload.max_tokens", "only applies"),
        (json!({ "text": "x", "analysis_type": "generate", "temperature": 5 }), "payload.temperature", "between 0 and 2"),
        (json!({ "text": "x".repeat(40_000), "analysis_type": "summary" }), "payload.text", "at most"),
    ];
    for (payload, field, problem) in cases {
        let (status, body) = api.post("/v1/jobs", &key, &analysis(payload)).await;
        assert_eq!(status, 422, "{body}");
        let errors = body["error"]["details"]["errors"].as_array().unwrap();
        assert!(errors.iter().any(|e| e["field"] == field && e["problem"].as_str().unwrap().contains(problem)), "{field}: {body}");
    }
}

/// Opt-in: a real OpenAI-compatible server (README: llama-cpp-python with
/// gemma 3 270m). `PEYK_TEST_REAL_LLM_URL=http://127.0.0.1:8000/v1`,
/// optional `PEYK_TEST_REAL_LLM_MODEL` and `PEYK_TEST_REAL_LLM_KEY`.
#[tokio::test]
async fn against_a_real_local_llm_server() {
    let Ok(url) = std::env::var("PEYK_TEST_REAL_LLM_URL") else {
        eprintln!("skipped: PEYK_TEST_REAL_LLM_URL is not set");
        return;
    };
    let model = std::env::var("PEYK_TEST_REAL_LLM_MODEL").unwrap_or_else(|_| "gemma-3-270m".into());
    let api_key = std::env::var("PEYK_TEST_REAL_LLM_KEY").unwrap_or_default();
    let env = TestEnv::new("llm-real").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env
        .start_worker_with(&[
            ("PEYK_QUEUES", "medical_analysis"),
            ("PEYK_LLM_BASE_URL", url.as_str()),
            ("PEYK_LLM_MODEL", model.as_str()),
            ("PEYK_LLM_API_KEY", api_key.as_str()),
            ("PEYK_LLM_TIMEOUT_SECONDS", "90"),
            ("PEYK_CONCURRENCY", "1"),
        ])
        .await;
    let generate = api
        .submit(
            &key,
            &analysis(
                json!({ "text": "Give one tip for staying hydrated.", "analysis_type": "generate", "max_tokens": 48, "language": "en" }),
            ),
        )
        .await;
    let job = wait_for_end(&api, &key, &generate).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(!job["result"]["output"]["text"].as_str().unwrap().trim().is_empty());
    assert!(job["result"]["usage"]["total_tokens"].as_u64().unwrap() > 0, "{job}");

    // A tiny model may not manage the schema; either way the wire path,
    // the json_schema/json_object negotiation and the check must work.
    let summary = api.submit(&key, &analysis(json!({ "text": "Patient has had a dry cough and mild fever for three days. No shortness of breath.", "analysis_type": "summary" }))).await;
    let job = wait_for_end(&api, &key, &summary).await;
    match job["status"].as_str() {
        Some("succeeded") => assert!(job["result"]["output"]["summary"].is_string(), "{job}"),
        Some("failed") => assert_eq!(job["error"]["code"], "invalid_model_output", "{job}"),
        _ => panic!("{job}"),
    }
}

async fn wait_for_end(api: &Api, key: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let job = api.job(key, id).await;
        if matches!(job["status"].as_str(), Some("succeeded" | "failed" | "dead")) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_tenant_whose_month_of_llm_tokens_is_used_up_gets_no_more_analyses() {
    let env = TestEnv::new("llm-quota").await;
    let key = env.create_key("clinic").await;
    env.cli(&["set-limits", "--tenant", "clinic", "--llm-tokens-per-month", "1"]).await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let _worker = worker_for(&env, &openai, &[]).await;

    // The first fits (nothing used yet); the tokens it used, as the model reported them, fill the month.
    let id = api.submit(&key, &analysis(json!({ "text": "Chest pain since this morning.", "analysis_type": "triage" }))).await;
    let done = wait_for(&api, &key, &id, "succeeded").await;
    let used = done["result"]["usage"]["total_tokens"].as_i64().unwrap();
    assert!(used > 1, "{done}");
    let (_, usage) = api.get("/v1/usage", &key).await;
    assert_eq!(usage["used"]["llm_tokens"], used, "{usage}");

    let (status, body) = api.post("/v1/jobs", &key, &analysis(json!({ "text": "Cough for a week.", "analysis_type": "triage" }))).await;
    assert_eq!((status, &body["error"]["details"]["quota"]), (429, &json!("llm_tokens_per_month")), "{body}");
    // Other job types are not held back by it.
    let (status, _) = api.post("/v1/jobs", &key, &peyk_tests::webhook("https://example.com/hook", json!({}))).await;
    assert_eq!(status, 202);
}
