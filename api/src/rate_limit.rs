//! The per-tenant request rate: every request made with a tenant's key
//! takes a token from the tenant's bucket in Redis (through this process's
//! lease of a few tokens, `TenantTokens`), so every API process shares one
//! limit. Beyond it: `429` with
//! `Retry-After`. Every answer to such a request carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (the IETF draft's fields).
//!
//! Admin keys are not limited, and public routes (no key) have their own
//! per-sender limit (`address_limit`). Should Redis not answer, requests pass
//! too: the limit must not take the API down with it (what needs Redis
//! answers `503` by itself).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use peyk_queue::queue::{Rate, Token};

use crate::error::ApiError;
use crate::state::AppState;
use peyk_schema::queries::api_keys::KeyOwner;

/// Runs the request if the key's tenant has a token left; called by
/// `auth::authenticate` once it knows the key (one middleware, not two: a
/// layer per request costs measurable time on the submission path).
pub async fn admit(state: &AppState, owner: KeyOwner, request: Request, next: Next) -> Response {
    if owner.admin() {
        return next.run(request).await;
    }
    let rate = Rate {
        per_second: owner.requests_per_second.map_or(state.limits.requests_per_second, |r| r.max(1) as u32),
        burst: owner.burst.map_or(state.limits.burst, |b| b.max(1) as u32),
    };
    let token = match state.tokens.take(&owner.tenant.0.to_string(), rate).await {
        Ok(token) => token,
        Err(e) => {
            tracing::debug!(error = %e, "rate limit not checked: redis did not answer");
            return next.run(request).await;
        }
    };
    let mut response = if token.allowed {
        next.run(request).await
    } else {
        ApiError::rate_limited(
            format!("this tenant's limit is {} requests a second (bursts of {})", rate.per_second, rate.burst),
            token.retry_after,
        )
        .into_response()
    };
    add_headers(response.headers_mut(), rate, &token);
    response
}

fn add_headers(headers: &mut HeaderMap, rate: Rate, token: &Token) {
    headers.insert("ratelimit-limit", HeaderValue::from(rate.burst));
    headers.insert("ratelimit-remaining", HeaderValue::from(token.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(token.reset.as_secs_f64().ceil() as u64));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w=1;burst={}", rate.per_second, rate.burst)) {
        headers.insert("ratelimit-policy", policy);
    }
}
