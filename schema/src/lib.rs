//! Peyk's PostgreSQL layer: the table definitions, the row types and every
//! query the API and the workers run. Nothing outside this crate writes SQL,
//! so a change to a table is a change to one crate.

pub mod batch;
pub mod db;
pub mod kept_plans;
pub mod models;
pub mod prepared;
pub mod queries;
pub mod schema;
pub mod sealed;
pub mod status;

pub use batch::Batcher;
pub use db::{connect_batch_pool, connect_insert_pool, connect_pool, run_migrations, DbError, DbPool};
pub use models::*;
pub use sealed::{SealedJson, SealedText};
pub use status::JobStatus;
