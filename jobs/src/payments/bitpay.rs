//! BitPay.ir: `POST {base}gateway-result-second` (form) with `api`,
//! `trans_id`, `id_get` and `json=1`. Success is
//! `{"status":1,"amount":"150000","cardNum":"…","factorId":"…"}`; an
//! earlier verification answers status 11. Errors are negative numbers —
//! as a JSON object or a bare number (both are seen), so both are read.
//! Verification does not take the amount: it is compared here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::gateway::{account_refused, send, Expected, Gateway, PaymentGateway, Verdict};
use super::PaymentsClient;
use crate::lenient::{as_i64, as_string};
use crate::{JobError, ValidationErrors};

pub const PRODUCTION_URL: &str = "https://bitpay.ir/payment/";
pub const SANDBOX_URL: &str = "https://bitpay.ir/payment-test/";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub api_key: String,
}

impl Credentials {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        if self.api_key.trim().is_empty() || self.api_key.len() > 200 {
            return Err(ValidationErrors::single("credentials.api_key", "must be BitPay's API key"));
        }
        Ok(())
    }
}

pub struct BitPay<'a> {
    pub client: &'a PaymentsClient,
    pub base: &'a str,
    pub credentials: Credentials,
}

impl PaymentGateway for BitPay<'_> {
    async fn verify(&self, expected: &Expected<'_>) -> Result<Verdict, JobError> {
        let trans_id =
            expected.trans_id.ok_or_else(|| JobError::permanent("trans_id_missing", "BitPay needs the trans_id its callback brings"))?;
        let base = if self.base.ends_with('/') { self.base.to_string() } else { format!("{}/", self.base) };
        let form = [("api", self.credentials.api_key.as_str()), ("trans_id", trans_id), ("id_get", expected.reference), ("json", "1")];
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = self
            .client
            .http
            .post(format!("{base}gateway-result-second"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let answer = send(Gateway::Bitpay, request, self.client.timeout).await?;
        if answer.status != 200 {
            return Err(answer.unexpected(Gateway::Bitpay));
        }
        let json: Value = answer.json().unwrap_or(Value::Null);
        // A bare number parses as a JSON number; an object carries `status`.
        let status = if json.is_object() { as_i64(&json["status"]) } else { as_i64(&json) };
        Ok(match status {
            Some(code @ (1 | 11)) => Verdict::Paid {
                already: code == 11,
                code: code.to_string(),
                ref_id: Some(trans_id.to_string()),
                card_mask: as_string(&json["cardNum"]),
                fee: None,
                paid_amount: as_i64(&json["amount"]),
            }
            .checked_against(expected.rial()),
            Some(-4) => Verdict::Unpaid { code: "-4".into(), reason: "BitPay -4: no such transaction, or it failed".into() },
            Some(-1) => return Err(account_refused(Gateway::Bitpay, "BitPay -1: API key mismatch")),
            Some(code @ (-3 | -2)) => {
                return Err(JobError::permanent(format!("bitpay_{}", -code), format!("BitPay {code}: trans_id or id_get is not numeric")))
            }
            _ => return Err(answer.unexpected(Gateway::Bitpay)),
        })
    }
}
