//! What operators set about the shared queues: a queue paused, one tenant
//! paused in a queue, a tenant's weight. Stored here (the truth, which
//! survives a Redis restart); workers apply it to Redis every few seconds,
//! and the admin API at once.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::schema::tenants;

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

#[derive(Debug, Clone, Queryable)]
pub struct TenantShare {
    pub id: Uuid,
    pub name: String,
    pub weight: i32,
}

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

/// Every tenant with its weight, by name.
pub async fn tenants(pool: &DbPool) -> Result<Vec<TenantShare>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.select((tenants::id, tenants::name, tenants::weight)).order(tenants::name).load(&mut conn).await?)
}

pub async fn tenant(pool: &DbPool, id: Uuid) -> Result<Option<TenantShare>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.find(id).select((tenants::id, tenants::name, tenants::weight)).first(&mut conn).await.optional()?)
}

pub async fn tenant_by_name(pool: &DbPool, name: &str) -> Result<Option<TenantShare>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table
        .filter(tenants::name.eq(name))
        .select((tenants::id, tenants::name, tenants::weight))
        .first(&mut conn)
        .await
        .optional()?)
}

/// Sets a tenant's weight (1 to 1,000); `None` when there is no such tenant.
pub async fn set_weight(pool: &DbPool, id: Uuid, weight: i32) -> Result<Option<TenantShare>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::update(tenants::table.find(id))
        .set(tenants::weight.eq(weight))
        .returning((tenants::id, tenants::name, tenants::weight))
        .get_result(&mut conn)
        .await
        .optional()?)
}
