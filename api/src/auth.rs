//! API keys: `peyk_` + 43 base64url characters (32 random bytes). Only the
//! SHA-256 of a key is stored; a verified key is cached for a short time so
//! that the hot path does not ask PostgreSQL on every request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use peyk_schema::queries::api_keys::{hash_key, owner_of_key_hash, KeyOwner};
use peyk_schema::TenantId;
use rand::RngCore;

use crate::error::ApiError;
use crate::state::AppState;

pub const KEY_PREFIX: &str = "peyk_";

/// A new random key; the caller shows it once and stores only its hash.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// API keys (by hash) to their owner, for `PEYK_KEY_CACHE_SECONDS`.
pub type KeyCache = crate::cache::TtlCache<Vec<u8>, KeyOwner>;

/// The owner of the request's API key.
pub async fn key_owner(headers: &HeaderMap, state: &AppState) -> Result<KeyOwner, ApiError> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|key| key.starts_with(KEY_PREFIX) && key.len() < 128)
        .ok_or_else(ApiError::unauthorized)?;
    let hash = hash_key(key);
    if let Some(owner) = state.keys.get(&hash) {
        return Ok(owner);
    }
    let owner = owner_of_key_hash(&state.pool, &hash).await?.ok_or_else(ApiError::unauthorized)?;
    state.keys.put(hash, owner);
    Ok(owner)
}

/// The owner the rate limit found already (`rate_limit::limit`), or found now.
async fn owner(parts: &Parts, state: &AppState) -> Result<KeyOwner, ApiError> {
    match parts.extensions.get::<KeyOwner>() {
        Some(owner) => Ok(*owner),
        None => key_owner(&parts.headers, state).await,
    }
}

/// The tenant of the request's API key. Every job query takes it.
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Tenant(owner(parts, state).await?.tenant))
    }
}

/// An admin key (`peyk-api create-key --admin`): what `/v1/admin/*` needs.
/// A tenant's key gets 403 there.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if owner(parts, state).await?.admin {
            Ok(Admin)
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route needs an admin key (`peyk-api create-key --admin`)"))
        }
    }
}
