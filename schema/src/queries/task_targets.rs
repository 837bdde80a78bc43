//! Tenants' HTTP task targets: written by the API, read by `task` jobs
//! (each attempt reads its target afresh, so an edited URL or secret
//! applies to the next attempt).

use chrono::Utc;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::{DbError, DbPool};
use crate::models::{TaskTargetRow, TenantId};
use crate::schema::task_targets as t;

/// Creates or replaces the target `row.name`; returns the stored row (its
/// `created_at` kept from the first version).
pub async fn upsert(pool: &DbPool, row: &TaskTargetRow) -> Result<TaskTargetRow, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::insert_into(t::table)
        .values(row)
        .on_conflict((t::tenant_id, t::name))
        .do_update()
        .set((
            t::url.eq(excluded(t::url)),
            t::secret.eq(excluded(t::secret)),
            t::timeout_seconds.eq(excluded(t::timeout_seconds)),
            t::max_attempts.eq(excluded(t::max_attempts)),
            t::min_backoff_seconds.eq(excluded(t::min_backoff_seconds)),
            t::max_backoff_seconds.eq(excluded(t::max_backoff_seconds)),
            t::description.eq(excluded(t::description)),
            t::updated_at.eq(Utc::now()),
        ))
        .returning(TaskTargetRow::as_returning())
        .get_result(&mut conn)
        .await?)
}

/// The tenant's targets, by name.
pub async fn list(pool: &DbPool, tenant: TenantId) -> Result<Vec<TaskTargetRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(t::table.filter(t::tenant_id.eq(tenant.0)).order(t::name.asc()).select(TaskTargetRow::as_select()).load(&mut conn).await?)
}

pub async fn get(pool: &DbPool, tenant: TenantId, name: &str) -> Result<Option<TaskTargetRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(t::table
        .filter(t::tenant_id.eq(tenant.0))
        .filter(t::name.eq(name))
        .select(TaskTargetRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Which of `names` the tenant has targets for (one query for a batch).
pub async fn existing(pool: &DbPool, tenant: TenantId, names: &[&str]) -> Result<Vec<(String, i32)>, DbError> {
    let mut conn = pool.get().await?;
    Ok(t::table.filter(t::tenant_id.eq(tenant.0)).filter(t::name.eq_any(names)).select((t::name, t::max_attempts)).load(&mut conn).await?)
}

/// Deletes the target; false when there was none.
pub async fn delete(pool: &DbPool, tenant: TenantId, name: &str) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::delete(t::table.filter(t::tenant_id.eq(tenant.0)).filter(t::name.eq(name))).execute(&mut conn).await? > 0)
}
