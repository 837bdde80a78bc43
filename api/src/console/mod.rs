//! The operator console under `/console`: server-rendered pages over the
//! API's own handlers (so scopes, validation and redaction are the API's),
//! every asset embedded in the binary and nothing loaded from another host.
//! Sign-in and CSRF: `session`; languages, calendars and Tehran time:
//! `locale`; the pages: `pages`.

mod job_detail;
pub mod locale;
mod overview;
mod pages;
mod payments;
mod schedules;
mod session;
mod webhooks;

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{Environment, State as TemplateState};

use crate::state::AppState;
use locale::{Calendar, Language};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/prefs", get(pages::preferences))
        .route("/console/overview", get(overview::overview))
        .route("/console/overview/live", get(overview::live))
        .route("/console/jobs", get(pages::jobs))
        .route("/console/jobs/{id}", get(pages::job))
        .route("/console/jobs/{id}/audio", get(job_detail::audio))
        .route("/console/jobs/{id}/retry", post(pages::retry_job))
        .route("/console/jobs/{id}/cancel", post(pages::cancel_job))
        .route("/console/dead", get(pages::dead))
        .route("/console/dead/{action}", post(pages::bulk_dead))
        .route("/console/queues", get(pages::queues))
        .route("/console/queues/{queue}/{action}", post(pages::queue_action))
        .route("/console/queues/{action}", post(pages::picked_queue_action))
        .route("/console/webhooks", get(webhooks::list))
        .route("/console/webhooks/messages/{id}", get(webhooks::message))
        .route("/console/webhooks/messages/{id}/replay", post(webhooks::replay))
        .route("/console/payments", get(payments::list))
        .route("/console/payments/{id}", get(payments::show))
        .route("/console/schedules", get(schedules::list).post(schedules::create))
        .route("/console/schedules/{id}", get(schedules::show))
        .route("/console/schedules/{id}/{action}", post(schedules::act))
        .route("/console/assets/{file}", get(asset))
}

/// Pages may load only what this server serves.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; \
                      connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("queues_table.html", include_str!("templates/queues_table.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("confirm.html", include_str!("templates/confirm.html")),
        ("queues.html", include_str!("templates/queues.html")),
        ("message.html", include_str!("templates/message.html")),
        ("schedules.html", include_str!("templates/schedules.html")),
        ("schedule.html", include_str!("templates/schedule.html")),
        ("tenant_picker.html", include_str!("templates/tenant_picker.html")),
        ("webhooks.html", include_str!("templates/webhooks.html")),
        ("webhook_message.html", include_str!("templates/webhook_message.html")),
        ("payments.html", include_str!("templates/payments.html")),
        ("payment.html", include_str!("templates/payment.html")),
    ] {
        env.add_template(name, source).unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env.add_filter("urlencode", |value: String| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>());
    // Counts in the page's digits (Persian digits in Persian).
    env.add_filter("digits", |state: &TemplateState<'_, '_>, value: minijinja::Value| match language_of(state) {
        Language::Persian => locale::persian_digits(&value.to_string()),
        Language::English => value.to_string(),
    });
    env.add_function("t", |state: &TemplateState<'_, '_>, key: &str| locale::text(language_of(state), key).to_string());
    env.add_filter("when", |state: &TemplateState<'_, '_>, value: String| match value.parse::<chrono::DateTime<chrono::Utc>>() {
        Ok(at) => {
            let calendar = state.lookup("calendar").and_then(|v| v.as_str().and_then(Calendar::parse)).unwrap_or(Calendar::Gregorian);
            locale::format_time(at, calendar, language_of(state))
        }
        Err(_) => value,
    });
    env
});

fn language_of(state: &TemplateState<'_, '_>) -> Language {
    state.lookup("lang").and_then(|v| v.as_str().and_then(Language::parse)).unwrap_or(Language::English)
}

/// A page or fragment rendered with `context`, with the console's headers.
fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    match TEMPLATES.get_template(template).and_then(|t| t.render(context)) {
        Ok(html) => with_headers((status, Html(html)).into_response()),
        Err(e) => crate::error::ApiError::internal(format!("console template {template}: {e:#}")).into_response(),
    }
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut response = ([(CONTENT_TYPE, kind)], body).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    with_headers(response)
}

#[cfg(test)]
mod tests {
    /// Every word a template asks for is in the table, in both languages.
    #[test]
    fn every_template_word_has_both_languages() {
        let sources = [
            include_str!("templates/base.html"),
            include_str!("templates/sign_in.html"),
            include_str!("templates/overview.html"),
            include_str!("templates/queues_table.html"),
            include_str!("templates/jobs.html"),
            include_str!("templates/job.html"),
            include_str!("templates/confirm.html"),
            include_str!("templates/queues.html"),
            include_str!("templates/schedules.html"),
            include_str!("templates/schedule.html"),
            include_str!("templates/tenant_picker.html"),
            include_str!("templates/webhooks.html"),
            include_str!("templates/webhook_message.html"),
            include_str!("templates/payments.html"),
            include_str!("templates/payment.html"),
        ];
        for source in sources {
            for call in source.split("t(\"").skip(1) {
                let key = call.split('"').next().unwrap();
                let found = super::locale::WORDS.iter().find(|(k, _, _)| *k == key);
                let (_, english, persian) = found.unwrap_or_else(|| panic!("no words for `{key}`"));
                assert!(!english.is_empty() && !persian.is_empty(), "{key}");
            }
        }
    }
}
