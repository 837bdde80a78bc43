//! Serde helpers for providers that send numbers as strings, or strings as
//! numbers, depending on the endpoint or the SDK (Kavenegar's `"cost":
//! "120"`, IDPay's `"status": "100"`, BitPay's `"amount": "150000"`).

use serde::Deserialize;

pub fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(lenient_opt_i64(d)?.unwrap_or(0))
}

pub fn lenient_opt_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(as_i64(&serde_json::Value::deserialize(d)?))
}

pub fn lenient_opt_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(as_string(&serde_json::Value::deserialize(d)?))
}

/// A JSON number, or a string holding one.
pub fn as_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON string, or a number written as one.
pub fn as_string(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
