//! Paging of list routes: `limit` (1–200, default 50) and a `before`
//! cursor, the last id of the previous page (ids are UUIDv7: newest first
//! is id order).

use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    let limit = asked.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_parameter("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

/// The cursor of the next page: the last id, when the page is full.
pub fn next<T>(rows: &[T], limit: i64, id: impl Fn(&T) -> Uuid) -> Option<Uuid> {
    (rows.len() as i64 == limit).then(|| rows.last().map(id)).flatten()
}
