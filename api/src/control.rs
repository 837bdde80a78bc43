//! The operators' commands that change the shared queues (`pause`,
//! `resume`, `set-weight`). They write PostgreSQL only: workers apply it to
//! Redis within `PEYK_CONTROL_SYNC_SECONDS` (the admin API applies it at once).

use anyhow::Context;
use peyk_schema::queries::queue_controls as q;
use peyk_schema::DbPool;
use uuid::Uuid;

use crate::config::Config;

fn connect() -> anyhow::Result<DbPool> {
    Ok(peyk_schema::connect_pool(&Config::database_url()?, 1)?)
}

async fn tenant_id(pool: &DbPool, name: &str) -> anyhow::Result<Uuid> {
    Ok(q::tenant_by_name(pool, name).await?.with_context(|| format!("no tenant named `{name}`"))?.id)
}

pub async fn set_paused(queue: &str, tenant: Option<&str>, paused: bool) -> anyhow::Result<()> {
    let queues = peyk_jobs::registry::catalogue().names();
    anyhow::ensure!(queues.contains(&queue), "unknown queue `{queue}`; the queues are {}", queues.join(", "));
    let pool = connect()?;
    let tenant_id = match tenant {
        Some(name) => Some(tenant_id(&pool, name).await?),
        None => None,
    };
    q::set_paused(&pool, queue, tenant_id, paused).await?;
    let whom = tenant.map(|name| format!(" for tenant `{name}`")).unwrap_or_default();
    eprintln!("queue `{queue}` {}{whom}; workers apply it within seconds", if paused { "paused" } else { "resumed" });
    Ok(())
}

pub async fn set_weight(tenant: &str, weight: i32) -> anyhow::Result<()> {
    anyhow::ensure!((1..=q::MAX_WEIGHT).contains(&weight), "--weight must be between 1 and {}", q::MAX_WEIGHT);
    let pool = connect()?;
    let id = tenant_id(&pool, tenant).await?;
    q::set_weight(&pool, id, weight).await?;
    eprintln!("tenant `{tenant}` now has weight {weight}; workers apply it within seconds");
    Ok(())
}
