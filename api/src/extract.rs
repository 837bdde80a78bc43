//! A JSON body extractor whose every rejection is an [`ApiError`]: wrong
//! content type (415), body over the limit (413), malformed JSON (400), and
//! JSON of the wrong shape (422 naming the field, via serde_path_to_error).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ValidJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is larger than this server accepts")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", rejection.body_text())
            }
        })?;
        Ok(ValidJson(parse(&bytes)?))
    }
}

/// A JSON value already parsed (an item of a batch) read as `T`: a 422
/// naming the field when its shape is wrong.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_field(if path == "." { "body" } else { &path }, e.into_inner().to_string())
    })
}

/// JSON text already checked as JSON (an item of a batch, kept raw) read
/// as `T`: a 422 naming the field when its shape is wrong. One pass over
/// the text, where a parsed value read again (`from_value`) took two.
pub fn from_raw<T: DeserializeOwned>(raw: &serde_json::value::RawValue) -> Result<T, ApiError> {
    parse(raw.get().as_bytes())
}

/// JSON of the wrong shape is a 422 naming the field; anything else a 400.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_string() } else { path };
                ApiError::invalid_field(&field, inner.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {inner}")),
        }
    })?;
    deserializer.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A JSON body that may be left out (an empty body is `T::default()`),
/// for actions whose options all have defaults (e.g. a replay).
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // No body at all: no length, or length 0, and nothing streamed.
        let headers = req.headers();
        let empty = headers.get(header::CONTENT_LENGTH).is_some_and(|v| v == "0")
            || (headers.get(header::CONTENT_LENGTH).is_none() && headers.get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        let ValidJson(value) = ValidJson::from_request(req, state).await?;
        Ok(OptionalJson(value))
    }
}
