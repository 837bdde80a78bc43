//! `/v1/email/templates`: a tenant's own email templates. One stored under
//! the name of a built-in template (e.g. `verify`) overrides it for that
//! tenant and language. Every source must parse with minijinja: a broken
//! template is refused here (422 naming the field), not at send time.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::email::{templates, valid_language, valid_template_name};
use peyk_jobs::ValidationErrors;
use peyk_schema::queries::email_templates as q;
use peyk_schema::EmailTemplateRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::state::AppState;
use crate::views::ErrorBody;

/// Largest source of one part (the request body limit applies too).
const MAX_SOURCE_BYTES: usize = 256 * 1024;
const MAX_SUBJECT_BYTES: usize = 2000;

/// A template's sources in one language (minijinja syntax; HTML is
/// auto-escaped). Give `html`, `text` or both: a missing text part is
/// derived from the HTML.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTemplate {
    #[schema(example = "fa")]
    pub language: String,
    #[schema(example = "یادآوری نوبت {{ date }}")]
    pub subject: String,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub name: String,
    pub language: String,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<EmailTemplateRow> for TemplateView {
    fn from(row: EmailTemplateRow) -> Self {
        Self {
            name: row.name,
            language: row.language,
            subject: row.subject,
            html: row.html,
            text: row.text,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A built-in template and its languages.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuiltinTemplate {
    pub name: String,
    pub languages: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// The tenant's own templates, by name and language.
    pub data: Vec<TemplateView>,
    /// Templates every tenant has (overridden by an own one of the same name and language).
    pub builtin: Vec<BuiltinTemplate>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete only this language (default: every language of the name).
    pub language: Option<String>,
}

/// Create or replace a template in one language.
#[utoipa::path(put, path = "/v1/email/templates/{name}", tag = "email", security(("api_key" = ["jobs:write"])),
    params(("name" = String, Path, description = "Template name: lowercase letters, digits, `-`, `_`")),
    request_body = PutTemplate,
    responses(
        (status = 200, description = "Stored", body = TemplateView),
        (status = 422, description = "Invalid name or language, or a source that does not parse", body = ErrorBody),
    ))]
pub async fn put_template(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    ValidJson(body): ValidJson<PutTemplate>,
) -> Result<Json<TemplateView>, ApiError> {
    validate(&name, &body).map_err(ApiError::validation)?;
    let now = Utc::now();
    let row = EmailTemplateRow {
        tenant_id: tenant.0 .0,
        name,
        language: body.language,
        subject: body.subject,
        html: body.html,
        text: body.text,
        created_at: now,
        updated_at: now,
    };
    Ok(Json(q::upsert(&state.pool, &row).await?.into()))
}

fn validate(name: &str, body: &PutTemplate) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if !valid_template_name(name) {
        errors.add("name", "must be 1 to 64 lowercase letters, digits, `-` or `_`");
    }
    if !valid_language(&body.language) {
        errors.add("language", "must be a language code such as `fa` or `en`");
    }
    if body.subject.trim().is_empty() || body.subject.len() > MAX_SUBJECT_BYTES {
        errors.add("subject", format!("must be 1 to {MAX_SUBJECT_BYTES} bytes"));
    } else if let Err(e) = templates::check_syntax("subject", &body.subject) {
        errors.add("subject", format!("does not parse: {}", e.problem));
    }
    if body.html.is_none() && body.text.is_none() {
        errors.add("html", "give `html`, `text` or both");
    }
    for (part, source) in [("html", &body.html), ("text", &body.text)] {
        let Some(source) = source else { continue };
        if source.trim().is_empty() || source.len() > MAX_SOURCE_BYTES {
            errors.add(part, format!("must be 1 to {MAX_SOURCE_BYTES} bytes"));
        } else if let Err(e) = templates::check_syntax(part, source) {
            errors.add(part, format!("does not parse: {}", e.problem));
        }
    }
    errors.into_result()
}

/// The tenant's templates, and the built-in ones.
#[utoipa::path(get, path = "/v1/email/templates", tag = "email", security(("api_key" = ["jobs:read"])),
    responses((status = 200, body = TemplateList)))]
pub async fn list_templates(State(state): State<AppState>, tenant: Tenant) -> Result<Json<TemplateList>, ApiError> {
    let data = q::list(&state.pool, tenant.0).await?.into_iter().map(TemplateView::from).collect();
    let builtin = templates::builtin_names()
        .into_iter()
        .map(|name| BuiltinTemplate {
            name: name.to_string(),
            languages: templates::BUILTIN.iter().filter(|(n, _, _)| *n == name).map(|(_, l, _)| l.to_string()).collect(),
        })
        .collect();
    Ok(Json(TemplateList { data, builtin }))
}

/// Delete a template (every language, or `?language=`). A built-in template
/// of the same name applies again.
#[utoipa::path(delete, path = "/v1/email/templates/{name}", tag = "email", security(("api_key" = ["jobs:write"])),
    params(("name" = String, Path, description = "Template name"), DeleteQuery),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_template(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_parameter("language", e.body_text()))?;
    if let Some(language) = &query.language {
        if !valid_language(language) {
            return Err(ApiError::bad_parameter("language", "must be a language code such as `fa` or `en`"));
        }
    }
    if q::delete(&state.pool, tenant.0, &name, query.language.as_deref()).await? == 0 {
        return Err(ApiError::not_found("template"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(subject: &str, html: Option<&str>, text: Option<&str>) -> PutTemplate {
        PutTemplate { language: "fa".into(), subject: subject.into(), html: html.map(Into::into), text: text.map(Into::into) }
    }

    #[test]
    fn broken_sources_are_named() {
        let fields = |name: &str, b: PutTemplate| -> Vec<String> {
            validate(name, &b).err().map(|e| e.0.into_iter().map(|f| f.field).collect()).unwrap_or_default()
        };
        assert!(fields("verify", body("کد {{ code }}", Some("<p>{{ code }}</p>"), None)).is_empty());
        assert_eq!(fields("verify", body("{{ code", Some("<p>{% if %}</p>"), Some("ok"))), ["subject", "html"]);
        assert_eq!(fields("Bad Name", body("s", None, None)), ["name", "html"]);
    }
}
