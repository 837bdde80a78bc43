//! Schedules, Peyk's Celery beat: a job (or pipeline) submitted at each
//! fire time of a cron expression or an interval. [`timing`] says when;
//! [`fire`] is the loop every worker runs to act on due fire times.

pub mod fire;
pub mod plan;
pub mod target;
pub mod timing;

pub use timing::{Calendar, Timing, TimingSpec};
