//! Signing in to the console: an API key is exchanged for a session whose
//! token lives only in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! behind TLS), so the key never sits in a URL or in browser storage. The
//! database keeps the token's hash and the key's hash; every request finds
//! the key's owner through the API's own key path, so scopes apply as in the
//! API and a revoked or expired key ends its sessions at once. Each session
//! has a CSRF token that every form carries and every action checks.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use peyk_schema::queries::api_keys::{hash_key, KeyOwner};
use peyk_schema::queries::console_sessions;
use rand::RngCore;

use super::locale::{Calendar, Language};
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "peyk_console";
pub const LANGUAGE_COOKIE: &str = "peyk_console_lang";
pub const CALENDAR_COOKIE: &str = "peyk_console_calendar";

/// A signed-in request: the key's owner, the session's CSRF token and the
/// browser's language and calendar.
pub struct Session {
    pub owner: KeyOwner,
    pub csrf: String,
    pub view: View,
}

/// How pages are shown to this browser (also before signing in).
#[derive(Clone, Copy)]
pub struct View {
    pub language: Language,
    pub calendar: Calendar,
}

impl FromRequestParts<AppState> for View {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let defaults = &state.console;
        Ok(View {
            language: cookie(&parts.headers, LANGUAGE_COOKIE).and_then(Language::parse).unwrap_or(defaults.language),
            calendar: cookie(&parts.headers, CALENDAR_COOKIE).and_then(Calendar::parse).unwrap_or(defaults.calendar),
        })
    }
}

/// Not signed in, or the session ended: to the sign-in page.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let view = View::from_request_parts(parts, state).await.unwrap_or_else(|never| match never {});
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| SignInFirst.into_response())?;
        let found = console_sessions::find(&state.pool, &hash_key(token)).await.map_err(|e| ApiError::from(e).into_response())?;
        let session = found.ok_or_else(|| SignInFirst.into_response())?;
        match crate::auth::owner_of_key_hash(state, session.key_hash).await {
            Ok(owner) => Ok(Session { owner, csrf: session.csrf_token, view }),
            Err(error) if error.status.is_client_error() => Err(SignInFirst.into_response()),
            Err(error) => Err(error.into_response()),
        }
    }
}

impl Session {
    /// Refuses an action whose form does not carry this session's CSRF
    /// token, or that comes from another origin.
    pub fn check_action(&self, headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
        let same_origin = match (headers.get(ORIGIN).and_then(|v| v.to_str().ok()), headers.get(HOST).and_then(|v| v.to_str().ok())) {
            (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, rest)| rest == host),
            (None, _) => true, // browsers send Origin on form posts; other clients have no cookie to abuse
            (Some(_), None) => false,
        };
        let token_matches = token.is_some_and(|token| constant_time_eq(token.as_bytes(), self.csrf.as_bytes()));
        if same_origin && token_matches {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf_failed",
                "the form's CSRF token is missing or wrong; reload the page",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Starts a session for `key`'s owner; the cookie that carries it.
pub async fn start(state: &AppState, key: &str, secure: bool) -> Result<HeaderValue, ApiError> {
    let key_hash = hash_key(key);
    crate::auth::owner_of_key_hash(state, key_hash.clone()).await?;
    let token = random_token();
    let expires_at = chrono::Utc::now() + chrono::Duration::from_std(state.console.session_lifetime).unwrap_or_default();
    console_sessions::create(&state.pool, &hash_key(&token), &key_hash, &random_token(), expires_at).await?;
    let max_age = state.console.session_lifetime.as_secs();
    cookie_header(SESSION_COOKIE, &token, max_age, secure)
}

/// Ends the request's session, if any; the cookie that clears it.
pub async fn end(state: &AppState, headers: &HeaderMap, secure: bool) -> Result<HeaderValue, ApiError> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        console_sessions::delete(&state.pool, &hash_key(token)).await?;
    }
    cookie_header(SESSION_COOKIE, "", 0, secure)
}

/// Remembers a display choice (language, calendar) for a year.
pub fn preference(name: &str, value: &str, secure: bool) -> Result<(axum::http::HeaderName, HeaderValue), ApiError> {
    Ok((SET_COOKIE, cookie_header(name, value, 365 * 86_400, secure)?))
}

fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"))
        .map_err(|e| ApiError::internal(format!("cookie: {e}")))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Behind TLS (directly, or a proxy that says so): cookies get `Secure`.
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
