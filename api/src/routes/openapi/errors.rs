//! The error answers every operation can give, added to each operation that
//! can give them (an operation's own, more specific description stays):
//! what a client needs to handle, and what a generated client types.
//!
//! - `401` where an API key is required (none, unknown, revoked, expired),
//!   and `403` there too (the key lacks the operation's scope);
//! - `400`, `413`, `415` and `422` where there is a request body (malformed,
//!   too large, wrong content type, a field that fails validation);
//! - `400` where there are query parameters, `404` where there are path ones;
//! - `429` with `Retry-After`: on the public routes (the per-sender limit),
//!   and wherever a tenant's key is taken (the tenant's request rate);
//! - `503` with `Retry-After` wherever PostgreSQL or Redis is needed: every
//!   operation but the process's own (health, metrics, this document).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::Modify;

pub struct StandardErrors;

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path.starts_with("/v1/");
            let admin = path.starts_with("/v1/admin/");
            for (_, operation) in super::operations_mut(item) {
                add_standard_errors(operation, public, admin);
            }
        }
    }
}

fn add_standard_errors(operation: &mut Operation, under_v1: bool, admin: bool) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_query = parameters.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let has_path = parameters.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, response: Response| {
        responses.entry(status.to_string()).or_insert(RefOr::T(response));
    };
    if secured {
        add("401", error("No valid API key (`Authorization: Bearer <key>`)"));
    }
    if secured {
        add("403", error("The key lacks the scope this operation needs (`error.details.scope` names it)"));
    }
    if has_body {
        add("400", error("The body could not be read (malformed JSON or form)"));
        add("413", error("The body is larger than this server accepts"));
        add("415", error("The body is not of the content type this operation takes"));
        add("422", error("A field failed validation (`error.details.errors` names each)"));
    }
    if has_query {
        add("400", error("A query parameter is invalid (`error.details.errors` names it)"));
    }
    if has_path {
        add("404", error("No such resource (or not the caller's)"));
    }
    if under_v1 && !secured {
        add("429", retry_later("Too many requests from this address"));
    }
    if secured && !admin {
        add("429", retry_later("Over the tenant's request rate (`RateLimit-*` headers tell how much is left)"));
    }
    if under_v1 {
        add("503", retry_later("PostgreSQL or Redis is unreachable or restarting; try again"));
    }
}

fn error(description: &str) -> Response {
    ResponseBuilder::new().description(description).content("application/json", error_body()).build()
}

fn retry_later(description: &str) -> Response {
    let seconds = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .description(Some("Seconds to wait before trying again"))
        .build();
    ResponseBuilder::new().description(description).content("application/json", error_body()).header("Retry-After", seconds).build()
}

fn error_body() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build()
}
