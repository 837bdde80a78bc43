//! The OpenAPI document (`/openapi.json`) and the interactive docs page
//! (`/docs`). Each job type's payload schema comes from the registry, and
//! `SubmitJob.payload` is documented as one of them.

use std::sync::LazyLock;

use axum::response::IntoResponse;
use axum::{Json, Router};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::{Scalar, Servable};

use crate::views;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

struct JobPayloads;

impl Modify for JobPayloads {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut one_of = OneOfBuilder::new().description(Some("The payload of the job type named by `type`"));
        components.schemas.extend(peyk_jobs::registry::nested_payload_schemas());
        components.schemas.extend(peyk_jobs::registry::result_schemas());
        for (job_type, name, schema) in peyk_jobs::registry::payload_schemas() {
            components.schemas.insert(name.clone(), schema);
            let mut reference = Ref::from_schema_name(name);
            reference.description = format!("payload of `{job_type}`");
            one_of = one_of.item(RefOr::Ref(reference));
        }
        if let Some(RefOr::T(Schema::Object(submit))) = components.schemas.get_mut("SubmitJob") {
            submit.properties.insert("payload".into(), RefOr::T(Schema::OneOf(one_of.build())));
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Peyk", description = "Task-queue processing: submit jobs over HTTP, follow them to their result."),
    paths(
        super::jobs::submit,
        super::jobs::get_job,
        super::jobs::list_jobs,
        super::jobs::cancel_job,
        super::jobs::retry_job,
        super::jobs::list_attempts,
        super::files::upload,
        super::files::get_file,
        super::files::delete_file,
        super::transcripts::download,
        super::sms::outbox,
        super::pipelines::submit,
        super::pipelines::get_pipeline,
        super::pipelines::cancel_pipeline,
        super::email_templates::put_template,
        super::email_templates::list_templates,
        super::email_templates::delete_template,
        super::webhook_endpoints::create_endpoint,
        super::webhook_endpoints::list_endpoints,
        super::webhook_endpoints::get_endpoint,
        super::webhook_endpoints::update_endpoint,
        super::webhook_endpoints::delete_endpoint,
        super::webhook_endpoints::get_secret,
        super::webhook_endpoints::rotate_secret,
        super::webhook_endpoints::endpoint_attempts,
        super::webhook_endpoints::list_messages,
        super::webhook_endpoints::get_message,
        super::webhook_endpoints::message_attempts,
        super::webhook_endpoints::replay_message,
        super::webhook_endpoints::event_types,
        super::transcripts::openai_transcriptions,
        super::transcripts::openai_translations,
        super::payments::put_account,
        super::payments::list_accounts,
        super::payments::delete_account,
        super::payments::register,
        super::payments::list,
        super::payments::get,
        super::payments::verify,
        super::callbacks::gateway_callback,
        super::callbacks::put_source,
        super::callbacks::list_sources,
        super::callbacks::delete_source,
        super::callbacks::receive,
        super::callbacks::list_events,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    components(schemas(views::SubmitJob, views::JobView, views::JobList, views::AttemptView, views::AttemptList, views::ErrorBody, views::ErrorDetail, views::JobErrorView, views::FileView,
        peyk_jobs::transcription::transcript::Transcript, peyk_jobs::transcription::transcript::Segment,
        peyk_jobs::transcription::transcript::Word, super::pipelines::SubmitPipeline, super::pipelines::PipelineView,
        super::pipelines::StepView, peyk_jobs::pipeline::StepSpec,
        super::email_templates::PutTemplate, super::email_templates::TemplateView, super::email_templates::TemplateList,
        super::email_templates::BuiltinTemplate, peyk_jobs::email::EmailAttachment,
        super::payments::PutAccount, super::payments::AccountView, super::callbacks::PutSource,
        super::webhook_endpoints::CreateEndpoint, super::webhook_endpoints::UpdateEndpoint, super::webhook_endpoints::RotateSecret,
        super::webhook_endpoints::ReplayMessage, super::webhook_endpoints::WebhookEndpointView, super::webhook_endpoints::WebhookEndpointList,
        super::webhook_endpoints::WebhookSecretView, super::webhook_endpoints::WebhookAttemptView, super::webhook_endpoints::WebhookAttemptList,
        super::webhook_endpoints::WebhookMessageView, super::webhook_endpoints::WebhookMessageList, super::webhook_endpoints::ReplayView,
        super::webhook_endpoints::EventTypeView, super::webhook_endpoints::EventTypeList)),
    modifiers(&Security, &JobPayloads),
    tags((name = "jobs", description = "Submit and follow jobs"), (name = "files", description = "Uploads (audio, attachments)"),
        (name = "transcription", description = "Transcripts, and OpenAI's audio endpoints"), (name = "operations", description = "Health and metrics"),
        (name = "pipelines", description = "Steps that run one after another, each an ordinary job"),
        (name = "sms", description = "The development SMS outbox"),
        (name = "email", description = "Email templates of the tenant"),
        (name = "payments", description = "Gateway accounts, payments, and the gateways' callbacks"),
        (name = "inbound", description = "Standard Webhooks from other providers, and every inbound event"),
        (name = "webhooks", description = "Outbound webhook endpoints, the events they receive, and every delivery attempt"))
)]
struct ApiDoc;

/// A GET route served outside the derived paths (the document itself, the docs page).
fn plain_get(summary: &str, answer: &str) -> utoipa::openapi::path::PathItem {
    utoipa::openapi::path::PathItem::new(
        utoipa::openapi::HttpMethod::Get,
        utoipa::openapi::path::OperationBuilder::new()
            .tag("operations")
            .summary(Some(summary))
            .response("200", utoipa::openapi::Response::new(answer))
            .build(),
    )
}

pub static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    // The document describes itself and the docs page too.
    doc.paths.paths.insert("/openapi.json".into(), plain_get("This OpenAPI document", "OpenAPI 3.1 JSON"));
    doc.paths.paths.insert("/docs".into(), plain_get("Interactive API documentation (HTML)", "HTML page"));
    doc
});

pub async fn openapi_json() -> impl IntoResponse {
    Json(DOCUMENT.clone())
}

pub fn with_docs(router: Router) -> Router {
    router.merge(Scalar::with_url("/docs", DOCUMENT.clone()))
}
