//! The scheduler every worker runs: it sleeps until the earliest schedule
//! is due (by the database's clock), then, in one transaction per batch,
//! locks the due schedules (`FOR UPDATE SKIP LOCKED`: workers share them),
//! plans each one ([`super::plan`]), charges the tenants' quotas, records
//! the fires, stores the jobs and moves the schedules on. The jobs are
//! pushed to Redis after the commit; one the push misses is pushed by the
//! sweeper, as for any stored job.
//!
//! Fires of `overlap: allow` schedules (the default) are stored up to the
//! lookahead before their time, their jobs waiting in Redis's delayed set
//! until then: storing 10,000 fires takes seconds on a small machine, and
//! a thousand schedules set for 09:00 should all start at 09:00, not in
//! the seconds after it. An edit, pause or delete before the fire time
//! undoes such fires (`queries::schedules::unstage`).
//!
//! Exactly once per fire time: a fire is recorded under the primary key
//! (schedule, fire time) in the same transaction as its job, and a job is
//! stored only for a fire recorded by that transaction. A worker that dies
//! mid-batch rolls the whole batch back; another worker fires it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use peyk_schema::queries::queue_controls::{self as controls, Quotas};
use peyk_schema::queries::schedules::{self as q, Horizon, PlannedFire, PlannedSchedule};
use peyk_schema::{DbError, DbPool, FireRow, ScheduleRow};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::plan::{plan, Fire, Outcome};
use super::target::{submission, submission_usage};
use super::{Timing, TimingSpec};
use crate::metrics::{SCHEDULES_ACTIVE, SCHEDULE_FIRES, SCHEDULE_LATENESS};
use crate::queue::{usage_charges, Charge, Enqueue, Queue, Use};
use crate::registry::Registry;
use crate::runner::Runner;
use crate::Clients;

/// How the scheduler works; from the worker's settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Schedules locked and fired per transaction.
    pub batch: i64,
    /// The longest sleep between looks: how soon a new or changed schedule
    /// is noticed.
    pub poll: Duration,
    /// Every tenant's quotas unless set for it.
    pub default_quotas: Quotas,
    /// Fires older than this are deleted from the history.
    pub history_retention: Duration,
    /// How long before their time fires of `overlap: allow` schedules are
    /// stored (zero: at their time, as the others).
    pub lookahead: Duration,
}

/// The timing stored on `row`.
pub fn timing_of(row: &ScheduleRow) -> Result<Timing, crate::ValidationErrors> {
    Timing::parse(&TimingSpec {
        cron: row.cron.as_deref(),
        every_seconds: row.every_seconds.map(i64::from),
        timezone: &row.timezone,
        calendar: &row.calendar,
        anchor_at: row.anchor_at,
        start_at: row.start_at,
        end_at: row.end_at,
    })
}

/// Runs until `stop` is cancelled.
pub async fn run<C: Clients>(runner: Arc<Runner<C>>, settings: SchedulerSettings, stop: CancellationToken) {
    // Every outcome's series exists from the start (alerts and dashboards select on them).
    for outcome in ["submitted", "skipped_overlap", "buffered", "missed", "quota_exceeded", "error"] {
        SCHEDULE_FIRES.with_label_values(&[outcome]);
    }
    std::sync::LazyLock::force(&SCHEDULE_LATENESS);
    std::sync::LazyLock::force(&SCHEDULES_ACTIVE);
    let mut quotas = QuotaCache::default();
    let housekeeping = tokio::spawn(housekeeping(runner.pool.clone(), runner.queue.clone(), settings.clone(), stop.clone()));
    while !stop.is_cancelled() {
        let wait = match fire_due(&runner, &settings, &mut quotas).await {
            // A full batch of due schedules: more may be due at once.
            Ok(due) if due as i64 == settings.batch => continue,
            Ok(due) => match q::due_in(&runner.pool, lookahead(&settings)).await {
                // Due now but none was ours to lock: another worker is firing it.
                Ok(Some(seconds)) if seconds <= 0.0 && due == 0 => Duration::from_millis(20),
                // A millisecond late rather than early: the clock's reading took time too.
                Ok(Some(seconds)) => Duration::from_secs_f64(seconds.max(0.0) + 0.001).min(settings.poll),
                Ok(None) => settings.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler could not read the next due time");
                    Duration::from_secs(1)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "scheduler could not fire due schedules; will try again");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }
    let _ = housekeeping.await;
}

/// One batch: answers how many due schedules it locked.
async fn fire_due<C: Clients>(runner: &Runner<C>, settings: &SchedulerSettings, quotas: &mut QuotaCache) -> anyhow::Result<usize> {
    let started = Instant::now();
    // Quotas are looked up before the transaction, so that no cache work
    // holds the schedules' locks.
    quotas.refresh(&runner.pool, settings).await;
    let tenant_quotas = quotas.snapshot();
    let (registry, queue) = (runner.registry.clone(), runner.queue.clone());
    let charged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let charged_in = charged.clone();
    let fired = q::fire_due(&runner.pool, settings.batch, lookahead(settings), async move |horizon, rows, open| {
        let mut planned = plan_batch(&registry, &rows, &open, horizon);
        let charges = charge_quotas(&queue, &mut planned, &tenant_quotas).await;
        *charged_in.lock().expect("not poisoned") = charges;
        planned.into_iter().map(|p| p.schedule).collect()
    })
    .await;
    let fired = match fired {
        Ok(fired) => fired,
        Err(e) => {
            let charges = std::mem::take(&mut *charged.lock().expect("not poisoned"));
            refund(&runner.queue, &charges).await;
            return Err(e.into());
        }
    };
    let entries: Vec<Enqueue> = fired.jobs.iter().filter_map(Enqueue::for_row).collect();
    if let Err(e) = runner.queue.enqueue_many(&entries).await {
        tracing::warn!(error = %e, count = entries.len(), "scheduled jobs stored but not pushed; the sweeper will push them");
    }
    let done_at = fired.now.unwrap_or_else(Utc::now) + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    for fire in &fired.recorded {
        SCHEDULE_FIRES.with_label_values(&[&fire.outcome]).inc_by(fire.missed.map_or(1, |n| n.max(1) as u64));
        if fire.job_id.is_some() {
            SCHEDULE_LATENESS.observe((done_at - fire.fire_at).num_milliseconds().max(0) as f64 / 1000.0);
        }
    }
    Ok(fired.due)
}

/// A fire planned, with its tenant (for quotas).
struct Planned {
    tenant: Uuid,
    schedule: PlannedSchedule,
}

fn lookahead(settings: &SchedulerSettings) -> chrono::Duration {
    chrono::Duration::from_std(settings.lookahead).unwrap_or_default()
}

fn plan_batch<C: Clients>(registry: &Registry<C>, rows: &[ScheduleRow], open: &HashSet<Uuid>, horizon: Horizon) -> Vec<Planned> {
    let now = horizon.now;
    rows.iter()
        .map(|row| {
            let timing = match timing_of(row) {
                Ok(timing) => timing,
                Err(e) => {
                    // Cannot happen for what the API stored; stop it rather than spin on it.
                    tracing::error!(schedule = %row.id, error = %e, "stored schedule timing unreadable; it will not fire again");
                    let schedule = PlannedSchedule { id: row.id, fires: Vec::new(), next_fire_at: None, buffered_fire_at: None };
                    return Planned { tenant: row.tenant_id, schedule };
                }
            };
            let previous_open = [row.last_job_id, row.last_pipeline_id].iter().flatten().any(|id| open.contains(id));
            let decided = plan(row, &timing, horizon, previous_open);
            let fires = decided.fires.into_iter().map(|fire| planned_fire(registry, row, fire, now)).collect();
            let schedule =
                PlannedSchedule { id: row.id, fires, next_fire_at: decided.next_fire_at, buffered_fire_at: decided.buffered_fire_at };
            Planned { tenant: row.tenant_id, schedule }
        })
        .collect()
}

fn planned_fire<C: Clients>(registry: &Registry<C>, row: &ScheduleRow, fire: Fire, now: DateTime<Utc>) -> PlannedFire {
    let built = match fire.outcome {
        Outcome::Submit => match submission(registry, row, fire.at, now) {
            Ok(submission) => Some(submission),
            Err(e) => {
                tracing::error!(schedule = %row.id, error = %e, "schedule's job could not be built");
                None
            }
        },
        _ => None,
    };
    let outcome = match (fire.outcome, &built) {
        (Outcome::Submit, None) => "error",
        (outcome, _) => outcome.as_str(),
    };
    let (job, pipeline) = built.map_or((None, None), |s| (Some(s.job), s.pipeline));
    PlannedFire {
        fire: FireRow {
            schedule_id: row.id,
            fire_at: fire.at,
            fired_at: now,
            outcome: outcome.into(),
            missed: fire.missed,
            manual: false,
            job_id: job.as_ref().map(|j| j.id),
            pipeline_id: pipeline.as_ref().map(|p| p.id),
        },
        job,
        pipeline,
    }
}

/// Charges each tenant's submissions of the batch against its quotas, all
/// at once; when that passes a quota, fire by fire in fire-time order, so
/// that the fires within the quota still run and the rest are recorded as
/// `quota_exceeded`. Redis down: the fires go ahead uncharged (a schedule
/// is not lost to an outage of the counters). Answers what was charged, to
/// refund on a rollback.
async fn charge_quotas(queue: &Queue, planned: &mut [Planned], quotas: &EffectiveQuotas) -> Vec<(Uuid, Vec<Charge>)> {
    // Each tenant's submissions: where each is (entry, fire) and its use.
    type Position = (usize, usize);
    let mut by_tenant: HashMap<Uuid, Vec<(Position, Use)>> = HashMap::new();
    for (e, entry) in planned.iter().enumerate() {
        for (f, fire) in entry.schedule.fires.iter().enumerate() {
            if let Some(job) = &fire.job {
                by_tenant.entry(entry.tenant).or_default().push(((e, f), submission_usage(job, fire.pipeline.as_ref())));
            }
        }
    }
    let mut charged = Vec::new();
    let mut refused: Vec<Position> = Vec::new();
    for (tenant, mut fires) in by_tenant {
        let quotas = quotas.get(&tenant);
        let mut all = Use::default();
        fires.iter().for_each(|(_, used)| all.add(*used));
        match charge(queue, tenant, all, quotas).await {
            Charged::Yes(charges) => charged.push((tenant, charges)),
            Charged::Over => {
                fires.sort_by_key(|((e, f), _)| planned[*e].schedule.fires[*f].fire.fire_at);
                for (at, used) in fires {
                    match charge(queue, tenant, used, quotas).await {
                        Charged::Yes(charges) => charged.push((tenant, charges)),
                        Charged::Over => refused.push(at),
                    }
                }
            }
        }
    }
    for (e, f) in refused {
        let fire = &mut planned[e].schedule.fires[f];
        (fire.job, fire.pipeline) = (None, None);
        (fire.fire.job_id, fire.fire.pipeline_id) = (None, None);
        fire.fire.outcome = "quota_exceeded".into();
    }
    charged
}

enum Charged {
    /// Within the quotas (or Redis did not answer): what was charged.
    Yes(Vec<Charge>),
    Over,
}

async fn charge(queue: &Queue, tenant: Uuid, used: Use, quotas: &Quotas) -> Charged {
    let charges = usage_charges(used, quotas);
    if charges.is_empty() {
        return Charged::Yes(charges);
    }
    match queue.charge(&tenant.to_string(), &charges).await {
        Ok(Ok(())) => Charged::Yes(charges.into_iter().filter(|c| c.amount > 0).collect()),
        Ok(Err(over)) => {
            tracing::info!(%tenant, quota = ?over.kind, "scheduled fire refused: quota used up");
            Charged::Over
        }
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "quota not charged for scheduled fires: redis did not answer");
            Charged::Yes(Vec::new())
        }
    }
}

async fn refund(queue: &Queue, charged: &[(Uuid, Vec<Charge>)]) {
    for (tenant, charges) in charged {
        if let Err(e) = queue.refund(&tenant.to_string(), charges).await {
            tracing::warn!(%tenant, error = %e, "quota charge of a rolled-back batch not refunded");
        }
    }
}

/// Fires `schedule` now, once, whatever its timing, pause or overlap
/// (`POST /v1/schedules/{id}/trigger`): answers the fire and the job
/// stored (to push); `Ok(None)`: the tenant has no such schedule.
pub async fn trigger<C: Clients>(
    pool: &DbPool,
    registry: Arc<Registry<C>>,
    tenant: Uuid,
    schedule: Uuid,
) -> Result<q::Triggered<String>, DbError> {
    q::trigger(pool, tenant, schedule, move |row, now| submission(&registry, row, now, now).map(|s| (s.job, s.pipeline))).await
}

/// Each tenant's own quotas, looked up at most every 30 s.
#[derive(Default)]
struct QuotaCache {
    quotas: HashMap<Uuid, Quotas>,
    defaults: Quotas,
    loaded: Option<Instant>,
}

impl QuotaCache {
    const TTL: Duration = Duration::from_secs(30);

    async fn refresh(&mut self, pool: &DbPool, settings: &SchedulerSettings) {
        if self.loaded.is_some_and(|at| at.elapsed() < Self::TTL) {
            return;
        }
        match controls::all_quotas(pool).await {
            Ok(quotas) => {
                self.quotas = quotas.into_iter().collect();
                self.defaults = settings.default_quotas;
                self.loaded = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "tenants' quotas not read; using the last ones"),
        }
    }

    /// Every tenant's effective quotas (a tenant not listed has the defaults).
    fn snapshot(&self) -> EffectiveQuotas {
        EffectiveQuotas {
            own: self.quotas.iter().map(|(tenant, own)| (*tenant, own.or(&self.defaults))).collect(),
            defaults: self.defaults,
        }
    }
}

/// Quotas by tenant, falling back to the defaults.
struct EffectiveQuotas {
    own: HashMap<Uuid, Quotas>,
    defaults: Quotas,
}

impl EffectiveQuotas {
    fn get(&self, tenant: &Uuid) -> &Quotas {
        self.own.get(tenant).unwrap_or(&self.defaults)
    }
}

/// Across the fleet, one worker at a time (the lead): the active-schedules
/// gauge, and the history past its retention deleted.
async fn housekeeping(pool: DbPool, queue: Queue, settings: SchedulerSettings, stop: CancellationToken) {
    const PERIOD: Duration = Duration::from_secs(15);
    let mut last_prune: Option<Instant> = None;
    while crate::maintenance::every(PERIOD, &stop).await {
        match q::active_count(&pool).await {
            Ok(count) => SCHEDULES_ACTIVE.set(count),
            Err(e) => tracing::debug!(error = %e, "active schedules not counted"),
        }
        if last_prune.is_some_and(|at| at.elapsed() < Duration::from_secs(600)) {
            continue;
        }
        if !matches!(queue.try_lead("schedule-history-prune", Duration::from_secs(600)).await, Ok(true)) {
            continue;
        }
        last_prune = Some(Instant::now());
        let before = Utc::now() - chrono::Duration::from_std(settings.history_retention).unwrap_or(chrono::Duration::days(30));
        const PRUNE_BATCH: usize = 5000;
        loop {
            match q::prune_fires(&pool, before, PRUNE_BATCH as i64).await {
                Ok(PRUNE_BATCH) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "old schedule fires not pruned; will try again");
                    break;
                }
            }
        }
    }
}
