//! `/v1/files`: uploads (multipart), their records, and deletion.
//!
//! An upload is refused with 413 when it is larger than
//! `PEYK_MAX_UPLOAD_BYTES` or, when it is audio, longer than
//! `PEYK_MAX_AUDIO_SECONDS`. Anything else is stored as it came: whether a
//! file is usable audio is the transcription job's to say, with a reason.
//!
//! Uploads are never held whole in memory: the form's file field is spooled
//! to a temporary file as it arrives, probed and hashed through a memory map,
//! and sent to the file store part by part.
//!
//! At most `PEYK_MAX_CONCURRENT_UPLOADS` uploads are read and stored at once
//! per process. A later one waits for a place before its body is read (so
//! TCP back-pressure, not the API's memory or disk, holds what its client
//! sends), and after `PEYK_UPLOAD_WAIT_SECONDS` is answered 503 `uploads_busy`
//! with `Retry-After`.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use peyk_jobs::spool::{Spool, SpoolWriter};
use peyk_jobs::transcription::audio;
use peyk_schema::queries::files;
use peyk_schema::FileRow;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{ErrorBody, FileView};

/// An upload as it arrived, before it is stored.
pub struct Upload {
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Spool,
}

/// The upload form (`multipart/form-data`).
// Only describes the form in the document: `upload` reads it field by field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its name and content type (from the part's headers) are
    /// kept with it.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a file (multipart/form-data, field `file`).
#[utoipa::path(post, path = "/v1/files", tag = "files", security(("api_key" = ["files"])),
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "A form with one field `file`"),
    responses(
        (status = 201, description = "Stored", body = FileView),
        (status = 400, description = "Not a multipart form, or no `file` field", body = ErrorBody),
        (status = 413, description = "Larger than PEYK_MAX_UPLOAD_BYTES, or audio longer than PEYK_MAX_AUDIO_SECONDS", body = ErrorBody),
        (status = 503, description = "`uploads_busy`: PEYK_MAX_CONCURRENT_UPLOADS uploads were being stored and none finished within PEYK_UPLOAD_WAIT_SECONDS; or the file store or database is unreachable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    tenant: Tenant,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = form.map_err(not_multipart)?;
    // Held until the file is stored; nothing of the body is read before.
    let _place = upload_place(&state).await?;
    let mut upload = None;
    while let Some(field) = form.next_field().await.map_err(unreadable_form)? {
        if field.name() == Some("file") {
            upload = Some(read_file_field(field).await?);
        }
    }
    let upload = upload.ok_or_else(|| missing_field("file"))?;
    let row = store(&state, &tenant, upload).await?;
    Ok((StatusCode::CREATED, Json(FileView::from(row))).into_response())
}

/// Get an uploaded file's record.
#[utoipa::path(get, path = "/v1/files/{id}", tag = "files", security(("api_key" = ["files"])),
    params(("id" = String, Path, description = "File id")),
    responses((status = 200, body = FileView), (status = 404, body = ErrorBody)))]
pub async fn get_file(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<Json<FileView>, ApiError> {
    let id = parse_file_id(&id)?;
    let row = files::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    Ok(Json(row.into()))
}

/// Erase an uploaded file: its bytes, name, type and hash go; the record
/// (id, size, length, times) stays, with `erased_at`. Jobs that still need
/// it fail with `file_not_found`; erasing it again changes nothing.
#[utoipa::path(delete, path = "/v1/files/{id}", tag = "files", security(("api_key" = ["files"])),
    params(("id" = String, Path, description = "File id")),
    responses((status = 200, description = "Erased: the bare record", body = FileView), (status = 404, body = ErrorBody)))]
pub async fn delete_file(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<FileView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let id = parse_file_id(&id)?;
    files::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    let row = erase(&state, tenant.0 .0, id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    caller.audit(&state, "file.erased", id, serde_json::json!({})).await?;
    Ok(Json(row.into()))
}

/// Deletes a file's bytes from the store, then empties its record (in that
/// order: a record marked erased never points at bytes still kept).
pub async fn erase(state: &AppState, tenant: Uuid, id: Uuid) -> Result<Option<FileRow>, ApiError> {
    state.files.delete(tenant, id).await.map_err(storage_error)?;
    Ok(peyk_schema::queries::retention::mark_file_erased(&state.pool, tenant, id).await?)
}

/// A file store failure as an answer: bytes that are gone are `404`; a
/// store that does not answer is `503` (logged, it is the operator's).
pub fn storage_error(error: peyk_jobs::storage::StorageError) -> ApiError {
    if let peyk_jobs::storage::StorageError::NotFound(_) = error {
        return ApiError::not_found("file");
    }
    tracing::error!(error = %error, "file store unavailable");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "the file store is unreachable; try again shortly")
}

fn parse_file_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("file"))
}

/// Checks the limits, then writes the bytes to the file store and the
/// record to PostgreSQL (in that order: a record never points at nothing).
pub async fn store(state: &AppState, tenant: &Tenant, upload: Upload) -> Result<FileRow, ApiError> {
    if upload.data.is_empty() {
        return Err(ApiError::invalid_field("file", "is empty (0 bytes)"));
    }
    let Upload { filename, content_type, data } = upload;
    let extension = std::path::Path::new(&filename).extension().and_then(|e| e.to_str()).map(str::to_lowercase);
    let (data, duration, sha256) = tokio::task::spawn_blocking(move || {
        let duration = audio::probe_duration(&data, extension.as_deref());
        let sha256 = Sha256::digest(&*data).to_vec();
        (data, duration, sha256)
    })
    .await
    .map_err(ApiError::internal)?;
    if let Some(seconds) = duration.filter(|s| *s > state.limits.max_audio_seconds) {
        return Err(too_large(format!(
            "the audio is {seconds:.0} s long; this server accepts at most {:.0} s",
            state.limits.max_audio_seconds
        )));
    }
    let row = FileRow {
        id: Uuid::now_v7(),
        tenant_id: tenant.0 .0,
        filename,
        content_type,
        size_bytes: data.len() as i64,
        sha256,
        duration_seconds: duration,
        created_at: Utc::now(),
        erased_at: None,
    };
    state.files.put_spool(row.tenant_id, row.id, &data).await.map_err(storage_error)?;
    Ok(files::insert(&state.pool, &row).await?)
}

/// How many seconds a client refused with `uploads_busy` is asked to wait.
const UPLOADS_BUSY_RETRY_AFTER_SECONDS: u64 = 5;

/// A place among the uploads this process reads and stores at once
/// (`PEYK_MAX_CONCURRENT_UPLOADS`): take it before reading the form, and hold
/// it until the upload is stored. While a request waits here its body stays
/// unread, in the client's socket. Waiting longer than
/// `PEYK_UPLOAD_WAIT_SECONDS` answers 503 `uploads_busy` with `Retry-After`.
pub async fn upload_place(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(state.limits.upload_wait, state.uploads.clone().acquire_owned()).await {
        Ok(Ok(place)) => Ok(place),
        Ok(Err(closed)) => Err(ApiError::internal(closed)),
        Err(_) => {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "uploads_busy",
                format!(
                    "this server is storing as many uploads as it takes at once (PEYK_MAX_CONCURRENT_UPLOADS) and none finished within {} s; try again shortly",
                    state.limits.upload_wait.as_secs_f64()
                ),
            )
            .with_details(json!({ "retry_after_seconds": UPLOADS_BUSY_RETRY_AFTER_SECONDS })))
        }
    }
}

/// Spools a file field to a temporary file as its chunks arrive; the
/// router's body limit (`PEYK_MAX_UPLOAD_BYTES`) ends an oversized one early.
pub async fn read_file_field(mut field: Field<'_>) -> Result<Upload, ApiError> {
    let filename = field.file_name().map(sanitize_filename).unwrap_or_else(|| "upload".into());
    let content_type = field.content_type().map(str::to_string);
    let mut spool = SpoolWriter::new().map_err(spool_unavailable)?;
    while let Some(chunk) = field.chunk().await.map_err(unreadable_form)? {
        spool.write(&chunk).await.map_err(spool_unavailable)?;
    }
    let data = spool.finish().await.map_err(spool_unavailable)?;
    Ok(Upload { filename, content_type, data })
}

/// The temporary folder is full or unwritable: the API's disk, not the
/// client's upload, is at fault, and another try (or instance) may succeed.
fn spool_unavailable(error: std::io::Error) -> ApiError {
    tracing::error!(error = %error, "could not spool an upload to a temporary file");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the upload could not be buffered on this server; try again shortly",
    )
}

/// Keeps the last path component, printable characters, at most 255 bytes.
fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut clean: String = base.chars().filter(|c| !c.is_control()).collect();
    while clean.len() > 255 {
        clean.pop();
    }
    if clean.trim().is_empty() {
        "upload".into()
    } else {
        clean
    }
}

pub fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message.clone())
        .with_details(json!({ "errors": [{ "field": "file", "problem": message }] }))
}

pub fn not_multipart(rejection: MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the body must be multipart/form-data ({rejection})"),
    )
}

pub fn unreadable_form(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large("the upload is larger than this server accepts (PEYK_MAX_UPLOAD_BYTES)".into())
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_form", format!("the multipart form could not be read: {}", error.body_text()))
    }
}

pub fn missing_field(field: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "missing_field", format!("the form has no `{field}` field"))
        .with_details(json!({ "errors": [{ "field": field, "problem": "is required" }] }))
}

#[cfg(test)]
mod tests {
    use super::sanitize_filename;

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\voice\\note.ogg"), "note.ogg");
        assert_eq!(sanitize_filename("a\nb.wav"), "ab.wav");
        assert_eq!(sanitize_filename("/"), "upload");
        assert_eq!(sanitize_filename("صدا.m4a"), "صدا.m4a");
    }
}
