//! The operators' commands that change the shared queues (`pause`,
//! `resume`, `set-weight`). They write PostgreSQL only: workers apply it to
//! Redis within `PEYK_CONTROL_SYNC_SECONDS` (the admin API applies it at once).

use anyhow::Context;
use peyk_schema::queries::queue_controls as q;
use peyk_schema::DbPool;
use uuid::Uuid;

use crate::config::Config;

/// The pool of a one-off operator's command (`pause`, `create-key`, …).
pub fn connect() -> anyhow::Result<DbPool> {
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

/// Quotas as the CLI takes them: a number (0: none), or `default`.
#[derive(Debug, Default, clap::Args)]
pub struct QuotaArgs {
    /// Jobs a day (Tehran days): N, 0 for none, or `default`.
    #[arg(long)]
    pub jobs_per_day: Option<String>,
    /// SMS messages a day: N, 0 for none, or `default`.
    #[arg(long)]
    pub sms_per_day: Option<String>,
    /// Minutes of audio a month: N, 0 for none, or `default`.
    #[arg(long)]
    pub audio_minutes_per_month: Option<String>,
    /// LLM tokens a month: N, 0 for none, or `default`.
    #[arg(long)]
    pub llm_tokens_per_month: Option<String>,
    /// Email recipients a day: N, 0 for none, or `default`.
    #[arg(long)]
    pub emails_per_day: Option<String>,
    /// A domain its email jobs may send from (`from`); may be given several
    /// times; replaces the list. `--sender-domain none` empties it.
    #[arg(long = "sender-domain", value_name = "DOMAIN")]
    pub sender_domains: Vec<String>,
    /// Days sensitive jobs' content is kept (medical_analysis,
    /// transcription, email, sms): N (fractions allowed, 0: erase at the
    /// next sweep) or `default`.
    #[arg(long)]
    pub retention_sensitive_days: Option<String>,
    /// Days other jobs' content is kept: N or `default`.
    #[arg(long)]
    pub retention_content_days: Option<String>,
    /// Days uploads are kept after their last job finished: N or `default`.
    #[arg(long)]
    pub retention_upload_days: Option<String>,
    /// Days attempt errors, event message bodies and SMS texts are kept: N or `default`.
    #[arg(long)]
    pub retention_trail_days: Option<String>,
}

fn sender_domains(given: &[String]) -> anyhow::Result<Option<Vec<String>>> {
    match given {
        [] => Ok(None),
        [none] if none == "none" => Ok(Some(Vec::new())),
        domains => Ok(Some(peyk_jobs::email::sender_domains(domains).map_err(|problem| anyhow::anyhow!("--sender-domain {problem}"))?)),
    }
}

fn days(value: Option<String>) -> anyhow::Result<Option<Option<f64>>> {
    match value.as_deref() {
        None => Ok(None),
        Some("default") => Ok(Some(None)),
        Some(n) => Ok(Some(Some(
            n.parse()
                .ok()
                .filter(|d: &f64| (0.0..=q::MAX_RETENTION_DAYS).contains(d))
                .with_context(|| format!("days are 0 to {} or `default`, not `{n}`", q::MAX_RETENTION_DAYS))?,
        ))),
    }
}

fn quota(value: Option<String>) -> anyhow::Result<Option<Option<i64>>> {
    match value.as_deref() {
        None => Ok(None),
        Some("default") => Ok(Some(None)),
        Some(n) => Ok(Some(Some(
            n.parse().ok().filter(|n: &i64| *n >= 0).with_context(|| format!("a quota is N (0: none) or `default`, not `{n}`"))?,
        ))),
    }
}

pub async fn set_limits(
    tenant: &str,
    weight: Option<i32>,
    requests_per_second: Option<i32>,
    burst: Option<i32>,
    max_running: &[String],
    quotas: QuotaArgs,
) -> anyhow::Result<()> {
    if let Some(weight) = weight {
        anyhow::ensure!((1..=q::MAX_WEIGHT).contains(&weight), "--weight must be between 1 and {}", q::MAX_WEIGHT);
    }
    for (name, value) in [("--requests-per-second", requests_per_second), ("--burst", burst)] {
        anyhow::ensure!(value.is_none_or(|v| v >= 0), "{name} must be 0 (the default) or more");
    }
    let queues = peyk_jobs::registry::catalogue().names();
    let mut caps = Vec::new();
    for item in max_running {
        let (queue, cap) = item.split_once('=').with_context(|| format!("--max-running takes QUEUE=N, not `{item}`"))?;
        anyhow::ensure!(queues.contains(&queue), "unknown queue `{queue}`; the queues are {}", queues.join(", "));
        let cap: i32 = cap.parse().ok().filter(|n| *n >= 0).with_context(|| format!("--max-running {queue}=N takes a whole number"))?;
        caps.push((queue, (cap > 0).then_some(cap)));
    }
    let pool = connect()?;
    let id = tenant_id(&pool, tenant).await?;
    let change = q::LimitsChange {
        weight,
        requests_per_second: q::LimitsChange::rate(requests_per_second),
        burst: q::LimitsChange::rate(burst),
        jobs_per_day: quota(quotas.jobs_per_day)?,
        sms_per_day: quota(quotas.sms_per_day)?,
        audio_minutes_per_month: quota(quotas.audio_minutes_per_month)?,
        llm_tokens_per_month: quota(quotas.llm_tokens_per_month)?,
        emails_per_day: quota(quotas.emails_per_day)?,
        sender_domains: sender_domains(&quotas.sender_domains)?,
        sensitive_retention_days: days(quotas.retention_sensitive_days)?,
        content_retention_days: days(quotas.retention_content_days)?,
        upload_retention_days: days(quotas.retention_upload_days)?,
        trail_retention_days: days(quotas.retention_trail_days)?,
    };
    q::change_limits(&pool, id, &change).await?;
    for (queue, cap) in caps {
        q::set_cap(&pool, id, queue, cap).await?;
    }
    eprintln!("limits of tenant `{tenant}` stored; workers apply them within seconds");
    Ok(())
}
