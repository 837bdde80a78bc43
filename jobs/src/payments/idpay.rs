//! IDPay v1.1: `POST {base}/payment/verify` with `id` and `order_id`, the
//! key in `X-API-KEY` and `X-SANDBOX: 1` for sandbox accounts. Success is
//! HTTP 200 with `status` 100 (verified now) or 101 (before); errors are
//! `{error_code, error_message}` with a 4xx status. Numbers may come as
//! strings. A payment must be verified within 10 minutes of the callback or
//! the money goes back to the payer — hence the short retry schedule of
//! verification jobs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::gateway::{account_refused, send, Answer, Expected, Gateway, PaymentGateway, Verdict};
use super::PaymentsClient;
use crate::lenient::{as_i64, as_string};
use crate::{JobError, ValidationErrors};

pub const BASE_URL: &str = "https://api.idpay.ir/v1.1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The 36-character API key.
    pub api_key: String,
}

impl Credentials {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        if self.api_key.len() != 36 {
            return Err(ValidationErrors::single("credentials.api_key", "must be IDPay's 36-character API key"));
        }
        Ok(())
    }
}

pub struct IdPay<'a> {
    pub client: &'a PaymentsClient,
    pub credentials: Credentials,
    pub sandbox: bool,
}

/// IDPay's payment status codes.
pub const AWAITING_VERIFY: i64 = 10;

impl IdPay<'_> {
    async fn call(&self, path: &str, expected: &Expected<'_>) -> Result<(Answer, Value), JobError> {
        let mut request = self
            .client
            .http
            .post(format!("{}/payment/{path}", self.client.idpay_url.trim_end_matches('/')))
            .header("X-API-KEY", &self.credentials.api_key)
            .json(&json!({ "id": expected.reference, "order_id": expected.order_id }));
        if self.sandbox {
            request = request.header("X-SANDBOX", "1");
        }
        let answer = send(Gateway::Idpay, request, self.client.timeout).await?;
        let json = answer.json().unwrap_or(Value::Null);
        Ok((answer, json))
    }

    /// The payment's status without verifying it (reconcile uses it to
    /// verify only what was paid).
    pub async fn inquiry(&self, expected: &Expected<'_>) -> Result<Option<i64>, JobError> {
        Ok(self.inquire(expected).await?.map(|(status, _)| status))
    }

    /// The inquiry's status and amount (Rial), or `None` when it found nothing.
    async fn inquire(&self, expected: &Expected<'_>) -> Result<Option<(i64, Option<i64>)>, JobError> {
        let (answer, json) = self.call("inquiry", expected).await?;
        match answer.status {
            200 => Ok(as_i64(&json["status"]).map(|status| (status, amount_of(&json)))),
            // 52: the inquiry found nothing.
            400 if as_i64(&json["error_code"]) == Some(52) => Ok(None),
            _ => Err(error_for(&answer, &json)),
        }
    }
}

/// The amount (Rial) in a verify or inquiry answer.
fn amount_of(json: &Value) -> Option<i64> {
    as_i64(&json["amount"]).or_else(|| as_i64(&json["payment"]["amount"]))
}

impl PaymentGateway for IdPay<'_> {
    async fn verify(&self, expected: &Expected<'_>) -> Result<Verdict, JobError> {
        let (answer, json) = self.call("verify", expected).await?;
        if answer.status != 200 {
            return match as_i64(&json["error_code"]) {
                // Not created, not verifiable (unpaid, cancelled…), or too late.
                Some(code @ (51 | 53 | 54)) => {
                    Ok(Verdict::Unpaid { code: code.to_string(), reason: format!("IDPay {code}: {}", meaning(code)) })
                }
                _ => Err(error_for(&answer, &json)),
            };
        }
        let status = as_i64(&json["status"]);
        Ok(match status {
            // 200: verified before and already settled to the merchant.
            Some(code @ (100 | 101 | 200)) => {
                // An answer without the amount: the inquiry has it.
                let paid_amount = match amount_of(&json) {
                    Some(amount) => Some(amount),
                    None => self.inquire(expected).await?.and_then(|(_, amount)| amount),
                };
                Verdict::Paid {
                    already: code != 100,
                    code: code.to_string(),
                    ref_id: as_string(&json["track_id"]).or_else(|| as_string(&json["payment"]["track_id"])),
                    card_mask: as_string(&json["payment"]["card_no"]),
                    fee: None,
                    paid_amount,
                }
                .checked_against(expected.rial())
            }
            Some(code) => Verdict::Unpaid { code: code.to_string(), reason: format!("IDPay status {code}: {}", status_meaning(code)) },
            None => return Err(answer.unexpected(Gateway::Idpay)),
        })
    }
}

fn error_for(answer: &Answer, json: &Value) -> JobError {
    let Some(code) = as_i64(&json["error_code"]) else { return answer.unexpected(Gateway::Idpay) };
    let message = format!("IDPay {code}: {} ({})", meaning(code), as_string(&json["error_message"]).unwrap_or_default());
    match code {
        11..=14 | 21..=24 => account_refused(Gateway::Idpay, message),
        _ if answer.status >= 500 => JobError::retry(format!("http_{}", answer.status), message),
        _ => JobError::permanent(format!("idpay_{code}"), message),
    }
}

fn meaning(code: i64) -> &'static str {
    match code {
        11 => "user blocked",
        12 => "API key not found",
        13 => "request IP does not match",
        14 => "web service not approved",
        21 => "bank account not approved",
        22 => "web service not found",
        23 => "web service validation failed",
        24 => "bank account disabled",
        31..=38 => "invalid request field",
        51 => "transaction not created",
        52 => "inquiry found nothing",
        53 => "verification impossible (the payment did not succeed)",
        54 => "the verification window has passed; the money goes back to the payer",
        _ => "unknown error",
    }
}

fn status_meaning(status: i64) -> &'static str {
    match status {
        1 => "not paid",
        2 => "failed",
        3 => "error",
        4 => "blocked",
        5 => "returned to payer",
        6 => "reversed by the system",
        7 => "cancelled by the payer",
        8 => "redirected to the bank",
        10 => "awaiting verification",
        200 => "settled",
        _ => "unknown status",
    }
}
