//! Transcription end to end: uploads, the job on a real worker with real
//! Whisper models (tiny.en for English, base for Persian) and real speech,
//! the transcript formats, the OpenAI-compatible endpoints, bad files and
//! upload limits, and S3-compatible storage (moto).

use std::time::Duration;

use peyk_jobs::transcription::persian::{self, Digits};
use peyk_tests::speech::{diarization_error_rate, fixture, models_dir, true_turns, wav_bytes, wav_samples, word_error_rate, JFK, MEDICAL};
use peyk_tests::sse::SseReader;
use peyk_tests::{free_port, Api, TestEnv};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

async fn transcribe(api: &Api, key: &str, file_name: &str, payload: Value) -> Value {
    transcribe_bytes(api, key, file_name, fixture(file_name), payload, "succeeded").await
}

async fn transcribe_bytes(api: &Api, key: &str, file_name: &str, bytes: Vec<u8>, payload: Value, ends: &str) -> Value {
    let file_id = api.upload(key, file_name, bytes).await;
    let mut payload = payload;
    payload["file_id"] = json!(file_id);
    let id = api.submit(key, &json!({ "type": "transcription", "payload": payload })).await;
    api.wait_for_status(key, &id, ends, LONG).await
}

fn assert_wer(reference: &str, text: &str, limit: f64) {
    let wer = word_error_rate(reference, text);
    assert!(wer <= limit, "word error rate {wer:.2} > {limit}: {text:?}");
}

#[tokio::test]
async fn jfk_is_transcribed_with_segments_words_and_every_download_format() {
    let env = TestEnv::new("jfk").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;

    let job = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en", "language": "en", "timestamps": "word" })).await;
    let result = &job["result"];
    assert_wer(JFK, result["text"].as_str().unwrap(), 0.10);
    assert_eq!(result["language"], "en");
    assert_eq!(result["model"], "tiny.en");
    assert_eq!(job["progress"], 100);
    let duration = result["duration"].as_f64().unwrap();
    assert!((duration - 11.0).abs() < 0.1, "duration {duration}");
    let segments = result["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    for segment in segments {
        let (start, end) = (segment["start"].as_f64().unwrap(), segment["end"].as_f64().unwrap());
        assert!(0.0 <= start && start < end && end <= 11.5, "{segment}");
        assert!(segment["avg_logprob"].as_f64().unwrap() < 0.0, "{segment}");
        assert!((0.0..=1.0).contains(&segment["no_speech_prob"].as_f64().unwrap()));
    }
    let words = result["words"].as_array().expect("words were asked for");
    assert!(words.len() >= 20, "{words:?}");
    assert!(words.iter().any(|w| w["word"].as_str().unwrap().to_lowercase().starts_with("americans")), "{words:?}");
    let starts: Vec<f64> = words.iter().map(|w| w["start"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "word times go backwards: {starts:?}");

    let id = job["id"].as_str().unwrap();
    let download = |format: &'static str| {
        let url = format!("{}/v1/jobs/{id}/transcript?format={format}", api.url);
        let request = api.http.get(url).bearer_auth(&key);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{format}");
            response.text().await.unwrap()
        }
    };
    assert_srt(&download("srt").await, segments.len());
    assert_vtt(&download("vtt").await, segments.len());
    let text = download("text").await;
    assert_eq!(text.trim(), result["text"].as_str().unwrap());
    let json_body: Value = serde_json::from_str(&download("json").await).unwrap();
    assert_eq!(json_body, json!({ "text": result["text"] }));
    let verbose: Value = serde_json::from_str(&download("verbose_json").await).unwrap();
    assert_eq!(verbose["language"], "english");
    assert_eq!(verbose["segments"].as_array().unwrap().len(), segments.len());
    assert!(verbose["words"].is_array());

    let (status, body) = api.get(&format!("/v1/jobs/{id}/transcript?format=docx"), &key).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "format");
}

/// SRT: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text, blank line.
fn assert_srt(srt: &str, cues: usize) {
    let blocks: Vec<&str> = srt.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), cues, "{srt}");
    for (n, block) in blocks.iter().enumerate() {
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines[0], (n + 1).to_string(), "{srt}");
        assert!(is_cue_timing(lines[1], ','), "{srt}");
        assert!(lines.len() == 3 && !lines[2].trim().is_empty(), "{srt}");
    }
}

fn assert_vtt(vtt: &str, cues: usize) {
    let body = vtt.strip_prefix("WEBVTT\n\n").unwrap_or_else(|| panic!("no WEBVTT header: {vtt}"));
    let blocks: Vec<&str> = body.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), cues, "{vtt}");
    for block in blocks {
        let lines: Vec<&str> = block.lines().collect();
        assert!(is_cue_timing(lines[0], '.') && lines.len() == 2, "{vtt}");
    }
}

fn is_cue_timing(line: &str, separator: char) -> bool {
    let clock = |t: &str| {
        let b = t.as_bytes();
        t.len() == 12 && b[2] == b':' && b[5] == b':' && b[8] as char == separator && t.chars().filter(|c| c.is_ascii_digit()).count() == 9
    };
    matches!(line.split_once(" --> "), Some((a, b)) if clock(a) && clock(b))
}

#[tokio::test]
async fn english_medical_speech_and_persian_speech() {
    let env = TestEnv::new("languages").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[("PEYK_CONCURRENCY", "transcription=2")]).await;

    let english = transcribe(&api, &key, "medical_en.wav", json!({ "model": "tiny.en", "prompt": "chest pain, dyspnea" }));
    let persian = transcribe(&api, &key, "persian_fa.wav", json!({ "model": "base", "language": "fa" }));
    let (english, persian) = tokio::join!(english, persian);
    // The same audio as Whisper wrote it: the job's result is that, normalised.
    let raw = transcribe(&api, &key, "persian_fa.wav", json!({ "model": "base", "language": "fa", "normalize": false })).await;
    let normalise = |text: &Value| persian::normalize(text.as_str().unwrap(), Digits::Persian);
    assert_eq!(persian["result"]["text"].as_str().unwrap(), normalise(&raw["result"]["text"]), "raw: {}", raw["result"]["text"]);
    let raw_segments = raw["result"]["segments"].as_array().unwrap();
    for (segment, raw) in persian["result"]["segments"].as_array().unwrap().iter().zip(raw_segments) {
        assert_eq!(segment["text"].as_str().unwrap().trim(), normalise(&raw["text"]));
    }
    assert!(!persian["result"]["text"].as_str().unwrap().contains(['ي', 'ك', '?']), "{}", persian["result"]["text"]);

    assert_wer(MEDICAL, english["result"]["text"].as_str().unwrap(), 0.10);
    let text = persian["result"]["text"].as_str().unwrap();
    assert_eq!(persian["result"]["language"], "fa");
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let persian_letters = letters.iter().filter(|c| ('\u{0600}'..='\u{06FF}').contains(*c)).count();
    assert!(letters.len() >= 5 && persian_letters * 10 >= letters.len() * 9, "not Persian script: {text:?}");
}

#[tokio::test]
async fn a_voice_note_in_opus_and_a_language_detection() {
    let env = TestEnv::new("opus").await;
    let key = env.create_key("chat").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;

    let opus = transcribe(&api, &key, "jfk.opus", json!({ "model": "tiny.en" })).await;
    assert_wer(JFK, opus["result"]["text"].as_str().unwrap(), 0.10);
    // The multilingual model detects English and says how sure it is.
    let detected = transcribe(&api, &key, "jfk.m4a", json!({ "model": "base" })).await;
    assert_eq!(detected["result"]["language"], "en");
    assert!(detected["result"]["language_probability"].as_f64().unwrap() > 0.5, "{detected}");
    assert_wer(JFK, detected["result"]["text"].as_str().unwrap(), 0.10);
}

#[tokio::test]
async fn bad_files_fail_at_once_with_the_reason() {
    let env = TestEnv::new("bad-audio").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;

    for (file, code) in [("not_audio.wav", "not_audio"), ("truncated.mp3", "corrupted_audio"), ("silence.wav", "silent_audio")] {
        let job = transcribe_bytes(&api, &key, file, fixture(file), json!({ "model": "tiny.en" }), "failed").await;
        assert_eq!(job["attempts"], 1, "{file}: retried although it cannot succeed: {job}");
        let error = &job["error"];
        assert!(error["code"] == code || (file == "truncated.mp3" && error["code"] == "not_audio"), "{file}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    // Zero bytes are refused at upload.
    let (status, body, _) = api.upload_form("/v1/files", &key, Some(("empty.wav", Vec::new())), &[]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "file");
    // A model the worker does not have.
    let job = transcribe_bytes(&api, &key, "jfk.wav", fixture("jfk.wav"), json!({ "model": "large-v9" }), "failed").await;
    assert_eq!(job["error"]["code"], "unknown_model", "{job}");
}

#[tokio::test]
async fn submissions_and_uploads_are_validated() {
    let env = TestEnv::new("speech-validation").await;
    let key = env.create_key("clinic").await;
    let other = env.create_key("other-tenant").await;
    let api = env.start_api_with(&[("PEYK_MAX_UPLOAD_BYTES", "300000"), ("PEYK_MAX_AUDIO_SECONDS", "5")]).await;

    // Over the size limit (jfk.wav is 352 KB) and over the duration limit.
    let (status, body, _) = api.upload_form("/v1/files", &key, Some(("jfk.wav", fixture("jfk.wav"))), &[]).await;
    assert_eq!(status, 413, "{body}");
    let long = wav_bytes(&vec![1000; 16_000 * 6], 16_000); // 6 s, 192 KB
    let (status, body, _) = api.upload_form("/v1/files", &key, Some(("six.wav", long)), &[]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("6 s"), "{body}");
    // No file field; not a form.
    let (status, body, _) = api.upload_form("/v1/files", &key, None, &[("name", "x")]).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].clone()), (400, json!("file")), "{body}");
    let (status, _) = api.post("/v1/files", &key, &json!({})).await;
    assert_eq!(status, 415);

    let short = wav_bytes(&vec![1000; 16_000], 16_000);
    let file_id = api.upload(&key, "one.wav", short).await;
    let (status, file) = api.get(&format!("/v1/files/{file_id}"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(file["duration_seconds"], 1.0);
    assert_eq!(api.get(&format!("/v1/files/{file_id}"), &other).await.0, 404);

    for (payload, field) in [
        (json!({ "file_id": uuid::Uuid::now_v7() }), "payload.file_id"),
        (json!({ "file_id": file_id, "language": "klingon" }), "payload.language"),
        (json!({ "file_id": file_id, "timestamps": "letter" }), "payload.timestamps"),
        (json!({ "file_id": file_id, "temperature": 3 }), "payload.temperature"),
        (json!({ "file_id": file_id, "model": "../../etc/passwd" }), "payload.model"),
    ] {
        let (status, body) = api.post("/v1/jobs", &key, &json!({ "type": "transcription", "payload": payload })).await;
        assert_eq!(status, 422, "{payload}: {body}");
        assert_eq!(body["error"]["details"]["errors"][0]["field"], field, "{body}");
    }
    // Another tenant's file does not exist for this tenant.
    let (status, body) = api.post("/v1/jobs", &other, &json!({ "type": "transcription", "payload": { "file_id": file_id } })).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn openai_endpoint_answers_in_every_response_format() {
    let env = TestEnv::new("openai").await;
    let key = env.create_key("writer").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;
    let audio = fixture("jfk.mp3");

    let form = |format: &'static str| {
        let audio = audio.clone();
        let api = &api;
        let key = &key;
        async move {
            let fields = [("model", "tiny.en"), ("response_format", format), ("language", "en")];
            api.upload_form("/v1/audio/transcriptions", key, Some(("jfk.mp3", audio)), &fields).await
        }
    };
    let (status, body, content_type) = form("json").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    assert_wer(JFK, body["text"].as_str().unwrap(), 0.10);
    assert_eq!(body.as_object().unwrap().len(), 1, "json is only the text: {body}");

    let (status, body, _) = form("verbose_json").await;
    assert_eq!(status, 200);
    assert_eq!(body["task"], "transcribe");
    assert_eq!(body["language"], "english");
    assert!((body["duration"].as_f64().unwrap() - 11.0).abs() < 0.2, "{body}");
    let cues = body["segments"].as_array().unwrap().len();

    let (status, body, content_type) = form("text").await;
    assert!(status == 200 && content_type.starts_with("text/plain"), "{content_type}");
    assert_wer(JFK, body.as_str().unwrap(), 0.10);
    let (_, srt, _) = form("srt").await;
    assert_srt(srt.as_str().unwrap(), cues);
    let (_, vtt, content_type) = form("vtt").await;
    assert!(content_type.starts_with("text/vtt"));
    assert_vtt(vtt.as_str().unwrap(), cues);

    // OpenAI's own model name means "the default model"; word timestamps as OpenAI asks for them.
    let fields = [("model", "whisper-1"), ("response_format", "verbose_json"), ("timestamp_granularities[]", "word")];
    let (status, body, _) = api.upload_form("/v1/audio/translations", &key, Some(("jfk.mp3", audio.clone())), &fields).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"], "translate");
    assert!(body["words"].as_array().is_some_and(|w| !w.is_empty()), "{body}");

    // Every value Peyk does not offer answers 400 naming the field, as OpenAI does.
    let refusals: &[(&[(&str, &str)], &str)] = &[
        (&[("response_format", "docx")], "response_format"),
        (&[("vad", "maybe")], "vad"),
        (&[("timestamp_granularities[]", "sentence")], "timestamp_granularities[]"),
        (&[("include[]", "item_reference")], "include[]"),
        (&[("include[]", "logprobs"), ("response_format", "srt")], "include[]"),
        (&[("chunking_strategy", "{\"type\": \"semantic_vad\"}")], "chunking_strategy"),
        (&[("chunking_strategy", "{\"type\": \"server_vad\", \"threshold\": 3}")], "chunking_strategy"),
        (&[("chunking_strategy", "auto"), ("vad", "false")], "chunking_strategy"),
        (&[("stream", "true"), ("response_format", "srt")], "stream"),
        (&[("stream", "often")], "stream"),
        (&[("digits", "roman")], "digits"),
        (&[("language", "xx")], "language"),
        (&[("known_speaker_names[]", "doctor")], "known_speaker_names[]"),
        (&[("speed", "2")], "speed"),
    ];
    for (fields, field) in refusals {
        let (status, body, _) = api.upload_form("/v1/audio/transcriptions", &key, Some(("a.mp3", audio.clone())), fields).await;
        assert_eq!((status, body["error"]["details"]["errors"][0]["field"].clone()), (400, json!(field)), "{fields:?}: {body}");
    }
    let (status, body, _) = api.upload_form("/v1/audio/translations", &key, Some(("a.mp3", audio.clone())), &[("language", "en")]).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].clone()), (400, json!("language")), "{body}");
    let (status, body, _) =
        api.upload_form("/v1/audio/transcriptions", &key, Some(("a.wav", fixture("not_audio.wav"))), &[("model", "tiny.en")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "not_audio", "{body}");
    let (status, _, _) = api.upload_form("/v1/audio/transcriptions", "peyk_wrong", Some(("a.mp3", audio)), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn openai_fields_logprobs_granularities_chunking_and_the_model_list() {
    let env = TestEnv::new("openai-fields").await;
    let key = env.create_key("writer").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[("PEYK_CONCURRENCY", "transcription=2")]).await;
    let audio = fixture("jfk.mp3");
    let form = |fields: Vec<(&'static str, &'static str)>| {
        let (api, key, audio) = (&api, &key, audio.clone());
        async move {
            let mut fields = fields;
            fields.extend([("model", "tiny.en"), ("language", "en")]);
            let (status, body, _) = api.upload_form("/v1/audio/transcriptions", key, Some(("jfk.mp3", audio)), &fields).await;
            assert_eq!(status, 200, "{fields:?}: {body}");
            body
        }
    };

    let (logprobs, both, auto, server_vad) = tokio::join!(
        form(vec![("include[]", "logprobs")]),
        form(vec![("response_format", "verbose_json"), ("timestamp_granularities[]", "segment"), ("timestamp_granularities[]", "word")]),
        form(vec![("chunking_strategy", "auto")]),
        form(vec![(
            "chunking_strategy",
            r#"{"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300, "silence_duration_ms": 200}"#
        )]),
    );
    // Token log-probabilities in OpenAI's shape, whose bytes spell the text.
    let tokens = logprobs["logprobs"].as_array().unwrap();
    assert!(tokens.len() >= 20, "{logprobs}");
    assert!(tokens.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0 && t["token"].is_string()), "{logprobs}");
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8)).collect();
    assert_eq!(String::from_utf8(bytes).unwrap().trim(), logprobs["text"].as_str().unwrap());
    assert_wer(JFK, logprobs["text"].as_str().unwrap(), 0.10);
    // Both granularities: segments and words.
    assert!(!both["segments"].as_array().unwrap().is_empty() && both["words"].as_array().unwrap().len() >= 20, "{both}");
    // Chunking at pauses (voice activity detection) keeps every word.
    assert_wer(JFK, auto["text"].as_str().unwrap(), 0.10);
    assert_wer(JFK, server_vad["text"].as_str().unwrap(), 0.10);

    // The models the worker loaded, in OpenAI's list shape.
    let (status, models) = api.get("/v1/models", &key).await;
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"tiny.en") && ids.contains(&"base"), "{models}");
    assert!(models["data"].as_array().unwrap().iter().all(|m| m["object"] == "model"), "{models}");
}

#[tokio::test]
async fn openai_endpoint_answers_202_with_the_job_when_the_wait_runs_out() {
    let env = TestEnv::new("openai-202").await;
    let key = env.create_key("writer").await;
    let api = env.start_api_with(&[("PEYK_OPENAI_WAIT_SECONDS", "0.2")]).await;
    // No worker: the job cannot finish in time.
    let (status, body, _) = api.upload_form("/v1/audio/transcriptions", &key, Some(("jfk.wav", fixture("jfk.wav"))), &[]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["type"], "transcription");
    let id = body["id"].as_str().unwrap().to_string();
    let _worker = env.start_speech_worker(&[]).await;
    let job = api.wait_for_status(&key, &id, "succeeded", LONG).await;
    assert_wer(JFK, job["result"]["text"].as_str().unwrap(), 0.10);
}

/// Several transcriptions at once on one worker (each with its own whisper
/// state on the shared model) give the same text as one at a time, and
/// progress shows up in the job record while a longer one runs.
#[tokio::test]
async fn parallel_transcriptions_match_a_single_one_and_report_progress() {
    let env = TestEnv::new("parallel").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[("PEYK_CONCURRENCY", "transcription=3"), ("PEYK_WHISPER_THREADS", "1")]).await;

    let alone = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en" })).await;
    let together = futures::future::join_all((0..3).map(|_| transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en" })))).await;
    for job in &together {
        assert_eq!(job["result"]["text"], alone["result"]["text"]);
    }

    // 44 s of speech: two 30-second windows, so whisper reports in between.
    let jfk = wav_samples(&fixture("jfk.wav"));
    let long: Vec<i16> = jfk.iter().copied().cycle().take(jfk.len() * 4).collect();
    let file_id = api.upload(&key, "long.wav", wav_bytes(&long, 16_000)).await;
    let id = api.submit(&key, &json!({ "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en" } })).await;
    let mut seen = std::collections::BTreeSet::new();
    let job = loop {
        let job = api.job(&key, &id).await;
        if let Some(progress) = job["progress"].as_i64() {
            seen.insert(progress);
        }
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(seen.iter().any(|p| (1..100).contains(p)), "no progress between 0 and 100 seen: {seen:?}");
    let metrics = reqwest::get(format!("{}/metrics", _worker.metrics_url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("peyk_transcription_audio_seconds_total{device=\"cpu\",model=\"tiny.en\"}"), "{metrics}");
}

/// The S3 path: the API writes uploads to, and the worker reads them from,
/// a real S3-compatible server (moto) instead of the local disk.
#[tokio::test]
async fn files_in_s3_compatible_storage() {
    let moto = std::env::var("PEYK_TEST_MOTO").expect("PEYK_TEST_MOTO (moto_server) is set by infrastructure/dev/test.sh");
    let port = free_port();
    let _server = tokio::process::Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while http.put(format!("{endpoint}/peyk-files")).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let env = TestEnv::new("s3").await;
    let key = env.create_key("clinic").await;
    let s3 = [
        ("PEYK_STORAGE", "s3"),
        ("PEYK_S3_BUCKET", "peyk-files"),
        ("PEYK_S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let api = env.start_api_with(&s3).await;
    let _worker = env.start_speech_worker(&s3).await;
    let job = transcribe(&api, &key, "jfk.flac", json!({ "model": "tiny.en" })).await;
    assert_wer(JFK, job["result"]["text"].as_str().unwrap(), 0.10);

    // 12 MiB: more than one 5 MiB part, so it goes up as a multipart upload.
    let large: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let large_id = api.upload(&key, "scan.bin", large).await;

    let listing = http.get(format!("{endpoint}/peyk-files?list-type=2")).send().await.unwrap().text().await.unwrap();
    let file_id = job["payload"]["file_id"].as_str().unwrap();
    assert!(listing.contains(&format!("/{file_id}</Key>")), "{listing}");
    let after_large = listing.split(&format!("/{large_id}</Key>")).nth(1).unwrap_or_else(|| panic!("{listing}"));
    assert!(after_large.contains(&format!("<Size>{}</Size>", 12 * 1024 * 1024)), "{listing}");
    assert!(!env.files_dir().join("files").exists(), "nothing may be written to the local store");
}

/// An upload is spooled to a temporary file as it arrives, not collected on
/// the heap: a 96 MiB upload grows the API's anonymous memory by far less
/// than 96 MiB, and what is stored is exactly what was sent.
#[tokio::test]
async fn large_uploads_are_spooled_not_held_in_memory() {
    let env = TestEnv::new("spool").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let pid = api.child.id().unwrap();
    let anonymous_kib = move || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    // Warm up (first-request allocations), then measure from here.
    api.upload(&key, "small.bin", vec![7; 1024]).await;
    let before = anonymous_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(anonymous_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    // A megabyte of noise, 96 times: cheap to make, nothing to compress.
    let noise: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let data = noise.repeat(96);
    let size = data.len();
    let expected_sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(&data).to_vec()
    };
    let file_id = api.upload(&key, "scan.bin", data.clone()).await;
    sampling.abort();
    let grown_mib = (peak.load(std::sync::atomic::Ordering::Relaxed) - before) / 1024;
    eprintln!("a 96 MiB upload grew the API's anonymous memory by {grown_mib} MiB at most");
    assert!(grown_mib < 40, "a 96 MiB upload grew the API's heap by {grown_mib} MiB");

    let (_, file) = api.get(&format!("/v1/files/{file_id}"), &key).await;
    assert_eq!(file["size_bytes"], size);
    // Stored under files/{tenant}/{file}: the bytes on disk are the bytes sent.
    let tenant_dir = std::fs::read_dir(env.files_dir().join("files")).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read(tenant_dir.join(&file_id)).unwrap() == data, "the stored file differs from the upload");
    let hex: String = expected_sha256.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file["sha256"], hex);
}

/// A speech worker never asks for more whisper threads than it has cores,
/// and runs with libgomp's short spin (README, "Transcription and the cores").
#[tokio::test]
async fn a_speech_worker_sizes_itself_to_its_cores_and_spins_briefly() {
    let env = TestEnv::new("cores").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let worker = env.start_speech_worker(&[("PEYK_WHISPER_THREADS", "64")]).await;
    let environment = worker.environment();
    assert!(environment.iter().any(|v| v == "GOMP_SPINCOUNT=5000"), "{environment:?}");
    // whisper.cpp is built for this CPU: every vector extension it has that
    // ggml can use is compiled in (README "Portable builds").
    let log = worker.log();
    let build = log.lines().find(|l| l.contains("whisper.cpp build")).unwrap_or_else(|| panic!("no build line: {log}"));
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = flags.lines().find(|l| l.starts_with("flags")).unwrap().split_whitespace().collect();
    for (extension, flag) in [("AVX", "avx"), ("AVX2", "avx2"), ("F16C", "f16c"), ("FMA", "fma"), ("AVX512", "avx512f")] {
        if flags.contains(&flag) {
            assert!(build.contains(&format!("{extension} = 1")), "this CPU has {flag}, the build does not use it: {build}");
        }
    }
    assert!(!log.contains("built without vector extensions"), "{log}");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(worker.log().contains(&format!("PEYK_WHISPER_THREADS is more than this process's cores; using {cores}")), "{}", worker.log());
    // It still transcribes, with the threads it has.
    let job = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en", "language": "en" })).await;
    assert_wer(JFK, job["result"]["text"].as_str().unwrap(), 0.10);
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Cancelling a running transcription stops whisper.cpp within a second
/// (the worker's CPU drops) and frees its cores for the next job.
#[tokio::test]
async fn cancelling_a_running_transcription_stops_it_within_a_second() {
    let env = TestEnv::new("cancel-speech").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let worker = env.start_speech_worker(&[]).await;
    let pid = worker.child.id().unwrap();

    // Four minutes of speech: long enough to be running when cancelled.
    let jfk = wav_samples(&fixture("jfk.wav"));
    let long: Vec<i16> = jfk.iter().copied().cycle().take(jfk.len() * 22).collect();
    let file_id = api.upload(&key, "long.wav", wav_bytes(&long, 16_000)).await;
    let id = api
        .submit(&key, &json!({ "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en", "language": "en" } }))
        .await;
    // Whisper works in 30 s windows: an encoder pass, then the decoder's
    // steps; the job's progress moves once per window. The time between two
    // moves is one window's work on this machine, the bound on how long a
    // stop may take (whisper.cpp looks at the abort flag after each encoder
    // pass and each decoder step, never inside a pass).
    let deadline = std::time::Instant::now() + LONG;
    let mut moves: Vec<std::time::Instant> = Vec::new();
    let mut last_progress = 0;
    while moves.len() < 3 {
        let job = api.job(&key, &id).await;
        let progress = job["progress"].as_i64().unwrap_or(0);
        if job["status"] == "running" && progress > 5 && progress != last_progress {
            moves.push(std::time::Instant::now());
            last_progress = progress;
        }
        assert!(job["status"] != "succeeded" && std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let window = moves[2] - moves[1];
    let (busy_before, at) = (cpu_seconds(pid), std::time::Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = (cpu_seconds(pid) - busy_before) / at.elapsed().as_secs_f64();
    assert!(busy > 0.5, "whisper should be busy before the cancel: {busy:.2} cores");

    let cancelled_at = std::time::Instant::now();
    let (status, job) = api.post(&format!("/v1/jobs/{id}/cancel"), &key, &json!({})).await;
    assert_eq!((status, job["status"].as_str()), (200, Some("cancelled")), "{job}");
    // The stop is the end of the first of five 100 ms slices in a row in
    // which the worker is (nearly) idle, then a half second that stays so.
    // One quiet slice is not enough: on a loaded machine a still-running
    // whisper can be kept off the cores for 100 ms, and would look stopped.
    let mut quiet_since: Option<Duration> = None;
    let mut quiet_slices = 0;
    let stopped_after = loop {
        let (before, at) = (cpu_seconds(pid), std::time::Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let cores = (cpu_seconds(pid) - before) / at.elapsed().as_secs_f64();
        if cores < 0.2 {
            quiet_since.get_or_insert(cancelled_at.elapsed());
            quiet_slices += 1;
            if quiet_slices == 5 {
                break quiet_since.unwrap();
            }
        } else {
            (quiet_since, quiet_slices) = (None, 0);
        }
        assert!(cancelled_at.elapsed() < Duration::from_secs(10), "still {cores:.2} cores busy 10 s after the cancel");
    };
    // 0.3 s on two idle cores of a fast machine; never more than the rest of
    // one window (README, "Nothing is lost"). Progress is written at most once
    // a second, so `window` is at least that.
    let bound = window + Duration::from_millis(500);
    assert!(stopped_after < bound, "the worker's CPU dropped only {stopped_after:?} after the cancel (one window: {window:?})");
    let (before, at) = (cpu_seconds(pid), std::time::Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = (cpu_seconds(pid) - before) / at.elapsed().as_secs_f64();
    assert!(idle < 0.15, "the worker went on using {idle:.2} cores");
    eprintln!("CPU dropped {stopped_after:?} after the cancel (one window: {window:?})");
    // Its cores are free: the next transcription runs at once.
    let next = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en", "language": "en" })).await;
    assert_wer(JFK, next["result"]["text"].as_str().unwrap(), 0.10);
}

/// Every model fetch.sh makes, in f16 and quantized (q8_0, q5_1), is the
/// file its pinned sha256 names and transcribes jfk.wav within 10 % WER.
#[tokio::test]
async fn every_model_and_quantization_transcribes_jfk_within_ten_percent() {
    use sha2::Digest;
    let env = TestEnv::new("quantized").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let dir = models_dir();
    let fetch = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infrastructure/models/fetch.sh")).unwrap();
    let models = ["tiny.en", "tiny.en-q8_0", "tiny.en-q5_1", "base", "base-q8_0", "base-q5_1"];
    for model in models {
        let pin = fetch.lines().find_map(|l| l.trim().strip_prefix(&format!("{model}) ggml_sha256="))).expect(model);
        let file = std::fs::read(format!("{dir}/ggml-{model}.bin")).unwrap();
        let sha256: String = sha2::Sha256::digest(&file).iter().map(|b| format!("{b:02x}")).collect();
        assert!(pin.starts_with(&sha256), "{model}: sha256 {sha256}, pinned {pin}");
    }
    // All of them in one worker, from the folder.
    let _worker = env.start_speech_worker(&[("PEYK_MODELS_DIR", dir.as_str()), ("PEYK_WHISPER_MODELS", "")]).await;
    for model in models {
        let job = transcribe(&api, &key, "jfk.wav", json!({ "model": model, "language": "en" })).await;
        assert_eq!(job["result"]["model"], model);
        assert_wer(JFK, job["result"]["text"].as_str().unwrap(), 0.10);
    }
}

/// Voice activity detection: speech between 20 s stretches of room noise
/// is transcribed as the speech alone is, at its own times, and no text
/// comes from the noise; on by default from 30 s, off per job.
#[tokio::test]
async fn voice_activity_detection_keeps_the_speech_and_nothing_of_the_noise() {
    let env = TestEnv::new("vad").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;
    let english = json!({ "model": "tiny.en", "language": "en", "timestamps": "word" });

    let alone = transcribe(&api, &key, "jfk.wav", english.clone()).await;
    assert!(alone["result"]["speech_duration"].is_null(), "11 s is under the default's 30 s: {alone}");
    let padded = transcribe(&api, &key, "jfk_padded.wav", english.clone()).await;
    let result = &padded["result"];
    let text = result["text"].as_str().unwrap();
    assert_wer(JFK, text, 0.10);
    assert!(word_error_rate(alone["result"]["text"].as_str().unwrap(), text) <= 0.05, "{text:?} against {alone}");
    assert!((result["duration"].as_f64().unwrap() - 51.0).abs() < 0.1, "{result}");
    let speech = result["speech_duration"].as_f64().expect("VAD ran by default on 51 s");
    assert!((7.0..=14.0).contains(&speech), "speech_duration {speech}"); // its own pauses cut too
                                                                         // The speech is at 20-31 s of the recording; so is every segment and word.
    for item in result["segments"].as_array().unwrap().iter().chain(result["words"].as_array().unwrap()) {
        let (start, end) = (item["start"].as_f64().unwrap(), item["end"].as_f64().unwrap());
        assert!((19.0..=31.5).contains(&start) && (19.0..=31.5).contains(&end) && start <= end, "{item}");
    }

    // Off for this job: the whole recording is heard.
    let mut off = english.clone();
    off["vad"] = json!(false);
    let whole = transcribe(&api, &key, "jfk_padded.wav", off).await;
    assert!(whole["result"]["speech_duration"].is_null(), "{whole}");
    assert!(whole["result"]["text"].as_str().unwrap().to_lowercase().contains("country"), "{whole}");

    // Noise alone, VAD asked for: nothing to transcribe, failed at once.
    let noise = wav_samples(&fixture("jfk_padded.wav"))[..16_000 * 20].to_vec();
    let mut on = english;
    on["vad"] = json!(true);
    let job = transcribe_bytes(&api, &key, "room.wav", wav_bytes(&noise, 16_000), on, "failed").await;
    assert_eq!(job["error"]["code"], "no_speech", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
}

/// jfk.wav three times, a second of silence after each (36 s): several
/// segments, decoded one after another.
fn jfk_three_times() -> Vec<u8> {
    let jfk = wav_samples(&fixture("jfk.wav"));
    let mut audio = Vec::new();
    for _ in 0..3 {
        audio.extend_from_slice(&jfk);
        audio.extend(std::iter::repeat_n(0i16, 16_000));
    }
    wav_bytes(&audio, 16_000)
}

/// `GET /v1/jobs/{id}/events` with `Last-Event-ID`, as a client that drops
/// the connection after the first segment would send it.
async fn follow(api: &Api, key: &str, job: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request = api.http.get(format!("{}/v1/jobs/{job}/events", api.url)).bearer_auth(key);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    SseReader::new(response)
}

#[tokio::test]
async fn the_event_stream_sends_segments_as_decoded_and_resumes_after_a_disconnect() {
    let env = TestEnv::new("events").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;
    let file_id = api.upload(&key, "three.wav", jfk_three_times()).await;
    let id = api
        .submit(&key, &json!({ "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en", "language": "en" } }))
        .await;

    // The first connection: the job's status, then segments as they come;
    // it hangs up after the first segment.
    let mut first = follow(&api, &key, &id, None).await;
    let mut seen: Vec<Value> = Vec::new();
    let mut statuses = Vec::new();
    let last_id = loop {
        let event = tokio::time::timeout(LONG, first.next()).await.expect("an event in time").expect("the stream goes on");
        match event.event.as_str() {
            "status" => statuses.push(event.json()["status"].as_str().unwrap().to_string()),
            "attempt" => assert_eq!(event.json()["attempt"], 1),
            "segment" => {
                seen.push(event.json());
                break event.id.expect("segments carry an event id");
            }
            other => panic!("unexpected {other} before the first segment: {}", event.data),
        }
    };
    drop(first);
    assert!(!statuses.is_empty(), "a status comes first");

    // Resumed after the last event received: the rest, then the record.
    let mut resumed = follow(&api, &key, &id, Some(&last_id)).await;
    let record = loop {
        let event = tokio::time::timeout(LONG, resumed.next()).await.expect("an event in time").expect("the stream ends with done");
        match event.event.as_str() {
            "segment" => seen.push(event.json()),
            "status" => statuses.push(event.json()["status"].as_str().unwrap().to_string()),
            "done" => break event.json(),
            other => panic!("unexpected {other}: {}", event.data),
        }
    };
    assert!(resumed.next().await.is_none(), "the stream ends after done");
    assert_eq!(record["status"], "succeeded", "{record}");
    // Every segment once, in order, none lost between the two connections,
    // each as the final record has it.
    let ids: Vec<u64> = seen.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    let segments = record["result"]["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{record}");
    assert_eq!(ids, (0..segments.len() as u64).collect::<Vec<_>>(), "{seen:?}");
    for (live, done) in seen.iter().zip(segments) {
        assert_eq!((&live["text"], &live["start"], &live["end"]), (&done["text"], &done["start"], &done["end"]));
    }

    // After the end, a reconnect gets the present status and the record at once.
    let mut late = follow(&api, &key, &id, Some(&last_id)).await;
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), late.next()).await.unwrap() {
        kinds.push(event.event);
    }
    assert_eq!(kinds.first().map(String::as_str), Some("segment"), "{kinds:?}");
    assert_eq!(kinds.iter().rev().take(2).map(String::as_str).collect::<Vec<_>>(), ["done", "status"], "{kinds:?}");

    // What the job published lives minutes after it, not longer (it is the
    // transcript's text), and goes with the job's erasure.
    let mut redis = redis::Client::open(env.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let live_key = format!("{}:live:{id}", env.prefix);
    let ttl: i64 = redis::cmd("TTL").arg(&live_key).query_async(&mut redis).await.unwrap();
    assert!((1..=600).contains(&ttl), "the live stream of an ended job expires within 10 minutes: TTL {ttl}");
    assert_eq!(api.request(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"), Some(&key), None).await.0, 200);
    let exists: i64 = redis::cmd("EXISTS").arg(&live_key).query_async(&mut redis).await.unwrap();
    assert_eq!(exists, 0, "erased with the job");
    let mut erased = follow(&api, &key, &id, Some(&last_id)).await;
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), erased.next()).await.unwrap() {
        kinds.push(event.event);
    }
    assert_eq!(kinds, ["status", "done"]);

    // An id this stream never sent, another tenant's job, an unknown job.
    let (status, body) = api.get(&format!("/v1/jobs/{id}/events?last_event_id=(0-0"), &key).await;
    assert_eq!((status, body["error"]["details"]["errors"][0]["field"].clone()), (400, json!("Last-Event-ID")), "{body}");
    let other = env.create_key("shop").await;
    assert_eq!(api.get(&format!("/v1/jobs/{id}/events"), &other).await.0, 404);
    assert_eq!(api.get("/v1/jobs/01936f1c-0000-7000-8000-000000000000/events", &key).await.0, 404);
}

/// OpenAI's official Python SDK, streaming: `stream=True` reads Peyk's
/// `transcript.text.delta` events as the segments are decoded, then
/// `transcript.text.done`.
const OPENAI_STREAM: &str = r#"
import json, os, sys
from openai import OpenAI
client = OpenAI(base_url=os.environ["PEYK_URL"] + "/v1", api_key=os.environ["PEYK_KEY"], max_retries=0)
deltas, done = [], None
with open(sys.argv[1], "rb") as audio:
    for event in client.audio.transcriptions.create(model="tiny.en", file=audio, language="en", stream=True):
        if event.type == "transcript.text.delta":
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
print(json.dumps({"deltas": deltas, "done": done}))
"#;

#[tokio::test]
async fn openais_python_sdk_reads_a_streamed_transcription() {
    let env = TestEnv::new("openai-stream").await;
    let key = env.create_key("writer").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;
    let path = std::env::temp_dir().join(format!("peyk-stream-{}.wav", std::process::id()));
    std::fs::write(&path, jfk_three_times()).unwrap();

    let python = std::env::var("PEYK_TEST_PYTHON").expect("PEYK_TEST_PYTHON is set by infrastructure/dev/test.sh");
    let output = tokio::process::Command::new(python)
        .args(["-c", OPENAI_STREAM])
        .arg(&path)
        .env("PEYK_URL", &api.url)
        .env("PEYK_KEY", &key)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let deltas: Vec<&str> = answer["deltas"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    let done = answer["done"].as_str().expect("a done event");
    assert!(deltas.len() >= 3, "one delta per segment: {answer}");
    assert_eq!(deltas.concat(), done, "the deltas add up to the text");
    assert_wer(&[JFK, JFK, JFK].join(" "), done, 0.10);
}

/// The speaker turns of a result, as (start, end, speaker).
fn found_turns(result: &Value) -> Vec<(f64, f64, String)> {
    let turns = result["speaker_turns"].as_array().unwrap_or_else(|| panic!("no speaker_turns: {result}"));
    turns.iter().map(|t| (t["start"].as_f64().unwrap(), t["end"].as_f64().unwrap(), t["speaker"].as_str().unwrap().to_string())).collect()
}

async fn download(api: &Api, key: &str, id: &str, format: &str) -> (u16, String) {
    let url = format!("{}/v1/jobs/{id}/transcript?format={format}", api.url);
    let response = api.http.get(url).bearer_auth(key).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn two_voices_in_english_and_persian_are_told_apart_and_every_format_shows_them() {
    let env = TestEnv::new("speakers").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;

    for (language, file) in [("en", "conversation_en"), ("fa", "conversation_fa")] {
        let payload = json!({ "model": "base", "language": language, "speakers": true, "timestamps": "word" });
        let job = transcribe(&api, &key, &format!("{file}.wav"), payload).await;
        let result = &job["result"];
        let truth = true_turns(&format!("{file}.turns"));
        let found = found_turns(result);
        let der = diarization_error_rate(&truth, &found);
        eprintln!("{file}: diarization error rate {:.1} % ({} turns found, {} true)", der * 100.0, found.len(), truth.len());
        assert!(der <= 0.15, "{file}: diarization error rate {der:.3} > 0.15; found {found:?}");
        let speakers: std::collections::BTreeSet<&str> = found.iter().map(|t| t.2.as_str()).collect();
        assert_eq!(speakers.into_iter().collect::<Vec<_>>(), ["S1", "S2"], "{file}");
        // The doctor speaks first: S1; every segment and word has a speaker.
        assert_eq!(found[0].2, "S1");
        let segments = result["segments"].as_array().unwrap();
        assert!(segments.iter().all(|s| matches!(s["speaker"].as_str(), Some("S1" | "S2"))), "{segments:?}");
        assert!(result["words"].as_array().unwrap().iter().all(|w| w["speaker"].is_string()));
        // Each segment's speaker is the true speaker at its middle.
        let right = segments
            .iter()
            .filter(|s| {
                let middle = (s["start"].as_f64().unwrap() + s["end"].as_f64().unwrap()) / 2.0;
                let truly = truth.iter().min_by(|a, b| {
                    let distance = |t: &(f64, f64, String)| if middle < t.0 { t.0 - middle } else { (middle - t.1).max(0.0) };
                    distance(a).total_cmp(&distance(b))
                });
                let expected = if truly.unwrap().2 == "D" { "S1" } else { "S2" };
                s["speaker"] == expected
            })
            .count();
        assert!(right * 10 >= segments.len() * 9, "{file}: {right} of {} segments have their true speaker: {segments:?}", segments.len());

        let id = job["id"].as_str().unwrap();
        let (status, text) = download(&api, &key, id, "text").await;
        assert_eq!(status, 200);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 6 && lines.iter().all(|l| l.starts_with("[S1] ") || l.starts_with("[S2] ")), "{text}");
        assert!(lines[0].starts_with("[S1] ") && lines[1].starts_with("[S2] "), "{text}");
        let (_, srt) = download(&api, &key, id, "srt").await;
        assert!(srt.contains("\n[S2] "), "{srt}");
        let (_, vtt) = download(&api, &key, id, "vtt").await;
        assert!(vtt.starts_with("WEBVTT") && vtt.contains("\n[S1] "), "{vtt}");
        let (status, diarized) = download(&api, &key, id, "diarized_json").await;
        assert_eq!(status, 200);
        let diarized: Value = serde_json::from_str(&diarized).unwrap();
        assert_eq!(diarized["segments"].as_array().unwrap().len(), segments.len());
        let (_, verbose) = download(&api, &key, id, "verbose_json").await;
        let verbose: Value = serde_json::from_str(&verbose).unwrap();
        assert_eq!(verbose["segments"][0]["speaker"], "S1");
        assert_eq!(verbose["speaker_turns"], result["speaker_turns"]);
    }

    // Without `speakers`: no labels, and no diarized_json.
    let plain = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en", "language": "en" })).await;
    assert!(plain["result"].get("speaker_turns").is_none() && plain["result"]["segments"][0].get("speaker").is_none());
    let (status, body) = download(&api, &key, plain["id"].as_str().unwrap(), "diarized_json").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no_speaker_labels"), "{body}");
    // One real voice is one speaker.
    let one = transcribe(&api, &key, "jfk.wav", json!({ "model": "tiny.en", "language": "en", "speakers": true })).await;
    assert!(found_turns(&one["result"]).iter().all(|t| t.2 == "S1"), "{}", one["result"]);

    // Speaker counts are checked, naming the field.
    let file_id = api.upload(&key, "jfk.wav", fixture("jfk.wav")).await;
    for (payload, field) in [
        (json!({ "speakers": true, "min_speakers": 0 }), "payload.min_speakers"),
        (json!({ "speakers": true, "max_speakers": 11 }), "payload.max_speakers"),
        (json!({ "speakers": true, "min_speakers": 3, "max_speakers": 2 }), "payload.min_speakers"),
        (json!({ "max_speakers": 2 }), "payload.max_speakers"),
    ] {
        let mut payload = payload;
        payload["file_id"] = json!(file_id);
        let (status, body) = api.post("/v1/jobs", &key, &json!({ "type": "transcription", "payload": payload })).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"]["errors"][0]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn openai_diarized_json_and_the_speaker_fields_of_the_form() {
    let env = TestEnv::new("openai-speakers").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let _worker = env.start_speech_worker(&[]).await;
    let audio = fixture("conversation_en.wav");
    let post = |fields: Vec<(&'static str, &'static str)>| {
        let (api, key, audio) = (&api, &key, audio.clone());
        async move { api.upload_form("/v1/audio/transcriptions", key, Some(("consultation.wav", audio)), &fields).await }
    };

    let (status, body, content_type) = post(vec![("model", "base"), ("language", "en"), ("response_format", "diarized_json")]).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    assert_eq!(body["task"], "transcribe");
    assert!((body["duration"].as_f64().unwrap() - 31.1).abs() < 0.2, "{body}");
    assert_eq!(body["usage"]["type"], "duration");
    assert!(body["text"].as_str().unwrap().contains("headache"), "{body}");
    let segments = body["segments"].as_array().unwrap();
    for (i, segment) in segments.iter().enumerate() {
        let keys: std::collections::BTreeSet<&str> = segment.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["end", "id", "speaker", "start", "text", "type"], "{segment}");
        assert_eq!(segment["type"], "transcript.text.segment");
        assert_eq!(segment["id"], format!("seg_{i:03}"));
    }
    assert_eq!(segments[0]["speaker"], "S1");
    assert!(segments.iter().any(|s| s["speaker"] == "S2"), "{body}");

    // `speakers` with another format; at most one speaker asked for.
    let (status, body, _) =
        post(vec![("model", "base"), ("language", "en"), ("response_format", "text"), ("speakers", "true"), ("max_speakers", "1")]).await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().unwrap();
    assert!(text.starts_with("[S1] ") && !text.contains("[S2]"), "{text}");

    for (fields, field) in [
        (vec![("response_format", "diarized_json"), ("speakers", "false")], "speakers"),
        (vec![("speakers", "maybe")], "speakers"),
        (vec![("speakers", "true"), ("min_speakers", "two")], "min_speakers"),
        (vec![("speakers", "true"), ("min_speakers", "0")], "min_speakers"),
        (vec![("min_speakers", "2")], "min_speakers"),
        (vec![("response_format", "diarized_json"), ("stream", "true")], "stream"),
    ] {
        let (status, body, _) = post(fields.clone()).await;
        assert_eq!(status, 400, "{fields:?}: {body}");
        assert_eq!(body["error"]["details"]["errors"][0]["field"], field, "{fields:?}: {body}");
    }
}
