//! Peyk's queue, independent of any job type (after crates.io's
//! `crates_io_worker`): what a job type is ([`Job`]), which types a process
//! knows ([`Registry`]), how jobs are stored and pushed ([`submit`]), the
//! Redis queue and its Lua ([`queue`]), pipelines of jobs ([`pipeline`]),
//! and the worker's side: the [`runner`] that takes one queue entry to a
//! recorded outcome, the apalis [`consumers`] that feed it and the
//! [`maintenance`] that repairs what crashes leave behind.
//!
//! PostgreSQL (through `peyk-schema`) is the truth and Redis the waiting
//! room. The job types themselves, and every provider client they use, live
//! in `peyk-jobs`; they reach this crate through [`Job`] and the clients
//! type each job runs with ([`Clients`]).

pub mod consumers;
pub mod context;
pub mod error;
pub mod finished;
pub mod job;
pub mod maintenance;
pub mod metadata;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod registry;
pub mod retry;
pub mod runner;
pub mod schedule;
pub mod submit;
pub mod validation;

pub use context::{Backbone, Clients, JobContext};
pub use error::{JobError, RetryHint};
pub use job::Job;
pub use registry::{JobKind, Registry};
pub use validation::{FieldError, ValidationErrors};
