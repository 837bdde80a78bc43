//! The event outbox: messages (`webhook_messages`) stored with the outcome
//! that causes them, then dispatched — turned into one `webhook_delivery`
//! job per subscribed endpoint. See `jobs/src/events/mod.rs`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{JobRow, NewJob, WebhookMessageRow};
use crate::schema::{jobs, webhook_messages as m};

/// One delivery a dispatch owes: this message to this endpoint, or to the
/// callback of this job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub message_id: String,
    pub tenant_id: Uuid,
    pub to: Destination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Endpoint(Uuid),
    /// The job's own `callback_url`.
    Callback(Uuid),
}

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    message_id: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    endpoint_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    callback_job_id: Option<Uuid>,
}

/// The deliveries the undispatched ones among `message_ids` owe: an event
/// to every enabled endpoint of its tenant that wants its type; a
/// callback message to its job's callback.
pub async fn targets(pool: &DbPool, message_ids: &[String]) -> Result<Vec<Target>, DbError> {
    let mut conn = pool.get().await?;
    let rows: Vec<TargetRow> = diesel::sql_query(
        "SELECT m.id AS message_id, m.tenant_id, e.id AS endpoint_id, NULL::uuid AS callback_job_id
           FROM webhook_messages m
           JOIN webhook_endpoints e ON e.tenant_id = m.tenant_id AND e.enabled
                                   AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
          WHERE m.id = ANY ($1) AND m.dispatched_at IS NULL AND m.callback_job_id IS NULL
         UNION ALL
         SELECT m.id, m.tenant_id, NULL, m.callback_job_id
           FROM webhook_messages m
          WHERE m.id = ANY ($1) AND m.dispatched_at IS NULL AND m.callback_job_id IS NOT NULL
          ORDER BY 1, 3",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(message_ids)
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let to = match (r.endpoint_id, r.callback_job_id) {
                (Some(endpoint), _) => Destination::Endpoint(endpoint),
                (None, Some(job)) => Destination::Callback(job),
                (None, None) => return None,
            };
            Some(Target { message_id: r.message_id, tenant_id: r.tenant_id, to })
        })
        .collect())
}

/// Stores the delivery jobs and marks the messages dispatched, in one
/// transaction. A job whose idempotency key (message, endpoint) exists
/// already is skipped: a second dispatch of a message adds nothing.
/// Answers the jobs stored now (to be pushed to Redis).
pub async fn store_deliveries(pool: &DbPool, deliveries: &[NewJob], message_ids: &[String]) -> Result<Vec<JobRow>, DbError> {
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Vec<JobRow>, DbError> {
        let stored = if deliveries.is_empty() {
            Vec::new()
        } else {
            diesel::insert_into(jobs::table)
                .values(deliveries)
                .on_conflict_do_nothing()
                .returning(JobRow::as_returning())
                .get_results(conn)
                .await?
        };
        diesel::update(m::table.filter(m::id.eq_any(message_ids)).filter(m::dispatched_at.is_null()))
            .set(m::dispatched_at.eq(Utc::now()))
            .execute(conn)
            .await?;
        Ok(stored)
    })
    .await
}

/// Messages stored before `before` and not dispatched yet: their writer
/// stopped between the commit and the dispatch. Oldest first.
pub async fn undispatched(pool: &DbPool, before: DateTime<Utc>, limit: i64) -> Result<Vec<String>, DbError> {
    let mut conn = pool.get().await?;
    Ok(m::table
        .filter(m::dispatched_at.is_null())
        .filter(m::created_at.lt(before))
        .order(m::created_at.asc())
        .limit(limit)
        .select(m::id)
        .load(&mut conn)
        .await?)
}

/// Stores a message in the caller's transaction (the outcome's).
pub async fn store_message(conn: &mut diesel_async::AsyncPgConnection, message: &WebhookMessageRow) -> Result<(), DbError> {
    diesel::insert_into(m::table).values(message).on_conflict_do_nothing().execute(conn).await?;
    Ok(())
}
