//! What each tenant used in the current day and month, kept in Redis and
//! shared by every API process and worker: jobs accepted, SMS messages,
//! seconds of audio, LLM tokens. The API charges jobs, messages and audio
//! against the tenant's quotas before it accepts a job; workers add the
//! tokens a model reported. Days and months are counted in Tehran time
//! (UTC+03:30; Iran keeps no daylight saving time since 2022).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use peyk_schema::queries::queue_controls::Quotas;
use redis::AsyncCommands;
use serde_json::Value;

use super::{Queue, QueueError};
use peyk_schema::Batcher;

/// Tehran's offset from UTC, in seconds.
const TEHRAN: i32 = 3 * 3600 + 30 * 60;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageKind {
    /// Jobs accepted, per day.
    Jobs,
    /// SMS messages (one per number), per day.
    Sms,
    /// Seconds of audio submitted for transcription, per month.
    AudioSeconds,
    /// LLM tokens used, per month.
    LlmTokens,
    /// Email recipients (to, cc, bcc), per day.
    Emails,
}

impl UsageKind {
    pub const ALL: [UsageKind; 5] = [UsageKind::Jobs, UsageKind::Sms, UsageKind::AudioSeconds, UsageKind::LlmTokens, UsageKind::Emails];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Jobs => "jobs",
            UsageKind::Sms => "sms",
            UsageKind::AudioSeconds => "audio_seconds",
            UsageKind::LlmTokens => "llm_tokens",
            UsageKind::Emails => "emails",
        }
    }

    pub fn period(self) -> Period {
        match self {
            UsageKind::Jobs | UsageKind::Sms | UsageKind::Emails => Period::Day,
            UsageKind::AudioSeconds | UsageKind::LlmTokens => Period::Month,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// The period `at` falls in: its name and when it ends (UTC).
    pub fn at(self, at: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let tehran = FixedOffset::east_opt(TEHRAN).expect("a valid offset");
        let local = at.with_timezone(&tehran).date_naive();
        let (name, next) = match self {
            Period::Day => (local.format("%Y-%m-%d").to_string(), local + Duration::days(1)),
            Period::Month => {
                let first_of_next = if local.month() == 12 {
                    NaiveDate::from_ymd_opt(local.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(local.year(), local.month() + 1, 1)
                };
                (local.format("%Y-%m").to_string(), first_of_next.expect("a valid date"))
            }
        };
        let ends = tehran.from_local_datetime(&next.and_hms_opt(0, 0, 0).expect("midnight")).single().expect("a fixed offset").to_utc();
        (name, ends)
    }
}

/// One kind to charge: how much, and the tenant's limit for the period (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Charge {
    pub kind: UsageKind,
    pub amount: i64,
    pub limit: i64,
}

impl Charge {
    /// The charge that takes this one back (limits play no part in a refund).
    pub fn undone(&self) -> Charge {
        Charge { amount: -self.amount, limit: 0, ..*self }
    }
}

/// What a job will use, as far as it is known at submission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Use {
    pub jobs: i64,
    pub sms: i64,
    pub audio_seconds: f64,
    /// A `medical_analysis` job: refused once the month's tokens are used up.
    pub llm: bool,
    /// Recipients of an `email` job.
    pub emails: i64,
}

impl Use {
    /// One job of `job_type` with `payload`, whose files hold `audio_seconds`.
    pub fn of(job_type: &str, payload: &Value, audio_seconds: f64) -> Self {
        let sms = if job_type == "sms" {
            // `send` names numbers; `sendarray` a message per number; the others one number.
            payload["receptors"].as_array().or_else(|| payload["messages"].as_array()).map_or(1, |list| list.len() as i64)
        } else {
            0
        };
        Self {
            jobs: 1,
            sms,
            audio_seconds: if job_type == "transcription" { audio_seconds } else { 0.0 },
            llm: job_type == "medical_analysis",
            emails: if job_type == "email" {
                ["to", "cc", "bcc"].iter().map(|field| payload[field].as_array().map_or(0, |list| list.len() as i64)).sum()
            } else {
                0
            },
        }
    }

    pub fn add(&mut self, other: Use) {
        self.jobs += other.jobs;
        self.sms += other.sms;
        self.audio_seconds += other.audio_seconds;
        self.llm |= other.llm;
        self.emails += other.emails;
    }
}

/// The charges for `usage` under `quotas`: only the kinds it uses, and
/// the LLM month only as a check (amount 0).
pub fn usage_charges(usage: Use, quotas: &Quotas) -> Vec<Charge> {
    let limit = |quota: Option<i64>| quota.unwrap_or(0).max(0);
    let charges = [
        Charge { kind: UsageKind::Jobs, amount: usage.jobs, limit: limit(quotas.jobs_per_day) },
        Charge { kind: UsageKind::Sms, amount: usage.sms, limit: limit(quotas.sms_per_day) },
        Charge {
            kind: UsageKind::AudioSeconds,
            amount: usage.audio_seconds.ceil() as i64,
            limit: limit(quotas.audio_minutes_per_month) * 60,
        },
        Charge { kind: UsageKind::LlmTokens, amount: if usage.llm { 0 } else { -1 }, limit: limit(quotas.llm_tokens_per_month) },
        Charge { kind: UsageKind::Emails, amount: usage.emails, limit: limit(quotas.emails_per_day) },
    ];
    // An amount of 0 is kept only for LLM tokens (refused once the month is
    // used up, counted later by the worker); a job that sends no email must
    // not go to Redis over the email cap every tenant has by default.
    charges.into_iter().filter(|c| c.amount > 0 || (c.amount == 0 && c.limit > 0 && c.kind == UsageKind::LlmTokens)).collect()
}

/// A quota a charge would pass.
#[derive(Debug, Clone)]
pub struct OverQuota {
    pub kind: UsageKind,
    pub limit: i64,
    pub used: i64,
    pub resets_at: DateTime<Utc>,
}

impl Queue {
    fn usage_key(&self, kind: UsageKind, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let (period, ends) = kind.period().at(now);
        (format!("{}:usage:{}:{period}", self.prefix, kind.as_str()), ends)
    }

    /// Charges `charges` to `tenant`, all or none: `Ok(Err(..))` names the
    /// quota it would pass.
    pub async fn charge(&self, tenant: &str, charges: &[Charge]) -> Result<Result<(), OverQuota>, QueueError> {
        let mut answers = self.charge_many(&[(tenant.to_string(), charges.to_vec())]).await?;
        Ok(answers.remove(0))
    }

    /// Several tenants' charges, each all or none, in order, in one round trip.
    pub async fn charge_many(&self, charges: &[(String, Vec<Charge>)]) -> Result<Vec<Result<(), OverQuota>>, QueueError> {
        let now = Utc::now();
        let mut invocation = self.scripts.charge.prepare_invoke();
        let mut ends = Vec::with_capacity(charges.len());
        for (tenant, kinds) in charges {
            invocation.arg(tenant).arg(kinds.len());
            let mut kind_ends = Vec::with_capacity(kinds.len());
            for charge in kinds {
                let (key, end) = self.usage_key(charge.kind, now);
                // Kept a day past the period's end, for the usage endpoint's "previous" look.
                let keep = (end - now).num_seconds().max(1) + 86_400;
                invocation.key(key).arg(charge.amount).arg(charge.limit).arg(keep);
                kind_ends.push(end);
            }
            ends.push(kind_ends);
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Ok(answer
            .chunks_exact(2)
            .zip(charges.iter().zip(ends))
            .map(|(refused, ((_, kinds), ends))| match refused {
                [index, used] if *index > 0 => {
                    let i = (*index - 1) as usize;
                    Err(OverQuota { kind: kinds[i].kind, limit: kinds[i].limit, used: *used, resets_at: ends[i] })
                }
                _ => Ok(()),
            })
            .collect())
    }

    /// Takes a charge back (a job that was not stored after all).
    pub async fn refund(&self, tenant: &str, charges: &[Charge]) -> Result<(), QueueError> {
        let back: Vec<Charge> = charges.iter().map(Charge::undone).collect();
        self.charge(tenant, &back).await?.ok();
        Ok(())
    }

    /// Adds what a job used once it ran (e.g. LLM tokens).
    pub async fn record_usage(&self, tenant: &str, kind: UsageKind, amount: i64) -> Result<(), QueueError> {
        self.charge(tenant, &[Charge { kind, amount, limit: 0 }]).await?.ok();
        Ok(())
    }

    /// Every tenant's use of `kind` in the current period (tenant id → used).
    pub async fn usage(&self, kind: UsageKind) -> Result<HashMap<String, i64>, QueueError> {
        let (key, _) = self.usage_key(kind, Utc::now());
        let mut conn = self.conn.clone();
        Ok(conn.hgetall(key).await?)
    }
}

/// Charges concurrent submissions together: one script call for whatever
/// charges are waiting, instead of one round trip each.
pub type Charger = Batcher<(String, Vec<Charge>), Result<(), OverQuota>, QueueError>;

pub fn start_charger(queue: Queue) -> Charger {
    Batcher::start(256, 2, move |charges: Vec<(String, Vec<Charge>)>| {
        let queue = queue.clone();
        async move { queue.charge_many(&charges).await }
    })
}

/// Usage that no quota limits: counted in the process and added to Redis
/// in one call a quarter second (nothing can refuse it, so no request needs
/// to wait for Redis). The usage endpoint and metrics lag by that much; a
/// process that dies loses at most that quarter second's count, and a count
/// taken just before midnight (Tehran) may land in the next day.
#[derive(Clone)]
pub struct UsageTally {
    pending: Arc<Mutex<HashMap<(String, UsageKind), i64>>>,
}

const TALLY_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl UsageTally {
    pub fn start(queue: Queue) -> Self {
        let tally = Self { pending: Arc::default() };
        let flushing = tally.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TALLY_EVERY);
            loop {
                every.tick().await;
                flushing.flush(&queue).await;
            }
        });
        tally
    }

    /// Counts `charges` (their limits play no part) for `tenant`.
    pub fn add(&self, tenant: &str, charges: &[Charge]) {
        let mut pending = self.pending.lock().expect("tally lock");
        for charge in charges {
            *pending.entry((tenant.to_string(), charge.kind)).or_default() += charge.amount;
        }
    }

    async fn flush(&self, queue: &Queue) {
        let taken = std::mem::take(&mut *self.pending.lock().expect("tally lock"));
        let mut by_tenant: HashMap<String, Vec<Charge>> = HashMap::new();
        for ((tenant, kind), amount) in &taken {
            if *amount != 0 {
                by_tenant.entry(tenant.clone()).or_default().push(Charge { kind: *kind, amount: *amount, limit: 0 });
            }
        }
        if by_tenant.is_empty() {
            return;
        }
        let charges: Vec<(String, Vec<Charge>)> = by_tenant.into_iter().collect();
        if let Err(e) = queue.charge_many(&charges).await {
            // Kept for the next round: Redis being down loses no count.
            tracing::warn!(error = %e, "usage not counted yet: redis did not answer");
            let mut pending = self.pending.lock().expect("tally lock");
            for (key, amount) in taken {
                *pending.entry(key).or_default() += amount;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_tehran_days_and_months() {
        // 21:00 UTC on 31 Dec is 00:30 on 1 Jan in Tehran.
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 21, 0, 0).unwrap();
        let (day, day_ends) = Period::Day.at(at);
        assert_eq!(day, "2027-01-01");
        assert_eq!(day_ends, Utc.with_ymd_and_hms(2027, 1, 1, 20, 30, 0).unwrap());
        let (month, month_ends) = Period::Month.at(at);
        assert_eq!(month, "2027-01");
        assert_eq!(month_ends, Utc.with_ymd_and_hms(2027, 1, 31, 20, 30, 0).unwrap());
        let (before, _) = Period::Day.at(Utc.with_ymd_and_hms(2026, 12, 31, 20, 29, 0).unwrap());
        assert_eq!(before, "2026-12-31");
    }

    #[test]
    fn a_job_is_charged_only_the_kinds_it_uses() {
        let quotas = Quotas { emails_per_day: Some(1000), llm_tokens_per_month: Some(5000), ..Quotas::default() };
        let kinds = |job_type: &str, payload: Value| -> Vec<UsageKind> {
            usage_charges(Use::of(job_type, &payload, 0.0), &quotas).iter().map(|c| c.kind).collect()
        };
        // No quota of the jobs it uses: nothing to ask Redis (the API counts it itself).
        assert_eq!(kinds("webhook", serde_json::json!({})), [UsageKind::Jobs]);
        let email = serde_json::json!({ "to": ["a@x.ir", "b@x.ir"], "cc": ["c@x.ir"], "bcc": ["d@x.ir"] });
        let charges = usage_charges(Use::of("email", &email, 0.0), &quotas);
        let emails = charges.iter().find(|c| c.kind == UsageKind::Emails).unwrap();
        assert_eq!((emails.amount, emails.limit), (4, 1000));
        assert_eq!(kinds("medical_analysis", serde_json::json!({})), [UsageKind::Jobs, UsageKind::LlmTokens]);
    }
}
