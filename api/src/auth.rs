//! API keys: `peyk_` + 43 base64url characters (32 random bytes). Only the
//! SHA-256 of a key is stored; a verified key is cached for a short time so
//! that the hot path does not ask PostgreSQL on every request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use peyk_schema::queries::api_keys::{hash_key, tenant_for_key_hash};
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

/// API keys (by hash) to their tenant, for `PEYK_KEY_CACHE_SECONDS`.
pub type KeyCache = crate::cache::TtlCache<Vec<u8>, TenantId>;

/// The tenant of the request's API key. Every job query takes it.
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|key| key.starts_with(KEY_PREFIX) && key.len() < 128)
            .ok_or_else(ApiError::unauthorized)?;
        let hash = hash_key(key);
        if let Some(tenant) = state.keys.get(&hash) {
            return Ok(Tenant(tenant));
        }
        let tenant = tenant_for_key_hash(&state.pool, &hash).await?.ok_or_else(ApiError::unauthorized)?;
        state.keys.put(hash, tenant);
        Ok(Tenant(tenant))
    }
}
