//! The OpenAPI document (`/openapi.json`) and the interactive docs page
//! (`/docs`). Each job type's payload schema comes from the registry, and
//! `SubmitJob.payload` is documented as one of them. The page's viewer
//! (Redoc) is vendored in `api/assets/docs/` and served from here: `/docs`
//! loads nothing from any other host.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::schema::{AllOfBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::{declared, Declared};

mod errors;
mod unions;

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

/// Each operation of a path item, with its method: the one list of the
/// methods a path item holds (scopes, error answers and operation ids each
/// walk it).
pub(crate) fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = (axum::http::Method, &mut utoipa::openapi::path::Operation)> {
    use axum::http::Method;
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
}

/// One handler serving several methods (a gateway's callback: GET and
/// POST) gives each operation the handler's name; operation ids must be
/// unique, so the second and later get their method appended.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashSet::new();
        for item in openapi.paths.paths.values_mut() {
            for (method, operation) in operations_mut(item) {
                let Some(id) = operation.operation_id.as_mut() else { continue };
                if !seen.insert(id.clone()) {
                    id.push('_');
                    id.push_str(&method.as_str().to_ascii_lowercase());
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

/// A GET route served outside the declared ones (the docs page, `with_docs`).
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
    for modifier in [&Security as &dyn Modify, &JobPayloads, &unions::NamedVariants, &errors::StandardErrors, &UniqueOperationIds] {
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

/// The vendored viewer's version (`api/assets/docs/README.md` says how to
/// refresh it); its file's name carries it, so browsers may keep it for good.
macro_rules! viewer_version {
    () => {
        "2.5.4"
    };
}

/// Where the viewer is served.
const VIEWER_PATH: &str = concat!("/docs/redoc-", viewer_version!(), ".standalone.js");

/// Redoc's standalone bundle (npm `redoc`, `bundles/redoc.standalone.js`,
/// unchanged), carried in the binary.
static VIEWER: &[u8] = include_bytes!("../../assets/docs/redoc.standalone.js");

/// The docs page: Redoc starts by itself on the `<redoc>` element and reads
/// `/openapi.json`. No inline script, no outside address, no web fonts (the
/// theme's fonts fall back to the system's).
const PAGE: &str = concat!(
    r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Peyk API</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<noscript>This page needs JavaScript. The OpenAPI document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<redoc spec-url="/openapi.json"></redoc>
<script src=""#,
    concat!("/docs/redoc-", viewer_version!(), ".standalone.js"),
    r#""></script>
</body>
</html>
"#
);

/// Everything from Peyk itself. Redoc needs inline styles (styled
/// components), `data:` images, and a `blob:` worker for its search; the
/// one outside address it tries on its own (the "API docs by Redocly" logo)
/// is refused here before any request is made.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

async fn docs_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}

async fn viewer() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        VIEWER,
    )
}

/// `/docs` and its viewer, outside the declared routes (no key, no rate
/// limit); the document lists `/docs` (`DOCUMENT`), not the viewer's file.
pub fn with_docs(router: Router) -> Router {
    router.route("/docs", get(docs_page)).route(VIEWER_PATH, get(viewer))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_vendored_viewer_is_the_version_and_file_its_readme_names() {
        let bundle = String::from_utf8_lossy(VIEWER);
        assert!(bundle.contains(concat!("\"", viewer_version!(), "\"")), "the bundle is not Redoc {}", viewer_version!());
        let readme = include_str!("../../assets/docs/README.md");
        let sha256 = format!("{:x}", Sha256::digest(VIEWER));
        assert!(readme.contains(&sha256), "api/assets/docs/README.md does not name the bundle's sha256 {sha256}");
        assert!(readme.contains(concat!("exactly **", viewer_version!(), "**")), "README.md names another version");
    }

    #[test]
    fn the_page_names_no_other_host_and_loads_the_served_viewer() {
        assert!(!PAGE.contains("//"), "an outside (or scheme-relative) address in the page:\n{PAGE}");
        assert!(PAGE.contains(&format!("<script src=\"{VIEWER_PATH}\"></script>")));
        assert!(PAGE_POLICY.starts_with("default-src 'self';"));
    }
}
