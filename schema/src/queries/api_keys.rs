//! Tenants and their API keys. Only SHA-256 hashes of keys are stored, with
//! the first characters (the prefix) by which operators tell keys apart.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::TenantId;
use crate::schema::{api_keys, tenants};

pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// What a key may do. Each operation of the API needs one (its OpenAPI
/// `security` names it); `admin` reaches every tenant and the operations
/// routes, and nothing else by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    JobsRead,
    JobsWrite,
    Files,
    PaymentsRead,
    PaymentsWrite,
    PaymentsAdmin,
    WebhooksAdmin,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::JobsRead,
        Scope::JobsWrite,
        Scope::Files,
        Scope::PaymentsRead,
        Scope::PaymentsWrite,
        Scope::PaymentsAdmin,
        Scope::WebhooksAdmin,
        Scope::Admin,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Scope::JobsRead => "jobs:read",
            Scope::JobsWrite => "jobs:write",
            Scope::Files => "files",
            Scope::PaymentsRead => "payments:read",
            Scope::PaymentsWrite => "payments:write",
            Scope::PaymentsAdmin => "payments:admin",
            Scope::WebhooksAdmin => "webhooks:admin",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == name)
    }

    /// What it allows, for `--help` and the API document.
    pub const fn description(self) -> &'static str {
        match self {
            Scope::JobsRead => "read jobs, attempts, transcripts, pipelines, schedules, templates, usage",
            Scope::JobsWrite => "submit, cancel, retry and erase jobs; pipelines, schedules, email templates",
            Scope::Files => "upload, read and erase files",
            Scope::PaymentsRead => "read payments and inbound events",
            Scope::PaymentsWrite => "register and verify payments",
            Scope::PaymentsAdmin => "gateway accounts (credentials) and inbound sources (secrets)",
            Scope::WebhooksAdmin => "webhook endpoints and their secrets, messages, task targets",
            Scope::Admin => "every tenant: queues, limits, usage, keys, the audit log",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u16);

impl Scopes {
    /// What a tenant's key gets when no scopes are named: everything but `admin`.
    pub fn tenant() -> Self {
        Scope::ALL.into_iter().filter(|s| *s != Scope::Admin).collect()
    }

    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.name().to_string()).collect()
    }

    /// Names as stored; names this build does not know are dropped (a key
    /// never gains a scope by a typo).
    fn from_stored(names: &[String]) -> Self {
        names.iter().filter_map(|n| Scope::parse(n)).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

/// Who a key speaks for: its tenant, what it may do, until when, and the
/// tenant's own request rate (`None`: the settings' default).
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner {
    pub key_id: Uuid,
    /// The key's first characters (`peyk_` and 7 more): how the audit log names it.
    pub prefix: [u8; 12],
    pub tenant: TenantId,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    pub requests_per_second: Option<i32>,
    pub burst: Option<i32>,
}

impl KeyOwner {
    pub fn admin(&self) -> bool {
        self.scopes.contains(Scope::Admin)
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn prefix(&self) -> &str {
        std::str::from_utf8(&self.prefix).unwrap_or("peyk_")
    }
}

/// Characters of a key kept in clear: `peyk_` and 7 of its random ones.
pub const PREFIX_LEN: usize = 12;

/// A key to create: its hash is stored, never the key.
pub struct NewKey<'a> {
    pub tenant_name: &'a str,
    pub key: &'a str,
    pub name: &'a str,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as operators see it (never the key, nor its hash).
#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct KeyRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(rename = "prefix")]
    pub key_prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates the tenant if it does not exist and stores the hash of the key for it.
pub async fn create_key(pool: &DbPool, new: &NewKey<'_>) -> Result<KeyRow, DbError> {
    let mut conn = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut conn;
    diesel::insert_into(tenants::table)
        .values((tenants::id.eq(Uuid::now_v7()), tenants::name.eq(new.tenant_name)))
        .on_conflict(tenants::name)
        .do_nothing()
        .execute(conn)
        .await?;
    let tenant_id: Uuid = tenants::table.filter(tenants::name.eq(new.tenant_name)).select(tenants::id).first(conn).await?;
    Ok(diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(Uuid::now_v7()),
            api_keys::tenant_id.eq(tenant_id),
            api_keys::key_hash.eq(hash_key(new.key)),
            api_keys::key_prefix.eq(&new.key[..PREFIX_LEN.min(new.key.len())]),
            api_keys::name.eq(new.name),
            api_keys::scopes.eq(new.scopes.names()),
            api_keys::expires_at.eq(new.expires_at),
        ))
        .returning(KeyRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The owner of a key that exists and is not revoked (expired keys too:
/// the caller tells the client so), and when it was last marked used.
pub async fn owner_of_key_hash(pool: &DbPool, key_hash: &[u8]) -> Result<Option<(KeyOwner, Option<DateTime<Utc>>)>, DbError> {
    let mut conn = pool.get().await?;
    type Found = (Uuid, String, Uuid, Vec<String>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<i32>, Option<i32>);
    let found = api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select((
            api_keys::id,
            api_keys::key_prefix,
            api_keys::tenant_id,
            api_keys::scopes,
            api_keys::expires_at,
            api_keys::last_used_at,
            tenants::requests_per_second,
            tenants::burst,
        ))
        .first::<Found>(&mut conn)
        .await
        .optional()?;
    Ok(found.map(|(key_id, prefix, tenant, scopes, expires_at, last_used_at, requests_per_second, burst)| {
        let mut kept = [b'_'; PREFIX_LEN];
        let bytes = prefix.as_bytes();
        kept[..bytes.len().min(PREFIX_LEN)].copy_from_slice(&bytes[..bytes.len().min(PREFIX_LEN)]);
        let owner = KeyOwner {
            key_id,
            prefix: kept,
            tenant: TenantId(tenant),
            scopes: Scopes::from_stored(&scopes),
            expires_at,
            requests_per_second,
            burst,
        };
        (owner, last_used_at)
    }))
}

/// Marks a key used now.
pub async fn mark_used(pool: &DbPool, key_id: Uuid) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(api_keys::table.find(key_id)).set(api_keys::last_used_at.eq(diesel::dsl::now)).execute(&mut conn).await?;
    Ok(())
}

/// Keys, newest first: one tenant's or everyone's; revoked ones only when asked.
pub async fn list_keys(pool: &DbPool, tenant: Option<Uuid>, include_revoked: bool) -> Result<Vec<KeyRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = api_keys::table.select(KeyRow::as_select()).order(api_keys::created_at.desc()).into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(api_keys::tenant_id.eq(tenant));
    }
    if !include_revoked {
        query = query.filter(api_keys::revoked_at.is_null());
    }
    Ok(query.load(&mut conn).await?)
}

/// What `revoke_key` found.
pub enum Revocation {
    Revoked(KeyRow),
    NotFound,
    /// A prefix that names this many keys: give the id instead.
    Ambiguous(usize),
}

/// Revokes a key given its id or its prefix (revoking twice keeps the first time).
pub async fn revoke_key(pool: &DbPool, id_or_prefix: &str) -> Result<Revocation, DbError> {
    let mut conn = pool.get().await?;
    let ids: Vec<Uuid> = match Uuid::parse_str(id_or_prefix) {
        Ok(id) => api_keys::table.filter(api_keys::id.eq(id)).select(api_keys::id).load(&mut conn).await?,
        Err(_) => api_keys::table.filter(api_keys::key_prefix.eq(id_or_prefix)).select(api_keys::id).load(&mut conn).await?,
    };
    let id = match ids.as_slice() {
        [] => return Ok(Revocation::NotFound),
        [id] => *id,
        many => return Ok(Revocation::Ambiguous(many.len())),
    };
    let first_time = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>("coalesce(revoked_at, now())");
    let row = diesel::update(api_keys::table.find(id))
        .set(api_keys::revoked_at.eq(first_time))
        .returning(KeyRow::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(Revocation::Revoked(row))
}

/// A tenant's id by name.
pub async fn tenant_id(pool: &DbPool, name: &str) -> Result<Option<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    Ok(tenants::table.filter(tenants::name.eq(name)).select(tenants::id).first(&mut conn).await.optional()?)
}
