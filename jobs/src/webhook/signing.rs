//! Standard Webhooks signatures (https://www.standardwebhooks.com):
//! `webhook-signature: v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>`
//! where the secret is the base64 part of a `whsec_…` string.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// A decoded `whsec_` signing secret.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(****)")
    }
}

impl SigningSecret {
    /// Accepts `whsec_` followed by base64 of 24 to 64 bytes (Standard
    /// Webhooks recommends 24–64).
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| format!("must start with `{SECRET_PREFIX}`"))?;
        let bytes = BASE64.decode(encoded).map_err(|_| "the part after `whsec_` must be base64".to_string())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!("must encode 24 to 64 bytes, this one encodes {}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A new random secret (32 bytes), as a `whsec_` string.
    pub fn generate() -> String {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
        format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
    }

    /// The `v1,<signature>` value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", BASE64.encode(self.mac(msg_id, timestamp, body).finalize().into_bytes()))
    }

    /// The HMAC over one message's signed content, for signing or for
    /// checking a received signature in constant time.
    pub fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference
    /// libraries (msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330).
    #[test]
    fn matches_the_specification_example() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_parse_and_differ() {
        let (a, b) = (SigningSecret::generate(), SigningSecret::generate());
        assert!(SigningSecret::parse(&a).is_ok(), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn refuses_malformed_secrets() {
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_not base64!").is_err());
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err());
    }
}
