//! Payments: gateway accounts, the payments themselves (one row per gateway
//! reference, its outcome written once), and inbound events.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{InboundEventRow, NewJob, PaymentAccountRow, PaymentRow, TenantId};
use crate::schema::{inbound_events as ev, inbound_sources as src, payment_accounts as acc, payments as pay};

// ---- accounts ----

pub async fn upsert_account(pool: &DbPool, row: &PaymentAccountRow) -> Result<PaymentAccountRow, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::insert_into(acc::table)
        .values(row)
        .on_conflict((acc::tenant_id, acc::gateway))
        .do_update()
        .set((
            acc::credentials.eq(excluded(acc::credentials)),
            acc::sandbox.eq(excluded(acc::sandbox)),
            acc::return_url.eq(excluded(acc::return_url)),
            acc::updated_at.eq(Utc::now()),
        ))
        .returning(PaymentAccountRow::as_returning())
        .get_result(&mut conn)
        .await?)
}

pub async fn account(pool: &DbPool, tenant: Uuid, gateway: &str) -> Result<Option<PaymentAccountRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(acc::table
        .filter(acc::tenant_id.eq(tenant))
        .filter(acc::gateway.eq(gateway))
        .select(PaymentAccountRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

pub async fn accounts(pool: &DbPool, tenant: TenantId) -> Result<Vec<PaymentAccountRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(acc::table
        .filter(acc::tenant_id.eq(tenant.0))
        .order(acc::gateway.asc())
        .select(PaymentAccountRow::as_select())
        .load(&mut conn)
        .await?)
}

pub async fn delete_account(pool: &DbPool, tenant: TenantId, gateway: &str) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let deleted = diesel::delete(acc::table.filter(acc::tenant_id.eq(tenant.0)).filter(acc::gateway.eq(gateway)))
        .execute(&mut conn)
        .await?;
    Ok(deleted > 0)
}

// ---- payments ----

/// Stores a pending payment unless its gateway reference is already known;
/// returns the row as stored (the earlier one when it was known), and
/// whether this call created it.
pub async fn register(pool: &DbPool, new: &PaymentRow) -> Result<(PaymentRow, bool), DbError> {
    let mut conn = pool.get().await?;
    let inserted = diesel::insert_into(pay::table)
        .values(new)
        .on_conflict((pay::tenant_id, pay::gateway, pay::reference))
        .do_nothing()
        .returning(PaymentRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?;
    if let Some(row) = inserted {
        return Ok((row, true));
    }
    drop(conn);
    let existing = find(pool, new.tenant_id, &new.gateway, &new.reference).await?;
    Ok((existing.ok_or(diesel::result::Error::NotFound)?, false))
}

pub async fn get(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<PaymentRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(pay::table
        .filter(pay::tenant_id.eq(tenant.0))
        .filter(pay::id.eq(id))
        .select(PaymentRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

pub async fn find(pool: &DbPool, tenant: Uuid, gateway: &str, reference: &str) -> Result<Option<PaymentRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(pay::table
        .filter(pay::tenant_id.eq(tenant))
        .filter(pay::gateway.eq(gateway))
        .filter(pay::reference.eq(reference))
        .select(PaymentRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct PaymentFilter {
    pub order_id: Option<String>,
    pub status: Option<String>,
    pub gateway: Option<String>,
    /// Only payments older than this one (the previous page's cursor).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// The tenant's payments, newest first.
pub async fn list(pool: &DbPool, tenant: TenantId, filter: &PaymentFilter) -> Result<Vec<PaymentRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = pay::table.filter(pay::tenant_id.eq(tenant.0)).into_boxed();
    if let Some(order_id) = &filter.order_id {
        query = query.filter(pay::order_id.eq(order_id));
    }
    if let Some(status) = &filter.status {
        query = query.filter(pay::status.eq(status));
    }
    if let Some(gateway) = &filter.gateway {
        query = query.filter(pay::gateway.eq(gateway));
    }
    if let Some(before) = filter.before {
        query = query.filter(pay::id.lt(before));
    }
    Ok(query.order(pay::id.desc()).limit(filter.limit).select(PaymentRow::as_select()).load(&mut conn).await?)
}

/// What a verification found, to be written once.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: String,
    pub gateway_code: Option<String>,
    pub ref_id: Option<String>,
    pub card_mask: Option<String>,
    pub fee: Option<i64>,
    pub paid_amount: Option<i64>,
    pub reason: Option<String>,
}

/// Writes the outcome if the payment is still pending, and returns the row
/// then. `None`: another verification recorded an outcome first — the one
/// that stands; this one must not credit anything.
pub async fn record_outcome(pool: &DbPool, id: Uuid, outcome: &Outcome) -> Result<Option<PaymentRow>, DbError> {
    let mut conn = pool.get().await?;
    let now = Utc::now();
    Ok(diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.eq("pending")))
        .set((
            pay::status.eq(&outcome.status),
            pay::gateway_code.eq(&outcome.gateway_code),
            pay::ref_id.eq(&outcome.ref_id),
            pay::card_mask.eq(&outcome.card_mask),
            pay::fee.eq(outcome.fee),
            pay::paid_amount.eq(outcome.paid_amount),
            pay::reason.eq(&outcome.reason),
            pay::checked_at.eq(now),
            pay::finished_at.eq(now),
            // The recorder announces the outcome (see `claim_announcement`).
            pay::announced_at.eq(now),
            pay::updated_at.eq(now),
        ))
        .returning(PaymentRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?)
}

/// Takes the duty of announcing a recorded outcome whose announcement
/// failed (`announced_at` was given back): true for exactly one caller.
pub async fn claim_announcement(pool: &DbPool, id: Uuid) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let claimed = diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.ne("pending")).filter(pay::announced_at.is_null()))
        .set(pay::announced_at.eq(Utc::now()))
        .execute(&mut conn)
        .await?;
    Ok(claimed > 0)
}

/// Gives the duty back after publishing failed, so that a retry takes it.
pub async fn release_announcement(pool: &DbPool, id: Uuid) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pay::table.filter(pay::id.eq(id))).set(pay::announced_at.eq(None::<DateTime<Utc>>)).execute(&mut conn).await?;
    Ok(())
}

/// Notes that a verification asked the gateway and the payment is still
/// pending (reconcile asks again later), with why.
pub async fn mark_checked(pool: &DbPool, id: Uuid, reason: &str) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.eq("pending")))
        .set((pay::checked_at.eq(Utc::now()), pay::reason.eq(reason), pay::updated_at.eq(Utc::now())))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Stores BitPay's `trans_id` from its callback (only while pending).
pub async fn set_trans_id(pool: &DbPool, id: Uuid, trans_id: &str) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.eq("pending")))
        .set(pay::trans_id.eq(trans_id))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `(tenant, gateway)` pairs with a payment pending since before `before`
/// that reconcile can do something about: the account still exists, and a
/// BitPay payment has the `trans_id` its verification needs.
pub async fn accounts_with_pending(pool: &DbPool, before: DateTime<Utc>) -> Result<Vec<(Uuid, String)>, DbError> {
    let mut conn = pool.get().await?;
    let has_account = diesel::dsl::exists(acc::table.filter(acc::tenant_id.eq(pay::tenant_id)).filter(acc::gateway.eq(pay::gateway)));
    Ok(pay::table
        .filter(pay::status.eq("pending"))
        .filter(has_account)
        .filter(pay::gateway.ne("bitpay").or(pay::trans_id.is_not_null()))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("coalesce(checked_at, created_at) < ").bind::<diesel::sql_types::Timestamptz, _>(before))
        .select((pay::tenant_id, pay::gateway))
        .distinct()
        .load(&mut conn)
        .await?)
}

/// A tenant's payments at a gateway pending since before `before`, the
/// longest waiting first.
pub async fn pending(pool: &DbPool, tenant: Uuid, gateway: &str, before: DateTime<Utc>, limit: i64) -> Result<Vec<PaymentRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(pay::table
        .filter(pay::tenant_id.eq(tenant))
        .filter(pay::gateway.eq(gateway))
        .filter(pay::status.eq("pending"))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("coalesce(checked_at, created_at) < ").bind::<diesel::sql_types::Timestamptz, _>(before))
        .order(pay::id.asc())
        .limit(limit)
        .select(PaymentRow::as_select())
        .load(&mut conn)
        .await?)
}

/// Marks payments as looked at by reconcile, so that the next round waits.
pub async fn touch_checked(pool: &DbPool, ids: &[Uuid]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pay::table.filter(pay::id.eq_any(ids)).filter(pay::status.eq("pending")))
        .set(pay::checked_at.eq(Utc::now()))
        .execute(&mut conn)
        .await?;
    Ok(())
}

// ---- inbound events ----

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    recorded: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    queued: bool,
}

/// Records an inbound event once, and with it the job it queues (if any),
/// in one statement: a replay finds its event recorded and queues nothing,
/// and an event is never recorded without its job. One statement (rather
/// than a transaction of three) because callbacks are answered while the
/// payer waits. Answers (new event, job stored).
pub async fn record_event(pool: &DbPool, event: &InboundEventRow, job: Option<&NewJob>) -> Result<(bool, bool), DbError> {
    use diesel::sql_types::{Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let mut conn = pool.get().await?;
    let row: Recorded = diesel::sql_query(
        "WITH event AS (
             INSERT INTO inbound_events (id, tenant_id, source, dedupe_key, event_type, method, query, content_type, body, payment_id, job_id, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING
             RETURNING id
         ), job AS (
             INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, priority, run_at, queue_task_id)
             SELECT $11, $2, $13, $14, $15, $16, $17, $18, $19 FROM event WHERE $11 IS NOT NULL
             RETURNING id
         )
         SELECT EXISTS (SELECT 1 FROM event) AS recorded, EXISTS (SELECT 1 FROM job) AS queued",
    )
    .bind::<SqlUuid, _>(event.id)
    .bind::<SqlUuid, _>(event.tenant_id)
    .bind::<Text, _>(&event.source)
    .bind::<Text, _>(&event.dedupe_key)
    .bind::<Nullable<Text>, _>(&event.event_type)
    .bind::<Text, _>(&event.method)
    .bind::<Nullable<Text>, _>(&event.query)
    .bind::<Nullable<Text>, _>(&event.content_type)
    .bind::<Text, _>(&event.body)
    .bind::<Nullable<SqlUuid>, _>(event.payment_id)
    .bind::<Nullable<SqlUuid>, _>(job.map(|j| j.id))
    .bind::<Timestamptz, _>(event.received_at)
    .bind::<Text, _>(job.map(|j| j.job_type.as_str()).unwrap_or(""))
    .bind::<Text, _>(job.map(|j| j.status.as_str()).unwrap_or(""))
    .bind::<Jsonb, _>(job.map(|j| &j.payload).unwrap_or(&serde_json::Value::Null))
    .bind::<Int4, _>(job.map(|j| j.max_attempts).unwrap_or(1))
    .bind::<Int2, _>(job.map(|j| j.priority).unwrap_or(0))
    .bind::<Timestamptz, _>(job.map(|j| j.run_at).unwrap_or(event.received_at))
    .bind::<Nullable<Text>, _>(job.and_then(|j| j.queue_task_id.as_deref()))
    .get_result(&mut conn)
    .await?;
    Ok((row.recorded, row.queued))
}

/// The tenant's inbound events, newest first.
pub async fn list_events(
    pool: &DbPool,
    tenant: TenantId,
    source: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InboundEventRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = ev::table.filter(ev::tenant_id.eq(tenant.0)).into_boxed();
    if let Some(source) = source {
        query = query.filter(ev::source.eq(source));
    }
    if let Some(before) = before {
        query = query.filter(ev::id.lt(before));
    }
    Ok(query.order(ev::id.desc()).limit(limit).select(InboundEventRow::as_select()).load(&mut conn).await?)
}

// ---- inbound sources (Standard Webhooks senders) ----

pub async fn put_source(pool: &DbPool, tenant: TenantId, name: &str, secret: &str) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::insert_into(src::table)
        .values((src::tenant_id.eq(tenant.0), src::name.eq(name), src::secret.eq(secret)))
        .on_conflict((src::tenant_id, src::name))
        .do_update()
        .set(src::secret.eq(excluded(src::secret)))
        .execute(&mut conn)
        .await?;
    Ok(())
}

pub async fn source_secret(pool: &DbPool, tenant: Uuid, name: &str) -> Result<Option<String>, DbError> {
    let mut conn = pool.get().await?;
    Ok(src::table
        .filter(src::tenant_id.eq(tenant))
        .filter(src::name.eq(name))
        .select(src::secret)
        .first(&mut conn)
        .await
        .optional()?)
}

pub async fn source_names(pool: &DbPool, tenant: TenantId) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
    let mut conn = pool.get().await?;
    Ok(src::table
        .filter(src::tenant_id.eq(tenant.0))
        .order(src::name.asc())
        .select((src::name, src::created_at))
        .load(&mut conn)
        .await?)
}

pub async fn delete_source(pool: &DbPool, tenant: TenantId, name: &str) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let deleted = diesel::delete(src::table.filter(src::tenant_id.eq(tenant.0)).filter(src::name.eq(name)))
        .execute(&mut conn)
        .await?;
    Ok(deleted > 0)
}
