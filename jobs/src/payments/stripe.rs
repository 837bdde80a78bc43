//! Stripe: a payment is verified by retrieving its PaymentIntent
//! (`GET {base}/v1/payment_intents/{id}` with the secret key) and checking
//! `status == succeeded`, `amount_received` and `currency` — never from a
//! webhook's body alone. Inbound events are authenticated by
//! [`verify_signature`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::gateway::{account_refused, send, Expected, Gateway, PaymentGateway, Verdict};
use super::PaymentsClient;
use crate::lenient::{as_i64, as_string};
use crate::{JobError, ValidationErrors};

pub const BASE_URL: &str = "https://api.stripe.com";
/// Stripe's own libraries refuse signatures older than this.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// `sk_live_…`, `sk_test_…` or a restricted `rk_…` key.
    pub secret_key: String,
    /// The endpoint's signing secret (`whsec_…`) for inbound events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl Credentials {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if !["sk_", "rk_"].iter().any(|p| self.secret_key.starts_with(p)) {
            errors.add("credentials.secret_key", "must be a Stripe secret key (`sk_…` or `rk_…`)");
        }
        if let Some(secret) = &self.webhook_secret {
            if !secret.starts_with("whsec_") {
                errors.add("credentials.webhook_secret", "must be the endpoint's signing secret (`whsec_…`)");
            }
        }
        errors.into_result()
    }
}

pub struct Stripe<'a> {
    pub client: &'a PaymentsClient,
    pub credentials: Credentials,
}

impl PaymentGateway for Stripe<'_> {
    async fn verify(&self, expected: &Expected<'_>) -> Result<Verdict, JobError> {
        let url = format!("{}/v1/payment_intents/{}", self.client.stripe_url.trim_end_matches('/'), expected.reference);
        let answer =
            send(Gateway::Stripe, self.client.http.get(url).bearer_auth(&self.credentials.secret_key), self.client.timeout).await?;
        let json = answer.json().unwrap_or(Value::Null);
        match answer.status {
            200 => {}
            401 | 403 => return Err(account_refused(Gateway::Stripe, error_message(&json))),
            404 => return Ok(Verdict::Unpaid { code: "resource_missing".into(), reason: format!("Stripe: {}", error_message(&json)) }),
            _ => return Err(answer.unexpected(Gateway::Stripe)),
        }
        let status = as_string(&json["status"]).unwrap_or_default();
        let currency = as_string(&json["currency"]).unwrap_or_default();
        Ok(match status.as_str() {
            "succeeded" if currency != expected.currency => Verdict::AmountMismatch {
                code: status,
                paid_amount: as_i64(&json["amount_received"]),
                reason: format!("paid in `{currency}`, the order expects `{}`", expected.currency),
            },
            "succeeded" => Verdict::Paid {
                already: false,
                code: status,
                ref_id: as_string(&json["latest_charge"]),
                card_mask: None,
                fee: None,
                paid_amount: as_i64(&json["amount_received"]),
            }
            .checked_against(expected.amount),
            "canceled" => Verdict::Unpaid { code: status, reason: "the PaymentIntent was cancelled".into() },
            _ => Verdict::NotYet { reason: format!("the PaymentIntent is `{status}`"), code: status },
        })
    }
}

fn error_message(json: &Value) -> String {
    as_string(&json["error"]["message"]).unwrap_or_else(|| "no message".into())
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is more than 300 s from now (in the past or the future)")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks a `Stripe-Signature` header (`t=…,v1=…[,v1=…]`) over the raw body,
/// as Stripe's own libraries do: HMAC-SHA256 of `"{t}.{body}"` with the
/// endpoint secret, any `v1` may match (several during a secret roll),
/// compared in constant time, refused when older than the tolerance.
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let (Some(timestamp), false) = (timestamp, candidates.is_empty()) else { return Err(SignatureError::Malformed) };
    // Both ways: a timestamp far ahead would keep a captured event valid for
    // as long as it is ahead.
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE.as_secs() as i64 {
        return Err(SignatureError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = candidates.iter().filter_map(|hex| decode_hex(hex)).any(|bytes| mac.clone().verify_slice(&bytes).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signature_vectors() {
        let (secret, body, now) = ("whsec_test_secret", br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#.as_slice(), 1_700_000_000);
        let good = sign(secret, now - 10, body);
        assert_eq!(verify_signature(secret, &format!("t={},v1={good}", now - 10), body, now), Ok(()));
        // Several v1 values: any may match (Stripe rolls secrets this way).
        assert_eq!(verify_signature(secret, &format!("t={},v1={},v1={good},v0=zzz", now - 10, "ab".repeat(32)), body, now), Ok(()));
        let stale = sign(secret, now - 301, body);
        assert_eq!(verify_signature(secret, &format!("t={},v1={stale}", now - 301), body, now), Err(SignatureError::Stale));
        let ahead = sign(secret, now + 301, body);
        assert_eq!(verify_signature(secret, &format!("t={},v1={ahead}", now + 301), body, now), Err(SignatureError::Stale));
        let slightly_ahead = sign(secret, now + 30, body);
        assert_eq!(verify_signature(secret, &format!("t={},v1={slightly_ahead}", now + 30), body, now), Ok(()), "clock skew is tolerated");
        let tampered = br#"{"id":"evt_1","type":"payment_intent.canceled"}"#;
        assert_eq!(verify_signature(secret, &format!("t={},v1={good}", now - 10), tampered, now), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature("whsec_other", &format!("t={},v1={good}", now - 10), body, now), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(secret, &format!("v1={good}"), body, now), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(secret, &format!("t={}", now), body, now), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(secret, &format!("t={},v1=nothex", now), body, now), Err(SignatureError::Mismatch));
    }
}
