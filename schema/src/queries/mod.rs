//! Every SQL statement Peyk runs, grouped by who runs it.

pub mod api_keys;
pub mod attempts;
pub mod audit;
pub mod console_sessions;
pub mod email_templates;
pub mod files;
pub mod jobs;
pub mod outbox;
pub mod payments;
pub mod pipelines;
pub mod queue_controls;
pub mod retention;
pub mod schedules;
pub mod secrets;
pub mod sms;
pub mod task_targets;
pub mod webhook_endpoints;
pub mod worker;
