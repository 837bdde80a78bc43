//! Outbound webhooks: endpoints (written by the API), messages (one per
//! published event) and delivery attempts (written by `webhook_delivery`
//! jobs). Everything a tenant can name is looked up with its tenant id.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{NewWebhookAttempt, TenantId, WebhookAttemptRow, WebhookEndpointRow, WebhookMessageRow};
use crate::schema::{webhook_attempts as a, webhook_endpoints as e, webhook_messages as m};

/// What a PATCH changes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = e)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub failing_since: Option<Option<DateTime<Utc>>>,
    pub disabled_reason: Option<Option<String>>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub async fn insert_endpoint(pool: &DbPool, row: &WebhookEndpointRow) -> Result<WebhookEndpointRow, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::insert_into(e::table).values(row).returning(WebhookEndpointRow::as_returning()).get_result(&mut conn).await?)
}

/// How many endpoints the tenant has.
pub async fn count_endpoints(pool: &DbPool, tenant: TenantId) -> Result<i64, DbError> {
    let mut conn = pool.get().await?;
    Ok(e::table.filter(e::tenant_id.eq(tenant.0)).count().get_result(&mut conn).await?)
}

/// The tenant's endpoints, oldest first.
pub async fn list_endpoints(pool: &DbPool, tenant: TenantId) -> Result<Vec<WebhookEndpointRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(e::table
        .filter(e::tenant_id.eq(tenant.0))
        .order((e::created_at.asc(), e::id.asc()))
        .select(WebhookEndpointRow::as_select())
        .load(&mut conn)
        .await?)
}

pub async fn get_endpoint(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<WebhookEndpointRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(e::table
        .filter(e::tenant_id.eq(tenant.0))
        .filter(e::id.eq(id))
        .select(WebhookEndpointRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

pub async fn update_endpoint(
    pool: &DbPool,
    tenant: TenantId,
    id: Uuid,
    changes: &EndpointChanges,
) -> Result<Option<WebhookEndpointRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::update(e::table.filter(e::tenant_id.eq(tenant.0)).filter(e::id.eq(id)))
        .set(changes)
        .returning(WebhookEndpointRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?)
}

/// Deletes the endpoint and its attempt log; false when there was none.
pub async fn delete_endpoint(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::delete(e::table.filter(e::tenant_id.eq(tenant.0)).filter(e::id.eq(id))).execute(&mut conn).await? > 0)
}

/// Makes `new_secret` the signing secret; the old one keeps being signed
/// with until `previous_expires_at` (`None`: dropped at once). One
/// statement, so the old value moved is the one replaced.
pub async fn rotate_secret(
    pool: &DbPool,
    tenant: TenantId,
    id: Uuid,
    new_secret: &str,
    previous_expires_at: Option<DateTime<Utc>>,
) -> Result<Option<WebhookEndpointRow>, DbError> {
    let mut conn = pool.get().await?;
    // The old value moves over still sealed; the new one is sealed on its way in.
    let new_secret = crate::SealedText::from(new_secret);
    let previous = previous_expires_at.map(|_| e::secret.nullable());
    let query = diesel::update(e::table.filter(e::tenant_id.eq(tenant.0)).filter(e::id.eq(id)));
    let updated = match previous {
        Some(previous) => {
            query
                .set((
                    e::previous_secret.eq(previous),
                    e::previous_secret_expires_at.eq(previous_expires_at),
                    e::secret.eq(&new_secret),
                    e::updated_at.eq(Utc::now()),
                ))
                .returning(WebhookEndpointRow::as_returning())
                .get_result(&mut conn)
                .await
        }
        None => {
            query
                .set((
                    e::previous_secret.eq(None::<String>),
                    e::previous_secret_expires_at.eq(None::<DateTime<Utc>>),
                    e::secret.eq(&new_secret),
                    e::updated_at.eq(Utc::now()),
                ))
                .returning(WebhookEndpointRow::as_returning())
                .get_result(&mut conn)
                .await
        }
    };
    Ok(updated.optional()?)
}

/// Enabled endpoints of the tenant that want `event_type` (an empty filter wants all).
pub async fn subscribed(pool: &DbPool, tenant: TenantId, event_type: &str) -> Result<Vec<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    Ok(e::table
        .filter(e::tenant_id.eq(tenant.0))
        .filter(e::enabled.eq(true))
        .filter(e::event_types.eq(Vec::<String>::new()).or(e::event_types.contains(vec![event_type.to_string()])))
        .order(e::created_at.asc())
        .select(e::id)
        .load(&mut conn)
        .await?)
}

/// Whether the tenant has any enabled endpoint (what the worker caches).
pub async fn has_enabled(pool: &DbPool, tenant: TenantId) -> Result<bool, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::select(diesel::dsl::exists(e::table.filter(e::tenant_id.eq(tenant.0)).filter(e::enabled.eq(true))))
        .get_result(&mut conn)
        .await?)
}

/// A delivery succeeded: the failure clock stops.
pub async fn record_success(pool: &DbPool, id: Uuid) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(e::table.filter(e::id.eq(id)).filter(e::failing_since.is_not_null()))
        .set(e::failing_since.eq(None::<DateTime<Utc>>))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// A delivery failed: starts the failure clock if it is not running, and
/// disables the endpoint once it has run for `disable_after`. Returns the
/// endpoint when this call disabled it (only one caller ever does).
pub async fn record_failure(
    pool: &DbPool,
    id: Uuid,
    disable_after: std::time::Duration,
    reason: &str,
) -> Result<Option<WebhookEndpointRow>, DbError> {
    let mut conn = pool.get().await?;
    let now = Utc::now();
    diesel::update(e::table.filter(e::id.eq(id)).filter(e::failing_since.is_null()))
        .set(e::failing_since.eq(now))
        .execute(&mut conn)
        .await?;
    let threshold = now - chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::MAX);
    Ok(diesel::update(e::table.filter(e::id.eq(id)).filter(e::enabled.eq(true)).filter(e::failing_since.le(threshold)))
        .set((e::enabled.eq(false), e::disabled_reason.eq(reason), e::updated_at.eq(now)))
        .returning(WebhookEndpointRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?)
}

pub async fn insert_message(pool: &DbPool, row: &WebhookMessageRow) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::insert_into(m::table).values(row).execute(&mut conn).await?;
    Ok(())
}

pub async fn get_message(pool: &DbPool, tenant: TenantId, id: &str) -> Result<Option<WebhookMessageRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(m::table
        .filter(m::tenant_id.eq(tenant.0))
        .filter(m::id.eq(id))
        .select(WebhookMessageRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Newest first; `before` is the last id of the previous page.
pub async fn list_messages(
    pool: &DbPool,
    tenant: TenantId,
    event_type: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookMessageRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = m::table.filter(m::tenant_id.eq(tenant.0)).into_boxed();
    if let Some(event_type) = event_type {
        query = query.filter(m::event_type.eq(event_type.to_string()));
    }
    if let Some(before) = before {
        query = query.filter(m::id.lt(before.to_string()));
    }
    Ok(query.order(m::id.desc()).limit(limit).select(WebhookMessageRow::as_select()).load(&mut conn).await?)
}

pub async fn insert_attempt(pool: &DbPool, attempt: &NewWebhookAttempt) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::insert_into(a::table).values(attempt).execute(&mut conn).await?;
    Ok(())
}

/// An endpoint's attempts, newest first (scope the endpoint to the tenant first).
pub async fn attempts_for_endpoint(pool: &DbPool, endpoint: Uuid, limit: i64) -> Result<Vec<WebhookAttemptRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(a::table
        .filter(a::endpoint_id.eq(endpoint))
        .order(a::id.desc())
        .limit(limit)
        .select(WebhookAttemptRow::as_select())
        .load(&mut conn)
        .await?)
}

/// A message's attempts to every endpoint, oldest first (scope the message first).
pub async fn attempts_for_message(pool: &DbPool, message: &str) -> Result<Vec<WebhookAttemptRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(a::table.filter(a::message_id.eq(message)).order(a::id.asc()).select(WebhookAttemptRow::as_select()).load(&mut conn).await?)
}
