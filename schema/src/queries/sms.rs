//! The SMS development outbox, and delivery reports written back onto the
//! job that sent the messages.

use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{SmsOutboxRow, TenantId};
use crate::schema::sms_outbox;

/// Records messages; a (job, receptor) already there is left as it is.
pub async fn insert_outbox(pool: &DbPool, rows: &[SmsOutboxRow]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::insert_into(sms_outbox::table)
        .values(rows)
        .on_conflict((sms_outbox::job_id, sms_outbox::receptor))
        .do_nothing()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The tenant's newest messages first.
pub async fn list_outbox(pool: &DbPool, tenant: TenantId, limit: i64) -> Result<Vec<SmsOutboxRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(sms_outbox::table
        .filter(sms_outbox::tenant_id.eq(tenant.0))
        .order((sms_outbox::created_at.desc(), sms_outbox::id.desc()))
        .limit(limit)
        .select(SmsOutboxRow::as_select())
        .load(&mut conn)
        .await?)
}

/// Sets `result.delivery` of a tenant's job (the SMS job a status check
/// follows up on). True when the job was found.
pub async fn set_delivery(pool: &DbPool, tenant: TenantId, job_id: Uuid, delivery: &serde_json::Value) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    let updated = diesel::sql_query(
        "UPDATE jobs SET result = jsonb_set(coalesce(result, '{}'::jsonb), '{delivery}', $2), updated_at = now() WHERE id = $1 AND tenant_id = $3",
    )
    .bind::<SqlUuid, _>(job_id)
    .bind::<Jsonb, _>(delivery)
    .bind::<SqlUuid, _>(tenant.0)
    .execute(&mut conn)
    .await?;
    Ok(updated > 0)
}
