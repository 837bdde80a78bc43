//! Zarinpal v4: `POST {host}/pg/v4/payment/verify.json` with `merchant_id`,
//! `amount` (the same value and unit as the payment request) and
//! `authority`. Success is `data.code` 100 (verified now) or 101 (verified
//! before); errors come as `{"data": [], "errors": {"code": -51, …}}`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gateway::{account_refused, send, Answer, Expected, Gateway, PaymentGateway, Verdict};
use super::PaymentsClient;
use crate::lenient::{as_i64, as_string};
use crate::{JobError, ValidationErrors};

pub const PRODUCTION_URL: &str = "https://payment.zarinpal.com";
pub const SANDBOX_URL: &str = "https://sandbox.zarinpal.com";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 36-character merchant id (a UUID).
    pub merchant_id: String,
}

impl Credentials {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        if self.merchant_id.len() != 36 {
            return Err(ValidationErrors::single("credentials.merchant_id", "must be Zarinpal's 36-character merchant id"));
        }
        Ok(())
    }
}

pub struct Zarinpal<'a> {
    pub client: &'a PaymentsClient,
    pub host: &'a str,
    pub credentials: Credentials,
}

impl Zarinpal<'_> {
    async fn call(&self, path: &str, body: Value) -> Result<(Answer, Option<i64>, Value), JobError> {
        let url = format!("{}/pg/v4/payment/{path}", self.host.trim_end_matches('/'));
        let answer = send(Gateway::Zarinpal, self.client.http.post(url).json(&body), self.client.timeout).await?;
        let json = answer.json().unwrap_or(Value::Null);
        // The code is in `data` on success and in `errors` on failure (and
        // some proxies' pages carry neither).
        let code = as_i64(&json["data"]["code"]).or_else(|| as_i64(&json["errors"]["code"]));
        Ok((answer, code, json))
    }

    /// Paid authorities not yet verified (at most 100, newest first): what a
    /// lost callback leaves behind.
    pub async fn unverified(&self) -> Result<Vec<String>, JobError> {
        let (answer, code, json) = self.call("unVerified.json", json!({ "merchant_id": self.credentials.merchant_id })).await?;
        match code {
            Some(100) => Ok(json["data"]["authorities"]
                .as_array()
                .map(|list| list.iter().filter_map(|item| as_string(&item["authority"])).collect())
                .unwrap_or_default()),
            Some(code) => Err(error_for(code, &json, &answer)),
            None => Err(answer.unexpected(Gateway::Zarinpal)),
        }
    }
}

impl PaymentGateway for Zarinpal<'_> {
    async fn verify(&self, expected: &Expected<'_>) -> Result<Verdict, JobError> {
        let body = json!({ "merchant_id": self.credentials.merchant_id, "amount": expected.amount, "authority": expected.reference });
        let (answer, code, json) = self.call("verify.json", body).await?;
        let data = &json["data"];
        let message = message_of(&json);
        Ok(match code {
            Some(code @ (100 | 101)) => Verdict::Paid {
                already: code == 101,
                code: code.to_string(),
                ref_id: as_string(&data["ref_id"]),
                card_mask: as_string(&data["card_pan"]),
                fee: as_i64(&data["fee"]),
                // Zarinpal checks the amount itself (-50 otherwise).
                paid_amount: Some(expected.amount),
            },
            Some(-50) => Verdict::AmountMismatch {
                code: "-50".into(),
                paid_amount: None,
                reason: format!("Zarinpal: the amount differs from the payment request ({message})"),
            },
            Some(code @ (-51 | -53 | -54)) => {
                Verdict::Unpaid { code: code.to_string(), reason: format!("Zarinpal {code}: {}", meaning(code)) }
            }
            Some(code) => return Err(error_for(code, &json, &answer)),
            None => return Err(answer.unexpected(Gateway::Zarinpal)),
        })
    }
}

fn message_of(json: &Value) -> String {
    as_string(&json["errors"]["message"]).or_else(|| as_string(&json["data"]["message"])).unwrap_or_default()
}

/// Codes that say nothing about the payment itself.
fn error_for(code: i64, json: &Value, answer: &Answer) -> JobError {
    let message = format!("Zarinpal {code}: {} ({})", meaning(code), message_of(json));
    match code {
        // Too many attempts, or Zarinpal's own trouble: later may work.
        -12 | -52 => JobError::retry(format!("zarinpal_{}", -code), message),
        -10 | -11 | -15 | -16 | -17 => account_refused(Gateway::Zarinpal, message),
        _ if answer.status >= 500 => JobError::retry(format!("http_{}", answer.status), message),
        _ => JobError::permanent(format!("zarinpal_{}", code.unsigned_abs()), message),
    }
}

fn meaning(code: i64) -> &'static str {
    match code {
        100 => "verified",
        101 => "already verified",
        -9 => "validation error",
        -10 => "invalid merchant id or IP",
        -11 => "terminal not active",
        -12 => "too many attempts",
        -15 => "terminal suspended",
        -16 | -17 => "merchant level too low",
        -50 => "amount differs from the request",
        -51 => "no successful payment (unpaid or cancelled)",
        -52 => "unexpected error at Zarinpal",
        -53 => "the authority belongs to another merchant",
        -54 => "invalid authority",
        _ => "unknown code",
    }
}
