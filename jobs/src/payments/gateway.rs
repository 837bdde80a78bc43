//! What every gateway module provides, and the HTTP plumbing they share.
//!
//! A gateway answers one question — "was this payment made, for how much?" —
//! in its own wire format. Each module turns its answer into a [`Verdict`]
//! or a [`JobError`]: `retry` when asking again later can help (timeouts,
//! 5xx, rate limits), `permanent` when it cannot (wrong credentials).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::observe_provider;
use crate::JobError;

/// How much of a gateway's error answer is kept for the job's error.
const EXCERPT_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gateway {
    Zarinpal,
    Idpay,
    Bitpay,
    Stripe,
}

impl Gateway {
    pub const ALL: [Gateway; 4] = [Gateway::Zarinpal, Gateway::Idpay, Gateway::Bitpay, Gateway::Stripe];

    pub fn name(self) -> &'static str {
        match self {
            Gateway::Zarinpal => "zarinpal",
            Gateway::Idpay => "idpay",
            Gateway::Bitpay => "bitpay",
            Gateway::Stripe => "stripe",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The Iranian gateways count in Rial (or Toman); Stripe in the smallest
    /// unit of an ISO currency.
    pub fn is_iranian(self) -> bool {
        self != Gateway::Stripe
    }
}

/// The payment a verification asks about, as the tenant expects it.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub reference: &'a str,
    /// BitPay's `trans_id` (from the callback).
    pub trans_id: Option<&'a str>,
    pub order_id: &'a str,
    pub amount: i64,
    /// `IRR`, `IRT`, or a lowercase ISO code (Stripe).
    pub currency: &'a str,
}

impl Expected<'_> {
    /// The expected amount in Rial (IDPay and BitPay report Rial).
    pub fn rial(&self) -> i64 {
        if self.currency == "IRT" {
            self.amount.saturating_mul(10)
        } else {
            self.amount
        }
    }
}

/// What the gateway says about a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Paid, and verified by this call (`already`: by an earlier one, e.g.
    /// Zarinpal's and IDPay's 101).
    Paid { already: bool, code: String, ref_id: Option<String>, card_mask: Option<String>, fee: Option<i64>, paid_amount: Option<i64> },
    /// Money moved, but not the amount the order expects: never credited.
    AmountMismatch { code: String, paid_amount: Option<i64>, reason: String },
    /// Not paid, and never will be on this reference.
    Unpaid { code: String, reason: String },
    /// Not decided yet (e.g. Stripe `processing`): stays pending, and
    /// reconcile asks again later.
    NotYet { code: String, reason: String },
    /// Said paid, but with no amount to compare (and no inquiry that has
    /// one): never credited unchecked; a person decides.
    NeedsReview { code: String, reason: String },
}

impl Verdict {
    /// Compares what the gateway reports as paid with what was expected:
    /// a paid verdict with another amount becomes a mismatch, and one with
    /// no amount at all goes to review.
    pub fn checked_against(self, expected_amount: i64) -> Verdict {
        match self {
            Verdict::Paid { paid_amount: Some(paid), code, .. } if paid != expected_amount => Verdict::AmountMismatch {
                code,
                paid_amount: Some(paid),
                reason: format!("the gateway reports {paid} paid, the order expects {expected_amount}"),
            },
            Verdict::Paid { paid_amount: None, code, .. } => Verdict::NeedsReview {
                code,
                reason: format!("the gateway says paid but gives no amount to compare with the expected {expected_amount}"),
            },
            other => other,
        }
    }

    /// Whether the money moved (credited or not): no other candidate or
    /// later check can change such an answer.
    pub fn is_settled(&self) -> bool {
        matches!(self, Verdict::Paid { .. } | Verdict::AmountMismatch { .. } | Verdict::NeedsReview { .. })
    }
}

/// One gateway's verification call.
pub trait PaymentGateway {
    fn verify(&self, expected: &Expected<'_>) -> impl Future<Output = Result<Verdict, JobError>> + Send;
}

/// A gateway's answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn excerpt(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(EXCERPT_CHARS).collect()
    }

    /// The error for an answer a gateway module did not recognise: 5xx and
    /// 429 may pass, anything else will not.
    pub fn unexpected(&self, gateway: Gateway) -> JobError {
        let message = format!("{} answered HTTP {}: {}", gateway.name(), self.status, self.excerpt());
        if self.status >= 500 || self.status == 429 || self.status == 408 {
            JobError::retry(format!("http_{}", self.status), message)
        } else {
            JobError::permanent("gateway_unexpected_answer", message)
        }
    }
}

/// Sends a request and reads the answer, recording the provider metrics.
/// Asking a gateway to verify again is safe (a second verification answers
/// "already verified"), so every failure to get an answer is retryable.
pub async fn send(gateway: Gateway, request: reqwest::RequestBuilder, timeout: Duration) -> Result<Answer, JobError> {
    let provider = gateway.name();
    let started = Instant::now();
    let result = async {
        let response = request.timeout(timeout).send().await?;
        let status = response.status().as_u16();
        Ok::<_, reqwest::Error>(Answer { status, body: response.bytes().await? })
    }
    .await;
    let took = started.elapsed();
    match result {
        Ok(answer) => {
            let outcome = match answer.status {
                200..=299 => "success",
                500..=599 => "server_error",
                _ => "client_error",
            };
            observe_provider(provider, outcome, Some(took));
            Ok(answer)
        }
        Err(error) => {
            let (code, outcome) =
                if error.is_timeout() { ("gateway_timeout", "timeout") } else { ("gateway_unreachable", "connection_error") };
            observe_provider(provider, outcome, Some(took));
            let mut cause: &dyn std::error::Error = &error;
            while let Some(next) = cause.source() {
                cause = next;
            }
            Err(JobError::retry(code, format!("no answer from {provider}: {cause}")))
        }
    }
}

/// The error for credentials the gateway refused: no retry can help until
/// the tenant fixes the account.
pub fn account_refused(gateway: Gateway, detail: impl std::fmt::Display) -> JobError {
    JobError::permanent("gateway_account_refused", format!("{} refused the account: {detail}", gateway.name()))
}
