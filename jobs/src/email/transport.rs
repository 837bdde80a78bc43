//! The SMTP client a worker shares between its email jobs: one lettre
//! `AsyncSmtpTransport` (with its connection pool) built at start-up from the
//! environment, and the mapping of SMTP failures to retry or permanent.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use crate::env::{env_or, env_parse, env_seconds, EnvError};
use crate::metrics::observe_provider;
use crate::JobError;

/// The dev mail sink of `infrastructure/dev/up.sh`.
pub const DEFAULT_SMTP_URL: &str = "smtp://127.0.0.1:2525";

#[derive(Clone)]
pub struct EmailClient {
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `PEYK_EMAIL_FROM`: the sender of emails whose payload names none.
    pub default_from: Option<Mailbox>,
    /// The server, without credentials, for logs.
    pub description: String,
    /// lettre's pool bounds only the idle connections it keeps; it opens a
    /// new one whenever none is idle. Sends take a permit first, so that a
    /// worker never holds more than `PEYK_SMTP_POOL_SIZE` connections
    /// (servers limit connections per client) and never churns through
    /// connections beyond what the pool keeps.
    pub connections: Arc<Semaphore>,
}

impl EmailClient {
    /// From `PEYK_SMTP_URL` (`smtp://host:25` plain, `smtp://host:587?tls=required`
    /// STARTTLS, `smtps://host:465` implicit TLS; user and password in the URL
    /// or in `PEYK_SMTP_USERNAME` / `PEYK_SMTP_PASSWORD`, which win),
    /// `PEYK_EMAIL_FROM`, `PEYK_SMTP_POOL_SIZE` and `PEYK_SMTP_TIMEOUT_SECONDS`.
    /// Nothing connects here: the pool opens connections when jobs send.
    pub fn from_env() -> Result<Self, EnvError> {
        let url = env_or("PEYK_SMTP_URL", DEFAULT_SMTP_URL);
        let description = describe_url(&url);
        let pool_size: u32 = env_parse("PEYK_SMTP_POOL_SIZE", 32)?;
        let timeout = env_seconds("PEYK_SMTP_TIMEOUT_SECONDS", 30.0)?.max(Duration::from_secs(1));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| EnvError::new(format!("PEYK_SMTP_URL={description}: {e}")))?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(pool_size.max(1)));
        let ca_file = env_or("PEYK_SMTP_CA_FILE", "");
        if !ca_file.is_empty() {
            builder = builder.tls(tls_trusting(&url, &ca_file).map_err(|e| EnvError::new(format!("PEYK_SMTP_CA_FILE={ca_file}: {e}")))?);
        }
        let username = env_or("PEYK_SMTP_USERNAME", "");
        if !username.is_empty() {
            builder = builder.credentials(Credentials::new(username, env_or("PEYK_SMTP_PASSWORD", "")));
        }
        let default_from = match env_or("PEYK_EMAIL_FROM", "") {
            from if from.is_empty() => None,
            from => Some(from.parse().map_err(|e| EnvError::new(format!("PEYK_EMAIL_FROM={from}: {e}")))?),
        };
        let connections = Arc::new(Semaphore::new(pool_size.max(1) as usize));
        Ok(Self { transport: builder.build(), default_from, description, connections })
    }
}

/// The TLS mode the URL asks for (STARTTLS `?tls=required|opportunistic`,
/// implicit TLS `smtps://`), trusting the certificates in `ca_file` besides
/// the system's: for a relay with a private CA (and the tests' own server).
fn tls_trusting(url: &str, ca_file: &str) -> Result<Tls, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("PEYK_SMTP_URL names no host")?.trim_matches(['[', ']']).to_string();
    let pem = std::fs::read(ca_file).map_err(|e| e.to_string())?;
    let certificate = Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
    let parameters = TlsParameters::builder(host).add_root_certificate(certificate).build_rustls().map_err(|e| e.to_string())?;
    let mode = parsed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        (_, Some("required")) => Ok(Tls::Required(parameters)),
        (_, Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err("the URL asks for no TLS (use smtps:// or ?tls=required)".into()),
    }
}

/// The URL without user and password (safe to log).
fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// The job error for a failed send, with its provider metric recorded:
/// 4xx replies, timeouts and connection failures are retried; 5xx replies
/// fail at once and keep the server's reply text.
pub fn classify(error: &lettre::transport::smtp::Error, took: Duration) -> JobError {
    let mut details = serde_json::json!({ "latency_ms": (took.as_secs_f64() * 100_000.0).round() / 100.0 });
    // lettre's Display already carries the server's reply ("permanent error
    // (550): 5.1.1 mailbox unavailable"); for transport errors the innermost
    // cause is the useful part ("connection refused").
    let (error_out, outcome) = if let Some(code) = error.status() {
        let code_text = format!("smtp_{code}");
        // Replies often quote the recipient ("<ali@x>: Recipient address
        // rejected"), and the runner logs job errors: the message masks
        // addresses; the full reply stays in the job's details only.
        let reply = error.to_string();
        details["smtp_reply"] = serde_json::Value::String(reply.clone());
        let reply = mask_addresses(&reply);
        if error.is_permanent() {
            (JobError::permanent(code_text, format!("the SMTP server refused the message: {reply}")), "client_error")
        } else {
            (JobError::retry(code_text, format!("the SMTP server deferred the message: {reply}")), "server_error")
        }
    } else if error.is_timeout() {
        (JobError::retry("timeout", format!("the SMTP server did not answer in time: {}", innermost(error))), "timeout")
    } else if error.is_tls() {
        (JobError::retry("tls_failed", format!("TLS with the SMTP server failed: {}", innermost(error))), "connection_error")
    } else {
        (JobError::retry("connection_failed", format!("could not talk to the SMTP server: {}", innermost(error))), "connection_error")
    };
    observe_provider("smtp", outcome, Some(took));
    error_out.with_details(details)
}

/// `ali.rezaei@example.com` → `a***@example.com`, wherever it appears.
pub fn mask_addresses(text: &str) -> String {
    let local_char = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            // Walk back over the local part already copied to `out`.
            let mut start = i;
            while start > 0 && local_char(chars[start - 1]) {
                start -= 1;
            }
            let has_domain = chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
            if start < i && has_domain {
                let local_len: usize = chars[start..i].iter().map(|c| c.len_utf8()).sum();
                out.truncate(out.len() - local_len);
                out.push(chars[start]);
                out.push_str("***");
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::{describe_url, mask_addresses};

    #[test]
    fn replies_lose_the_local_part_of_addresses() {
        assert_eq!(
            mask_addresses("550 5.1.1 <ali.rezaei@example.com>: Recipient address rejected"),
            "550 5.1.1 <a***@example.com>: Recipient address rejected"
        );
        assert_eq!(mask_addresses("no address @ all, x@y"), "no address @ all, x***@y");
        assert_eq!(mask_addresses("مریم@example.com"), "م***@example.com");
    }

    #[test]
    fn credentials_never_reach_the_description() {
        assert_eq!(describe_url("smtp://user:secret@mail.example.com:587?tls=required"), "smtp://mail.example.com:587?tls=required");
        assert_eq!(describe_url("smtps://mail.example.com"), "smtps://mail.example.com");
    }
}
