//! Pipelines end to end: a recording transcribed and its text delivered by
//! the next step, a failure in the middle, cancellation, and references
//! refused at submission.

use std::time::{Duration, Instant};

use peyk_tests::openai::OpenAi;
use peyk_tests::speech::{fixture, word_error_rate, JFK};
use peyk_tests::{Api, Reply, Sink, TestEnv};
use serde_json::{json, Value};

async fn wait_for_pipeline(api: &Api, key: &str, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, pipeline) = api.get(&format!("/v1/pipelines/{id}"), key).await;
        assert_eq!(code, 200, "{pipeline}");
        if pipeline["status"] == status {
            return pipeline;
        }
        assert!(Instant::now() < deadline, "pipeline not {status} within {within:?}: {pipeline}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hook(url: &str, body: Value) -> Value {
    json!({ "type": "webhook", "payload": { "url": url, "body": body } })
}

#[tokio::test]
async fn a_recording_is_transcribed_and_its_text_delivered_by_the_next_step() {
    let env = TestEnv::new("pipe-ok").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[("PEYK_QUEUES", "transcription,webhook")]).await;
    let sink = Sink::start().await;
    let file_id = api.upload(&key, "jfk.wav", fixture("jfk.wav")).await;

    let (status, submitted) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                { "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en", "language": "en" } },
                hook(&format!("{}/report", sink.url), json!({
                    "transcript": { "from": "steps.0.result.text" },
                    "seconds": { "from": "steps.0.result.duration" },
                    "first_segment": { "from": "steps.0.result.segments.0.text" },
                    "transcription_job": { "from": "steps.0.job_id" },
                })),
                hook(&format!("{}/done", sink.url), json!({ "delivered_with": { "from": "steps.1.result.status_code" } })),
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{submitted}");
    assert_eq!(submitted["status"], "running");
    assert_eq!(submitted["steps"][1]["status"], "pending");
    let id = submitted["id"].as_str().unwrap();

    let done = wait_for_pipeline(&api, &key, id, "succeeded", Duration::from_secs(120)).await;
    let steps = done["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "succeeded"), "{done}");
    let received = sink.received();
    assert_eq!(received.len(), 2);
    let report: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert!(word_error_rate(JFK, report["transcript"].as_str().unwrap()) <= 0.10, "{report}");
    assert!((report["seconds"].as_f64().unwrap() - 11.0).abs() < 0.1);
    assert!(report["first_segment"].is_string());
    assert_eq!(report["transcription_job"], steps[0]["job_id"]);
    let last: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(last, json!({ "delivered_with": 200 }));

    // Each step is an ordinary job that names its pipeline and place.
    let job = api.job(&key, steps[1]["job_id"].as_str().unwrap()).await;
    assert_eq!((job["pipeline_id"].as_str(), job["pipeline_step"].as_i64()), (Some(id), Some(1)));
}

#[tokio::test]
async fn a_consultation_goes_from_audio_to_a_summary_to_the_patients_phone() {
    let env = TestEnv::new("pipe-clinic").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let llm_env = openai.env();
    let mut extra = peyk_tests::env_pairs(&llm_env);
    extra.push(("PEYK_QUEUES", "transcription,medical_analysis,sms,sms_status"));
    let _worker = env.start_speech_worker(&extra).await;
    let file_id = api.upload(&key, "medical_en.wav", fixture("medical_en.wav")).await;

    let (status, submitted) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                { "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en" } },
                { "type": "medical_analysis", "payload": { "text": { "from": "steps.0.result.text" }, "analysis_type": "summary" } },
                { "type": "sms", "payload": { "mode": "send", "receptors": ["09121234567"], "message": { "from": "steps.1.result.output.summary" } } },
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{submitted}");
    let done = wait_for_pipeline(&api, &key, submitted["id"].as_str().unwrap(), "succeeded", Duration::from_secs(120)).await;

    // The transcript went to the model, the model's summary to the phone
    // (the development outbox, as no Kavenegar key is set).
    let transcript = done["steps"][0]["result"]["text"].as_str().unwrap().to_string();
    let sent_to_model = openai.requests()[0].to_string();
    assert!(sent_to_model.contains(transcript.trim()), "the model did not get the transcript: {sent_to_model}");
    let summary = done["steps"][1]["result"]["output"]["summary"].as_str().unwrap().to_string();
    let (_, outbox) = api.get("/v1/sms/outbox", &key).await;
    assert_eq!(outbox["data"][0]["message"], summary.as_str(), "{outbox}");
}

#[tokio::test]
async fn a_failed_step_fails_the_pipeline_and_skips_the_rest() {
    let env = TestEnv::new("pipe-fail").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.reply([Reply::status(200), Reply::status(410)]);

    let (status, submitted) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                hook(&format!("{}/a", sink.url), json!({ "n": 1 })),
                hook(&format!("{}/b", sink.url), json!({ "after": { "from": "steps.0.result.status_code" } })),
                hook(&format!("{}/c", sink.url), json!({ "n": 3 })),
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{submitted}");
    let failed = wait_for_pipeline(&api, &key, submitted["id"].as_str().unwrap(), "failed", Duration::from_secs(20)).await;
    assert_eq!(failed["error"]["code"], "step_failed", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("step 1 (webhook) failed"), "{failed}");
    let statuses: Vec<&str> = failed["steps"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded", "failed", "skipped"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 2, "the third step never ran");
}

#[tokio::test]
async fn cancel_stops_what_has_not_started() {
    let env = TestEnv::new("pipe-cancel").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_worker().await;
    let sink = Sink::start().await;
    sink.default_reply(Reply::status(200).delay(Duration::from_secs(2)));

    let (_, submitted) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [hook(&format!("{}/slow", sink.url), json!({})), hook(&format!("{}/next", sink.url), json!({}))] }),
        )
        .await;
    let id = submitted["id"].as_str().unwrap();
    sink.wait_for(1, Duration::from_secs(10)).await;
    let (status, cancelled) = api.post(&format!("/v1/pipelines/{id}/cancel"), &key, &json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["steps"][0]["status"], "cancelled");
    assert_eq!(cancelled["steps"][1]["status"], "skipped");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = api.get(&format!("/v1/pipelines/{id}"), &key).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after["steps"][1]["job_id"].is_null(), "{after}");
    assert_eq!(sink.count(), 1);
    let (status, again) = api.post(&format!("/v1/pipelines/{id}/cancel"), &key, &json!({})).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("not_cancellable")));

    let other = env.create_key("writing-service").await;
    let (status, _) = api.get(&format!("/v1/pipelines/{id}"), &other).await;
    assert_eq!(status, 404, "another tenant's pipeline");
}

#[tokio::test]
async fn references_are_checked_at_submission() {
    let env = TestEnv::new("pipe-refs").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let url = "https://example.com/hook";
    let cases = [
        (
            json!([hook(url, json!({})), hook(url, json!({ "t": { "from": "steps.0.result.transcript" } }))]),
            "steps[1].payload.body.t",
            "`webhook` results have no field `transcript`",
        ),
        (
            json!([hook(url, json!({ "t": { "from": "steps.1.result" } })), hook(url, json!({}))]),
            "steps[0].payload.body.t",
            "does not run before step 0",
        ),
        (
            json!([hook(url, json!({})), hook(url, json!({ "t": { "from": "step0.text" } }))]),
            "steps[1].payload.body.t",
            "is not a reference",
        ),
        (json!([{ "type": "fax", "payload": {} }]), "steps[0].type", "unknown job type"),
        (json!([{ "type": "webhook", "payload": { "url": "ftp://x", "body": {} } }]), "steps[0].payload.url", "http"),
        (json!([]), "steps", "1 to 10"),
    ];
    for (steps, field, problem) in cases {
        let (status, body) = api.post("/v1/pipelines", &key, &json!({ "steps": steps })).await;
        assert_eq!(status, 422, "{steps} → {body}");
        let error = &body["error"]["details"]["errors"][0];
        assert_eq!(error["field"], field, "{body}");
        assert!(error["problem"].as_str().unwrap().contains(problem), "{body}");
    }
    let (status, _) = api.get("/v1/pipelines/019aa6f0-0000-7000-8000-000000000000", &key).await;
    assert_eq!(status, 404);
}

/// A two-speaker consultation transcribed with speaker labels, then a SOAP
/// note from its labelled segments: the model gets one line per turn with
/// the speaker's role, and is told to keep the patient's complaints apart
/// from the doctor's plan.
#[tokio::test]
async fn a_consultation_with_two_speakers_reaches_the_soap_note_turn_by_turn() {
    let env = TestEnv::new("pipe-soap").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let openai = OpenAi::start().await;
    let provider = openai.env();
    let mut settings = peyk_tests::env_pairs(&provider);
    settings.push(("PEYK_QUEUES", "transcription,medical_analysis"));
    let _worker = env.start_speech_worker(&settings).await;
    let file_id = api.upload(&key, "consultation.wav", fixture("conversation_en.wav")).await;

    let (status, submitted) = api
        .post(
            "/v1/pipelines",
            &key,
            &json!({ "steps": [
                { "type": "transcription", "payload": { "file_id": file_id, "model": "base", "language": "en", "speakers": true } },
                { "type": "medical_analysis", "payload": {
                    "analysis_type": "soap_note",
                    "segments": { "from": "steps.0.result.segments" },
                    "speaker_roles": { "S1": "clinician", "S2": "patient" },
                } },
            ] }),
        )
        .await;
    assert_eq!(status, 202, "{submitted}");
    let done = wait_for_pipeline(&api, &key, submitted["id"].as_str().unwrap(), "succeeded", Duration::from_secs(180)).await;
    let note = api.job(&key, done["steps"][1]["job_id"].as_str().unwrap()).await;
    assert!(note["result"]["output"]["plan"].is_string(), "{note}");

    let requests = openai.requests();
    let messages = requests[0]["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("S1 is the clinician, S2 is the patient.") && system.contains("Keep who said what apart"), "{system}");
    let user = messages[1]["content"].as_str().unwrap();
    let turns: Vec<&str> = user.lines().filter(|l| l.starts_with('[')).collect();
    assert!(turns.len() >= 6, "{user}");
    // The doctor's question and plan, and the patient's complaint, each under its speaker.
    let line_with =
        |words: &str| turns.iter().find(|l| l.to_lowercase().contains(words)).unwrap_or_else(|| panic!("no `{words}` in {user}"));
    assert!(line_with("brings you in").starts_with("[S1 (clinician)] "), "{user}");
    assert!(line_with("headache for three days").starts_with("[S2 (patient)] "), "{user}");
    assert!(line_with("rest for three days").starts_with("[S1 (clinician)] "), "{user}");
}
