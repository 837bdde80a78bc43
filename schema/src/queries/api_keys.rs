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

/// Creates the tenant if it does not exist and stores the hash of `key` for it.
pub async fn create_key(pool: &DbPool, tenant_name: &str, key: &str, key_prefix: &str) -> Result<TenantId, DbError> {
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
        ))
        .execute(conn)
        .await?;
    Ok(TenantId(tenant_id))
}

/// The tenant of a key that exists and is not revoked.
pub async fn tenant_for_key_hash(pool: &DbPool, key_hash: &[u8]) -> Result<Option<TenantId>, DbError> {
    let mut conn = pool.get().await?;
    let found = api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::tenant_id)
        .first::<Uuid>(&mut conn)
        .await
        .optional()?;
    Ok(found.map(TenantId))
}
