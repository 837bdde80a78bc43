//! A real SMTP server for the email tests: `tests/smtp_sink.py` (aiosmtpd,
//! installed into the project's venv by `infrastructure/dev/test.sh`) on a
//! free port, keeping every message it accepts as files this side reads.
//! Recipients starting with `temp-fail` get `451`, `perm-fail` `550`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::free_port;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
}

pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    _child: Child,
}

fn python() -> String {
    std::env::var("PEYK_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.peyk/venv/bin/python");
        venv.to_string_lossy().into_owned()
    })
}

impl SmtpSink {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, &[]).await
    }

    /// With extra arguments for `smtp_sink.py` (e.g. its TLS options).
    pub async fn start_with(name: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-mail").join(format!("{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/smtp_sink.py (is aiosmtpd in .peyk/venv? run infrastructure/dev/test.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the SMTP sink did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, dir, _child: child }
    }

    /// `PEYK_SMTP_URL` for a worker: plain SMTP to this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every complete message so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|meta_path| {
                let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
                let raw = std::fs::read(meta_path.with_extension("eml")).unwrap();
                Received {
                    mail_from: meta["mail_from"].as_str().unwrap_or_default().to_string(),
                    rcpt_tos: meta["rcpt_tos"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
                    raw,
                }
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "only {} of {count} messages arrived within {within:?}", received.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A throwaway certificate authority and a server certificate it signed for
/// 127.0.0.1, made with openssl: `(ca.pem, server.pem, server.key)`.
pub fn test_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Peyk test CA",
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}
