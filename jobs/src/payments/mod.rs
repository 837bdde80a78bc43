//! The `payment_verification` job: asks the gateway whether a payment was
//! made, records the outcome once, and announces it (`payment.succeeded` /
//! `payment.failed`).
//!
//! Once and only once: every payment is a row keyed by (tenant, gateway,
//! reference). A verification registers the row if it is new, returns the
//! stored outcome if there is one, and otherwise asks the gateway and writes
//! the outcome with `UPDATE … WHERE status = 'pending'` — when two
//! verifications race, both may ask the gateway (which answers "verified"
//! and "already verified"), but only one moves the row and only that one
//! announces it. A payment is never credited twice.
//!
//! Amounts are explicit: `amount` is an integer in `currency`'s unit as the
//! tenant's payment request stated it — `IRR` (Rial) or `IRT` (Toman) for
//! Zarinpal, IDPay and BitPay (the latter two report Rial, so Toman is
//! multiplied by 10 to compare), and the smallest unit of a lowercase ISO
//! code for Stripe (`1999` `usd` = $19.99).

pub mod bitpay;
pub mod gateway;
pub mod idpay;
pub mod reconcile;
pub mod stripe;
pub mod zarinpal;

use std::time::Duration;

use chrono::Utc;
use peyk_schema::queries::payments as q;
use peyk_schema::{PaymentAccountRow, PaymentRow};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::env::{env_or, env_seconds, EnvError};
use crate::events::catalogue::{PAYMENT_FAILED, PAYMENT_NEEDS_REVIEW, PAYMENT_SUCCEEDED};
use crate::{Job, JobContext, JobError, ValidationErrors};
pub use gateway::{Expected, Gateway, PaymentGateway, Verdict};

const MAX_AMOUNT: i64 = 1_000_000_000_000_000;
/// IDPay's limit on `order_id`; the others take longer ones.
const IDPAY_MAX_ORDER_ID: usize = 50;
const MAX_ORDER_ID: usize = 100;

/// Payload of a `payment_verification` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentVerificationJob {
    pub gateway: Gateway,
    /// Zarinpal `authority`, IDPay `id`, BitPay `id_get`, or Stripe
    /// PaymentIntent id (`pi_…`).
    #[schema(example = "A00000000000000000000000000217885159")]
    pub reference: String,
    /// BitPay only: the `trans_id` its callback brought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trans_id: Option<String>,
    /// The expected amount, an integer in `currency`'s unit (see below).
    #[schema(example = 1500000)]
    pub amount: i64,
    /// `IRR` (Rial) or `IRT` (Toman) for Zarinpal, IDPay and BitPay; a
    /// three-letter ISO code for Stripe, whose `amount` is then in the
    /// currency's smallest unit (cents).
    #[schema(example = "IRR")]
    pub currency: String,
    /// The tenant's own order id.
    #[schema(example = "order-1001")]
    pub order_id: String,
}

impl PaymentVerificationJob {
    /// The row a first verification (or a registration) stores.
    pub fn new_row(&self, tenant_id: Uuid) -> PaymentRow {
        let now = Utc::now();
        PaymentRow {
            id: Uuid::now_v7(),
            tenant_id,
            gateway: self.gateway.name().to_string(),
            reference: self.reference.clone(),
            order_id: self.order_id.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            status: "pending".into(),
            // Only a trans_id that verified is stored as such.
            trans_id: None,
            gateway_code: None,
            ref_id: None,
            card_mask: None,
            fee: None,
            paid_amount: None,
            reason: None,
            checked_at: None,
            finished_at: None,
            announced_at: None,
            created_at: now,
            updated_at: now,
            trans_id_candidates: self.trans_id.iter().cloned().collect(),
            verification_job_id: None,
            verifications_window_start: None,
            verifications_in_window: 0,
            reversed_from: None,
            recheck_requested: false,
            callbacks_stored: 0,
            verification_queued_at: None,
        }
    }

    /// The job that verifies a stored payment; for BitPay with `trans_id`
    /// (a callback's) or else the newest candidate (the job tries the
    /// others too).
    pub fn for_payment(row: &PaymentRow, trans_id: Option<&str>) -> Option<Self> {
        let trans_id = trans_id.map(str::to_owned).or_else(|| row.trans_id.clone()).or_else(|| row.trans_id_candidates.first().cloned());
        Some(Self {
            gateway: Gateway::parse(&row.gateway)?,
            reference: row.reference.clone(),
            trans_id,
            amount: row.amount,
            currency: row.currency.clone(),
            order_id: row.order_id.clone(),
        })
    }

    fn expected<'a>(&'a self, trans_id: Option<&'a str>) -> Expected<'a> {
        Expected { reference: &self.reference, trans_id, order_id: &self.order_id, amount: self.amount, currency: &self.currency }
    }
}

impl Job for PaymentVerificationJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "payment_verification";
    const DEFAULT_MAX_ATTEMPTS: i32 = 8;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(90);
    const RESULT_FIELDS: &'static [&'static str] = &["payment_id", "status", "paid", "order_id", "ref_id", "duplicate"];

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let reference = self.reference.as_str();
        if reference.is_empty() || reference.len() > 100 || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.add("reference", "must be 1 to 100 characters without spaces");
        } else {
            match self.gateway {
                Gateway::Zarinpal if reference.len() != 36 => errors.add("reference", "must be Zarinpal's 36-character authority"),
                Gateway::Bitpay if !reference.chars().all(|c| c.is_ascii_digit()) => {
                    errors.add("reference", "must be BitPay's numeric id_get")
                }
                // It becomes part of a URL path: letters, digits and `_` only.
                Gateway::Stripe if !reference.starts_with("pi_") || !reference.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    errors.add("reference", "must be a PaymentIntent id (`pi_` and letters, digits or `_`)")
                }
                _ => {}
            }
        }
        match (&self.trans_id, self.gateway) {
            (Some(_), gateway) if gateway != Gateway::Bitpay => errors.add("trans_id", "is only for BitPay"),
            (Some(id), _) if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) => errors.add("trans_id", "must be numeric"),
            _ => {}
        }
        if !(1..=MAX_AMOUNT).contains(&self.amount) {
            errors.add("amount", "must be a positive integer in the currency's unit");
        }
        let currency = self.currency.as_str();
        if self.gateway.is_iranian() {
            if !matches!(currency.to_ascii_uppercase().as_str(), "IRR" | "IRT") {
                errors.add("currency", format!("must be `IRR` (Rial) or `IRT` (Toman) for {}", self.gateway.name()));
            }
        } else if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            errors.add("currency", "must be a three-letter ISO currency code, e.g. `usd` (the amount is then in cents)");
        } else if matches!(currency.to_ascii_uppercase().as_str(), "IRR" | "IRT") {
            errors.add("currency", "Stripe does not take Rial or Toman");
        }
        let max_order_id = if self.gateway == Gateway::Idpay { IDPAY_MAX_ORDER_ID } else { MAX_ORDER_ID };
        if self.order_id.trim().is_empty() || self.order_id.chars().count() > max_order_id {
            errors.add("order_id", format!("must be 1 to {max_order_id} characters"));
        }
        errors.into_result()
    }

    /// Quick retries (1 s doubling to at most a minute, 8 attempts: about
    /// two minutes in all): IDPay returns the money if a payment is not
    /// verified within 10 minutes of its callback.
    fn retry_delay(attempt: u32, provider_asked: Option<Duration>) -> Option<Duration> {
        let backoff = peyk_queue::retry::Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };
        Some(backoff.delay(attempt, provider_asked))
    }

    fn normalize(&mut self) {
        self.currency = if self.gateway.is_iranian() { self.currency.to_ascii_uppercase() } else { self.currency.to_ascii_lowercase() };
    }

    async fn run(self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = &ctx.clients.backbone.pool;
        let db = |e: peyk_schema::DbError| JobError::retry("database", e.to_string());
        // The account and the payment (usually registered already, by the
        // API or a callback) are read in parallel.
        let (account, found) = tokio::join!(
            q::account(pool, ctx.tenant_id, self.gateway.name()),
            q::find(pool, ctx.tenant_id, self.gateway.name(), &self.reference)
        );
        let account = account.map_err(db)?.ok_or_else(|| {
            JobError::permanent(
                "no_gateway_account",
                format!("no {} account: PUT /v1/payment-accounts/{} first", self.gateway.name(), self.gateway.name()),
            )
        })?;
        let row = match found.map_err(db)? {
            Some(row) => row,
            None => q::register(pool, &self.new_row(ctx.tenant_id)).await.map_err(db)?.0,
        };
        if (row.amount, row.currency.as_str(), row.order_id.as_str()) != (self.amount, self.currency.as_str(), self.order_id.as_str()) {
            return Err(JobError::permanent(
                "payment_conflict",
                format!(
                    "this reference is registered for order `{}` at {} {}; the job says order `{}` at {} {}",
                    row.order_id, row.amount, row.currency, self.order_id, self.amount, self.currency
                ),
            ));
        }
        if !row.may_change() {
            // Recorded before: the stored outcome stands. Announce it if it
            // was recorded without its event (by an older Peyk).
            if row.announced_at.is_none() {
                let wanted = wanted_event(ctx, &row).await?;
                if let Some(id) = q::announce_once(pool, row.id, |row| wanted.map(|event| announcement(row, event))).await.map_err(db)? {
                    crate::events::dispatch_soon(&ctx.clients, vec![id]);
                }
            }
            return Ok(result_of(&row, true));
        }

        let asked = std::time::Instant::now();
        let (mut verdict, mut trans_id) = self.ask_gateway(ctx, &account, &row).await?;
        // A callback that came meanwhile (perhaps the real one, after a
        // forged one queued this verification) asks once more — a few times
        // at most, each with the candidates it brought.
        for _ in 0..3 {
            if verdict.is_settled() || !q::take_recheck(pool, row.id).await.map_err(db)? {
                break;
            }
            let fresh =
                q::find(pool, ctx.tenant_id, self.gateway.name(), &self.reference).await.map_err(db)?.unwrap_or_else(|| row.clone());
            (verdict, trans_id) = self.ask_gateway(ctx, &account, &fresh).await?;
        }
        // How long the gateway took to answer, shown with the result.
        let gateway_ms = json!((asked.elapsed().as_secs_f64() * 100_000.0).round() / 100.0);
        let expired = row.created_at < Utc::now() - chrono::Duration::from_std(ctx.clients.payments.expire_after).unwrap_or_default();
        let outcome = match verdict {
            // "Not paid (yet)" settles nothing: anyone who knows a payment's
            // reference can send its callback before the payer has paid.
            // Only a payment past its expiry is settled as failed.
            Verdict::NotYet { code, reason } | Verdict::Unpaid { code, reason } if !expired || row.status == "failed" => {
                q::mark_checked(pool, row.id, &code, &reason, ctx.job_id).await.map_err(db)?;
                let mut result = result_of(&row, false);
                result["reason"] = json!(reason);
                result["gateway_code"] = json!(code);
                result["gateway_ms"] = gateway_ms;
                return Ok(result);
            }
            verdict => q::Outcome { trans_id, ..outcome_of(verdict) },
        };
        // The event goes into the same transaction as the outcome.
        let event = if outcome.is_paid() {
            PAYMENT_SUCCEEDED
        } else if outcome.status == "needs_review" {
            PAYMENT_NEEDS_REVIEW
        } else {
            PAYMENT_FAILED
        };
        let wanted = crate::events::is_wanted(&ctx.clients, ctx.tenant_id, event).await?;
        let mut message_id = None;
        let announce = wanted.then_some(|recorded: &PaymentRow| {
            let message = announcement(recorded, event);
            message_id = Some(message.id.clone());
            message
        });
        let recorded = q::record_outcome(pool, &row, &outcome, announce).await.map_err(db)?;
        match recorded {
            Some(recorded) => {
                crate::metrics::PAYMENTS.with_label_values(&[&recorded.gateway, &recorded.status]).inc();
                if recorded.reversed_from.is_some() && row.status == "failed" {
                    crate::metrics::PAYMENT_REVERSALS.with_label_values(&[&recorded.gateway]).inc();
                    tracing::warn!(payment_id = %recorded.id, gateway = %recorded.gateway, "a payment recorded as failed was paid after all: now {}", recorded.status);
                }
                if let Some(id) = message_id {
                    crate::events::dispatch_soon(&ctx.clients, vec![id]);
                }
                let mut result = result_of(&recorded, false);
                result["gateway_ms"] = gateway_ms;
                Ok(result)
            }
            // Another verification recorded first: its outcome stands.
            None => {
                let stored = q::find(pool, ctx.tenant_id, self.gateway.name(), &self.reference).await.map_err(db)?;
                let stored = stored.ok_or_else(|| JobError::retry("database", "the payment row vanished"))?;
                Ok(result_of(&stored, true))
            }
        }
    }
}

impl PaymentVerificationJob {
    /// Asks the gateway; for BitPay with each trans_id that callbacks
    /// brought (this job's first), until one settles it — a forged
    /// trans_id fails and does not hide the real one. Answers the verdict
    /// and the trans_id it was given for.
    async fn ask_gateway(
        &self,
        ctx: &JobContext,
        account: &PaymentAccountRow,
        row: &PaymentRow,
    ) -> Result<(Verdict, Option<String>), JobError> {
        let mut candidates: Vec<Option<&str>> = vec![self.trans_id.as_deref().or(row.trans_id.as_deref())];
        if self.gateway == Gateway::Bitpay {
            for candidate in &row.trans_id_candidates {
                if !candidates.contains(&Some(candidate.as_str())) {
                    candidates.push(Some(candidate));
                }
            }
            candidates.retain(Option::is_some);
            if candidates.is_empty() {
                return Err(JobError::permanent("trans_id_missing", "BitPay needs the trans_id its callback brings"));
            }
        }
        let mut last = None;
        for trans_id in candidates {
            let verdict = verify(&ctx.clients.payments, account, &self.expected(trans_id)).await?;
            if verdict.is_settled() {
                return Ok((verdict, trans_id.map(str::to_owned)));
            }
            last = Some(verdict);
        }
        Ok((last.expect("at least one candidate"), None))
    }
}

fn outcome_of(verdict: Verdict) -> q::Outcome {
    match verdict {
        Verdict::Paid { already, code, ref_id, card_mask, fee, paid_amount } => q::Outcome {
            status: if already { "already_verified" } else { "verified" }.into(),
            gateway_code: Some(code),
            ref_id,
            card_mask,
            fee,
            paid_amount,
            reason: None,
            trans_id: None,
        },
        Verdict::AmountMismatch { code, paid_amount, reason } => q::Outcome {
            status: "amount_mismatch".into(),
            gateway_code: Some(code),
            paid_amount,
            reason: Some(reason),
            ..Default::default()
        },
        Verdict::Unpaid { code, reason } | Verdict::NotYet { code, reason } => {
            q::Outcome { status: "failed".into(), gateway_code: Some(code), reason: Some(reason), ..Default::default() }
        }
        Verdict::NeedsReview { code, reason } => {
            q::Outcome { status: "needs_review".into(), gateway_code: Some(code), reason: Some(reason), ..Default::default() }
        }
    }
}

pub fn is_paid(status: &str) -> bool {
    PaymentRow::is_paid_status(status)
}

/// What the job returns and the API shows for a payment.
pub fn result_of(row: &PaymentRow, duplicate: bool) -> Value {
    json!({
        "payment_id": row.id,
        "gateway": row.gateway,
        "reference": row.reference,
        "order_id": row.order_id,
        "amount": row.amount,
        "currency": row.currency,
        "status": row.status,
        "paid": is_paid(&row.status),
        "ref_id": row.ref_id,
        "card_mask": row.card_mask,
        "fee": row.fee,
        "paid_amount": row.paid_amount,
        "gateway_code": row.gateway_code,
        "reason": row.reason,
        // `failed` when the gateway said paid after an unpaid outcome was recorded.
        "reversed_from": row.reversed_from,
        // True when this verification found the outcome already recorded.
        "duplicate": duplicate,
    })
}

/// The event of a settled payment, if any endpoint wants it.
async fn wanted_event(ctx: &JobContext, row: &PaymentRow) -> Result<Option<&'static str>, JobError> {
    let event = match row.status.as_str() {
        status if is_paid(status) => PAYMENT_SUCCEEDED,
        "needs_review" => PAYMENT_NEEDS_REVIEW,
        _ => PAYMENT_FAILED,
    };
    Ok(crate::events::is_wanted(&ctx.clients, row.tenant_id, event).await?.then_some(event))
}

/// The message that announces a payment's outcome.
fn announcement(row: &PaymentRow, event: &str) -> peyk_schema::WebhookMessageRow {
    crate::events::new_message(row.tenant_id, event, result_of(row, false))
}

/// Asks the account's gateway about a payment.
pub async fn verify(client: &PaymentsClient, account: &PaymentAccountRow, expected: &Expected<'_>) -> Result<Verdict, JobError> {
    match account_gateway(account)? {
        Gateway::Zarinpal => zarinpal_for(client, account)?.verify(expected).await,
        Gateway::Idpay => idpay_for(client, account)?.verify(expected).await,
        Gateway::Bitpay => {
            let base = if account.sandbox { &client.bitpay_sandbox_url } else { &client.bitpay_url };
            bitpay::BitPay { client, base, credentials: credentials(account)? }.verify(expected).await
        }
        Gateway::Stripe => stripe::Stripe { client, credentials: credentials(account)? }.verify(expected).await,
    }
}

fn account_gateway(account: &PaymentAccountRow) -> Result<Gateway, JobError> {
    Gateway::parse(&account.gateway).ok_or_else(|| JobError::permanent("invalid_account", format!("unknown gateway `{}`", account.gateway)))
}

pub fn zarinpal_for<'a>(client: &'a PaymentsClient, account: &PaymentAccountRow) -> Result<zarinpal::Zarinpal<'a>, JobError> {
    let host = if account.sandbox { &client.zarinpal_sandbox_url } else { &client.zarinpal_url };
    Ok(zarinpal::Zarinpal { client, host, credentials: credentials(account)? })
}

pub fn idpay_for<'a>(client: &'a PaymentsClient, account: &PaymentAccountRow) -> Result<idpay::IdPay<'a>, JobError> {
    Ok(idpay::IdPay { client, credentials: credentials(account)?, sandbox: account.sandbox })
}

/// The account's credentials in its gateway's shape.
pub fn credentials<T: DeserializeOwned>(account: &PaymentAccountRow) -> Result<T, JobError> {
    serde_json::from_value(account.credentials.0.clone())
        .map_err(|e| JobError::permanent("invalid_account", format!("the {} account's credentials do not parse: {e}", account.gateway)))
}

/// Checks credentials submitted for a gateway account.
pub fn validate_credentials(gateway: Gateway, credentials: &Value) -> Result<(), ValidationErrors> {
    fn check<T: DeserializeOwned>(value: &Value, validate: impl Fn(&T) -> Result<(), ValidationErrors>) -> Result<(), ValidationErrors> {
        let parsed: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "credentials".to_string() } else { format!("credentials.{path}") };
            ValidationErrors::single(field, e.into_inner().to_string())
        })?;
        validate(&parsed)
    }
    match gateway {
        Gateway::Zarinpal => check(credentials, zarinpal::Credentials::validate),
        Gateway::Idpay => check(credentials, idpay::Credentials::validate),
        Gateway::Bitpay => check(credentials, bitpay::Credentials::validate),
        Gateway::Stripe => check(credentials, stripe::Credentials::validate),
    }
}

/// The gateways' hosts and the HTTP client that calls them, built once per
/// worker. The hosts are the operator's to set (sandboxes, test servers);
/// a tenant's account only chooses production or sandbox.
#[derive(Clone)]
pub struct PaymentsClient {
    pub http: reqwest::Client,
    pub timeout: Duration,
    pub zarinpal_url: String,
    pub zarinpal_sandbox_url: String,
    pub idpay_url: String,
    pub bitpay_url: String,
    pub bitpay_sandbox_url: String,
    pub stripe_url: String,
    /// How often the fleet looks for payments whose callback got lost.
    pub reconcile_every: Duration,
    /// How long a payment waits unchecked before reconcile looks at it.
    pub reconcile_after: Duration,
    /// After this long a payment still unpaid is verified to a final
    /// outcome (Zarinpal and IDPay sessions are long over by then).
    pub expire_after: Duration,
}

impl PaymentsClient {
    pub fn from_env() -> Result<Self, EnvError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("peyk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EnvError::new(format!("payment HTTP client: {e}")))?;
        Ok(Self {
            http,
            timeout: env_seconds("PEYK_PAYMENT_TIMEOUT_SECONDS", 20.0)?,
            zarinpal_url: env_or("PEYK_ZARINPAL_URL", zarinpal::PRODUCTION_URL),
            zarinpal_sandbox_url: env_or("PEYK_ZARINPAL_SANDBOX_URL", zarinpal::SANDBOX_URL),
            idpay_url: env_or("PEYK_IDPAY_URL", idpay::BASE_URL),
            bitpay_url: env_or("PEYK_BITPAY_URL", bitpay::PRODUCTION_URL),
            bitpay_sandbox_url: env_or("PEYK_BITPAY_SANDBOX_URL", bitpay::SANDBOX_URL),
            stripe_url: env_or("PEYK_STRIPE_URL", stripe::BASE_URL),
            reconcile_every: env_seconds("PEYK_PAYMENT_RECONCILE_SECONDS", 60.0)?.max(Duration::from_millis(100)),
            reconcile_after: env_seconds("PEYK_PAYMENT_RECONCILE_AFTER_SECONDS", 120.0)?,
            expire_after: env_seconds("PEYK_PAYMENT_EXPIRE_SECONDS", 3600.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(value: Value) -> Result<PaymentVerificationJob, String> {
        let mut job: PaymentVerificationJob = serde_json::from_value(value).map_err(|e| e.to_string())?;
        job.validate().map_err(|e| e.to_string())?;
        job.normalize();
        Ok(job)
    }

    #[test]
    fn validation_names_fields_per_gateway() {
        let ok = job(json!({"gateway": "zarinpal", "reference": "A00000000000000000000000000217885159", "amount": 10000, "currency": "irt", "order_id": "o-1"})).unwrap();
        assert_eq!(ok.currency, "IRT");
        let err = job(json!({"gateway": "zarinpal", "reference": "A123", "amount": 0, "currency": "usd", "order_id": ""})).unwrap_err();
        for field in ["reference", "amount", "currency", "order_id"] {
            assert!(err.contains(&format!("{field}:")), "{field} in {err}");
        }
        let err =
            job(json!({"gateway": "stripe", "reference": "pi_1", "amount": 1999, "currency": "IRR", "order_id": "o", "trans_id": "5"}))
                .unwrap_err();
        assert!(job(json!({"gateway": "stripe", "reference": "pi_1/../../v1/customers", "amount": 1, "currency": "usd", "order_id": "o"}))
            .unwrap_err()
            .contains("reference"));
        assert!(err.contains("currency: Stripe does not take") && err.contains("trans_id: is only for BitPay"), "{err}");
        assert_eq!(
            job(json!({"gateway": "stripe", "reference": "pi_1", "amount": 1999, "currency": "USD", "order_id": "o"})).unwrap().currency,
            "usd"
        );
        assert!(job(json!({"gateway": "idpay", "reference": "d2e353189823079e1e4181772cff5292", "amount": 1, "currency": "IRR", "order_id": "x".repeat(51)})).unwrap_err().contains("order_id"));
        assert!(job(json!({"gateway": "paypal", "reference": "x", "amount": 1, "currency": "usd", "order_id": "o"})).is_err());
    }

    #[test]
    fn toman_is_compared_in_rial() {
        let expected = Expected { reference: "r", trans_id: None, order_id: "o", amount: 15_000, currency: "IRT" };
        assert_eq!(expected.rial(), 150_000);
        let paid = |amount| Verdict::Paid {
            already: false,
            code: "100".into(),
            ref_id: None,
            card_mask: None,
            fee: None,
            paid_amount: Some(amount),
        };
        assert!(matches!(paid(150_000).checked_against(expected.rial()), Verdict::Paid { .. }));
        assert!(matches!(paid(15_000).checked_against(expected.rial()), Verdict::AmountMismatch { .. }));
    }
}
