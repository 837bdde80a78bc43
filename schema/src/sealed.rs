//! Secrets at rest: gateway credentials, webhook endpoint, task target and
//! inbound source secrets are stored sealed (XChaCha20-Poly1305, a random
//! 24-byte nonce each) as `peyk:v1:<key id>:<base64url(nonce ‖ ciphertext)>`,
//! so that a dump or a backup of the database holds none of them.
//!
//! The columns' row types hold [`SealedText`] and [`SealedJson`]: they seal
//! when written and open when read, so no query has to remember to. The
//! key id in each value says which key opens it: during a key rotation the
//! old key stays in `PEYK_SECRETS_OLD_KEYS` while `peyk-api
//! rotate-secrets-key` seals everything again with the new one.
//!
//! Without a key (development only: `PEYK_ENVIRONMENT=production` refuses
//! to start without one) values are stored as they are; a sealed value then
//! cannot be read, and says which setting is missing.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::{Jsonb, Text};
use sha2::{Digest, Sha256};

const PREFIX: &str = "peyk:v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0} must be 32 random bytes in base64 (`openssl rand -base64 32`)")]
    BadKey(&'static str),
    #[error("a secret sealed with key {0} cannot be opened: that key is neither PEYK_SECRETS_KEY nor in PEYK_SECRETS_OLD_KEYS")]
    UnknownKey(String),
    #[error("a sealed secret is damaged or was not sealed with key {0}")]
    Damaged(String),
    #[error("reading {setting}: {error}")]
    KeyFile { setting: &'static str, error: std::io::Error },
    #[error("PEYK_ENVIRONMENT=production needs PEYK_SECRETS_KEY (or PEYK_SECRETS_KEY_FILE): secrets are never stored in plain text in production; make one with `openssl rand -base64 32`")]
    Required,
}

/// The keys: the current one seals, every one opens.
pub struct Sealer {
    current: Option<(String, XChaCha20Poly1305)>,
    keys: HashMap<String, XChaCha20Poly1305>,
}

impl Sealer {
    /// Stores values as they are (no key configured).
    pub fn plaintext() -> Self {
        Self { current: None, keys: HashMap::new() }
    }

    /// `current` seals; `current` and `old` open. Each is 32 bytes.
    pub fn with_keys(current: &[u8; 32], old: &[[u8; 32]]) -> Self {
        let keys: HashMap<String, XChaCha20Poly1305> =
            std::iter::once(current).chain(old).map(|key| (key_id(key), XChaCha20Poly1305::new(key.into()))).collect();
        let id = key_id(current);
        Self { current: Some((id.clone(), keys[&id].clone())), keys }
    }

    /// From `PEYK_SECRETS_KEY` (or the file `PEYK_SECRETS_KEY_FILE` names)
    /// and `PEYK_SECRETS_OLD_KEYS` (comma-separated); no key: plaintext.
    pub fn from_env() -> Result<Self, SealError> {
        let current = match (std::env::var("PEYK_SECRETS_KEY"), std::env::var("PEYK_SECRETS_KEY_FILE")) {
            (Ok(key), _) if !key.trim().is_empty() => Some(decode_key(&key, "PEYK_SECRETS_KEY")?),
            (_, Ok(path)) if !path.trim().is_empty() => {
                let text =
                    std::fs::read_to_string(path.trim()).map_err(|error| SealError::KeyFile { setting: "PEYK_SECRETS_KEY_FILE", error })?;
                Some(decode_key(&text, "PEYK_SECRETS_KEY_FILE")?)
            }
            _ => None,
        };
        let old: Vec<[u8; 32]> = std::env::var("PEYK_SECRETS_OLD_KEYS")
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode_key(k, "PEYK_SECRETS_OLD_KEYS"))
            .collect::<Result<_, _>>()?;
        Ok(match current {
            Some(current) => Self::with_keys(&current, &old),
            None => Self::plaintext(),
        })
    }

    /// The id of the key that seals (`None`: plaintext).
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_ref().map(|(id, _)| id.as_str())
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let Some((id, cipher)) = &self.current else {
            return plaintext.to_string();
        };
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher.encrypt(&nonce, plaintext.as_bytes()).expect("encrypting in memory does not fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens a sealed value; a value that was never sealed (stored before
    /// there was a key) is returned as it is.
    pub fn open(&self, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let (id, encoded) = rest.split_once(':').ok_or_else(|| SealError::Damaged("?".into()))?;
        let cipher = self.keys.get(id).ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::Damaged(id.to_string()))?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged(id.to_string()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| SealError::Damaged(id.to_string()))?;
        String::from_utf8(plaintext).map_err(|_| SealError::Damaged(id.to_string()))
    }

    /// Whether a stored value is sealed with the current key (what
    /// `rotate-secrets-key` leaves alone).
    pub fn is_current(&self, stored: &str) -> bool {
        match &self.current {
            Some((id, _)) => stored.strip_prefix(PREFIX).is_some_and(|rest| rest.starts_with(&format!("{id}:"))),
            None => !is_sealed(stored),
        }
    }
}

/// Whether a stored value was sealed (by any key), rather than stored as it was.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// A short id for a key, stored with each value it seals: the first 8 hex
/// digits of a hash of the key (it says which key, and nothing about it).
pub fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::new().chain_update(b"peyk secrets key id").chain_update(key).finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_key(text: &str, setting: &'static str) -> Result<[u8; 32], SealError> {
    let bytes = STANDARD.decode(text.trim()).or_else(|_| URL_SAFE_NO_PAD.decode(text.trim())).map_err(|_| SealError::BadKey(setting))?;
    bytes.try_into().map_err(|_| SealError::BadKey(setting))
}

static SEALER: OnceLock<Sealer> = OnceLock::new();

/// Sets the process's keys (at start-up, before any query). `Err` when
/// they were set already.
pub fn install(sealer: Sealer) -> Result<(), Sealer> {
    SEALER.set(sealer)
}

/// Installs the keys of the environment at a process's start: refuses to
/// go on without a key when `PEYK_ENVIRONMENT=production`, and says in the
/// log when secrets will be stored in plain text.
pub fn install_from_env() -> Result<&'static Sealer, SealError> {
    let sealer = Sealer::from_env()?;
    let production = std::env::var("PEYK_ENVIRONMENT").is_ok_and(|e| e.trim().eq_ignore_ascii_case("production"));
    match sealer.current_key_id() {
        None if production => return Err(SealError::Required),
        None => tracing::warn!("no PEYK_SECRETS_KEY: secrets are stored in plain text (development only)"),
        Some(id) => tracing::info!(key_id = id, "secrets sealed at rest"),
    }
    let _ = install(sealer);
    Ok(self::sealer())
}

/// The process's keys: those installed, else those of the environment.
pub fn sealer() -> &'static Sealer {
    SEALER.get_or_init(|| Sealer::from_env().unwrap_or_else(|e| panic!("secrets key: {e}")))
}

/// A text column holding a secret: sealed in the database, plain here.
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct SealedText(pub String);

impl SealedText {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for SealedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedText(****)")
    }
}

impl std::ops::Deref for SealedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for SealedText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for SealedText {
    fn from(text: &str) -> Self {
        Self(text.to_string())
    }
}

impl ToSql<Text, Pg> for SealedText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        out.write_all(sealer().seal(&self.0).as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for SealedText {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let stored = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(Self(sealer().open(&stored)?))
    }
}

/// A jsonb column holding secrets (a gateway's credentials): stored as one
/// JSON string, the sealed text of the whole value.
#[derive(Clone, PartialEq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub struct SealedJson(pub serde_json::Value);

impl fmt::Debug for SealedJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedJson(****)")
    }
}

impl ToSql<Jsonb, Pg> for SealedJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        // jsonb's binary format: a version byte, then the JSON text.
        out.write_all(&[1])?;
        match sealer().current_key_id() {
            Some(_) => serde_json::to_writer(out, &serde_json::Value::String(sealer().seal(&self.0.to_string())))?,
            None => serde_json::to_writer(out, &self.0)?,
        }
        Ok(IsNull::No)
    }
}

impl FromSql<Jsonb, Pg> for SealedJson {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let stored = <serde_json::Value as FromSql<Jsonb, Pg>>::from_sql(bytes)?;
        match &stored {
            serde_json::Value::String(text) if is_sealed(text) => Ok(Self(serde_json::from_str(&sealer().open(text)?)?)),
            _ => Ok(Self(stored)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only_and_rotate() {
        let (k1, k2) = ([7u8; 32], [9u8; 32]);
        let old = Sealer::with_keys(&k1, &[]);
        let sealed = old.seal("whsec_secret");
        assert!(sealed.starts_with(&format!("peyk:v1:{}:", key_id(&k1))) && !sealed.contains("whsec_secret"), "{sealed}");
        assert_ne!(old.seal("whsec_secret"), sealed, "a fresh nonce each time");
        assert_eq!(old.open(&sealed).unwrap(), "whsec_secret");
        // The new key opens old values while it has the old one; seals with its own.
        let rotating = Sealer::with_keys(&k2, &[k1]);
        assert_eq!(rotating.open(&sealed).unwrap(), "whsec_secret");
        assert!(!rotating.is_current(&sealed) && rotating.is_current(&rotating.seal("x")));
        let without_old = Sealer::with_keys(&k2, &[]);
        assert!(matches!(without_old.open(&sealed), Err(SealError::UnknownKey(_))));
        // Tampering is detected; values stored before there was a key are read as they are.
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 3.., "AAA");
        assert!(matches!(old.open(&tampered), Err(SealError::Damaged(_))));
        assert_eq!(old.open("whsec_plain").unwrap(), "whsec_plain");
        assert!(!old.is_current("whsec_plain"));
        assert!(matches!(Sealer::plaintext().open(&sealed), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(decode_key(&STANDARD.encode([1u8; 32]), "K").is_ok());
        assert!(decode_key(&STANDARD.encode([1u8; 16]), "K").is_err());
        assert!(decode_key("not base64!", "K").is_err());
    }
}
