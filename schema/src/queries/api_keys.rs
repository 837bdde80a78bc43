//! Tenants and their API keys. Only SHA-256 hashes of keys are stored.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::TenantId;
use crate::schema::{api_keys, tenants};

pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Who a key speaks for: its tenant, whether it may use the admin API, and
/// the tenant's own request rate (`None`: the settings' default).
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner {
    pub tenant: TenantId,
    pub admin: bool,
    pub requests_per_second: Option<i32>,
    pub burst: Option<i32>,
}

/// Creates the tenant if it does not exist and stores the hash of `key` for
/// it (an admin key when `admin`).
pub async fn create_key(pool: &DbPool, tenant_name: &str, key: &str, key_prefix: &str, admin: bool) -> Result<TenantId, DbError> {
    let mut conn = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut conn;
    diesel::insert_into(tenants::table)
        .values((tenants::id.eq(Uuid::now_v7()), tenants::name.eq(tenant_name)))
        .on_conflict(tenants::name)
        .do_nothing()
        .execute(conn)
        .await?;
    let tenant_id: Uuid = tenants::table.filter(tenants::name.eq(tenant_name)).select(tenants::id).first(conn).await?;
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(Uuid::now_v7()),
            api_keys::tenant_id.eq(tenant_id),
            api_keys::key_hash.eq(hash_key(key)),
            api_keys::key_prefix.eq(key_prefix),
            api_keys::admin.eq(admin),
        ))
        .execute(conn)
        .await?;
    Ok(TenantId(tenant_id))
}

/// The owner of a key that exists and is not revoked.
pub async fn owner_of_key_hash(pool: &DbPool, key_hash: &[u8]) -> Result<Option<KeyOwner>, DbError> {
    let mut conn = pool.get().await?;
    let found = api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::tenant_id, api_keys::admin, tenants::requests_per_second, tenants::burst))
        .first::<(Uuid, bool, Option<i32>, Option<i32>)>(&mut conn)
        .await
        .optional()?;
    Ok(found.map(|(tenant, admin, requests_per_second, burst)| KeyOwner { tenant: TenantId(tenant), admin, requests_per_second, burst }))
}
