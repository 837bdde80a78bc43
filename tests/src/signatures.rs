//! Standard Webhooks verification, twice over, so that Peyk's signing is
//! checked by code that is not Peyk's: [`verify`] written here from the
//! specification, and [`verify_with_python`] through `standardwebhooks`,
//! the specification's own Python library (installed by
//! `infrastructure/dev/test.sh`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key is the base64-decoded part after `whsec_`; the signed content
/// is `{webhook-id}.{webhook-timestamp}.{raw body}`; the header lists
/// space-separated `v1,<base64 signature>` entries.
pub fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

/// Whether `standardwebhooks` (Python) accepts the request: it also checks
/// that the timestamp is recent.
pub fn verify_with_python(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let python = std::env::var("PEYK_TEST_PYTHON").expect("PEYK_TEST_PYTHON (set by infrastructure/dev/test.sh)");
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let script = "import sys\nfrom standardwebhooks import Webhook\nWebhook(sys.argv[1]).verify(sys.stdin.buffer.read(), \
                  {'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]})";
    let mut child = std::process::Command::new(python)
        .args(["-c", script, secret, &header("webhook-id"), &header("webhook-timestamp"), &header("webhook-signature")])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body).unwrap();
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        eprintln!("standardwebhooks refused: {}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}
