//! Transcripts: downloads of a finished `transcription` job in each format,
//! and OpenAI's `/v1/audio/transcriptions` and `/v1/audio/translations`,
//! which upload, submit a normal job and wait for it, so that apps using
//! OpenAI's SDKs switch to Peyk by changing the base URL.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peyk_jobs::transcription::transcript::{Transcript, TranscriptFormat};
use peyk_jobs::transcription::{Timestamps, TranscriptionJob};
use peyk_jobs::Job;
use peyk_schema::queries::jobs;
use peyk_schema::{JobRow, JobStatus};
use serde_json::json;
use utoipa::ToSchema;

use super::files::{missing_field, not_multipart, read_file_field, store, unreadable_form, upload_place, Upload};
use super::jobs::{create_job, parse_job_id, read_when_finished};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ErrorBody, JobView, SubmitJob};

/// A finished transcription as json, text, srt, vtt or verbose_json.
#[utoipa::path(get, path = "/v1/jobs/{id}/transcript", tag = "transcription", security(("api_key" = ["jobs:read"])),
    params(
        ("id" = String, Path, description = "Id of a transcription job"),
        ("format" = Option<String>, Query, description = "json (default), text, srt, vtt or verbose_json"),
    ),
    responses(
        (status = 200, description = "The transcript in the asked format"),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a transcription job, or not succeeded (yet)", body = ErrorBody),
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
    Ok(render(&transcript_of(&row)?, format))
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

/// OpenAI's transcription form (`multipart/form-data`). Other fields
/// OpenAI's SDKs send (e.g. `stream`) are ignored.
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
}

/// OpenAI's translation form (`multipart/form-data`): the transcription
/// form without `language` (the audio's is detected; the text is English).
/// Other fields OpenAI's SDKs send are ignored.
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
}

/// OpenAI-compatible transcription.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "transcription", security(("api_key" = ["jobs:write"])),
    request_body(content = TranscriptionForm, content_type = "multipart/form-data", description = "OpenAI's transcription form"),
    responses(
        (status = 200, description = "The transcript in `response_format`"),
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
        (status = 200, description = "The English transcript in `response_format`"),
        (status = 202, description = "Still running: the job to poll", body = JobView),
        (status = 400, body = ErrorBody),
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
    vad: Option<String>,
}

async fn read_form(mut form: Multipart) -> Result<OpenAiForm, ApiError> {
    let mut read = OpenAiForm::default();
    while let Some(field) = form.next_field().await.map_err(unreadable_form)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            read.file = Some(read_file_field(field).await?);
            continue;
        }
        let value = field.text().await.map_err(unreadable_form)?;
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match name.as_str() {
            "model" => read.model = value,
            "language" => read.language = value,
            "prompt" => read.prompt = value,
            "response_format" => read.response_format = value,
            "temperature" => read.temperature = value,
            "vad" => read.vad = value,
            "timestamp_granularities[]" | "timestamp_granularities" => {
                read.word_timestamps |= value.as_deref() == Some("word");
            }
            // OpenAI's SDKs send fields we have no use for (e.g. `stream`); ignoring them keeps them working.
            _ => {}
        }
    }
    Ok(read)
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
    let form = read_form(form).await?;
    let format = match &form.response_format {
        Some(value) => parse_format("response_format", value, ApiError::invalid_field)?,
        None => TranscriptFormat::Json,
    };
    let temperature = match &form.temperature {
        Some(value) => Some(value.parse::<f32>().map_err(|_| ApiError::invalid_field("temperature", "must be a number between 0 and 1"))?),
        None => None,
    };
    let vad = match form.vad.as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid_field("vad", "must be true or false")),
        None => None,
    };
    let upload = form.file.ok_or_else(|| missing_field("file"))?;
    let file = store(&state, &tenant, upload).await?;
    drop(place);
    let payload = json!({
        "file_id": file.id,
        // `whisper-1` (what OpenAI's examples send) means "the default model".
        "model": form.model.filter(|m| !m.starts_with("whisper-") && !m.starts_with("gpt-")),
        "language": if translate { None } else { form.language },
        "prompt": form.prompt,
        "translate": translate,
        "timestamps": if form.word_timestamps { "word" } else { "segment" },
        "temperature": temperature,
        "vad": vad,
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

/// The job's own error, as OpenAI answers a file it cannot use: 400.
fn job_failed(row: &JobRow) -> ApiError {
    let code = row.error_code.clone().unwrap_or_else(|| row.status.clone());
    let message = row.error_message.clone().unwrap_or_else(|| format!("the transcription job is {}", row.status));
    let status = if row.status() == JobStatus::Dead { StatusCode::BAD_GATEWAY } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, "transcription_failed", message.clone()).with_details(
        json!({ "job_id": row.id, "job_status": row.status, "reason": code, "errors": [{ "field": "file", "problem": message }] }),
    )
}

/// Validation errors name `payload.language`; the client sent `language`.
fn form_field_names(mut error: ApiError) -> ApiError {
    if let Some(errors) = error.details.get_mut("errors").and_then(|e| e.as_array_mut()) {
        for entry in errors {
            if let Some(field) = entry.get("field").and_then(|f| f.as_str()) {
                let renamed = field.strip_prefix("payload.").unwrap_or(field).replace("file_id", "file");
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
