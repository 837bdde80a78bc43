//! Console sessions: the hash of a cookie's token → the hash of the API key
//! that signed in, the session's CSRF token and when it ends. The key's
//! owner is looked up by the API's own key path on every request, so a
//! session never outlives its key.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{DbError, DbPool};
use crate::schema::console_sessions;

#[derive(Debug, Clone, Queryable)]
pub struct ConsoleSession {
    pub key_hash: Vec<u8>,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a new session (and forgets the expired ones, so that the table
/// holds only live sessions).
pub async fn create(pool: &DbPool, token_hash: &[u8], key_hash: &[u8], csrf_token: &str, expires_at: DateTime<Utc>) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::delete(console_sessions::table).filter(console_sessions::expires_at.le(diesel::dsl::now)).execute(&mut conn).await?;
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::token_hash.eq(token_hash),
            console_sessions::key_hash.eq(key_hash),
            console_sessions::csrf_token.eq(csrf_token),
            console_sessions::expires_at.eq(expires_at),
        ))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The session, while it has not expired.
pub async fn find(pool: &DbPool, token_hash: &[u8]) -> Result<Option<ConsoleSession>, DbError> {
    let mut conn = pool.get().await?;
    Ok(console_sessions::table
        .filter(console_sessions::token_hash.eq(token_hash))
        .filter(console_sessions::expires_at.gt(diesel::dsl::now))
        .select((console_sessions::key_hash, console_sessions::csrf_token, console_sessions::expires_at))
        .first(&mut conn)
        .await
        .optional()?)
}

/// Signs a session out.
pub async fn delete(pool: &DbPool, token_hash: &[u8]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::delete(console_sessions::table.find(token_hash)).execute(&mut conn).await?;
    Ok(())
}
