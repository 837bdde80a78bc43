//! Which job types a process knows, as a value (after crates.io's
//! `Runner::register_job_type::<J>()`). Each type is registered once from its
//! [`Job`] impl; the API and the worker look a type up once per job and then
//! call through its [`JobKind`]. [`production`] lists Peyk's types; tests
//! build registries of their own with toy types.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::{Job, JobContext, JobError, ValidationErrors};

/// A payload that passed validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// As re-serialized by its type: defaults filled, unknown fields refused.
    pub payload: serde_json::Value,
    /// Uploaded files it refers to: (field, file id).
    pub files: Vec<(&'static str, uuid::Uuid)>,
}

/// A named OpenAPI schema.
pub type NamedSchema = (String, RefOr<Schema>);

type RunFn = for<'a> fn(serde_json::Value, &'a JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobError>>;

/// One job type: its settings and its functions, taken from its [`Job`]
/// impl, so that code that handles every type needs no type parameter.
pub struct JobKind {
    pub name: &'static str,
    pub default_max_attempts: i32,
    pub attempt_timeout: Duration,
    pub result_fields: &'static [&'static str],
    pub internal: bool,
    validate: fn(serde_json::Value) -> Result<Validated, ValidationErrors>,
    run: RunFn,
    redact: fn(&mut serde_json::Value),
    retry_delay: fn(u32, Option<Duration>) -> Option<Duration>,
    payload_schema: fn() -> NamedSchema,
    nested_schemas: fn(&mut Vec<NamedSchema>),
    result_schemas: fn() -> Vec<(String, serde_json::Value)>,
}

impl JobKind {
    pub fn of<J: Job>() -> Self {
        Self {
            name: J::TYPE,
            default_max_attempts: J::DEFAULT_MAX_ATTEMPTS,
            attempt_timeout: J::ATTEMPT_TIMEOUT,
            result_fields: J::RESULT_FIELDS,
            internal: J::INTERNAL,
            validate: validate_as::<J>,
            run: |payload, ctx| run_as::<J>(payload, ctx).boxed(),
            redact: J::redact,
            retry_delay: J::retry_delay,
            payload_schema: || (<J as utoipa::ToSchema>::name().into_owned(), <J as utoipa::PartialSchema>::schema()),
            nested_schemas: <J as utoipa::ToSchema>::schemas,
            result_schemas: J::result_schemas,
        }
    }

    /// Parses and validates a submitted payload; returns it normalized.
    /// Field paths are relative to the payload.
    pub fn validate(&self, payload: serde_json::Value) -> Result<Validated, ValidationErrors> {
        (self.validate)(payload)
    }

    /// Runs a stored payload.
    pub fn run<'a>(&self, payload: serde_json::Value, ctx: &'a JobContext) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        (self.run)(payload, ctx)
    }

    /// Hides secrets of a stored payload before it is shown.
    pub fn redact(&self, payload: &mut serde_json::Value) {
        (self.redact)(payload);
    }

    /// The type's own delay before the attempt after `attempt`; `None`: the
    /// runner's backoff applies.
    pub fn retry_delay(&self, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
        (self.retry_delay)(attempt, asked)
    }

    /// The payload's schema name and schema, for the OpenAPI document.
    pub fn payload_schema(&self) -> NamedSchema {
        (self.payload_schema)()
    }
}

fn validate_as<J: Job>(payload: serde_json::Value) -> Result<Validated, ValidationErrors> {
    let mut job: J = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ValidationErrors::single(field, e.into_inner().to_string())
    })?;
    job.validate()?;
    job.normalize();
    let files = job.file_ids();
    let payload = serde_json::to_value(&job).map_err(|e| ValidationErrors::single("", e.to_string()))?;
    Ok(Validated { payload, files })
}

async fn run_as<J: Job>(payload: serde_json::Value, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
    // A stored payload that no longer parses (e.g. after an incompatible
    // upgrade) can never succeed.
    let job: J = serde_json::from_value(payload)
        .map_err(|e| JobError::permanent("invalid_payload", format!("stored payload does not parse: {e}")))?;
    job.run(ctx).await
}

/// The job types a process knows, in the order they were registered (the
/// order the OpenAPI document and error messages list them in).
#[derive(Default)]
pub struct Registry {
    kinds: Vec<JobKind>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `J`. Panics when its name is taken: two types on one queue would
    /// run each other's payloads.
    #[must_use]
    pub fn register<J: Job>(mut self) -> Self {
        assert!(self.get(J::TYPE).is_none(), "job type `{}` registered twice", J::TYPE);
        self.kinds.push(JobKind::of::<J>());
        self
    }

    pub fn get(&self, name: &str) -> Option<&JobKind> {
        self.kinds.iter().find(|kind| kind.name == name)
    }

    pub fn kinds(&self) -> &[JobKind] {
        &self.kinds
    }

    /// Every type's name, which is also its queue's name.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|kind| kind.name).collect()
    }

    /// The types clients may submit (every type but the internal ones).
    pub fn submittable_names(&self) -> Vec<&'static str> {
        self.kinds.iter().filter(|kind| !kind.internal).map(|kind| kind.name).collect()
    }

    /// The schemas the payloads refer to (nested structs), by name.
    pub fn nested_payload_schemas(&self) -> Vec<NamedSchema> {
        let mut schemas = Vec::new();
        for kind in &self.kinds {
            (kind.nested_schemas)(&mut schemas);
        }
        schemas
    }

    /// Result schemas the types publish (hand-written JSON Schema), by
    /// component name.
    pub fn result_schemas(&self) -> Vec<NamedSchema> {
        let mut schemas = Vec::new();
        for (name, schema) in self.kinds.iter().flat_map(|kind| (kind.result_schemas)()) {
            match serde_json::from_value(schema) {
                Ok(schema) => schemas.push((name, schema)),
                Err(e) => tracing::error!(%name, error = %e, "a result schema is not valid OpenAPI"),
            }
        }
        schemas
    }
}

/// Peyk's job types. Adding a type is one line here; the API, the worker
/// and the OpenAPI document all read this registry.
pub fn production() -> Arc<Registry> {
    static PRODUCTION: LazyLock<Arc<Registry>> = LazyLock::new(|| {
        Arc::new(
            Registry::new()
                .register::<crate::webhook::WebhookJob>()
                .register::<crate::transcription::TranscriptionJob>()
                .register::<crate::sms::SmsJob>()
                .register::<crate::sms::status::SmsStatusJob>()
                .register::<crate::email::EmailJob>()
                .register::<crate::medical::MedicalAnalysisJob>()
                .register::<crate::payments::PaymentVerificationJob>()
                .register::<crate::payments::reconcile::PaymentReconcileJob>()
                .register::<crate::events::delivery::WebhookDeliveryJob>(),
        )
    });
    PRODUCTION.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_internal_with_their_own_schedule() {
        let registry = production();
        let delivery = registry.get("webhook_delivery").unwrap();
        assert!(delivery.internal && !registry.get("webhook").unwrap().internal);
        assert!(!registry.submittable_names().contains(&"webhook_delivery") && registry.submittable_names().contains(&"webhook"));
        assert!(delivery.retry_delay(1, None).is_some());
        assert_eq!(registry.get("webhook").unwrap().retry_delay(1, None), None, "other types keep the runner's backoff");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_is_registered_once() {
        let _ = Registry::new().register::<crate::webhook::WebhookJob>().register::<crate::webhook::WebhookJob>();
    }
}
