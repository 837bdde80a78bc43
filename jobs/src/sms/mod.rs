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
pub mod phone;
pub mod rate_limit;
pub mod status;

use std::time::Duration;

use chrono::Utc;
use peyk_schema::models::SmsOutboxRow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::env::{env_or, env_seconds, EnvError};
use crate::{Job, JobContext, JobError, JobKind, ValidationErrors};
use kavenegar::{Entry, Handling, KavenegarClient, KavenegarError};
use phone::{masked, Mobile};
use rate_limit::RateLimiter;

/// Kavenegar takes at most 200 receptors per request.
const MAX_RECEPTORS: usize = 200;
/// Kavenegar's limit on a message is about 900 characters (≈ 13 parts).
const MAX_MESSAGE_CHARS: usize = 900;
/// How long to wait after Kavenegar says "rate limited" (451).
const PROVIDER_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Error codes that prove an attempt did not reach Kavenegar's sending
/// (see the module docs): after them a lookup may be repeated.
const NOT_SENT_CODES: &[&str] = &["not_sent", "provider_busy", "provider_rate_limited", "operation_failed", "http_503", "rate_limited"];

/// Payload of an `sms` job; `mode` says which of the shapes below it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsJob {
    /// One text to one or more numbers.
    Send {
        /// Iranian mobile numbers in any common form (stored as 09XXXXXXXXX).
        receptors: Vec<Mobile>,
        message: String,
        /// Sender line; default `PEYK_SMS_SENDER` or the account's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
    },
    /// A different text per number.
    Sendarray { messages: Vec<ArrayMessage> },
    /// An approved template (e.g. `verify`, `appointment-reminder`,
    /// `report-ready`) filled with tokens.
    Lookup(TemplateMessage),
    /// The same, read out by a voice call (OTP; `token` must be digits).
    Call(TemplateMessage),
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrayMessage {
    pub receptor: Mobile,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    pub receptor: Mobile,
    /// Template name as approved in the Kavenegar panel.
    #[schema(example = "verify")]
    pub template: String,
    #[schema(example = "4821")]
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token3: Option<String>,
    /// May contain spaces (up to 5 words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token10: Option<String>,
    /// May contain spaces (up to 8 words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token20: Option<String>,
}

impl TemplateMessage {
    fn tokens(&self) -> Vec<(&'static str, &str)> {
        [
            ("token", Some(&self.token)),
            ("token2", self.token2.as_ref()),
            ("token3", self.token3.as_ref()),
            ("token10", self.token10.as_ref()),
            ("token20", self.token20.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.as_str())))
        .collect()
    }

    fn validate(&self, voice: bool, errors: &mut ValidationErrors) {
        self.receptor.check("receptor", errors);
        if self.template.is_empty() || !self.template.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errors.add("template", "must be a template name (letters, digits, - and _)");
        }
        for (name, value) in self.tokens() {
            // Kavenegar refuses spaces, newlines and underscores in the short
            // tokens (status 431); token10/token20 may have spaces.
            let spaces_allowed = matches!(name, "token10" | "token20");
            if value.is_empty() {
                errors.add(name, "must not be empty");
            } else if value.contains(['\n', '\r', '_']) || (!spaces_allowed && value.contains(char::is_whitespace)) {
                errors.add(
                    name,
                    if spaces_allowed {
                        "must not contain newlines or underscores"
                    } else {
                        "must not contain spaces, newlines or underscores"
                    },
                );
            } else if value.chars().count() > 100 {
                errors.add(name, "must be at most 100 characters");
            }
        }
        if voice && !phone::ascii_digits(&self.token).chars().all(|c| c.is_ascii_digit()) {
            errors.add("token", "must be digits for a voice call");
        }
    }
}

fn validate_text(field: &str, text: &str, errors: &mut ValidationErrors) {
    if text.trim().is_empty() {
        errors.add(field, "must not be empty");
    } else if text.chars().count() > MAX_MESSAGE_CHARS {
        errors.add(field, format!("must be at most {MAX_MESSAGE_CHARS} characters"));
    }
}

fn validate_sender(field: &str, sender: &Option<String>, errors: &mut ValidationErrors) {
    if let Some(sender) = sender {
        if !(3..=20).contains(&sender.len()) || !sender.chars().all(|c| c.is_ascii_digit()) {
            errors.add(field, "must be a sender line number (3-20 digits)");
        }
    }
}

impl SmsJob {
    fn mode(&self) -> &'static str {
        match self {
            SmsJob::Send { .. } => "send",
            SmsJob::Sendarray { .. } => "sendarray",
            SmsJob::Lookup(_) => "lookup",
            SmsJob::Call(_) => "call",
        }
    }

    fn receptors(&self) -> Vec<String> {
        match self {
            SmsJob::Send { receptors, .. } => receptors.iter().map(|r| r.0.clone()).collect(),
            SmsJob::Sendarray { messages } => messages.iter().map(|m| m.receptor.0.clone()).collect(),
            SmsJob::Lookup(t) | SmsJob::Call(t) => vec![t.receptor.0.clone()],
        }
    }

    fn is_otp(&self) -> bool {
        matches!(self, SmsJob::Lookup(_) | SmsJob::Call(_))
    }
}

impl Job for SmsJob {
    const TYPE: &'static str = "sms";
    const DEFAULT_MAX_ATTEMPTS: i32 = 6;
    const RESULT_FIELDS: &'static [&'static str] = &["provider", "mode", "messages", "cost_rial", "delivery", "note", "receptors"];
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        match self {
            SmsJob::Send { receptors, message, sender } => {
                if receptors.is_empty() || receptors.len() > MAX_RECEPTORS {
                    errors.add("receptors", format!("must list 1 to {MAX_RECEPTORS} numbers"));
                }
                let mut seen = std::collections::HashSet::new();
                for (i, receptor) in receptors.iter().enumerate() {
                    receptor.check(format!("receptors[{i}]"), &mut errors);
                    if let Some(normal) = phone::normalize_mobile(&receptor.0) {
                        if !seen.insert(normal) {
                            errors.add(format!("receptors[{i}]"), format!("`{}` is listed twice", receptor.0));
                        }
                    }
                }
                validate_text("message", message, &mut errors);
                validate_sender("sender", sender, &mut errors);
            }
            SmsJob::Sendarray { messages } => {
                if messages.is_empty() || messages.len() > MAX_RECEPTORS {
                    errors.add("messages", format!("must list 1 to {MAX_RECEPTORS} messages"));
                }
                for (i, m) in messages.iter().enumerate() {
                    m.receptor.check(format!("messages[{i}].receptor"), &mut errors);
                    validate_text(&format!("messages[{i}].message"), &m.message, &mut errors);
                    validate_sender(&format!("messages[{i}].sender"), &m.sender, &mut errors);
                }
            }
            SmsJob::Lookup(t) => t.validate(false, &mut errors),
            SmsJob::Call(t) => t.validate(true, &mut errors),
        }
        errors.into_result()
    }

    fn normalize(&mut self) {
        match self {
            SmsJob::Send { receptors, .. } => receptors.iter_mut().for_each(Mobile::normalize),
            SmsJob::Sendarray { messages } => messages.iter_mut().for_each(|m| m.receptor.normalize()),
            SmsJob::Lookup(t) | SmsJob::Call(t) => t.receptor.normalize(),
        }
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let sms = &ctx.clients.sms;
        let receptors = self.receptors();
        let mut redis = ctx.clients.queue.redis();
        let wait = sms
            .limiter
            .check(&mut redis, ctx.tenant_id, ctx.job_id, self.is_otp(), &receptors)
            .await
            .map_err(|e| JobError::retry("redis_unavailable", format!("could not check rate limits: {e}")))?;
        if let Some(wait) = wait {
            let seconds = wait.as_secs_f64().ceil() as u64;
            return Err(JobError::permanent("rate_limited", format!("a rate limit refuses this message; try again in {seconds} s"))
                .with_details(json!({ "retry_after_seconds": seconds })));
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
                &JobKind::of::<status::SmsStatusJob>(),
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
            let attempts = peyk_schema::queries::attempts::list_for_job(&ctx.clients.pool, ctx.job_id)
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
        client.call("verify/lookup", &form).await.map_err(|e| provider_error(&e, false))
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
        peyk_schema::queries::sms::insert_outbox(&ctx.clients.pool, &rows)
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
            limiter: RateLimiter::new(rate_limit::parse_rules(&env_or("PEYK_SMS_RATE_LIMITS", rate_limit::DEFAULT_RULES))?, redis_prefix),
            status_delay: env_seconds("PEYK_SMS_STATUS_CHECK_SECONDS", 60.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: serde_json::Value) -> Result<SmsJob, String> {
        let mut job: SmsJob = serde_json::from_value(payload).map_err(|e| e.to_string())?;
        job.validate().map_err(|e| e.to_string())?;
        job.normalize();
        Ok(job)
    }

    #[test]
    fn numbers_are_normalised_and_bad_ones_named() {
        let job = parse(json!({ "mode": "send", "receptors": ["+98 912 123 4567", "۰۹۳۵۱۲۳۴۵۶۷"], "message": "سلام" })).unwrap();
        assert_eq!(job.receptors(), ["09121234567", "09351234567"]);
        let err = parse(json!({ "mode": "send", "receptors": ["09121234567", "02112345678"], "message": "x" })).unwrap_err();
        assert!(err.contains("receptors[1]: `02112345678` is not an Iranian mobile number"), "{err}");
    }

    #[test]
    fn template_tokens_are_checked() {
        assert!(parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "verify", "token": "4821" })).is_ok());
        let err = parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "verify", "token": "48 21" })).unwrap_err();
        assert!(err.contains("token: must not contain spaces"), "{err}");
        assert!(parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "remind", "token": "x", "token10": "دکتر رضایی" }))
            .is_ok());
        let err = parse(json!({ "mode": "call", "receptor": "09121234567", "template": "verify", "token": "abc" })).unwrap_err();
        assert!(err.contains("must be digits"), "{err}");
        assert!(parse(json!({ "mode": "fax", "receptor": "09121234567" })).is_err());
        assert!(parse(json!({ "mode": "send", "receptors": ["09121234567", "09121234567"], "message": "x" }))
            .unwrap_err()
            .contains("listed twice"));
    }

    #[test]
    fn local_ids_are_stable_distinct_and_numeric() {
        let job = Uuid::now_v7();
        assert_eq!(local_id(job, 0), local_id(job, 0));
        assert_ne!(local_id(job, 0), local_id(job, 1));
        assert_ne!(local_id(job, 0), local_id(Uuid::now_v7(), 0));
        assert!(local_id(job, 199).parse::<i64>().is_ok());
    }
}
