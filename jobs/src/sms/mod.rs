//! The `sms` job type: text messages through Kavenegar, sent exactly once.
//!
//! Modes: `send` (one text to up to 200 numbers), `sendarray` (a different
//! text per number), `lookup` (an approved template with tokens: OTP codes,
//! reminders) and `call` (a template read out by a voice call, for OTP).
//!
//! Exactly once: `send` and `sendarray` pass Kavenegar a `localid` per
//! message derived from the job id; an attempt after the first asks
//! Kavenegar for those ids before sending, and sends only what it does not
//! find. `lookup` and `call` have no such id, so they are repeated only when
//! the previous attempt is known not to have reached Kavenegar (refused
//! connection, "busy", "rate limited"); after an unknown outcome (no answer,
//! a worker that died mid-call) the job fails with `outcome_unknown` rather
//! than risk a second code on the user's phone.
//!
//! Without `PEYK_KAVENEGAR_API_KEY` messages go to the development outbox
//! (`GET /v1/sms/outbox`), never to a phone and never silently dropped.
//!
//! Phone numbers and texts are never logged: numbers appear masked.

pub mod kavenegar;
mod payload;
pub mod phone;
pub mod rate_limit;
pub mod status;
pub mod templates;

use std::time::Duration;

use chrono::Utc;
use peyk_schema::models::SmsOutboxRow;
use serde_json::json;
use uuid::Uuid;

use crate::env::{env_or, env_seconds, EnvError};
use crate::{Job, JobContext, JobError, JobKind, ValidationErrors};
use kavenegar::{Entry, Handling, KavenegarClient, KavenegarError};
use phone::{masked, Mobile};
use rate_limit::RateLimiter;
use templates::MissingTemplates;

pub use payload::{ArrayMessage, SmsJob, TemplateMessage};

/// How long to wait after Kavenegar says "rate limited" (451).
const PROVIDER_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Error codes that prove an attempt did not reach Kavenegar's sending
/// (see the module docs): after them a lookup may be repeated.
const NOT_SENT_CODES: &[&str] = &["not_sent", "provider_busy", "provider_rate_limited", "operation_failed", "http_503", "rate_limited"];

impl Job for SmsJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "sms";
    const SENSITIVE: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = 6;
    const RESULT_FIELDS: &'static [&'static str] = &["provider", "mode", "messages", "cost_rial", "delivery", "note", "receptors"];
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

    fn validate(&self) -> Result<(), ValidationErrors> {
        self.check()
    }

    fn normalize(&mut self) {
        self.normalize_numbers();
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let sms = &ctx.clients.sms;
        let receptors = self.receptors();
        let mut redis = ctx.clients.backbone.queue.redis();
        let wait = sms
            .limiter
            .check(&mut redis, ctx.tenant_id, ctx.job_id, self.is_otp(), &receptors)
            .await
            .map_err(|e| JobError::retry("redis_unavailable", format!("could not check rate limits: {e}")))?;
        if let Some((wait, rule)) = wait {
            let seconds = wait.as_secs_f64().ceil() as u64;
            return Err(JobError::permanent(
                "rate_limited",
                format!("the rate rule {rule} refuses this message; try again in {seconds} s"),
            )
            .with_details(json!({ "retry_after_seconds": seconds, "rule": rule.to_string() })));
        }
        let Some(client) = &sms.kavenegar else {
            return self.keep_in_outbox(ctx).await;
        };
        let entries = match &self {
            SmsJob::Send { .. } | SmsJob::Sendarray { .. } => self.send_once(client, sms, ctx).await?,
            SmsJob::Lookup(t) | SmsJob::Call(t) => self.lookup(client, t, ctx).await?,
        };
        let message_ids: Vec<i64> = entries.iter().map(|e| e.messageid).filter(|id| *id > 0).collect();
        let cost: i64 = entries.iter().filter_map(|e| e.cost).sum();
        // The status check is a job of its own; failing to queue it must not
        // fail (and so repeat) a job whose messages went out.
        let check = ctx
            .enqueue_follow_up(
                &JobKind::described::<status::SmsStatusJob>(),
                json!({ "sms_job_id": ctx.job_id, "message_ids": message_ids }),
                Utc::now() + sms.status_delay,
            )
            .await;
        let delivery = match check {
            Ok(id) => json!({ "state": "pending", "check_job_id": id }),
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the delivery status check");
                json!({ "state": "unknown" })
            }
        };
        tracing::info!(mode = self.mode(), messages = entries.len(), receptor = %masked(&receptors[0]), "sms sent");
        Ok(json!({ "provider": "kavenegar", "mode": self.mode(), "messages": entries, "cost_rial": cost, "delivery": delivery }))
    }
}

impl SmsJob {
    /// `send` / `sendarray`, skipping messages an earlier attempt sent.
    async fn send_once(&self, client: &KavenegarClient, sms: &SmsClient, ctx: &JobContext) -> Result<Vec<Entry>, JobError> {
        let receptors = self.receptors();
        let local_ids: Vec<String> = (0..receptors.len()).map(|i| local_id(ctx.job_id, i)).collect();
        let mut already: Vec<Option<Entry>> = vec![None; receptors.len()];
        if ctx.attempt > 1 {
            let found =
                client.call("sms/statuslocalmessageid", &[("localid", local_ids.join(","))]).await.map_err(|e| provider_error(&e, true))?;
            for entry in found.into_iter().filter(|e| e.messageid > 0 && e.status != 100) {
                if let Some(i) = entry.localid.as_ref().and_then(|l| local_ids.iter().position(|id| id == l)) {
                    already[i] = Some(Entry { receptor: Some(receptors[i].clone()), ..entry });
                }
            }
        }
        let missing: Vec<usize> = (0..receptors.len()).filter(|i| already[*i].is_none()).collect();
        if !missing.is_empty() {
            let pick = |values: &dyn Fn(usize) -> String| missing.iter().map(|i| values(*i)).collect::<Vec<_>>();
            let ids = pick(&|i| local_ids[i].clone());
            let mut form: Vec<(&str, String)> = Vec::new();
            let method = match self {
                SmsJob::Send { message, sender, .. } => {
                    form.push(("receptor", pick(&|i| receptors[i].clone()).join(",")));
                    form.push(("message", message.clone()));
                    if let Some(sender) = sender.clone().or_else(|| sms.default_sender.clone()) {
                        form.push(("sender", sender));
                    }
                    form.push(("localid", ids.join(",")));
                    "sms/send"
                }
                SmsJob::Sendarray { messages } => {
                    let default_sender = sms.default_sender.clone().unwrap_or_default();
                    let array = |f: &dyn Fn(&ArrayMessage) -> String| {
                        serde_json::to_string(&pick(&|i| f(&messages[i]))).expect("strings serialize")
                    };
                    form.push(("receptor", array(&|m| m.receptor.0.clone())));
                    form.push(("message", array(&|m| m.message.clone())));
                    form.push(("sender", array(&|m| m.sender.clone().unwrap_or_else(|| default_sender.clone()))));
                    // The official SDKs disagree on the name: send both.
                    form.push(("localid", serde_json::to_string(&ids).expect("strings serialize")));
                    form.push(("localmessageids", ids.join(",")));
                    "sms/sendarray"
                }
                _ => unreachable!("lookups go through `lookup`"),
            };
            let sent = client.call(method, &form).await.map_err(|e| provider_error(&e, true))?;
            for (k, i) in missing.iter().enumerate() {
                let entry = sent.iter().find(|e| e.localid.as_deref() == Some(local_ids[*i].as_str())).or_else(|| sent.get(k)).cloned();
                already[*i] = Some(entry.unwrap_or_default());
            }
        }
        Ok(already.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// `lookup` / `call`: repeated only after an attempt known not to have
    /// reached Kavenegar.
    async fn lookup(&self, client: &KavenegarClient, template: &TemplateMessage, ctx: &JobContext) -> Result<Vec<Entry>, JobError> {
        if ctx.attempt > 1 {
            let attempts = peyk_schema::queries::attempts::list_for_job(&ctx.clients.backbone.pool, ctx.job_id)
                .await
                .map_err(|e| JobError::retry("database_unavailable", e.to_string()))?;
            // The last row is this attempt; the one before tells how the
            // previous attempt ended.
            let previous = attempts.iter().rev().nth(1).and_then(|a| a.error_code.clone());
            if !previous.as_deref().is_some_and(|code| NOT_SENT_CODES.contains(&code)) {
                return Err(outcome_unknown());
            }
        }
        let mut form: Vec<(&str, String)> = vec![("receptor", template.receptor.0.clone()), ("template", template.template.clone())];
        form.extend(template.tokens().into_iter().map(|(name, value)| (name, value.to_string())));
        form.push(("type", if matches!(self, SmsJob::Call(_)) { "call" } else { "sms" }.to_string()));
        let answer = client.call("verify/lookup", &form).await.map_err(|e| provider_error(&e, false));
        if answer.as_ref().is_err_and(|e| e.code == "template_not_found") {
            // So that the API refuses the next ones at submission.
            let mut redis = ctx.clients.backbone.queue.redis();
            if let Err(e) = ctx.clients.sms.missing_templates.remember(&mut redis, &template.template).await {
                tracing::warn!(error = %e, "could not remember the missing template");
            }
        }
        answer
    }

    async fn keep_in_outbox(&self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let row = |receptor: &Mobile, message: Option<String>, sender: Option<String>, template: Option<&TemplateMessage>| SmsOutboxRow {
            id: Uuid::now_v7(),
            tenant_id: ctx.tenant_id,
            job_id: ctx.job_id,
            mode: self.mode().to_string(),
            receptor: receptor.0.clone(),
            sender: sender.or_else(|| ctx.clients.sms.default_sender.clone()),
            message,
            template: template.map(|t| t.template.clone()),
            tokens: template.map(|t| json!(t.tokens().into_iter().collect::<std::collections::BTreeMap<_, _>>())),
            created_at: Utc::now(),
        };
        let rows: Vec<SmsOutboxRow> = match self {
            SmsJob::Send { receptors, message, sender } => {
                receptors.iter().map(|r| row(r, Some(message.clone()), sender.clone(), None)).collect()
            }
            SmsJob::Sendarray { messages } => {
                messages.iter().map(|m| row(&m.receptor, Some(m.message.clone()), m.sender.clone(), None)).collect()
            }
            SmsJob::Lookup(t) | SmsJob::Call(t) => vec![row(&t.receptor, None, None, Some(t))],
        };
        peyk_schema::queries::sms::insert_outbox(&ctx.clients.backbone.pool, &rows)
            .await
            .map_err(|e| JobError::retry("database_unavailable", format!("could not write the outbox: {e}")))?;
        Ok(json!({
            "provider": "outbox",
            "mode": self.mode(),
            "note": "PEYK_KAVENEGAR_API_KEY is not set: the message was kept in the local outbox (GET /v1/sms/outbox), not sent",
            "receptors": rows.len(),
        }))
    }
}

fn outcome_unknown() -> JobError {
    JobError::permanent(
        "outcome_unknown",
        "an earlier attempt may have reached Kavenegar and template messages cannot be looked up, so the message is not sent again; \
         check the phone or the Kavenegar panel, and submit a new job if it did not arrive",
    )
}

/// A Kavenegar failure as a job error. `safe_to_repeat`: the call can be
/// made again without risking a second message (sends carry local ids).
fn provider_error(error: &KavenegarError, safe_to_repeat: bool) -> JobError {
    if error.maybe_sent() && !safe_to_repeat {
        return outcome_unknown();
    }
    match error {
        KavenegarError::Api { status, .. } => {
            let (code, _, handling) = kavenegar::status_meaning(*status);
            match handling {
                Handling::Permanent => JobError::permanent(code, error.to_string()),
                Handling::Retry if *status == 451 => JobError::retry(code, error.to_string()).retry_after(Some(PROVIDER_RATE_LIMIT_WAIT)),
                Handling::Retry => JobError::retry(code, error.to_string()),
            }
        }
        KavenegarError::Http { status, .. } => JobError::retry(format!("http_{status}"), error.to_string()),
        KavenegarError::NotSent(_) => JobError::retry("not_sent", error.to_string()),
        KavenegarError::NoAnswer(_) => JobError::retry("no_answer", error.to_string()),
    }
}

/// Kavenegar `localid` of the `index`-th message of a job: the random low
/// bits of the job's UUIDv7, times 1000, plus the index (fits in an i64).
pub fn local_id(job: Uuid, index: usize) -> String {
    let random = (job.as_u128() as u64) & ((1 << 50) - 1);
    (random * 1000 + index as u64).to_string()
}

/// What SMS jobs share in a worker: the provider client (absent in
/// development), the default sender, rate limits and when to check delivery.
#[derive(Clone)]
pub struct SmsClient {
    pub kavenegar: Option<KavenegarClient>,
    pub default_sender: Option<String>,
    pub limiter: RateLimiter,
    pub missing_templates: MissingTemplates,
    pub status_delay: Duration,
}

impl SmsClient {
    pub fn from_env(redis_prefix: &str) -> Result<Self, EnvError> {
        let key = env_or("PEYK_KAVENEGAR_API_KEY", "");
        let base_url = env_or("PEYK_KAVENEGAR_BASE_URL", kavenegar::DEFAULT_BASE_URL);
        let kavenegar = if key.is_empty() {
            tracing::warn!("PEYK_KAVENEGAR_API_KEY is not set: SMS jobs write to the local outbox instead of sending");
            None
        } else {
            Some(KavenegarClient::new(&base_url, &key).map_err(|e| EnvError::new(format!("Kavenegar client: {e}")))?)
        };
        let sender = env_or("PEYK_SMS_SENDER", "");
        Ok(Self {
            kavenegar,
            default_sender: (!sender.is_empty()).then_some(sender),
            limiter: rate_limiter_from_env(redis_prefix)?,
            missing_templates: MissingTemplates::new(redis_prefix),
            status_delay: env_seconds("PEYK_SMS_STATUS_CHECK_SECONDS", 60.0)?,
        })
    }
}

/// The rate rules of `PEYK_SMS_RATE_LIMITS` (the worker enforces them; the
/// API checks them at submission).
pub fn rate_limiter_from_env(redis_prefix: &str) -> Result<RateLimiter, EnvError> {
    Ok(RateLimiter::new(rate_limit::parse_rules(&env_or("PEYK_SMS_RATE_LIMITS", rate_limit::DEFAULT_RULES))?, redis_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ids_are_stable_distinct_and_numeric() {
        let job = Uuid::now_v7();
        assert_eq!(local_id(job, 0), local_id(job, 0));
        assert_ne!(local_id(job, 0), local_id(job, 1));
        assert_ne!(local_id(job, 0), local_id(Uuid::now_v7(), 0));
        assert!(local_id(job, 199).parse::<i64>().is_ok());
    }
}
