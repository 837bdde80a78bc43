//! Transcripts: downloads of a finished `transcription` job in each format,
//! and OpenAI's `/v1/audio/transcriptions` and `/v1/audio/translations`,
//! which upload, submit a normal job and wait for it, so that apps using
//! OpenAI's SDKs switch to Peyk by changing the base URL.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use peyk_jobs::transcription::transcript::{Transcript, TranscriptFormat};
use peyk_jobs::transcription::{Timestamps, TranscriptionJob};
use peyk_jobs::{providers, Job};
use peyk_schema::queries::jobs;
use peyk_schema::{JobRow, JobStatus, TenantId};
use serde_json::json;
use std::convert::Infallible;
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::{missing_field, not_multipart, read_file_field, store, unreadable_form, upload_place, Upload};
use super::job_events::{self, Happening};
use super::jobs::{create_job, parse_job_id, read_when_finished};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ErrorBody, JobView, SubmitJob};

/// A finished transcription as json, text, srt, vtt, verbose_json or diarized_json.
#[utoipa::path(get, path = "/v1/jobs/{id}/transcript", tag = "transcription", security(("api_key" = ["jobs:read"])),
    params(
        ("id" = String, Path, description = "Id of a transcription job"),
        ("format" = Option<String>, Query, description = "json (default), text, srt, vtt, verbose_json or diarized_json (needs a transcript made with `speakers`)"),
    ),
    responses(
        (status = 200, description = "The transcript in the asked format"),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a transcription job, not succeeded (yet), or `diarized_json` of a transcript without speaker labels", body = ErrorBody),
        (status = 410, description = "Erased (`DELETE /v1/jobs/{id}` or retention)", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut format = TranscriptFormat::Json;
    for (name, value) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "format" => format = parse_format("format", &value, ApiError::bad_parameter)?,
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: format")),
        }
    }
    let id = parse_job_id(&id)?;
    let row = jobs::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    if row.job_type != TranscriptionJob::TYPE {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_a_transcription", format!("job {id} is a `{}` job", row.job_type)));
    }
    if row.status() != JobStatus::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!("the job is {}; a transcript exists once it has succeeded", row.status),
        )
        .with_details(json!({ "status": row.status })));
    }
    let transcript = transcript_of(&row)?;
    if format == TranscriptFormat::DiarizedJson && transcript.speaker_turns.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_speaker_labels",
            "this transcript has no speaker labels: submit the job with `speakers`: true for diarized_json",
        ));
    }
    Ok(render(&transcript, format))
}

fn parse_format(field: &str, value: &str, error: fn(&str, String) -> ApiError) -> Result<TranscriptFormat, ApiError> {
    TranscriptFormat::parse(value).ok_or_else(|| error(field, format!("`{value}` is not one of {}", TranscriptFormat::NAMES)))
}

fn transcript_of(row: &JobRow) -> Result<Transcript, ApiError> {
    // A retention of 0 days may erase it as soon as it has finished.
    if let Some(at) = row.erased_at {
        return Err(ApiError::new(StatusCode::GONE, "erased", format!("the transcript was erased at {at}")));
    }
    let result = row.result.clone().ok_or_else(|| ApiError::internal("succeeded transcription without a result"))?;
    serde_json::from_value(result).map_err(ApiError::internal)
}

fn render(transcript: &Transcript, format: TranscriptFormat) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], transcript.render(format)).into_response()
}

/// One model, in OpenAI's shape.
#[derive(serde::Serialize, ToSchema)]
pub struct ModelView {
    /// The name a job's or the form's `model` takes (`base`, `tiny.en`).
    #[schema(example = "base")]
    id: String,
    /// Always `model`.
    object: &'static str,
    /// Unix time the model was made; not known for local files: 0.
    created: i64,
    owned_by: &'static str,
}

/// The model list, in OpenAI's shape.
#[derive(serde::Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    object: &'static str,
    data: Vec<ModelView>,
}

/// The Whisper models the live workers have loaded (OpenAI's
/// `GET /v1/models`, which its SDKs' `models.list()` reads). Empty while
/// no transcription worker runs. Workers report every 15 s, so a model
/// appears within that of its worker's start.
#[utoipa::path(get, path = "/v1/models", tag = "transcription", security(("api_key" = ["jobs:read"])),
    responses(
        (status = 200, body = ModelList),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The key lacks `jobs:read`", body = ErrorBody),
    ))]
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let reports = state.checks.provider_reports(&state).await;
    let data = providers::models_anywhere(&reports, "whisper")
        .into_iter()
        .map(|id| ModelView { id, object: "model", created: 0, owned_by: "peyk" })
        .collect();
    Json(ModelList { object: "list", data })
}

/// OpenAI's transcription form (`multipart/form-data`). A field not listed
/// here, or a value Peyk does not offer, answers 400 naming the field.
// This and `TranslationForm` only describe the forms in the document:
// `read_form` reads them field by field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TranscriptionForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `whisper-*` or `gpt-*` (what OpenAI's SDKs send): the worker's
    /// default model; anything else: a model the workers have loaded
    /// (e.g. `base`, `tiny.en`).
    #[schema(required = false, example = "whisper-1")]
    model: String,
    /// ISO 639-1 code of the spoken language (`fa`, `en`, …); absent: detected.
    #[schema(required = false)]
    language: String,
    /// Vocabulary and style to expect, e.g. drug names.
    #[schema(required = false)]
    prompt: String,
    /// The answer's format; default `json`.
    #[schema(required = false)]
    response_format: TranscriptFormat,
    /// Sampling temperature 0–1; absent: whisper's default with fallback.
    #[schema(required = false, minimum = 0, maximum = 1)]
    temperature: f32,
    /// `word` adds word timestamps (in `verbose_json`); default `segment`.
    #[serde(rename = "timestamp_granularities[]")]
    #[schema(required = false)]
    timestamp_granularities: Vec<Timestamps>,
    /// Peyk's own: `true` or `false` turns voice activity detection on or
    /// off (the `transcription` job's `vad`); absent: on from 30 s of audio.
    #[schema(required = false)]
    vad: bool,
    /// `logprobs`: each text token's log-probability in the answer
    /// (`json` and `verbose_json` only).
    #[serde(rename = "include[]")]
    #[schema(required = false)]
    include: Vec<String>,
    /// `auto`, or `{"type": "server_vad", "threshold": 0.5,
    /// "prefix_padding_ms": 300, "silence_duration_ms": 200}` (each
    /// parameter optional): cut the audio to its speech first, with these
    /// settings (the job's `vad` and `vad_settings`).
    #[schema(required = false)]
    chunking_strategy: String,
    /// `true`: answer with OpenAI's transcript events as they are made
    /// (`text/event-stream`: `transcript.text.delta` per segment, then
    /// `transcript.text.done`); `json` or `text` only.
    #[schema(required = false)]
    stream: bool,
    /// Peyk's own: `false` keeps a Persian transcript as Whisper wrote it
    /// (the job's `normalize`).
    #[schema(required = false)]
    normalize: bool,
    /// Peyk's own: `persian` (default) or `latin` digits in a Persian
    /// transcript (the job's `digits`).
    #[schema(required = false)]
    digits: String,
    /// Peyk's own: `true` labels who spoke when (`speaker` on segments,
    /// `[S1]` in text, srt and vtt); `response_format=diarized_json` implies it.
    #[schema(required = false)]
    speakers: bool,
    /// Peyk's own: fewest speakers to find, 1–10 (default 1).
    #[schema(required = false, minimum = 1, maximum = 10)]
    min_speakers: u32,
    /// Peyk's own: most speakers to find, 1–10 (default 4).
    #[schema(required = false, minimum = 1, maximum = 10)]
    max_speakers: u32,
}

/// OpenAI's translation form (`multipart/form-data`): the transcription
/// form without `language` (the audio's is detected; the text is English).
/// A field not listed here answers 400 naming it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TranslationForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `whisper-*` or `gpt-*` (what OpenAI's SDKs send): the worker's
    /// default model; anything else: a model the workers have loaded
    /// (e.g. `base`, `tiny.en`).
    #[schema(required = false, example = "whisper-1")]
    model: String,
    /// Vocabulary and style to expect.
    #[schema(required = false)]
    prompt: String,
    /// The answer's format; default `json`.
    #[schema(required = false)]
    response_format: TranscriptFormat,
    /// Sampling temperature 0–1; absent: whisper's default with fallback.
    #[schema(required = false, minimum = 0, maximum = 1)]
    temperature: f32,
    /// `word` adds word timestamps (in `verbose_json`); default `segment`.
    #[serde(rename = "timestamp_granularities[]")]
    #[schema(required = false)]
    timestamp_granularities: Vec<Timestamps>,
    /// Peyk's own: `true` or `false` turns voice activity detection on or
    /// off (the `transcription` job's `vad`); absent: on from 30 s of audio.
    #[schema(required = false)]
    vad: bool,
    /// `logprobs`: each text token's log-probability in the answer
    /// (`json` and `verbose_json` only).
    #[serde(rename = "include[]")]
    #[schema(required = false)]
    include: Vec<String>,
    /// `auto`, or `{"type": "server_vad", "threshold": 0.5,
    /// "prefix_padding_ms": 300, "silence_duration_ms": 200}` (each
    /// parameter optional): cut the audio to its speech first, with these
    /// settings (the job's `vad` and `vad_settings`).
    #[schema(required = false)]
    chunking_strategy: String,
    /// `true`: answer with OpenAI's transcript events as they are made
    /// (`text/event-stream`: `transcript.text.delta` per segment, then
    /// `transcript.text.done`); `json` or `text` only.
    #[schema(required = false)]
    stream: bool,
    /// Peyk's own: `false` keeps a Persian transcript as Whisper wrote it
    /// (the job's `normalize`).
    #[schema(required = false)]
    normalize: bool,
    /// Peyk's own: `persian` (default) or `latin` digits in a Persian
    /// transcript (the job's `digits`).
    #[schema(required = false)]
    digits: String,
    /// Peyk's own: `true` labels who spoke when (`speaker` on segments,
    /// `[S1]` in text, srt and vtt); `response_format=diarized_json` implies it.
    #[schema(required = false)]
    speakers: bool,
    /// Peyk's own: fewest speakers to find, 1–10 (default 1).
    #[schema(required = false, minimum = 1, maximum = 10)]
    min_speakers: u32,
    /// Peyk's own: most speakers to find, 1–10 (default 4).
    #[schema(required = false, minimum = 1, maximum = 10)]
    max_speakers: u32,
}

/// OpenAI-compatible transcription.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "transcription", security(("api_key" = ["jobs:write"])),
    request_body(content = TranscriptionForm, content_type = "multipart/form-data", description = "OpenAI's transcription form"),
    responses(
        (status = 200, description = "The transcript in `response_format`; with `stream=true`, OpenAI's transcript events (`text/event-stream`)"),
        (status = 202, description = "Still running after PEYK_OPENAI_WAIT_SECONDS: the job to poll", body = JobView),
        (status = 400, description = "Bad form field, or the audio cannot be transcribed (the job's error)", body = ErrorBody),
        (status = 410, description = "The tenant's retention of 0 days erased the transcript as soon as it was made (`erased`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, description = "`uploads_busy`: PEYK_MAX_CONCURRENT_UPLOADS uploads were being stored and none finished within PEYK_UPLOAD_WAIT_SECONDS; or the file store, database or queue is unreachable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn openai_transcriptions(
    state: State<AppState>,
    tenant: Tenant,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    openai(state, tenant, form, false).await
}

/// OpenAI-compatible translation to English.
#[utoipa::path(post, path = "/v1/audio/translations", tag = "transcription", security(("api_key" = ["jobs:write"])),
    request_body(content = TranslationForm, content_type = "multipart/form-data", description = "OpenAI's translation form"),
    responses(
        (status = 200, description = "The English transcript in `response_format`; with `stream=true`, OpenAI's transcript events (`text/event-stream`)"),
        (status = 202, description = "Still running: the job to poll", body = JobView),
        (status = 400, description = "Bad form field, or the audio cannot be transcribed (the job's error)", body = ErrorBody),
        (status = 410, description = "The tenant's retention of 0 days erased the transcript as soon as it was made (`erased`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, description = "`uploads_busy`: PEYK_MAX_CONCURRENT_UPLOADS uploads were being stored and none finished within PEYK_UPLOAD_WAIT_SECONDS; or the file store, database or queue is unreachable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn openai_translations(
    state: State<AppState>,
    tenant: Tenant,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    openai(state, tenant, form, true).await
}

/// Every field the forms take: OpenAI's, then Peyk's own. Anything else
/// answers 400 naming it: a field that was silently ignored would leave
/// the caller believing it had effect.
const FORM_FIELDS: &[&str] = &[
    "file",
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "include[]",
    "chunking_strategy",
    "stream",
    "vad",
    "normalize",
    "digits",
    "speakers",
    "min_speakers",
    "max_speakers",
];

/// OpenAI's form fields, as read.
#[derive(Default)]
struct OpenAiForm {
    file: Option<Upload>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    temperature: Option<String>,
    word_timestamps: bool,
    logprobs: bool,
    chunking_strategy: Option<String>,
    stream: Option<String>,
    vad: Option<String>,
    normalize: Option<String>,
    digits: Option<String>,
    speakers: Option<String>,
    min_speakers: Option<String>,
    max_speakers: Option<String>,
}

async fn read_form(mut form: Multipart, translate: bool) -> Result<OpenAiForm, ApiError> {
    let mut read = OpenAiForm::default();
    while let Some(field) = form.next_field().await.map_err(unreadable_form)? {
        // OpenAI's SDKs send list fields as `name[]`; plain `name` is the same field.
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            read.file = Some(read_file_field(field).await?);
            continue;
        }
        let value = field.text().await.map_err(unreadable_form)?;
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match name.trim_end_matches("[]") {
            "model" => read.model = value,
            "language" if translate => return Err(form_error("language", "translations detect the spoken language; leave it out".into())),
            "language" => read.language = value,
            "prompt" => read.prompt = value,
            "response_format" => read.response_format = value,
            "temperature" => read.temperature = value,
            "timestamp_granularities" => match value.as_deref() {
                Some("word") => read.word_timestamps = true,
                Some("segment") => {}
                other => return Err(form_error("timestamp_granularities[]", format!("`{}` is not segment or word", other.unwrap_or("")))),
            },
            "include" => match value.as_deref() {
                Some("logprobs") => read.logprobs = true,
                other => {
                    return Err(form_error("include[]", format!("`{}` is not logprobs, the one include offered", other.unwrap_or(""))))
                }
            },
            "chunking_strategy" => read.chunking_strategy = value,
            "stream" => read.stream = value,
            "vad" => read.vad = value,
            "normalize" => read.normalize = value,
            "digits" => read.digits = value,
            "speakers" => read.speakers = value,
            "min_speakers" => read.min_speakers = value,
            "max_speakers" => read.max_speakers = value,
            "known_speaker_names" | "known_speaker_references" => {
                return Err(form_error(&name, "naming known speakers is not supported".into()))
            }
            _ => return Err(form_error(&name, format!("unknown field; the form takes {}", FORM_FIELDS.join(", ")))),
        }
    }
    Ok(read)
}

/// 400 naming a form field, as OpenAI answers a bad request.
fn form_error(field: &str, problem: String) -> ApiError {
    ApiError::bad_parameter(field, problem)
}

fn form_bool(field: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(form_error(field, "must be true or false".into())),
        None => Ok(None),
    }
}

/// OpenAI's `chunking_strategy`: `auto`, or `{"type": "server_vad", …}`
/// with its threshold, padding and silence, as Peyk's voice activity
/// detection and its settings.
fn chunking(value: &str) -> Result<Option<serde_json::Value>, ApiError> {
    if value == "auto" {
        return Ok(None);
    }
    let refuse = |problem: &str| form_error("chunking_strategy", problem.into());
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(value).map_err(|_| refuse("must be auto or a JSON object {\"type\": \"server_vad\", …}"))?;
    let mut settings = serde_json::Map::new();
    for (key, value) in &object {
        let target = match key.as_str() {
            "type" if value == "server_vad" => continue,
            "type" => return Err(refuse("type must be server_vad")),
            "threshold" => "threshold",
            "prefix_padding_ms" => "padding_ms",
            "silence_duration_ms" => "min_silence_ms",
            other => return Err(refuse(&format!("`{other}` is not threshold, prefix_padding_ms or silence_duration_ms"))),
        };
        settings.insert(target.into(), value.clone());
    }
    if !object.contains_key("type") {
        return Err(refuse("needs \"type\": \"server_vad\""));
    }
    Ok(Some(serde_json::Value::Object(settings)))
}

async fn openai(
    State(state): State<AppState>,
    tenant: Tenant,
    form: Result<Multipart, MultipartRejection>,
    translate: bool,
) -> Result<Response, ApiError> {
    let form = form.map_err(not_multipart)?;
    // Held while the form is read and the file stored, not while the job runs.
    let place = upload_place(&state).await?;
    let form = read_form(form, translate).await?;
    let format = match &form.response_format {
        Some(value) => parse_format("response_format", value, form_error)?,
        None => TranscriptFormat::Json,
    };
    if form.logprobs && !matches!(format, TranscriptFormat::Json | TranscriptFormat::VerboseJson) {
        return Err(form_error("include[]", "logprobs come only with response_format json or verbose_json".into()));
    }
    let temperature = match &form.temperature {
        Some(value) => Some(value.parse::<f32>().map_err(|_| form_error("temperature", "must be a number between 0 and 1".into()))?),
        None => None,
    };
    let mut vad = form_bool("vad", form.vad.as_deref())?;
    let vad_settings = match form.chunking_strategy.as_deref() {
        Some(strategy) => {
            if vad == Some(false) {
                return Err(form_error("chunking_strategy", "cuts at pauses, which needs vad; vad is false".into()));
            }
            vad = Some(true);
            chunking(strategy)?
        }
        None => None,
    };
    let stream = form_bool("stream", form.stream.as_deref())? == Some(true);
    if stream && !matches!(format, TranscriptFormat::Json | TranscriptFormat::Text) {
        return Err(form_error("stream", "a streamed answer is a series of JSON events: response_format must be json or text".into()));
    }
    let normalize = form_bool("normalize", form.normalize.as_deref())?;
    let diarized = format == TranscriptFormat::DiarizedJson;
    let speakers = match form_bool("speakers", form.speakers.as_deref())? {
        Some(false) if diarized => {
            return Err(form_error("speakers", "response_format diarized_json labels the speakers; speakers is false".into()))
        }
        asked => asked.unwrap_or(false) || diarized,
    };
    let speaker_bound = |field: &str, value: &Option<String>| -> Result<Option<u32>, ApiError> {
        value.as_deref().map(|v| v.parse::<u32>().map_err(|_| form_error(field, "must be a whole number from 1 to 10".into()))).transpose()
    };
    let min_speakers = speaker_bound("min_speakers", &form.min_speakers)?;
    let max_speakers = speaker_bound("max_speakers", &form.max_speakers)?;
    if let Some(digits) = form.digits.as_deref().filter(|d| !matches!(*d, "persian" | "latin")) {
        return Err(form_error("digits", format!("`{digits}` is not persian or latin")));
    }
    let upload = form.file.ok_or_else(|| missing_field("file"))?;
    let file = store(&state, &tenant, upload).await?;
    drop(place);
    let payload = json!({
        "file_id": file.id,
        // `whisper-1` (what OpenAI's examples send) means "the default model".
        "model": form.model.filter(|m| !m.starts_with("whisper-") && !m.starts_with("gpt-")),
        "language": form.language,
        "prompt": form.prompt,
        "translate": translate,
        "timestamps": if form.word_timestamps { "word" } else { "segment" },
        "temperature": temperature,
        "vad": vad,
        "vad_settings": vad_settings,
        "logprobs": form.logprobs,
        "normalize": normalize,
        "digits": form.digits,
        "speakers": speakers,
        "min_speakers": min_speakers,
        "max_speakers": max_speakers,
    });
    let payload = strip_nulls(payload);
    let submission = SubmitJob {
        job_type: TranscriptionJob::TYPE.into(),
        payload,
        idempotency_key: None,
        max_attempts: None,
        delay_seconds: None,
        run_at: None,
        priority: None,
        metadata: None,
        callback_url: None,
        callback_secret: None,
    };
    let (_, row) = create_job(&state, &tenant, submission).await.map_err(form_field_names)?;
    if stream {
        return Ok(openai_stream(state, tenant.0, row.id));
    }
    let finished =
        read_when_finished(&state, &tenant, row.id, state.limits.openai_wait).await?.ok_or_else(|| ApiError::not_found("job"))?;
    match finished.status() {
        JobStatus::Succeeded => Ok(render(&transcript_of(&finished)?, format)),
        JobStatus::Failed | JobStatus::Dead | JobStatus::Cancelled => Err(job_failed(&finished)),
        _ => {
            let location = format!("/v1/jobs/{}", finished.id);
            Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(JobView::from(finished))).into_response())
        }
    }
}

/// OpenAI's streamed transcription (`stream=true`): a `transcript.text.delta`
/// for each segment as it is decoded, then `transcript.text.done` with the
/// whole text (the record's: for Persian detected on the way, normalised
/// only there), or an `error` — data-only events, as OpenAI's SDKs read them.
fn openai_stream(state: AppState, tenant: TenantId, job: Uuid) -> Response {
    let mut first = true;
    let events = job_events::follow(state, tenant, job, None).filter_map(move |happening| {
        let data = match happening {
            Happening::Live(entry) if entry.kind == "segment" => {
                let segment: serde_json::Value = serde_json::from_str(&entry.data).unwrap_or_default();
                let text = segment["text"].as_str().unwrap_or("");
                // The deltas add up to the text, which has no leading space.
                let delta = if first { text.trim_start() } else { text };
                first = false;
                Some(json!({ "type": "transcript.text.delta", "delta": delta }))
            }
            Happening::Ended(row) => Some(match (row.status(), transcript_of(&row)) {
                (JobStatus::Succeeded, Ok(transcript)) => json!({
                    "type": "transcript.text.done",
                    "text": transcript.text,
                    "usage": { "type": "duration", "seconds": transcript.duration.ceil() },
                }),
                (JobStatus::Succeeded, Err(error)) => stream_error(&error),
                _ => stream_error(&job_failed(&row)),
            }),
            Happening::Unavailable(problem) => Some(json!({
                "type": "error",
                "error": { "type": "unavailable", "code": "unavailable", "message": format!("{problem}; the job goes on: GET /v1/jobs/{job}") },
            })),
            Happening::Live(_) | Happening::Status(_) => None,
        };
        futures::future::ready(data.map(|data| Ok::<_, Infallible>(Event::default().data(data.to_string()))))
    });
    job_events::event_stream(events)
}

/// An error as a streamed answer's last event (what OpenAI's SDKs raise).
fn stream_error(error: &ApiError) -> serde_json::Value {
    json!({ "type": "error", "error": { "type": error.code, "code": error.details.get("reason").unwrap_or(&json!(error.code)), "message": error.message } })
}

/// The job's own error, as OpenAI answers a file it cannot use: 400.
fn job_failed(row: &JobRow) -> ApiError {
    let code = row.error_code.clone().unwrap_or_else(|| row.status.clone());
    let message = row.error_message.clone().unwrap_or_else(|| format!("the transcription job is {}", row.status));
    let status = if row.status() == JobStatus::Dead { StatusCode::BAD_GATEWAY } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, "transcription_failed", message.clone()).with_details(
        json!({ "job_id": row.id, "job_status": row.status, "reason": code, "errors": [{ "field": "file", "problem": message }] }),
    )
}

/// Validation errors name the job's fields (`payload.language`,
/// `payload.vad_settings.threshold`); the client sent the form's
/// (`language`, `chunking_strategy`), and OpenAI answers them with 400.
fn form_field_names(mut error: ApiError) -> ApiError {
    if error.status == StatusCode::UNPROCESSABLE_ENTITY {
        error.status = StatusCode::BAD_REQUEST;
    }
    if let Some(errors) = error.details.get_mut("errors").and_then(|e| e.as_array_mut()) {
        for entry in errors {
            if let Some(field) = entry.get("field").and_then(|f| f.as_str()) {
                let field = field.strip_prefix("payload.").unwrap_or(field);
                let renamed = if field.starts_with("vad_settings") { "chunking_strategy".into() } else { field.replace("file_id", "file") };
                entry["field"] = json!(renamed);
            }
        }
    }
    error
}

fn strip_nulls(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    value
}
