//! The audit log: sensitive actions (keys created and revoked, credentials
//! and secrets changed or read, jobs cancelled, retried or erased), who
//! took them and when. Written after the action succeeded; read by admins.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::schema::audit_log as log;

/// Who acted: a key (its id and prefix) or the operator's command line.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Key { id: Uuid, prefix: &'a str },
    Cli,
}

/// One action to record.
pub struct AuditEntry<'a> {
    pub actor: Actor<'a>,
    /// The tenant the action concerns (`None`: the whole installation).
    pub tenant: Option<Uuid>,
    /// `key.created`, `payment_account.changed`, `job.erased`, … (README, "Keys and scopes").
    pub action: &'a str,
    pub target: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = log)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub actor_key_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
}

pub async fn record(pool: &DbPool, entry: AuditEntry<'_>) -> Result<(), DbError> {
    let (actor_key_id, actor) = match entry.actor {
        Actor::Key { id, prefix } => (Some(id), prefix.to_string()),
        Actor::Cli => (None, "cli".to_string()),
    };
    let mut conn = pool.get().await?;
    diesel::insert_into(log::table)
        .values((
            log::id.eq(Uuid::now_v7()),
            log::tenant_id.eq(entry.tenant),
            log::actor_key_id.eq(actor_key_id),
            log::actor.eq(actor),
            log::action.eq(entry.action),
            log::target.eq(entry.target),
            log::details.eq(entry.details),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub tenant: Option<Uuid>,
    pub action: Option<String>,
    /// Only entries older than this one (the previous page's cursor).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Entries newest first.
pub async fn list(pool: &DbPool, filter: &AuditFilter) -> Result<Vec<AuditRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = log::table.select(AuditRow::as_select()).into_boxed();
    if let Some(tenant) = filter.tenant {
        query = query.filter(log::tenant_id.eq(tenant));
    }
    if let Some(action) = &filter.action {
        query = query.filter(log::action.eq(action));
    }
    if let Some(before) = filter.before {
        query = query.filter(log::id.lt(before));
    }
    Ok(query.order(log::id.desc()).limit(filter.limit).load(&mut conn).await?)
}
