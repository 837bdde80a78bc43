//! Peyk's job types and what they share.
//!
//! A job type is a payload struct implementing [`Job`]: its name (which is
//! also its Redis queue), how to validate a submitted payload, and how to run
//! it. [`registry`] lists the types; the API and the worker only ever go
//! through the registry, so adding a type touches neither.

pub mod context;
pub mod email;
pub mod env;
pub mod error;
pub mod events;
pub mod job;
pub mod lenient;
pub mod medical;
pub mod metrics;
pub mod payments;
pub mod pipeline;
pub mod queue;
pub mod registry;
pub mod retry;
pub mod sms;
pub mod spool;
pub mod storage;
pub mod submit;
pub mod telemetry;
pub mod transcription;
pub mod validation;
pub mod webhook;

pub use context::JobContext;
pub use error::{JobError, RetryHint};
pub use job::Job;
pub use registry::{JobKind, Registry};
pub use validation::{FieldError, ValidationErrors};
