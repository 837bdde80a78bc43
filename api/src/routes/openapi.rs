//! The OpenAPI document (`/openapi.json`) and the interactive docs page
//! (`/docs`). Each job type's payload schema comes from the registry, and
//! `SubmitJob.payload` is documented as one of them.

use std::sync::LazyLock;

use axum::response::IntoResponse;
use axum::{Json, Router};
use utoipa::openapi::schema::{AllOfBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_scalar::{Scalar, Servable};

use super::{declared, Declared};

mod errors;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `SubmitJob` as a client generator needs it: one variant per type a
/// client may submit (`SubmitWebhookJob`, …), each `SubmitJobOptions` plus
/// its `type` (a one-value enum) and its payload schema, chosen by `type`
/// (a discriminator). Types only Peyk queues itself are not in it.
struct JobPayloads;

impl Modify for JobPayloads {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let registry = peyk_jobs::registry::catalogue();
        components.schemas.extend(registry.nested_payload_schemas());
        components.schemas.extend(registry.result_schemas());
        let Some(RefOr::T(Schema::Object(mut options))) = components.schemas.remove("SubmitJob") else {
            return;
        };
        options.properties.remove("type");
        options.properties.remove("payload");
        options.required.retain(|field| field != "type" && field != "payload");
        components.schemas.insert("SubmitJobOptions".into(), RefOr::T(Schema::Object(options)));

        let mut variants = OneOfBuilder::new().description(Some("A job to run: its `type`, the payload of that type, and the options"));
        let mut by_type = Discriminator::new("type");
        let mut submittable = Vec::new();
        for kind in registry.kinds().iter().filter(|kind| !kind.internal) {
            let (job_type, (name, schema)) = (kind.name, kind.payload_schema());
            components.schemas.insert(name.clone(), schema);
            let variant = format!("Submit{name}");
            let own = ObjectBuilder::new()
                .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([job_type])))
                .required("type")
                .property("payload", Ref::from_schema_name(name.as_str()))
                .required("payload");
            let schema = AllOfBuilder::new().item(Ref::from_schema_name("SubmitJobOptions")).item(own).build();
            components.schemas.insert(variant.clone(), RefOr::T(Schema::AllOf(schema)));
            variants = variants.item(Ref::from_schema_name(variant.as_str()));
            by_type.mapping.insert(job_type.to_string(), format!("#/components/schemas/{variant}"));
            submittable.push(job_type);
        }
        components.schemas.insert("SubmitJob".into(), RefOr::T(Schema::OneOf(variants.discriminator(Some(by_type)).build())));
        // A pipeline step names its type the same way.
        if let Some(RefOr::T(Schema::Object(step))) = components.schemas.get_mut("StepSpec") {
            let types =
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(submittable)).description(Some("The step's job type"));
            step.properties.insert("type".into(), RefOr::T(Schema::Object(types.build())));
        }
    }
}

/// One handler serving several methods (a gateway's callback: GET and
/// POST) gives each operation the handler's name; operation ids must be
/// unique, so the second and later get their method appended.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashSet::new();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(id) = operation.as_mut().and_then(|operation| operation.operation_id.as_mut()) else {
                    continue;
                };
                if !seen.insert(id.clone()) {
                    id.push('_');
                    id.push_str(method);
                }
            }
        }
    }
}

/// What the document says besides its paths; the paths (and the schemas
/// their operations name) come from the routes themselves (`declared`).
#[derive(OpenApi)]
#[openapi(
    info(title = "Peyk", description = "Task-queue processing: submit jobs over HTTP, follow them to their result."),
    tags((name = "jobs", description = "Submit and follow jobs"), (name = "files", description = "Uploads (audio, attachments)"),
        (name = "transcription", description = "Transcripts, and OpenAI's audio endpoints"), (name = "operations", description = "Health and metrics"),
        (name = "pipelines", description = "Steps that run one after another, each an ordinary job"),
        (name = "sms", description = "The development SMS outbox"),
        (name = "email", description = "Email templates of the tenant"),
        (name = "tasks", description = "Task targets: your app's own endpoints that `task` jobs call, signed, with retries"),
        (name = "payments", description = "Gateway accounts, payments, and the gateways' callbacks"),
        (name = "inbound", description = "Standard Webhooks from other providers, and every inbound event"),
        (name = "webhooks", description = "Outbound webhook endpoints, the events they receive, and every delivery attempt"),
        (name = "admin", description = "Operators only (admin keys): queues, pauses, tenants' weights"))
)]
struct ApiDoc;

/// A GET route served outside the declared ones (the docs page, served by utoipa-scalar).
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
    let Declared { uploads, batches, api } = declared();
    let mut doc = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(api).merge(uploads).merge(batches).into_openapi();
    // After the paths are in: these complete what the operations declared.
    for modifier in [&Security as &dyn Modify, &JobPayloads, &errors::StandardErrors, &UniqueOperationIds] {
        modifier.modify(&mut doc);
    }
    // The document describes itself and the docs page too.
    doc.paths.paths.insert("/docs".into(), plain_get("Interactive API documentation (HTML)", "HTML page"));
    doc
});

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 JSON")))]
pub async fn openapi_json() -> impl IntoResponse {
    Json(DOCUMENT.clone())
}

pub fn with_docs(router: Router) -> Router {
    router.merge(Scalar::with_url("/docs", DOCUMENT.clone()))
}
