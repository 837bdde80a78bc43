//! Payments: gateway accounts, the payments themselves (one row per gateway
//! reference, its outcome written once), and inbound events.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{InboundEventRow, NewJob, PaymentAccountRow, PaymentRow, TenantId, WebhookMessageRow};
use crate::schema::{inbound_events as ev, inbound_sources as src, payment_accounts as acc, payments as pay};
use diesel::sql_types::{Nullable, Uuid as SqlUuid};

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
    let deleted =
        diesel::delete(acc::table.filter(acc::tenant_id.eq(tenant.0)).filter(acc::gateway.eq(gateway))).execute(&mut conn).await?;
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
    /// BitPay: the candidate trans_id that verified.
    pub trans_id: Option<String>,
}

impl Outcome {
    pub fn is_paid(&self) -> bool {
        PaymentRow::is_paid_status(&self.status)
    }
}

/// Writes the outcome of a verification that read `seen`, if the payment
/// is still as it was then (`status` unchanged), and only over `pending` —
/// or over `failed` when the gateway now says paid: a paid answer wins over
/// an earlier unpaid one, and `reversed_from` keeps what it replaced.
///
/// The event the outcome causes (`announce` builds it from the new row, or
/// says there is none) is stored in the same transaction: an outcome is
/// never recorded without its announcement, whatever crashes after.
/// Answers the new row, or `None` when another verification wrote first.
pub async fn record_outcome(
    pool: &DbPool,
    seen: &PaymentRow,
    outcome: &Outcome,
    announce: Option<impl FnOnce(&PaymentRow) -> WebhookMessageRow + Send>,
) -> Result<Option<PaymentRow>, DbError> {
    let may_replace = seen.status == "pending" || (seen.status == "failed" && outcome.is_paid());
    if !may_replace {
        return Ok(None);
    }
    let reversed_from = if seen.status == "failed" { Some("failed".to_string()) } else { seen.reversed_from.clone() };
    let trans_id = outcome.trans_id.clone().or_else(|| seen.trans_id.clone());
    let now = Utc::now();
    let update = diesel::update(pay::table.filter(pay::id.eq(seen.id)).filter(pay::status.eq(&seen.status)))
        .set((
            pay::status.eq(&outcome.status),
            pay::gateway_code.eq(&outcome.gateway_code),
            pay::ref_id.eq(&outcome.ref_id),
            pay::card_mask.eq(&outcome.card_mask),
            pay::fee.eq(outcome.fee),
            pay::paid_amount.eq(outcome.paid_amount),
            pay::reason.eq(&outcome.reason),
            pay::trans_id.eq(trans_id),
            pay::reversed_from.eq(reversed_from),
            pay::verification_job_id.eq(None::<Uuid>),
            pay::checked_at.eq(now),
            pay::finished_at.eq(now),
            pay::announced_at.eq(now),
            pay::updated_at.eq(now),
        ))
        .returning(PaymentRow::as_returning());
    let mut conn = pool.get().await?;
    let Some(announce) = announce else {
        // No endpoint wants the event: one statement, no transaction.
        return Ok(update.get_result(&mut conn).await.optional()?);
    };
    conn.transaction(async move |conn| -> Result<Option<PaymentRow>, DbError> {
        let recorded = update.get_result(conn).await.optional()?;
        if let Some(row) = &recorded {
            super::outbox::store_message(conn, &announce(row)).await?;
        }
        Ok(recorded)
    })
    .await
}

/// Announces a settled payment that has no announcement yet (recorded by a
/// version of Peyk that announced after the commit), once: the claim and
/// the event are one transaction. Answers the id of the message stored, if
/// this call announced it and an endpoint wanted it.
pub async fn announce_once(
    pool: &DbPool,
    id: Uuid,
    announce: impl FnOnce(&PaymentRow) -> Option<WebhookMessageRow> + Send,
) -> Result<Option<String>, DbError> {
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Option<String>, DbError> {
        let claimed =
            diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.ne("pending")).filter(pay::announced_at.is_null()))
                .set(pay::announced_at.eq(Utc::now()))
                .returning(PaymentRow::as_returning())
                .get_result(conn)
                .await
                .optional()?;
        let Some(message) = claimed.as_ref().and_then(announce) else { return Ok(None) };
        super::outbox::store_message(conn, &message).await?;
        Ok(Some(message.id))
    })
    .await
}

/// Takes a recheck a callback asked for while a verification ran (see
/// `record_events`): true once per request.
pub async fn take_recheck(pool: &DbPool, id: Uuid) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let taken = diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::recheck_requested.eq(true)))
        .set(pay::recheck_requested.eq(false))
        .execute(&mut conn)
        .await?;
    Ok(taken > 0)
}

/// Notes that a verification asked the gateway and the payment is still
/// pending (reconcile asks again later), with the gateway's code and why.
pub async fn mark_checked(pool: &DbPool, id: Uuid, code: &str, reason: &str, job: Uuid) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pay::table.filter(pay::id.eq(id)).filter(pay::status.eq_any(["pending", "failed"])))
        .set((
            pay::checked_at.eq(Utc::now()),
            pay::gateway_code.eq(code),
            pay::reason.eq(reason),
            pay::updated_at.eq(Utc::now()),
            // The callback gate's "in flight" ends when this verification does.
            pay::verification_job_id
                .eq(diesel::dsl::sql::<Nullable<SqlUuid>>("nullif(verification_job_id, ").bind::<SqlUuid, _>(job).sql(")")),
        ))
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
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("coalesce(checked_at, created_at) < ")
                .bind::<diesel::sql_types::Timestamptz, _>(before),
        )
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
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("coalesce(checked_at, created_at) < ")
                .bind::<diesel::sql_types::Timestamptz, _>(before),
        )
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

/// Limits on what unauthenticated callbacks may make Peyk store and do.
#[derive(Debug, Clone, Copy)]
pub struct CallbackLimits {
    /// Verifications callbacks may queue per payment per minute.
    pub verifications_per_minute: i32,
    /// Callbacks stored per payment; more are answered and counted only.
    pub events_per_payment: i32,
    /// Callbacks for unknown payments stored per tenant and gateway per
    /// minute; 0: no bound (signed events, whose senders are known).
    pub unknown_per_minute: i64,
}

/// What [`record_events`] did with one callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    /// The event was stored (new dedupe key, within the bounds).
    pub recorded: bool,
    /// Its verification job was stored.
    pub queued: bool,
}

/// One inbound event to record, with the verification it asks for.
#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub event: InboundEventRow,
    /// The verification job, for a payment that may still change.
    pub job: Option<NewJob>,
    /// A BitPay `trans_id` to keep among the payment's candidates.
    pub trans_id: Option<String>,
    pub limits: CallbackLimits,
}

/// Records inbound events in batches: the callbacks that arrive while a
/// batch commits are recorded together in the next, in one statement and
/// one commit. One commit per callback was what bounded the callback rate
/// (README, "Benchmarks": 885 callbacks a second on a machine whose
/// PostgreSQL did 2,344 with `synchronous_commit = off`). A callback is
/// answered only once its batch is committed.
pub type CallbackRecorder = crate::Batcher<CallbackRecord, Recording>;

pub fn start_callback_recorder(pool: DbPool) -> CallbackRecorder {
    crate::Batcher::start(64, 2, move |records: Vec<CallbackRecord>| {
        let pool = pool.clone();
        async move { record_events(&pool, &records).await }
    })
}

/// Records inbound events and, for payments that may still change, the
/// verifications they ask for — all in one statement, one answer per
/// record in order.
///
/// Deduplication decides what is *stored*: an event is stored once per
/// dedupe key, at most `events_per_payment` per payment, and for unknown
/// payments at most `unknown_per_minute` per tenant and gateway. Whether a
/// verification is queued is decided apart from that, on the payment: not
/// while another is waiting or running, and at most
/// `verifications_per_minute`. So a forged callback cannot spend the real
/// one's dedupe key, and a thousand forged callbacks queue a few
/// verifications. A BitPay `trans_id` is kept among the payment's
/// candidates (newest five) whether or not a verification is queued.
///
/// Each record goes through `peyk_record_callback` (a PL/pgSQL function,
/// migration 2026-12-01-000004, whose plan PostgreSQL keeps), which locks
/// the payment's row: the records are taken in (payment, dedupe key)
/// order, so that two batches lock what they share in the same order and
/// cannot deadlock. A later record of the same payment sees what an
/// earlier one in the batch did (the function is volatile).
pub async fn record_events(pool: &DbPool, records: &[CallbackRecord]) -> Result<Vec<Recording>, DbError> {
    #[derive(QueryableByName)]
    struct Recorded {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        recorded: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        queued: bool,
    }
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&n| {
        let event = &records[n].event;
        (event.payment_id, event.tenant_id, event.source.as_str(), event.dedupe_key.as_str())
    });
    let batch: Vec<serde_json::Value> = order.iter().map(|&n| record_json(n, &records[n])).collect();
    let mut conn = pool.get().await?;
    let rows: Vec<Recorded> = diesel::sql_query(
        "SELECT c.n, r.was_recorded AS recorded, r.was_queued AS queued
           FROM jsonb_to_recordset($1) AS c(n int, event_id uuid, tenant_id uuid, source text, dedupe_key text,
                event_type text, method text, query text, content_type text, body text, payment_id uuid, job_id uuid,
                received_at timestamptz, job_type text, job_status text, job_payload jsonb, max_attempts int,
                priority smallint, run_at timestamptz, queue_task_id text, verifications_per_minute int,
                events_per_payment int, unknown_per_minute bigint, trans_id text)
          CROSS JOIN LATERAL peyk_record_callback(c.event_id, c.tenant_id, c.source, c.dedupe_key, c.event_type,
                c.method, c.query, c.content_type, c.body, c.payment_id, c.job_id, c.received_at, c.job_type,
                c.job_status, c.job_payload, c.max_attempts, c.priority, c.run_at, c.queue_task_id,
                c.verifications_per_minute, c.events_per_payment, c.unknown_per_minute, c.trans_id) r",
    )
    .bind::<diesel::sql_types::Jsonb, _>(serde_json::Value::Array(batch))
    .load(&mut conn)
    .await?;
    let mut answers = vec![Recording { recorded: false, queued: false }; records.len()];
    for row in rows {
        answers[row.n as usize] = Recording { recorded: row.recorded, queued: row.queued };
    }
    Ok(answers)
}

/// One record as `record_events`' statement reads it; a record without a
/// job passes the values the function ignores.
fn record_json(n: usize, record: &CallbackRecord) -> serde_json::Value {
    let (event, job, limits) = (&record.event, record.job.as_ref(), &record.limits);
    serde_json::json!({
        "n": n,
        "event_id": event.id,
        "tenant_id": event.tenant_id,
        "source": event.source,
        "dedupe_key": event.dedupe_key,
        "event_type": event.event_type,
        "method": event.method,
        "query": event.query,
        "content_type": event.content_type,
        "body": event.body,
        "payment_id": event.payment_id,
        "job_id": job.map(|j| j.id),
        "received_at": event.received_at,
        "job_type": job.map(|j| j.job_type.as_str()).unwrap_or(""),
        "job_status": job.map(|j| j.status.as_str()).unwrap_or(""),
        "job_payload": job.map(|j| &j.payload),
        "max_attempts": job.map(|j| j.max_attempts).unwrap_or(1),
        "priority": job.map(|j| j.priority).unwrap_or(0),
        "run_at": job.map(|j| j.run_at).unwrap_or(event.received_at),
        "queue_task_id": job.and_then(|j| j.queue_task_id.as_deref()),
        "verifications_per_minute": limits.verifications_per_minute,
        "events_per_payment": limits.events_per_payment,
        "unknown_per_minute": limits.unknown_per_minute,
        "trans_id": record.trans_id,
    })
}

/// Deletes inbound events received before `before`, at most `limit` of
/// them; answers how many went. The sweeper calls it until it answers less.
pub async fn prune_events(pool: &DbPool, before: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query("DELETE FROM inbound_events WHERE id IN (SELECT id FROM inbound_events WHERE received_at < $1 LIMIT $2)")
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .execute(&mut conn)
        .await?)
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
        .values((src::tenant_id.eq(tenant.0), src::name.eq(name), src::secret.eq(crate::SealedText::from(secret))))
        .on_conflict((src::tenant_id, src::name))
        .do_update()
        .set(src::secret.eq(excluded(src::secret)))
        .execute(&mut conn)
        .await?;
    Ok(())
}

pub async fn source_secret(pool: &DbPool, tenant: Uuid, name: &str) -> Result<Option<String>, DbError> {
    let mut conn = pool.get().await?;
    let secret: Option<crate::SealedText> =
        src::table.filter(src::tenant_id.eq(tenant)).filter(src::name.eq(name)).select(src::secret).first(&mut conn).await.optional()?;
    Ok(secret.map(crate::SealedText::into_inner))
}

pub async fn source_names(pool: &DbPool, tenant: TenantId) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
    let mut conn = pool.get().await?;
    Ok(src::table.filter(src::tenant_id.eq(tenant.0)).order(src::name.asc()).select((src::name, src::created_at)).load(&mut conn).await?)
}

pub async fn delete_source(pool: &DbPool, tenant: TenantId, name: &str) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let deleted = diesel::delete(src::table.filter(src::tenant_id.eq(tenant.0)).filter(src::name.eq(name))).execute(&mut conn).await?;
    Ok(deleted > 0)
}

/// The callbacks stored for one payment, oldest first, at most `limit` (a
/// payment holds only a few: the gate keeps `callbacks_stored` bounded).
pub async fn events_of_payment(pool: &DbPool, tenant: TenantId, payment: Uuid, limit: i64) -> Result<Vec<InboundEventRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(ev::table
        .filter(ev::payment_id.eq(payment))
        .filter(ev::tenant_id.eq(tenant.0))
        .order(ev::id.asc())
        .limit(limit)
        .select(InboundEventRow::as_select())
        .load(&mut conn)
        .await?)
}
