//! Tenants' email templates: written by the API, read by email jobs. Scoped
//! to a tenant like everything else.

use chrono::Utc;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::{DbError, DbPool};
use crate::models::{EmailTemplateRow, TenantId};
use crate::schema::email_templates as t;

/// Creates or replaces the template (name, language); returns the stored row.
pub async fn upsert(pool: &DbPool, row: &EmailTemplateRow) -> Result<EmailTemplateRow, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::insert_into(t::table)
        .values(row)
        .on_conflict((t::tenant_id, t::name, t::language))
        .do_update()
        .set((
            t::subject.eq(excluded(t::subject)),
            t::html.eq(excluded(t::html)),
            t::text.eq(excluded(t::text)),
            t::updated_at.eq(Utc::now()),
        ))
        .returning(EmailTemplateRow::as_returning())
        .get_result(&mut conn)
        .await?)
}

/// The tenant's templates, by name then language.
pub async fn list(pool: &DbPool, tenant: TenantId) -> Result<Vec<EmailTemplateRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(t::table
        .filter(t::tenant_id.eq(tenant.0))
        .order((t::name.asc(), t::language.asc()))
        .select(EmailTemplateRow::as_select())
        .load(&mut conn)
        .await?)
}

/// The template a job uses, if the tenant has one.
pub async fn find(pool: &DbPool, tenant: TenantId, name: &str, language: &str) -> Result<Option<EmailTemplateRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(t::table
        .filter(t::tenant_id.eq(tenant.0))
        .filter(t::name.eq(name))
        .filter(t::language.eq(language))
        .select(EmailTemplateRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Deletes the template in one language, or in all of them (`None`);
/// returns how many rows went.
pub async fn delete(pool: &DbPool, tenant: TenantId, name: &str, language: Option<&str>) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    let scope = t::table.filter(t::tenant_id.eq(tenant.0)).filter(t::name.eq(name));
    Ok(match language {
        Some(language) => diesel::delete(scope.filter(t::language.eq(language))).execute(&mut conn).await?,
        None => diesel::delete(scope).execute(&mut conn).await?,
    })
}
