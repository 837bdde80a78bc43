//! How a job run fails, and whether trying again can help.
//!
//! Every handler error says which of the two it is. The runner turns a
//! `Retry` into a scheduled retry with backoff (or `dead` once the attempts
//! are spent) and a `Permanent` into `failed` at once.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum RetryHint {
    /// Trying again later may succeed. `after` is the provider's own wish
    /// (e.g. `Retry-After`); the runner waits at least that long.
    Retry { after: Option<Duration> },
    /// Trying again cannot succeed.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    pub hint: RetryHint,
    /// Short machine-readable code, e.g. `http_503`, `timeout`, `blocked_address`.
    pub code: String,
    pub message: String,
    /// What is known about the attempt even though it failed (e.g. the status
    /// code and response excerpt of a webhook delivery).
    pub details: Option<serde_json::Value>,
}

impl JobError {
    pub fn retry(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { hint: RetryHint::Retry { after: None }, code: code.into(), message: message.into(), details: None }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { hint: RetryHint::Permanent, code: code.into(), message: message.into(), details: None }
    }

    pub fn retry_after(mut self, after: Option<Duration>) -> Self {
        if let RetryHint::Retry { after: slot } = &mut self.hint {
            *slot = after;
        }
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn is_permanent(&self) -> bool {
        self.hint == RetryHint::Permanent
    }
}
