//! Answers at submission: whatever can be known about a job before it is
//! stored is answered then, and such a job is not created (instead of a
//! `202` followed half a second later by a failure only the job's message
//! explains). Beyond the payload's own validation (the registry's):
//!
//! - `task`: the tenant has a target of that name (`422 unknown_task`); the
//!   job takes the target's `max_attempts` unless it asks for fewer.
//! - `payment_verification`: the tenant has an account at the gateway
//!   (`422 no_gateway_account`).
//! - `sms`: a `lookup`/`call` template Kavenegar said lately does not exist
//!   (`422 unknown_template`); a message that runs now and that a rate rule
//!   refuses (`429 rate_limited`, `Retry-After`, the rule's scope). A
//!   message let through is counted then, under its job id, so the worker's
//!   own check of the same rules lets it pass without counting it twice.
//! - `email`: a `from` at one of the tenant's sender domains
//!   (`422 sender_not_allowed`).
//! - `medical_analysis`: live workers serve the queue and none has an LLM
//!   configured (`503 provider_not_configured`, naming the setting).
//!
//! [`Admission`] checks the jobs of one request and remembers what it
//! looked up, so a batch of a thousand costs one lookup per distinct name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use peyk_jobs::email::{self, EmailJob};
use peyk_jobs::medical::MedicalAnalysisJob;
use peyk_jobs::payments::gateway::Gateway;
use peyk_jobs::payments::PaymentVerificationJob;
use peyk_jobs::providers::{self, WorkerReport};
use peyk_jobs::sms::rate_limit::RateLimiter;
use peyk_jobs::sms::templates::MissingTemplates;
use peyk_jobs::sms::SmsJob;
use peyk_jobs::task::TaskJob;
use peyk_jobs::Job;
use peyk_schema::queries::{queue_controls, task_targets};
use peyk_schema::{JobStatus, NewJob};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// How long the workers' provider reports are reused between reads.
const REPORTS_FRESH_FOR: Duration = Duration::from_secs(2);
/// `Retry-After` of a refusal for a provider no worker has.
const UNCONFIGURED_RETRY_AFTER_SECONDS: u64 = 60;

/// What the API process keeps for these checks.
pub struct Checks {
    pub redis_prefix: String,
    pub sms_limits: RateLimiter,
    pub missing_templates: MissingTemplates,
    reports: Mutex<Option<(Instant, HashMap<String, WorkerReport>)>>,
}

impl Checks {
    pub fn new(redis_prefix: &str, sms_limits: RateLimiter) -> Self {
        Self {
            redis_prefix: redis_prefix.to_string(),
            sms_limits,
            missing_templates: MissingTemplates::new(redis_prefix),
            reports: Mutex::new(None),
        }
    }

    /// The workers' live provider reports, read at most every
    /// [`REPORTS_FRESH_FOR`]; empty when Redis does not answer.
    pub async fn provider_reports(&self, state: &AppState) -> HashMap<String, WorkerReport> {
        if let Some((at, reports)) = self.reports.lock().unwrap().as_ref() {
            if at.elapsed() < REPORTS_FRESH_FOR {
                return reports.clone();
            }
        }
        let mut redis = state.queue.redis();
        let reports = providers::live(&mut redis, &self.redis_prefix).await.unwrap_or_default();
        *self.reports.lock().unwrap() = Some((Instant::now(), reports.clone()));
        reports
    }
}

/// The checks of one request's jobs.
pub struct Admission<'a> {
    state: &'a AppState,
    tenant: &'a Tenant,
    /// Task name → the target's `max_attempts` (`None`: no such target).
    targets: HashMap<String, Option<i32>>,
    /// The tenant's sender domains, once an email with `from` needed them.
    sender_domains: Option<Vec<String>>,
}

impl<'a> Admission<'a> {
    pub fn new(state: &'a AppState, tenant: &'a Tenant) -> Self {
        Self { state, tenant, targets: HashMap::new(), sender_domains: None }
    }

    /// Checks one job about to be stored; `field` is where its payload sits
    /// in the request (`payload`, `steps[0].payload`).
    pub async fn check(&mut self, field: &str, job: &mut NewJob) -> Result<(), ApiError> {
        let runs_now = job.status == JobStatus::Queued.as_str();
        let sms_id = runs_now.then_some(job.id);
        if let Some(max_attempts) = self.check_payload(field, &job.job_type, &job.payload, sms_id).await? {
            job.max_attempts = job.max_attempts.min(max_attempts);
        }
        Ok(())
    }

    /// Checks a payload stored now and run later (a schedule's job, a
    /// pipeline's later step): what holds only at run time (rate limits) is
    /// left out, and so are fields that refer to an earlier step's result.
    pub async fn check_later(&mut self, field: &str, job_type: &str, payload: &Value) -> Result<(), ApiError> {
        self.check_payload(field, job_type, payload, None).await.map(|_| ())
    }

    /// `sms_job`: the id under which an SMS that runs now is counted
    /// against the rate rules (`None`: not checked). Answers a task
    /// target's `max_attempts`.
    async fn check_payload(
        &mut self,
        field: &str,
        job_type: &str,
        payload: &Value,
        sms_job: Option<Uuid>,
    ) -> Result<Option<i32>, ApiError> {
        match job_type {
            TaskJob::TYPE => self.task(field, payload).await,
            PaymentVerificationJob::TYPE => self.gateway_account(field, payload).await.map(|_| None),
            SmsJob::TYPE => self.sms(field, payload, sms_job).await.map(|_| None),
            MedicalAnalysisJob::TYPE => self.provider("llm").await.map(|_| None),
            EmailJob::TYPE => self.sender(field, payload).await.map(|_| None),
            _ => Ok(None),
        }
    }

    async fn task(&mut self, field: &str, payload: &Value) -> Result<Option<i32>, ApiError> {
        let Some(name) = payload["name"].as_str() else { return Ok(None) };
        if !self.targets.contains_key(name) {
            let found = task_targets::existing(&self.state.pool, self.tenant.0, &[name]).await?;
            self.targets.insert(name.to_string(), found.first().map(|(_, max_attempts)| *max_attempts));
        }
        match self.targets[name] {
            Some(max_attempts) => Ok(Some(max_attempts)),
            None => Err(refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_task",
                &format!("{field}.name"),
                format!("no task target `{name}`: create it with PUT /v1/task-targets/{name}"),
            )),
        }
    }

    /// An email's `from` is at one of the tenant's sender domains.
    async fn sender(&mut self, field: &str, payload: &Value) -> Result<(), ApiError> {
        let Some(from) = payload["from"].as_str() else { return Ok(()) };
        if self.sender_domains.is_none() {
            self.sender_domains = Some(queue_controls::sender_domains(&self.state.pool, self.tenant.0 .0).await?);
        }
        let domains = self.sender_domains.as_deref().unwrap_or_default();
        if email::sender_allowed(from, domains) {
            return Ok(());
        }
        Err(refusal(StatusCode::UNPROCESSABLE_ENTITY, "sender_not_allowed", &format!("{field}.from"), email::sender_refusal(domains)))
    }

    async fn gateway_account(&mut self, field: &str, payload: &Value) -> Result<(), ApiError> {
        let Some(gateway) = payload["gateway"].as_str().and_then(Gateway::parse) else { return Ok(()) };
        if self.state.payment_account(self.tenant.0 .0, gateway.name()).await?.is_some() {
            return Ok(());
        }
        Err(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_gateway_account",
            &format!("{field}.gateway"),
            format!("no {0} account: PUT /v1/payment-accounts/{0} first", gateway.name()),
        ))
    }

    async fn sms(&mut self, field: &str, payload: &Value, sms_job: Option<Uuid>) -> Result<(), ApiError> {
        let Ok(sms) = serde_json::from_value::<SmsJob>(payload.clone()) else { return Ok(()) };
        let checks = &self.state.checks;
        let mut redis = self.state.queue.redis();
        if let Some(template) = sms.template() {
            let missing = checks.missing_templates.missing_since(&mut redis, template).await.map_err(|_| ApiError::queue_unavailable())?;
            if let Some(since) = missing {
                return Err(refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_template",
                    &format!("{field}.template"),
                    format!("Kavenegar answered at {since} that template `{template}` does not exist or is not approved; check the name in the Kavenegar panel"),
                ));
            }
        }
        // A message for later meets the rules when it is sent.
        let Some(job_id) = sms_job else { return Ok(()) };
        let wait = checks
            .sms_limits
            .check(&mut redis, self.tenant.0 .0, job_id, sms.is_otp(), &sms.receptors())
            .await
            .map_err(|_| ApiError::queue_unavailable())?;
        match wait {
            None => Ok(()),
            Some((wait, rule)) => {
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                Err(ApiError::rate_limited(format!("the SMS rate rule {rule} refuses this message now; try again in {seconds} s"), wait)
                    .with_details(json!({ "retry_after_seconds": seconds, "rule": rule.to_string(), "setting": "PEYK_SMS_RATE_LIMITS" })))
            }
        }
    }

    async fn provider(&mut self, name: &str) -> Result<(), ApiError> {
        let reports = self.state.checks.provider_reports(self.state).await;
        match providers::configured_anywhere(&reports, name) {
            Some((false, setting)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_not_configured",
                format!("no worker has the {name} provider configured: the operator must set {setting}"),
            )
            .with_details(json!({ "provider": name, "setting": setting, "retry_after_seconds": UNCONFIGURED_RETRY_AFTER_SECONDS }))),
            _ => Ok(()),
        }
    }
}

/// A refusal naming the field, in the shape of a validation error.
fn refusal(status: StatusCode, code: &'static str, field: &str, problem: String) -> ApiError {
    ApiError::new(status, code, format!("{field}: {problem}")).with_details(json!({ "errors": [{ "field": field, "problem": problem }] }))
}
