//! The event types Peyk publishes, in one place: endpoint filters are
//! checked against this list and `GET /v1/event-types` shows it.

pub const JOB_SUCCEEDED: &str = "job.succeeded";
pub const JOB_FAILED: &str = "job.failed";
pub const TRANSCRIPTION_COMPLETED: &str = "transcription.completed";
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
pub const PAYMENT_FAILED: &str = "payment.failed";
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";

/// `(type, what it means)`.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    (JOB_SUCCEEDED, "A job succeeded. data: {id, type, status, error_code, error_message, result}"),
    (JOB_FAILED, "A job failed permanently (`status` failed) or ran out of attempts (`status` dead). data as for job.succeeded; `result` holds what is known of the last attempt"),
    (TRANSCRIPTION_COMPLETED, "A transcription job succeeded; data.result is the transcript"),
    (PAYMENT_SUCCEEDED, "A payment was verified"),
    (PAYMENT_FAILED, "A payment failed or could not be verified"),
    (ENDPOINT_DISABLED, "One of the tenant's endpoints was disabled after failing for too long. data: {endpoint_id, url, reason, failing_since}"),
];

pub fn is_event_type(event_type: &str) -> bool {
    EVENT_TYPES.iter().any(|(name, _)| *name == event_type)
}
