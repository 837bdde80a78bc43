//! Which job types a process knows, as a value (after crates.io's
//! `Runner::register_job_type::<J>()`). Each type is registered once from its
//! [`Job`] impl; the API and the worker look a type up once per job and then
//! call through its [`JobKind`]. `peyk_jobs::registry::production` lists
//! Peyk's types; tests build registries of their own with toy types.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::{Clients, Job, JobContext, JobError, ValidationErrors};

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

type RunFn<C> = for<'a> fn(serde_json::Value, &'a JobContext<C>) -> BoxFuture<'a, Result<serde_json::Value, JobError>>;

/// One job type: its settings and its functions, taken from its [`Job`]
/// impl, so that code that handles every type needs no type parameter but
/// the clients `C` its types run with.
pub struct JobKind<C> {
    pub name: &'static str,
    pub default_max_attempts: i32,
    pub attempt_timeout: Duration,
    pub default_concurrency: usize,
    pub result_fields: &'static [&'static str],
    pub internal: bool,
    pub sensitive: bool,
    validate: fn(&serde_json::Value) -> Result<Validated, ValidationErrors>,
    /// `None`: described only (see [`JobKind::described`]).
    run: Option<RunFn<C>>,
    redact: fn(&mut serde_json::Value),
    retry_delay: fn(u32, Option<Duration>) -> Option<Duration>,
    payload_schema: fn() -> NamedSchema,
    nested_schemas: fn(&mut Vec<NamedSchema>),
    result_schemas: fn() -> Vec<(String, serde_json::Value)>,
}

impl<C: Clients> JobKind<C> {
    /// The type with its run code, for a process that runs it.
    pub fn of<J: Job<Clients = C>>() -> Self {
        Self { run: Some(|payload, ctx| run_as::<J>(payload, ctx).boxed()), ..Self::described::<J>() }
    }

    /// The type without its run code: all that validating, showing and
    /// queueing a job needs (the API's registry, `submit::system_job`). A
    /// binary that never builds [`JobKind::of`] for a type does not link
    /// its `run` nor what only `run` reaches (SMTP, provider clients).
    pub fn described<J: Job<Clients = C>>() -> Self {
        Self {
            name: J::TYPE,
            default_max_attempts: J::DEFAULT_MAX_ATTEMPTS,
            attempt_timeout: J::ATTEMPT_TIMEOUT,
            default_concurrency: J::DEFAULT_CONCURRENCY,
            result_fields: J::RESULT_FIELDS,
            internal: J::INTERNAL,
            sensitive: J::SENSITIVE,
            validate: validate_as::<J>,
            run: None,
            redact: J::redact,
            retry_delay: J::retry_delay,
            payload_schema: || (<J as utoipa::ToSchema>::name().into_owned(), <J as utoipa::PartialSchema>::schema()),
            nested_schemas: <J as utoipa::ToSchema>::schemas,
            result_schemas: J::result_schemas,
        }
    }

    /// Parses and validates a submitted payload; returns it normalized.
    /// Field paths are relative to the payload.
    pub fn validate(&self, payload: &serde_json::Value) -> Result<Validated, ValidationErrors> {
        (self.validate)(payload)
    }

    /// Runs a stored payload.
    pub fn run<'a>(&self, payload: serde_json::Value, ctx: &'a JobContext<C>) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        match self.run {
            Some(run) => run(payload, ctx),
            None => {
                let message = format!("this process describes `{}` jobs but does not run them", self.name);
                futures::future::ready(Err(JobError::permanent("not_runnable", message))).boxed()
            }
        }
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

fn validate_as<J: Job>(payload: &serde_json::Value) -> Result<Validated, ValidationErrors> {
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

async fn run_as<J: Job>(payload: serde_json::Value, ctx: &JobContext<J::Clients>) -> Result<serde_json::Value, JobError> {
    // A stored payload that no longer parses (e.g. after an incompatible
    // upgrade) can never succeed.
    let job: J = serde_json::from_value(payload)
        .map_err(|e| JobError::permanent("invalid_payload", format!("stored payload does not parse: {e}")))?;
    job.run(ctx).await
}

/// The job types a process knows, in the order they were registered (the
/// order the OpenAPI document and error messages list them in).
pub struct Registry<C> {
    kinds: Vec<JobKind<C>>,
}

impl<C: Clients> Default for Registry<C> {
    fn default() -> Self {
        Self { kinds: Vec::new() }
    }
}

impl<C: Clients> Registry<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `J`. Panics when its name is taken: two types on one queue would
    /// run each other's payloads.
    #[must_use]
    pub fn register<J: Job<Clients = C>>(self) -> Self {
        self.add(JobKind::of::<J>())
    }

    /// Adds `J` without its run code ([`JobKind::described`]).
    #[must_use]
    pub fn describe<J: Job<Clients = C>>(self) -> Self {
        self.add(JobKind::described::<J>())
    }

    fn add(mut self, kind: JobKind<C>) -> Self {
        assert!(self.get(kind.name).is_none(), "job type `{}` registered twice", kind.name);
        self.kinds.push(kind);
        self
    }

    pub fn get(&self, name: &str) -> Option<&JobKind<C>> {
        self.kinds.iter().find(|kind| kind.name == name)
    }

    pub fn kinds(&self) -> &[JobKind<C>] {
        &self.kinds
    }

    /// Every type's name and its [`Job::DEFAULT_CONCURRENCY`].
    pub fn default_concurrencies(&self) -> Vec<(&'static str, usize)> {
        self.kinds.iter().map(|kind| (kind.name, kind.default_concurrency)).collect()
    }

    /// Every type's name, which is also its queue's name.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|kind| kind.name).collect()
    }

    /// The types clients may submit (every type but the internal ones).
    pub fn submittable_names(&self) -> Vec<&'static str> {
        self.kinds.iter().filter(|kind| !kind.internal).map(|kind| kind.name).collect()
    }

    /// The types whose content is sensitive ([`Job::SENSITIVE`]).
    pub fn sensitive_names(&self) -> Vec<&'static str> {
        self.kinds.iter().filter(|kind| kind.sensitive).map(|kind| kind.name).collect()
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
