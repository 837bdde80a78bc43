//! Issuing and revoking API keys: what `peyk-api create-key`/`revoke-key`
//! and `/v1/admin/keys` share. Each is written to the audit log; a
//! revocation is announced to every API process (`auth::watch_key_changes`).

use chrono::{DateTime, Utc};
use peyk_jobs::ValidationErrors;
use peyk_schema::queries::api_keys::{self as q, KeyRow, NewKey, Revocation, Scope, Scopes};
use peyk_schema::queries::audit::{self, Actor, AuditEntry};
use peyk_schema::{DbError, DbPool};
use serde_json::json;

use crate::auth;
use crate::control::connect;

/// A key to issue, as an operator asked for it.
pub struct KeyRequest {
    pub tenant: String,
    pub name: String,
    /// Scope names; empty: every tenant scope (and `admin` with `admin`).
    pub scopes: Vec<String>,
    pub admin: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyRequest {
    /// The scopes it grants, or what is wrong with it (each field named).
    pub fn validate(&self, now: DateTime<Utc>) -> Result<Scopes, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.tenant.trim().is_empty() || self.tenant.len() > 200 {
            errors.add("tenant", "must be 1 to 200 characters");
        }
        if self.name.len() > 100 {
            errors.add("name", "must be at most 100 characters");
        }
        let unknown: Vec<&str> = self.scopes.iter().map(String::as_str).filter(|s| Scope::parse(s).is_none()).collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
            errors.add("scopes", format!("unknown scope(s) {}; the scopes are {}", unknown.join(", "), known.join(", ")));
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            errors.add("expires_at", "must be in the future");
        }
        errors.into_result()?;
        let named: Scopes = self.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
        Ok(match (named.is_empty(), self.admin) {
            (true, true) => Scopes::all(),
            (true, false) => Scopes::tenant(),
            (false, true) => named.iter().chain([Scope::Admin]).collect(),
            (false, false) => named,
        })
    }
}

/// Stores a new key (creating its tenant when new) and records who did it;
/// the key itself is returned once and never stored.
pub async fn issue(pool: &DbPool, request: &KeyRequest, scopes: Scopes, actor: Actor<'_>) -> Result<(String, KeyRow), DbError> {
    let key = auth::generate_key();
    let new = NewKey { tenant_name: request.tenant.trim(), key: &key, name: &request.name, scopes, expires_at: request.expires_at };
    let row = q::create_key(pool, &new).await?;
    audit::record(
        pool,
        AuditEntry {
            actor,
            tenant: Some(row.tenant_id),
            action: "key.created",
            target: Some(row.id.to_string()),
            details: json!({ "prefix": row.key_prefix, "name": row.name, "scopes": row.scopes, "expires_at": row.expires_at }),
        },
    )
    .await?;
    Ok((key, row))
}

/// Revokes a key by id or prefix and records who did it (the first time).
pub async fn revoke(pool: &DbPool, id_or_prefix: &str, actor: Actor<'_>) -> Result<Revocation, DbError> {
    let revocation = q::revoke_key(pool, id_or_prefix).await?;
    if let Revocation::Revoked(row) = &revocation {
        audit::record(
            pool,
            AuditEntry {
                actor,
                tenant: Some(row.tenant_id),
                action: "key.revoked",
                target: Some(row.id.to_string()),
                details: json!({ "prefix": row.key_prefix, "name": row.name }),
            },
        )
        .await?;
    }
    Ok(revocation)
}

/// `30d`, `12h`, `90m` or `3600s`: how long a key made on the command line lives.
pub fn parse_lifetime(text: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| anyhow::anyhow!("a lifetime is a number and a unit (30d, 12h, 90m, 3600s), not `{text}`"))?;
    let lifetime = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        "s" => chrono::Duration::seconds(n),
        _ => anyhow::bail!("a lifetime's unit is d, h, m or s, not `{unit}`"),
    };
    anyhow::ensure!(n > 0, "a lifetime must be longer than nothing");
    Ok(lifetime)
}

// ---- the command line ----

/// `create-key`: the key on stdout (the only place it ever appears), what
/// it may do on stderr.
pub async fn create_from_cli(request: KeyRequest) -> anyhow::Result<()> {
    let scopes = request.validate(Utc::now()).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let (key, row) = issue(&connect()?, &request, scopes, Actor::Cli).await?;
    println!("{key}");
    let until = row.expires_at.map(|at| format!(", until {at}")).unwrap_or_default();
    eprintln!("key {} ({}) for tenant `{}`: {}{until}", row.id, row.key_prefix, request.tenant.trim(), row.scopes.join(" "));
    Ok(())
}

/// `list-keys`: one line a key.
pub async fn list_from_cli(tenant: Option<&str>, include_revoked: bool) -> anyhow::Result<()> {
    let pool = connect()?;
    let tenant = match tenant {
        Some(name) => Some(q::tenant_id(&pool, name).await?.ok_or_else(|| anyhow::anyhow!("no tenant named `{name}`"))?),
        None => None,
    };
    let moment = |at: Option<DateTime<Utc>>| at.map_or("-".to_string(), |at| at.format("%Y-%m-%d %H:%M").to_string());
    println!("id\tprefix\ttenant\tname\tscopes\tcreated\texpires\tlast used\trevoked");
    for row in q::list_keys(&pool, tenant, include_revoked).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            row.id,
            row.key_prefix,
            row.tenant_id,
            row.name,
            row.scopes.join(","),
            moment(Some(row.created_at)),
            moment(row.expires_at),
            moment(row.last_used_at),
            moment(row.revoked_at)
        );
    }
    Ok(())
}

/// `revoke-key`: by id or prefix; then tells the API processes (through
/// Redis) to drop their cached keys.
pub async fn revoke_from_cli(id_or_prefix: &str) -> anyhow::Result<()> {
    let row = match revoke(&connect()?, id_or_prefix, Actor::Cli).await? {
        Revocation::Revoked(row) => row,
        Revocation::NotFound => anyhow::bail!("no key with id or prefix `{id_or_prefix}`"),
        Revocation::Ambiguous(n) => anyhow::bail!("{n} keys start with `{id_or_prefix}`; give the key's id (`list-keys`)"),
    };
    let (redis_url, prefix) = crate::config::Config::redis();
    let announced = async {
        let conn = peyk_queue::queue::connect(&redis_url).await?;
        peyk_queue::queue::Queue::new(conn, &prefix, &Default::default(), &[]).bump_keys_epoch().await.map_err(anyhow::Error::from)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), announced).await {
        Ok(Ok(_)) => eprintln!("key {} ({}) revoked; API processes refuse it within a second", row.id, row.key_prefix),
        _ => eprintln!(
            "key {} ({}) revoked; Redis did not answer, so API processes refuse it once their cache lets go (PEYK_KEY_CACHE_SECONDS)",
            row.id, row.key_prefix
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scopes: &[&str], admin: bool) -> KeyRequest {
        KeyRequest {
            tenant: "t".into(),
            name: String::new(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            admin,
            expires_at: None,
        }
    }

    #[test]
    fn scopes_default_to_the_tenants_and_admin_adds_admin() {
        let now = Utc::now();
        assert_eq!(request(&[], false).validate(now).unwrap(), Scopes::tenant());
        assert_eq!(request(&[], true).validate(now).unwrap(), Scopes::all());
        let read = request(&["jobs:read"], true).validate(now).unwrap();
        assert_eq!(read.names(), ["jobs:read", "admin"]);
        let error = request(&["jobs:reed"], false).validate(now).unwrap_err().to_string();
        assert!(error.contains("scopes") && error.contains("jobs:reed"), "{error}");
        let past = KeyRequest { expires_at: Some(now - chrono::Duration::seconds(1)), ..request(&[], false) };
        assert!(past.validate(now).unwrap_err().to_string().contains("expires_at"));
    }

    #[test]
    fn lifetimes_read_like_durations() {
        assert_eq!(parse_lifetime("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_lifetime("90m").unwrap(), chrono::Duration::minutes(90));
        assert!(parse_lifetime("30").is_err());
        assert!(parse_lifetime("0h").is_err());
        assert!(parse_lifetime("d").is_err());
    }
}
