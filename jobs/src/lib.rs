//! Peyk's job types, the provider clients they call, and what they share
//! (events, metrics, files, settings).
//!
//! A job type is a payload struct implementing `peyk_queue`'s [`Job`]: its
//! name (which is also its Redis queue), how to validate a submitted
//! payload, and how to run it with the [`SharedClients`]. [`registry`] lists
//! the types; the API and the worker only ever go through the registry, so
//! adding a type touches neither.

pub mod context;
pub mod email;
pub mod env;
pub mod events;
pub mod lenient;
pub mod medical;
pub mod metrics;
pub mod payments;
pub mod providers;
pub mod registry;
pub mod sms;
pub mod spool;
pub mod storage;
pub mod task;
pub mod telemetry;
pub mod transcription;
pub mod webhook;

pub use context::{JobContext, SharedClients};
pub use peyk_queue::{FieldError, Job, JobError, RetryHint, ValidationErrors};
pub use registry::{JobKind, Registry};
