//! The list of job types. Adding a type is one line in `job_types!` below;
//! the API, the worker and the OpenAPI document all read this list.

use std::time::Duration;

use crate::{Job, JobContext, JobError, ValidationErrors};

/// Why a submitted payload was refused.
#[derive(Debug, Clone)]
pub enum PayloadError {
    UnknownType,
    Invalid(ValidationErrors),
}

/// A payload that passed validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// As re-serialized by its type: defaults filled, unknown fields refused.
    pub payload: serde_json::Value,
    /// Uploaded files it refers to: (field, file id).
    pub files: Vec<(&'static str, uuid::Uuid)>,
}

fn validate_as<J: Job>(payload: serde_json::Value) -> Result<Validated, PayloadError> {
    let mut job: J = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        PayloadError::Invalid(ValidationErrors::single(field, e.into_inner().to_string()))
    })?;
    job.validate().map_err(PayloadError::Invalid)?;
    job.normalize();
    let files = job.file_ids();
    let payload = serde_json::to_value(&job).map_err(|e| PayloadError::Invalid(ValidationErrors::single("", e.to_string())))?;
    Ok(Validated { payload, files })
}

async fn run_as<J: Job>(payload: serde_json::Value, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
    // A stored payload that no longer parses (e.g. after an incompatible
    // upgrade) can never succeed.
    let job: J = serde_json::from_value(payload)
        .map_err(|e| JobError::permanent("invalid_payload", format!("stored payload does not parse: {e}")))?;
    job.run(ctx).await
}

macro_rules! job_types {
    ($($job:ty),+ $(,)?) => {
        /// Every job type name, which is also its queue name.
        pub const JOB_TYPES: &[&str] = &[$(<$job as Job>::TYPE),+];

        /// Parses and validates a payload for `job_type`; returns it normalized.
        pub fn validate(job_type: &str, payload: serde_json::Value) -> Result<Validated, PayloadError> {
            $(if job_type == <$job as Job>::TYPE { return validate_as::<$job>(payload); })+
            Err(PayloadError::UnknownType)
        }

        pub async fn run(job_type: &str, payload: serde_json::Value, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
            $(if job_type == <$job as Job>::TYPE { return run_as::<$job>(payload, ctx).await; })+
            Err(JobError::permanent("unknown_type", format!("no job type `{job_type}` in this worker")))
        }

        /// Hides secrets of a stored payload before it is shown.
        pub fn redact(job_type: &str, payload: &mut serde_json::Value) {
            $(if job_type == <$job as Job>::TYPE { <$job as Job>::redact(payload); })+
        }

        pub fn default_max_attempts(job_type: &str) -> i32 {
            $(if job_type == <$job as Job>::TYPE { return <$job as Job>::DEFAULT_MAX_ATTEMPTS; })+
            5
        }

        /// The top-level fields of a type's result (empty when unknown).
        pub fn result_fields(job_type: &str) -> &'static [&'static str] {
            $(if job_type == <$job as Job>::TYPE { return <$job as Job>::RESULT_FIELDS; })+
            &[]
        }

        /// True for a type only Peyk queues itself (clients may not submit it).
        pub fn is_internal(job_type: &str) -> bool {
            $(if job_type == <$job as Job>::TYPE { return <$job as Job>::INTERNAL; })+
            false
        }

        /// The type's own delay before the attempt after `attempt`; `None`:
        /// the runner's backoff applies.
        pub fn retry_delay(job_type: &str, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
            $(if job_type == <$job as Job>::TYPE { return <$job as Job>::retry_delay(attempt, asked); })+
            None
        }

        pub fn attempt_timeout(job_type: &str) -> Duration {
            $(if job_type == <$job as Job>::TYPE { return <$job as Job>::ATTEMPT_TIMEOUT; })+
            Duration::from_secs(120)
        }

        /// `(type, payload schema name, schema)` for the OpenAPI document.
        pub fn payload_schemas() -> Vec<(&'static str, String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
            vec![$((<$job as Job>::TYPE, <$job as utoipa::ToSchema>::name().into_owned(), <$job as utoipa::PartialSchema>::schema())),+]
        }

        /// Result schemas the job types publish (hand-written JSON Schema),
        /// by component name.
        pub fn result_schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
            let mut schemas = Vec::new();
            $(for (name, schema) in <$job as Job>::result_schemas() {
                match serde_json::from_value(schema) {
                    Ok(schema) => schemas.push((name, schema)),
                    Err(e) => tracing::error!(%name, error = %e, "a result schema is not valid OpenAPI"),
                }
            })+
            schemas
        }

        /// The schemas the payloads refer to (nested structs), by name.
        pub fn nested_payload_schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
            let mut schemas = Vec::new();
            $(<$job as utoipa::ToSchema>::schemas(&mut schemas);)+
            schemas
        }
    };
}

job_types!(
    crate::webhook::WebhookJob,
    crate::transcription::TranscriptionJob,
    crate::sms::SmsJob,
    crate::sms::status::SmsStatusJob,
    crate::email::EmailJob,
    crate::medical::MedicalAnalysisJob,
    crate::payments::PaymentVerificationJob,
    crate::payments::reconcile::PaymentReconcileJob,
    crate::events::delivery::WebhookDeliveryJob,
);

pub fn is_known(job_type: &str) -> bool {
    JOB_TYPES.contains(&job_type)
}

/// The types clients may submit (every type but the internal ones).
pub fn submittable_types() -> Vec<&'static str> {
    JOB_TYPES.iter().copied().filter(|t| !is_internal(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_internal_with_their_own_schedule() {
        assert!(is_internal("webhook_delivery") && !is_internal("webhook") && !is_internal("nope"));
        assert!(!submittable_types().contains(&"webhook_delivery") && submittable_types().contains(&"webhook"));
        assert!(retry_delay("webhook_delivery", 1, None).is_some());
        assert_eq!(retry_delay("webhook", 1, None), None, "other types keep the runner's backoff");
    }
}
