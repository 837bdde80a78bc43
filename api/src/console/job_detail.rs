//! What the job page shows beyond the record, by type: a transcription's
//! audio and segments (a segment plays from its start), a pipeline's steps.
//! The audio itself is served here too, in the ranges a player seeks to.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use peyk_schema::queries::api_keys::Scope;
use peyk_schema::queries::files;
use peyk_schema::FileRow;
use serde_json::{json, Value};
use uuid::Uuid;

use super::pages::{owner_for_job, refusal};
use super::session::Session;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::routes::{jobs, pipelines};
use crate::state::AppState;
use crate::views::JobView;

/// The type-specific part of job `job`'s page, `null` when there is none.
pub(super) async fn of(state: &AppState, tenant: Tenant, job: &JobView) -> Result<Value, ApiError> {
    let mut detail = serde_json::Map::new();
    if job.job_type == "transcription" {
        detail.insert("transcript".into(), transcript(state, tenant, job).await?);
    }
    if let Some(pipeline) = job.pipeline_id {
        let Json(pipeline) = pipelines::get_pipeline(State(state.clone()), tenant, Path(pipeline.to_string()), RawQuery(None)).await?;
        detail.insert("pipeline".into(), serde_json::to_value(pipeline).map_err(ApiError::internal)?);
    }
    Ok(Value::Object(detail))
}

/// The recording (or why it cannot be played) and the segments, each with
/// its start in seconds for the player.
async fn transcript(state: &AppState, tenant: Tenant, job: &JobView) -> Result<Value, ApiError> {
    let audio = match audio_file(state, tenant, job).await? {
        Ok(file) => json!({ "url": format!("/console/jobs/{}/audio", job.id), "type": file.content_type }),
        Err(missing) => json!({ "missing": missing }),
    };
    let result = job.result.as_ref();
    let segments: Vec<Value> = result
        .and_then(|r| r.get("segments"))
        .and_then(Value::as_array)
        .map(|segments| {
            segments
                .iter()
                .map(|s| {
                    let start = s.get("start").and_then(Value::as_f64).unwrap_or(0.0);
                    let end = s.get("end").and_then(Value::as_f64).unwrap_or(start);
                    json!({
                        "start": start,
                        "at": clock(start),
                        "until": clock(end),
                        "text": s.get("text").and_then(Value::as_str).unwrap_or_default().trim(),
                        "speaker": s.get("speaker"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let speakers = result.and_then(|r| r.get("speaker_turns")).map(speaker_totals);
    Ok(json!({ "audio": audio, "segments": segments, "speakers": speakers }))
}

/// Each speaker's share of the talk from the result's `speaker_turns`.
fn speaker_totals(turns: &Value) -> Vec<Value> {
    let mut totals: Vec<(String, f64)> = Vec::new();
    for turn in turns.as_array().into_iter().flatten() {
        let Some(speaker) = turn.get("speaker").and_then(Value::as_str) else { continue };
        let seconds = turn.get("end").and_then(Value::as_f64).unwrap_or(0.0) - turn.get("start").and_then(Value::as_f64).unwrap_or(0.0);
        match totals.iter_mut().find(|(name, _)| name == speaker) {
            Some((_, total)) => *total += seconds.max(0.0),
            None => totals.push((speaker.to_string(), seconds.max(0.0))),
        }
    }
    totals.into_iter().map(|(speaker, seconds)| json!({ "speaker": speaker, "talk": clock(seconds) })).collect()
}

/// `m:ss` (or `h:mm:ss`) of a position in seconds.
fn clock(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The transcription's uploaded file, or the word for why it is not there
/// (erased, never stored).
async fn audio_file(state: &AppState, tenant: Tenant, job: &JobView) -> Result<Result<FileRow, &'static str>, ApiError> {
    let Some(id) = job.payload.get("file_id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()) else {
        return Ok(Err("audio_missing"));
    };
    Ok(match files::get(&state.pool, tenant.0, id).await? {
        Some(file) if file.erased_at.is_none() => Ok(file),
        Some(_) => Err("audio_erased"),
        None => Err("audio_missing"),
    })
}

/// The recording of transcription `id`, whole or (with `Range: bytes=…`)
/// the part asked for, as `206`: a player seeks without downloading it all.
/// Whoever may see the job may hear it.
pub async fn audio(State(state): State<AppState>, session: Session, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&session, Scope::JobsRead, "/console/jobs") {
        return refused;
    }
    match serve_audio(&state, &session, &id, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve_audio(state: &AppState, session: &Session, id: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let tenant = Tenant(owner_for_job(state, session, id).await?.tenant);
    let Json(job) = jobs::get_job(State(state.clone()), tenant, Path(id.to_string()), RawQuery(None)).await?;
    if job.job_type != "transcription" {
        return Err(ApiError::not_found("audio"));
    }
    let file = audio_file(state, tenant, &job).await?.map_err(|_| ApiError::not_found("audio"))?;
    let size = file.size_bytes.max(0) as u64;
    let asked = headers.get(RANGE).and_then(|v| v.to_str().ok());
    let range = match asked.map(|r| byte_range(r, size)) {
        None => 0..size,
        Some(Some(range)) => range,
        Some(None) => {
            let mut refused = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            refused.headers_mut().insert(CONTENT_RANGE, header(&format!("bytes */{size}"))?);
            return Ok(refused);
        }
    };
    let stream = state.files.read_range(file.tenant_id, file.id, range.clone()).await.map_err(crate::routes::files::storage_error)?;
    let mut response = Response::new(Body::from_stream(stream.map_err(std::io::Error::other)));
    *response.status_mut() = if asked.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let response_headers = response.headers_mut();
    // The uploader named the type: only a sound or video type is passed on,
    // so that no upload is ever served to the console as a page or script.
    let kind = file.content_type.as_deref().filter(|t| t.starts_with("audio/") || t.starts_with("video/"));
    response_headers.insert(CONTENT_TYPE, header(kind.unwrap_or("application/octet-stream"))?);
    response_headers.insert(CONTENT_LENGTH, header(&(range.end - range.start).to_string())?);
    response_headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if asked.is_some() {
        response_headers.insert(CONTENT_RANGE, header(&format!("bytes {}-{}/{size}", range.start, range.end.saturating_sub(1)))?);
    }
    Ok(super::with_headers(response))
}

fn header(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(ApiError::internal)
}

/// The bytes of a single `Range: bytes=…` header within `size` (RFC 9110
/// §14.1.2: `a-b`, `a-`, or the last `-n`); `None` when unsatisfiable or
/// not one range.
fn byte_range(header: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() { size } else { last.parse::<u64>().ok()?.saturating_add(1).min(size) };
        start..end
    };
    (range.start < range.end).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::{byte_range, clock};

    #[test]
    fn a_range_header_gives_the_bytes_asked_for_within_the_file() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(0..100));
        assert_eq!(byte_range("bytes=900-", 1000), Some(900..1000));
        assert_eq!(byte_range("bytes=-100", 1000), Some(900..1000));
        assert_eq!(byte_range("bytes=500-5000", 1000), Some(500..1000));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=9-3", 1000), None);
    }

    #[test]
    fn positions_read_as_a_clock() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(75.4), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
