//! API keys and what they may do.
//!
//! A key is `peyk_` + 43 base64url characters (32 random bytes); only its
//! SHA-256 is stored. Each operation needs one scope, declared once in its
//! OpenAPI `security` (`"api_key" = ["jobs:write"]`): `authenticate` reads
//! the served document's requirement for the matched route, so the
//! document and the check cannot disagree.
//!
//! Keys are cached per process, known ones and unknown ones (bounded), so
//! neither a good key nor a flood of bad ones costs a database query per
//! request. A revoked key stops working everywhere within a second: each
//! process watches a counter in Redis that every key change moves
//! (`watch_key_changes`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use peyk_jobs::metrics::register;
use peyk_schema::queries::api_keys::{self as q, hash_key, KeyOwner, Scope};
use peyk_schema::queries::audit::{self, Actor, AuditEntry};
use peyk_schema::TenantId;
use prometheus::{IntCounterVec, Opts};
use rand::RngCore;
use serde_json::json;
use utoipa::openapi::OpenApi;

use crate::cache::TtlCache;
use crate::error::ApiError;
use crate::state::AppState;

pub const KEY_PREFIX: &str = "peyk_";

/// A new random key; the caller shows it once and stores only its hash.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Database lookups of keys, by what they found: with both caches warm,
/// this stays flat however many requests come.
static KEY_LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("peyk_api_key_lookups_total", "API keys looked up in PostgreSQL"), &["found"]).unwrap())
});

/// Unknown keys remembered at most: a flood of random keys costs one
/// query each until then, and never more memory.
const UNKNOWN_KEYS_KEPT: usize = 10_000;

/// A key's last use is written at most this often.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// API keys (by hash) to their owner, and keys known not to exist, for
/// `PEYK_KEY_CACHE_SECONDS` or until a key changes anywhere.
pub struct KeyCache {
    known: TtlCache<Vec<u8>, KeyOwner>,
    unknown: TtlCache<Vec<u8>, ()>,
    /// Moves on every `forget_all`: a lookup that began before it does not
    /// store what it found (it may be a key revoked meanwhile).
    generation: AtomicU64,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { known: TtlCache::new(ttl), unknown: TtlCache::bounded(ttl, UNKNOWN_KEYS_KEPT), generation: AtomicU64::new(0) }
    }

    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known.clear();
        self.unknown.clear();
    }
}

/// The owner of the request's API key: `401` when there is none, it is
/// unknown or revoked, or it has expired.
async fn key_owner(headers: &HeaderMap, state: &AppState) -> Result<KeyOwner, ApiError> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|key| key.starts_with(KEY_PREFIX) && key.len() < 128)
        .ok_or_else(ApiError::unauthorized)?;
    owner_of_key_hash(state, hash_key(key)).await
}

/// The owner of the key with this hash (the console's sessions keep the
/// hash): through the same cache, so that a revocation ends both.
pub async fn owner_of_key_hash(state: &AppState, hash: Vec<u8>) -> Result<KeyOwner, ApiError> {
    let cache = &state.keys;
    let owner = if let Some(owner) = cache.known.get(&hash) {
        owner
    } else if cache.unknown.get(&hash).is_some() {
        return Err(ApiError::unauthorized());
    } else {
        let generation = cache.generation.load(Ordering::SeqCst);
        let found = q::owner_of_key_hash(&state.pool, &hash).await?;
        KEY_LOOKUPS.with_label_values(&[if found.is_some() { "yes" } else { "no" }]).inc();
        let still_current = cache.generation.load(Ordering::SeqCst) == generation;
        let Some((owner, last_used)) = found else {
            if still_current {
                cache.unknown.put(hash, ());
            }
            return Err(ApiError::unauthorized());
        };
        if still_current {
            cache.known.put(hash, owner);
        }
        if last_used.is_none_or(|at| chrono::Utc::now() - at > chrono::Duration::from_std(LAST_USED_EVERY).unwrap()) {
            let pool = state.pool.clone();
            tokio::spawn(async move { q::mark_used(&pool, owner.key_id).await });
        }
        owner
    };
    if owner.expired(chrono::Utc::now()) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "key_expired", "this API key has expired; ask an operator for a new one"));
    }
    Ok(owner)
}

/// Forgets the cached keys whenever a key changes in any process (the
/// Redis counter `Queue::bump_keys_epoch` moves), and while Redis cannot
/// say, so that a revocation holds within a second everywhere.
pub async fn watch_key_changes(state: AppState) {
    let mut seen = None;
    loop {
        match state.queue.keys_epoch().await {
            Ok(epoch) if seen == Some(epoch) => {}
            Ok(epoch) => {
                if seen.is_some() {
                    state.keys.forget_all();
                }
                seen = Some(epoch);
            }
            Err(_) => {
                state.keys.forget_all();
                seen = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Tells every API process that keys changed. Should Redis not answer, the
/// caches still let go of the key within `PEYK_KEY_CACHE_SECONDS`.
pub async fn announce_key_change(state: &AppState) {
    state.keys.forget_all();
    if let Err(e) = state.queue.bump_keys_epoch().await {
        tracing::warn!(error = %e, "key change not announced (redis); other API processes see it when their cache expires");
    }
}

/// The scope each operation needs, by method and route template, read
/// from the OpenAPI document made from the same routes as the router.
pub static ROUTE_SCOPES: LazyLock<RouteScopes> = LazyLock::new(|| RouteScopes::from_document(&crate::routes::openapi::DOCUMENT));

/// By route template, each method's scope (`None`: a public operation).
/// Looked up by `&str`: no allocation on the request's path.
pub struct RouteScopes(HashMap<String, Vec<(Method, Option<Scope>)>>);

impl RouteScopes {
    pub fn from_document(document: &OpenApi) -> Self {
        let mut scopes: HashMap<String, Vec<(Method, Option<Scope>)>> = HashMap::new();
        // A copy: the walk over a path item's operations takes it mutably.
        for (path, mut item) in document.paths.paths.clone() {
            for (method, operation) in crate::routes::openapi::operations_mut(&mut item) {
                scopes.entry(path.clone()).or_default().push((method, required_scope(operation)));
            }
        }
        Self(scopes)
    }

    /// `Err`: the route is not in the document (it cannot happen with the
    /// router made from the same list; refused rather than let through).
    fn required(&self, method: &Method, path: &str) -> Result<Option<Scope>, ()> {
        self.0.get(path).and_then(|methods| methods.iter().find(|(m, _)| m == method)).map(|(_, scope)| *scope).ok_or(())
    }
}

/// The one scope an operation's `security` names (panics at start-up on a
/// name that is not a scope: a typo must not make a route public).
fn required_scope(operation: &utoipa::openapi::path::Operation) -> Option<Scope> {
    let requirements = operation.security.as_ref()?;
    let value = serde_json::to_value(requirements).expect("security requirements serialize");
    let names: Vec<String> = value
        .as_array()?
        .iter()
        .filter_map(|r| r.get("api_key"))
        .filter_map(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .flatten()
        .collect();
    match names.as_slice() {
        [] => None,
        [name] => Some(Scope::parse(name).unwrap_or_else(|| panic!("operation {:?} names unknown scope {name:?}", operation.operation_id))),
        more => panic!("operation {:?} names several scopes {more:?}; one is checked", operation.operation_id),
    }
}

/// Finds the key of every request to a secured route and checks it has the
/// route's scope: `401` without a valid key, `403 missing_scope` naming the
/// scope. The owner goes into the request for the rate limit and handlers.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let path = matched.as_ref().map_or("", MatchedPath::as_str);
    let scope = match ROUTE_SCOPES.required(request.method(), path) {
        Ok(None) => return next.run(request).await,
        Ok(Some(scope)) => scope,
        Err(()) => return ApiError::internal(format!("route {path} has no declared scope")).into_response(),
    };
    let owner = match key_owner(request.headers(), &state).await {
        Ok(owner) => owner,
        Err(error) => return error.into_response(),
    };
    if !owner.scopes.contains(scope) {
        return missing_scope(scope).into_response();
    }
    request.extensions_mut().insert(owner);
    crate::rate_limit::admit(&state, owner, request, next).await
}

fn missing_scope(scope: Scope) -> ApiError {
    let name = scope.name();
    ApiError::new(StatusCode::FORBIDDEN, "missing_scope", format!("this API key lacks the scope `{name}` ({})", scope.description()))
        .with_details(json!({ "scope": name }))
}

/// The owner `authenticate` found.
fn owner(parts: &Parts) -> Result<KeyOwner, ApiError> {
    parts.extensions.get::<KeyOwner>().copied().ok_or_else(ApiError::unauthorized)
}

/// The tenant of the request's API key. Every job query takes it.
#[derive(Clone, Copy)]
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Tenant(owner(parts)?.tenant))
    }
}

/// The key making the request: for what the audit log records.
pub struct Caller(pub KeyOwner);

impl Caller {
    pub fn actor(&self) -> Actor<'_> {
        Actor::Key { id: self.0.key_id, prefix: self.0.prefix() }
    }

    pub fn tenant(&self) -> TenantId {
        self.0.tenant
    }

    /// Records a sensitive action on this key's tenant (`audit_for`: another's).
    pub async fn audit(&self, state: &AppState, action: &str, target: impl ToString, details: serde_json::Value) -> Result<(), ApiError> {
        self.audit_for(state, Some(self.0.tenant.0), action, target, details).await
    }

    pub async fn audit_for(
        &self,
        state: &AppState,
        tenant: Option<uuid::Uuid>,
        action: &str,
        target: impl ToString,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let entry = AuditEntry { actor: self.actor(), tenant, action, target: Some(target.to_string()), details };
        Ok(audit::record(&state.pool, entry).await?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Caller(owner(parts)?))
    }
}

/// A key with the `admin` scope (`peyk-api create-key --admin`): what
/// `/v1/admin/*` needs (the route's scope says so too; this makes a
/// handler's signature say it).
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        let owner = owner(parts)?;
        if owner.admin() {
            Ok(Admin(Caller(owner)))
        } else {
            Err(missing_scope(Scope::Admin))
        }
    }
}
