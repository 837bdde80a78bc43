//! The one trait every job type implements (after crates.io's
//! `BackgroundJob`): a serde payload with a name, a validation step that runs
//! in the API before anything is stored, and a `run` that the worker calls.

use std::future::Future;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::{Clients, JobContext, JobError, ValidationErrors};

pub trait Job: Serialize + DeserializeOwned + utoipa::ToSchema + Send + Sync + 'static {
    /// What the type's `run` reaches through its context (`peyk_jobs`'
    /// `SharedClients` for Peyk's types); the types of one registry share it.
    type Clients: Clients;
    /// The `type` clients submit, and the name of the job's Redis queue.
    const TYPE: &'static str;
    /// Attempts when the submission does not say.
    const DEFAULT_MAX_ATTEMPTS: i32 = 5;
    /// How long one attempt may take before the runner abandons it as a
    /// (retryable) timeout.
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Jobs one worker runs at once from this type's queue when
    /// `PEYK_CONCURRENCY` does not say. Most jobs wait on a remote server,
    /// where a worker can keep hundreds in flight: at 64 the webhook
    /// benchmark delivered 2,664 jobs/s, at 128 3,798/s, at 256 4,087/s,
    /// at 512 4,239/s (2 cores, the API, PostgreSQL and Redis beside it).
    /// Lower it where the server on the other side takes few at once.
    const DEFAULT_CONCURRENCY: usize = 256;
    /// The top-level fields of the type's result, for checking pipeline
    /// references at submission (empty: not checked).
    const RESULT_FIELDS: &'static [&'static str] = &[];
    /// A type only Peyk queues itself (e.g. `webhook_delivery`): `POST
    /// /v1/jobs` and pipelines refuse it, and finishing it publishes no
    /// `job.*` event (which could otherwise loop).
    const INTERNAL: bool = false;
    /// Its payload and result hold what people wrote or said (medical text,
    /// transcripts, messages): kept `PEYK_RETENTION_SENSITIVE_DAYS` (30)
    /// after the job finished, not `PEYK_RETENTION_CONTENT_DAYS` (90).
    const SENSITIVE: bool = false;

    /// Checks what serde cannot: ranges, formats, combinations. Field paths
    /// are relative to the payload.
    fn validate(&self) -> Result<(), ValidationErrors>;

    /// Puts a valid payload in canonical form before it is stored (e.g.
    /// phone numbers as `09XXXXXXXXX`). Runs after `validate` succeeded.
    fn normalize(&mut self) {}

    /// Hides secrets in a stored payload before the API shows it.
    fn redact(_payload: &mut serde_json::Value) {}

    /// Uploaded files the payload refers to, with the field that names each:
    /// the API refuses a submission whose files the tenant does not have.
    fn file_ids(&self) -> Vec<(&'static str, uuid::Uuid)> {
        Vec::new()
    }

    /// JSON Schemas of what `run` returns, by component name, for the
    /// OpenAPI document (e.g. one per kind of answer).
    fn result_schemas() -> Vec<(String, serde_json::Value)> {
        Vec::new()
    }

    /// The type's own retry schedule: the delay before the next attempt
    /// after `attempt` (1-based) failed, given what the provider asked for
    /// (`Retry-After`). `None`: the runner's exponential backoff.
    fn retry_delay(_attempt: u32, _provider_asked: Option<Duration>) -> Option<Duration> {
        None
    }

    fn run(self, ctx: &JobContext<Self::Clients>) -> impl Future<Output = Result<serde_json::Value, JobError>> + Send;
}
