//! The event types Peyk publishes, in one place: endpoint filters are
//! checked against this list and `GET /v1/event-types` shows it.

pub const JOB_SUCCEEDED: &str = "job.succeeded";
pub const JOB_FAILED: &str = "job.failed";
pub const TRANSCRIPTION_COMPLETED: &str = "transcription.completed";
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
pub const PAYMENT_FAILED: &str = "payment.failed";
pub const PAYMENT_NEEDS_REVIEW: &str = "payment.needs_review";
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";

/// `(type, what it means)`.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    (JOB_SUCCEEDED, "A job succeeded. data: {id, type, status, error_code, error_message, result, metadata}"),
    (JOB_FAILED, "A job failed permanently (`status` failed) or ran out of attempts (`status` dead). data as for job.succeeded; `result` holds what is known of the last attempt"),
    (TRANSCRIPTION_COMPLETED, "A transcription job succeeded; data.result is the transcript"),
    (PAYMENT_SUCCEEDED, "A payment was verified (also after an earlier `failed`: then data.reversed_from is `failed`)"),
    (PAYMENT_FAILED, "A payment failed: unpaid past its expiry, or paid with another amount (`status` amount_mismatch)"),
    (PAYMENT_NEEDS_REVIEW, "The gateway said a payment was paid but gave no amount to compare: not credited until a person checks it"),
    (ENDPOINT_DISABLED, "One of the tenant's endpoints was disabled after failing for too long. data: {endpoint_id, url, reason, failing_since}"),
];

pub fn is_event_type(event_type: &str) -> bool {
    EVENT_TYPES.iter().any(|(name, _)| *name == event_type)
}
