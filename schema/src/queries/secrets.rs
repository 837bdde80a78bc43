//! Sealing every stored secret again with the current key
//! (`peyk-api rotate-secrets-key`), in batches, while the service runs.
//!
//! A row is rewritten only if its value is still what was read (a change
//! made meanwhile by the API is already sealed with the current key, since
//! every process has it), so nothing written concurrently is lost.

use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::db::{DbError, DbPool};
use crate::sealed::{is_sealed, sealer};

/// A column that holds secrets.
struct SecretColumn {
    table: &'static str,
    column: &'static str,
    /// jsonb: the sealed value is a JSON string.
    json: bool,
}

const COLUMNS: [SecretColumn; 5] = [
    SecretColumn { table: "payment_accounts", column: "credentials", json: true },
    SecretColumn { table: "webhook_endpoints", column: "secret", json: false },
    SecretColumn { table: "webhook_endpoints", column: "previous_secret", json: false },
    SecretColumn { table: "task_targets", column: "secret", json: false },
    SecretColumn { table: "inbound_sources", column: "secret", json: false },
];

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    place: String,
    #[diesel(sql_type = Text)]
    value: String,
}

/// Seals again what is not sealed with the current key; returns, per
/// column, how many values were rewritten.
pub async fn reseal_all(pool: &DbPool, batch: i64) -> Result<Vec<(String, usize)>, DbError> {
    let sealer = sealer();
    let Some(key_id) = sealer.current_key_id() else {
        return Ok(Vec::new());
    };
    let mut conn = pool.get().await?;
    let mut done = Vec::new();
    for SecretColumn { table, column, json } in COLUMNS {
        // The current key's values start so (jsonb as text: after the quote).
        let current = format!("{}peyk:v1:{key_id}:%", if json { "\"" } else { "" });
        let mut resealed = 0;
        let mut after = String::from("(0,0)");
        loop {
            // By physical row, from where the last batch ended: each row is seen once.
            let rows: Vec<Stored> = diesel::sql_query(format!(
                "SELECT ctid::text AS place, {column}::text AS value FROM {table} \
                 WHERE {column} IS NOT NULL AND {column}::text NOT LIKE $1 AND ctid > $2::tid ORDER BY ctid LIMIT $3"
            ))
            .bind::<Text, _>(&current)
            .bind::<Text, _>(&after)
            .bind::<diesel::sql_types::BigInt, _>(batch)
            .load(&mut conn)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.place.clone();
            for stored in &rows {
                let plain = if json {
                    match serde_json::from_str::<serde_json::Value>(&stored.value)? {
                        serde_json::Value::String(sealed) if is_sealed(&sealed) => sealer.open(&sealed)?,
                        _ => stored.value.clone(),
                    }
                } else {
                    sealer.open(&stored.value)?
                };
                let sealed = sealer.seal(&plain);
                let (new_value, cast) = if json { (serde_json::Value::String(sealed).to_string(), "::jsonb") } else { (sealed, "") };
                resealed +=
                    diesel::sql_query(format!("UPDATE {table} SET {column} = $1{cast} WHERE ctid = $2::tid AND {column}::text = $3"))
                        .bind::<Text, _>(&new_value)
                        .bind::<Text, _>(&stored.place)
                        .bind::<Text, _>(&stored.value)
                        .execute(&mut conn)
                        .await?;
            }
        }
        done.push((format!("{table}.{column}"), resealed));
    }
    Ok(done)
}
