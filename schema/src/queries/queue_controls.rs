//! What operators set about the shared queues and their tenants: a queue
//! paused, one tenant paused in a queue, a tenant's weight, its request
//! rate, and caps on its running jobs per queue. Stored here (the truth,
//! which survives a Redis restart); workers apply to Redis what it must
//! know every few seconds, and the admin API at once.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::schema::{tenant_queue_caps, tenants};

/// The most days of retention a tenant may set (100 years: as good as forever).
pub const MAX_RETENTION_DAYS: f64 = 36_500.0;

/// A tenant's weight is 1 (the default) to this.
pub const MAX_WEIGHT: i32 = 1000;

/// A paused queue (`tenant_id` `None`) or one tenant paused in a queue.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct QueuePause {
    #[diesel(sql_type = Text)]
    pub queue: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub tenant_id: Option<Uuid>,
}

/// A tenant and the limits set for it (`None`: the settings' defaults).
#[derive(Debug, Clone, Queryable)]
pub struct TenantLimits {
    pub id: Uuid,
    pub name: String,
    pub weight: i32,
    pub requests_per_second: Option<i32>,
    pub burst: Option<i32>,
    pub quotas: Quotas,
    pub retention: RetentionDays,
    /// The domains its email jobs may send from (empty: only the server's
    /// `PEYK_EMAIL_FROM`).
    pub sender_domains: Vec<String>,
}

/// How long a tenant's content is kept, in days (`None`: the server's
/// default, `PEYK_RETENTION_*_DAYS`); see `queries::retention`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Queryable)]
pub struct RetentionDays {
    /// Payloads and results of sensitive job types (medical text,
    /// transcripts, messages).
    pub sensitive: Option<f64>,
    /// Payloads and results of the other job types.
    pub content: Option<f64>,
    /// Uploads, counted from when the last job naming them finished.
    pub uploads: Option<f64>,
    /// Attempt errors, event message bodies, SMS texts.
    pub trail: Option<f64>,
}

/// A tenant's quotas per period (`None`: the settings' default; 0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Queryable)]
pub struct Quotas {
    pub jobs_per_day: Option<i64>,
    pub sms_per_day: Option<i64>,
    pub audio_minutes_per_month: Option<i64>,
    pub llm_tokens_per_month: Option<i64>,
    /// Email recipients (to, cc and bcc) a day.
    pub emails_per_day: Option<i64>,
}

impl Quotas {
    /// These quotas, each unset one taken from `defaults`.
    pub fn or(self, defaults: &Quotas) -> Quotas {
        Quotas {
            jobs_per_day: self.jobs_per_day.or(defaults.jobs_per_day),
            sms_per_day: self.sms_per_day.or(defaults.sms_per_day),
            audio_minutes_per_month: self.audio_minutes_per_month.or(defaults.audio_minutes_per_month),
            llm_tokens_per_month: self.llm_tokens_per_month.or(defaults.llm_tokens_per_month),
            emails_per_day: self.emails_per_day.or(defaults.emails_per_day),
        }
    }
}

/// A change to a tenant's limits: `None` leaves a field as it is;
/// `Some(None)` returns a rate to the default.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct LimitsChange {
    pub weight: Option<i32>,
    pub requests_per_second: Option<Option<i32>>,
    pub burst: Option<Option<i32>>,
    pub jobs_per_day: Option<Option<i64>>,
    pub sms_per_day: Option<Option<i64>>,
    pub audio_minutes_per_month: Option<Option<i64>>,
    pub llm_tokens_per_month: Option<Option<i64>>,
    pub emails_per_day: Option<Option<i64>>,
    /// The domains its email jobs may send from (replaces the list).
    pub sender_domains: Option<Vec<String>>,
    pub sensitive_retention_days: Option<Option<f64>>,
    pub content_retention_days: Option<Option<f64>>,
    pub upload_retention_days: Option<Option<f64>>,
    pub trail_retention_days: Option<Option<f64>>,
}

impl LimitsChange {
    /// A rate as operators give it: 0 returns it to the default.
    pub fn rate(given: Option<i32>) -> Option<Option<i32>> {
        given.map(|v| (v > 0).then_some(v))
    }

    fn is_empty(&self) -> bool {
        self.weight.is_none()
            && self.requests_per_second.is_none()
            && self.burst.is_none()
            && self.jobs_per_day.is_none()
            && self.sms_per_day.is_none()
            && self.audio_minutes_per_month.is_none()
            && self.llm_tokens_per_month.is_none()
            && self.emails_per_day.is_none()
            && self.sender_domains.is_none()
            && self.sensitive_retention_days.is_none()
            && self.content_retention_days.is_none()
            && self.upload_retention_days.is_none()
            && self.trail_retention_days.is_none()
    }
}

/// At most `max_running` of `tenant_id`'s jobs of `queue` run at once.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct RunningCap {
    pub tenant_id: Uuid,
    pub queue: String,
    pub max_running: i32,
}

type QuotaColumns =
    (tenants::jobs_per_day, tenants::sms_per_day, tenants::audio_minutes_per_month, tenants::llm_tokens_per_month, tenants::emails_per_day);
const QUOTAS: QuotaColumns =
    (tenants::jobs_per_day, tenants::sms_per_day, tenants::audio_minutes_per_month, tenants::llm_tokens_per_month, tenants::emails_per_day);
type RetentionColumns =
    (tenants::sensitive_retention_days, tenants::content_retention_days, tenants::upload_retention_days, tenants::trail_retention_days);
const RETENTION: RetentionColumns =
    (tenants::sensitive_retention_days, tenants::content_retention_days, tenants::upload_retention_days, tenants::trail_retention_days);
type LimitColumns = (
    tenants::id,
    tenants::name,
    tenants::weight,
    tenants::requests_per_second,
    tenants::burst,
    QuotaColumns,
    RetentionColumns,
    tenants::sender_domains,
);
const LIMITS: LimitColumns =
    (tenants::id, tenants::name, tenants::weight, tenants::requests_per_second, tenants::burst, QUOTAS, RETENTION, tenants::sender_domains);

/// Pauses or resumes `queue` (for every tenant, or for `tenant` only).
pub async fn set_paused(pool: &DbPool, queue: &str, tenant: Option<Uuid>, paused: bool) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let statement = if paused {
        "INSERT INTO queue_pauses (queue, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM queue_pauses WHERE queue = $1 AND tenant_id IS NOT DISTINCT FROM $2"
    };
    diesel::sql_query(statement).bind::<Text, _>(queue).bind::<Nullable<SqlUuid>, _>(tenant).execute(&mut conn).await?;
    Ok(())
}

/// Every pause in force.
pub async fn pauses(pool: &DbPool) -> Result<Vec<QueuePause>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query("SELECT queue, tenant_id FROM queue_pauses ORDER BY queue, tenant_id NULLS FIRST").load(&mut conn).await?)
}

/// Every tenant with its limits, by name.
pub async fn tenants(pool: &DbPool) -> Result<Vec<TenantLimits>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.select(LIMITS).order(tenants::name).load(&mut conn).await?)
}

pub async fn tenant(pool: &DbPool, id: Uuid) -> Result<Option<TenantLimits>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.find(id).select(LIMITS).first(&mut conn).await.optional()?)
}

/// The quotas of every tenant that has one of its own.
pub async fn all_quotas(pool: &DbPool) -> Result<Vec<(Uuid, Quotas)>, DbError> {
    let mut conn = pool.get().await?;
    let rows: Vec<TenantLimits> = tenants::table
        .filter(
            tenants::jobs_per_day
                .is_not_null()
                .or(tenants::sms_per_day.is_not_null())
                .or(tenants::audio_minutes_per_month.is_not_null())
                .or(tenants::llm_tokens_per_month.is_not_null())
                .or(tenants::emails_per_day.is_not_null()),
        )
        .select(LIMITS)
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().map(|t| (t.id, t.quotas)).collect())
}

pub async fn tenant_by_name(pool: &DbPool, name: &str) -> Result<Option<TenantLimits>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.filter(tenants::name.eq(name)).select(LIMITS).first(&mut conn).await.optional()?)
}

/// Changes a tenant's limits; `None` when there is no such tenant.
pub async fn change_limits(pool: &DbPool, id: Uuid, change: &LimitsChange) -> Result<Option<TenantLimits>, DbError> {
    let mut conn = pool.get().await?;
    if change.is_empty() {
        return Ok(tenants::table.find(id).select(LIMITS).first(&mut conn).await.optional()?);
    }
    Ok(diesel::update(tenants::table.find(id)).set(change).returning(LIMITS).get_result(&mut conn).await.optional()?)
}

/// Every cap on running jobs (of every tenant, or of one).
pub async fn caps(pool: &DbPool, tenant: Option<Uuid>) -> Result<Vec<RunningCap>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = tenant_queue_caps::table.into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(tenant_queue_caps::tenant_id.eq(tenant));
    }
    Ok(query.order((tenant_queue_caps::tenant_id, tenant_queue_caps::queue)).load(&mut conn).await?)
}

/// The caps of `queue` among `caps`, as (tenant id, cap): what Redis keeps.
pub fn caps_of(caps: &[RunningCap], queue: &str) -> Vec<(String, u32)> {
    caps.iter().filter(|c| c.queue == queue).map(|c| (c.tenant_id.to_string(), c.max_running.max(1) as u32)).collect()
}

/// Caps a tenant's running jobs of `queue` (`None`: no cap).
pub async fn set_cap(pool: &DbPool, tenant: Uuid, queue: &str, max_running: Option<i32>) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    match max_running {
        Some(max_running) => {
            diesel::insert_into(tenant_queue_caps::table)
                .values((
                    tenant_queue_caps::tenant_id.eq(tenant),
                    tenant_queue_caps::queue.eq(queue),
                    tenant_queue_caps::max_running.eq(max_running),
                ))
                .on_conflict((tenant_queue_caps::tenant_id, tenant_queue_caps::queue))
                .do_update()
                .set(tenant_queue_caps::max_running.eq(max_running))
                .execute(&mut conn)
                .await?;
        }
        None => {
            diesel::delete(tenant_queue_caps::table.find((tenant, queue))).execute(&mut conn).await?;
        }
    }
    Ok(())
}

/// The domains `tenant`'s email jobs may send from.
pub async fn sender_domains(pool: &DbPool, tenant: Uuid) -> Result<Vec<String>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.find(tenant).select(tenants::sender_domains).first(&mut conn).await.optional()?.unwrap_or_default())
}
