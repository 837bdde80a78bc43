//! Uploaded files' records. Scoped to a tenant like jobs: another tenant's
//! file is indistinguishable from one that does not exist.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{FileRow, TenantId};
use crate::schema::files;

pub async fn insert(pool: &DbPool, file: &FileRow) -> Result<FileRow, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::insert_into(files::table).values(file).returning(FileRow::as_returning()).get_result(&mut conn).await?)
}

pub async fn get(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<FileRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(files::table
        .filter(files::tenant_id.eq(tenant.0))
        .filter(files::id.eq(id))
        .select(FileRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Which of `ids` the tenant has (and has not erased), with their audio's
/// length (seconds) when they are audio.
pub async fn existing(pool: &DbPool, tenant: TenantId, ids: &[Uuid]) -> Result<Vec<(Uuid, Option<f64>)>, DbError> {
    let mut conn = pool.get().await?;
    Ok(files::table
        .filter(files::tenant_id.eq(tenant.0))
        .filter(files::id.eq_any(ids))
        .filter(files::erased_at.is_null())
        .select((files::id, files::duration_seconds))
        .load(&mut conn)
        .await?)
}
