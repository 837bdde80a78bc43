//! Checking the Standard Webhooks signature of an inbound webhook (a
//! provider posting to `/v1/inbound/{tenant}/{source}`), as the
//! specification's reference libraries do: the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, the header may carry several
//! space-separated `v1,<base64>` signatures (secret rotation) and any may
//! match, and a timestamp more than five minutes away from now is refused
//! (replays of old messages).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::Mac;

use peyk_jobs::webhook::signing::SigningSecret;

pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InboundSignatureError {
    #[error("`webhook-id`, `webhook-timestamp` or `webhook-signature` is missing")]
    Missing,
    #[error("`webhook-timestamp` is not within five minutes of now")]
    Timestamp,
    #[error("no signature matches")]
    Mismatch,
}

pub fn verify(
    secret: &SigningSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), InboundSignatureError> {
    if id.is_empty() || signatures.trim().is_empty() {
        return Err(InboundSignatureError::Missing);
    }
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| InboundSignatureError::Missing)?;
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(InboundSignatureError::Timestamp);
    }
    let mac = secret.mac(id, timestamp, body);
    let matches = signatures
        .split_whitespace()
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        // verify_slice compares in constant time.
        .any(|bytes| mac.clone().verify_slice(&bytes).is_ok());
    if matches {
        Ok(())
    } else {
        Err(InboundSignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example, checked from the receiving side.
    #[test]
    fn verifies_the_specification_example_and_refuses_the_rest() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let (id, ts, body) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#.as_slice());
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(verify(&secret, id, ts, good, body, 1614265330 + 10), Ok(()));
        assert_eq!(verify(&secret, id, ts, &format!("v1,bm9wZQ== {good}"), body, 1614265330), Ok(()));
        assert_eq!(verify(&secret, id, ts, good, b"{\"test\": 1}", 1614265330), Err(InboundSignatureError::Mismatch));
        assert_eq!(verify(&secret, "msg_other", ts, good, body, 1614265330), Err(InboundSignatureError::Mismatch));
        assert_eq!(verify(&secret, id, ts, good, body, 1614265330 + 301), Err(InboundSignatureError::Timestamp));
        assert_eq!(verify(&secret, id, ts, good, body, 1614265330 - 301), Err(InboundSignatureError::Timestamp));
        assert_eq!(verify(&secret, id, ts, "", body, 1614265330), Err(InboundSignatureError::Missing));
    }
}
