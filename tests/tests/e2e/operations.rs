//! Operations files: promtool accepts the monitoring configuration, every alert fires in
//! its unit tests, and every Peyk metric an alert uses exists on a running
//! API or worker with the labels the alert selects on (no dead rule), and
//! `nginx -t` accepts the nginx configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use peyk_tests::sse::SseReader;
use peyk_tests::{webhook, Reply, Sink, TestEnv};
use serde_json::json;

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("promtool (Debian package `prometheus`) is installed by infrastructure/dev/test.sh");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn prometheus_configuration_and_rules_pass_promtool() {
    promtool(&["check", "config", "prometheus/prometheus.yml"]);
    let rules: Vec<String> = std::fs::read_dir(monitoring().join("prometheus/alerts"))
        .unwrap()
        .map(|entry| format!("prometheus/alerts/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    promtool(&args);
    promtool(&["test", "rules", "prometheus/tests/peyk_test.yml"]);
}

/// Metric names starting with `peyk_` in `text`, each with the label names
/// its selectors use there.
fn metrics_used(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = text;
    while let Some(start) = rest.find("peyk_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let labels = used.entry(name).or_default();
        if tail[end..].starts_with('{') {
            let selector = &tail[end + 1..tail[end..].find('}').map(|i| end + i).unwrap_or(tail.len())];
            for matcher in selector.split(',') {
                let label: String = matcher.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !label.is_empty() && !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        rest = &tail[end..];
    }
    used
}

#[tokio::test]
async fn every_metric_the_alerts_use_exists_with_its_labels() {
    let env = TestEnv::new("monitoring").await;
    let key = env.create_key("acme").await;
    let api = env.start_api().await;
    // Each worker serves its own queues, so that each job below reaches the
    // worker set up for it.
    let worker = env.start_worker_with(&[("PEYK_QUEUES", "webhook")]).await;
    let sink = Sink::start().await;
    // One success, and a job that is retried once and dies, so that the
    // per-code series exist.
    sink.reply([Reply::status(200), Reply::status(500), Reply::status(500)]);
    let ok = api.submit(&key, &webhook(&format!("{}/ok", sink.url), json!({}))).await;
    api.wait_for_status(&key, &ok, "succeeded", Duration::from_secs(10)).await;
    let mut dying = webhook(&format!("{}/dead", sink.url), json!({}));
    dying["max_attempts"] = json!(2);
    let dead = api.submit(&key, &dying).await;
    api.wait_for_status(&key, &dead, "dead", Duration::from_secs(10)).await;

    // A transcription, so that the speech series exist.
    let speech = env.start_speech_worker(&[]).await;
    let file_id = api.upload(&key, "jfk.wav", peyk_tests::speech::fixture("jfk.wav")).await;
    let id = api.submit(&key, &json!({ "type": "transcription", "payload": { "file_id": file_id, "model": "tiny.en" } })).await;
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(120)).await;

    // A medical analysis against the local OpenAI wire-format server, so
    // that the LLM token series exist.
    let openai = peyk_tests::openai::OpenAi::start().await;
    let llm_env = openai.env();
    let mut llm_extra = peyk_tests::env_pairs(&llm_env);
    llm_extra.push(("PEYK_QUEUES", "medical_analysis"));
    let llm = env.start_worker_with(&llm_extra).await;
    let id = api
        .submit(
            &key,
            &json!({ "type": "medical_analysis", "payload": { "text": "Dry cough for three days.", "analysis_type": "summary" } }),
        )
        .await;
    api.wait_for_status(&key, &id, "succeeded", Duration::from_secs(30)).await;

    let scrape = |url: String| async move { reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap() };
    let scraped = format!(
        "{}\n{}\n{}\n{}",
        api.metrics().await,
        scrape(worker.metrics_url.clone()).await,
        scrape(speech.metrics_url.clone()).await,
        scrape(llm.metrics_url.clone()).await
    );
    let mut rules = String::new();
    for entry in std::fs::read_dir(monitoring().join("prometheus/alerts")).unwrap() {
        rules.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    // The Kubernetes scaling rule's query, too.
    for entry in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/kubernetes")).unwrap() {
        rules.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    // Every query of every Grafana dashboard too: no dead panel.
    for entry in std::fs::read_dir(monitoring().join("grafana/dashboards")).unwrap() {
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                rules.push_str(target["expr"].as_str().unwrap());
                rules.push('\n');
            }
        }
    }
    let used = metrics_used(&rules);
    assert!(used.len() >= 12, "expected the alerts and dashboards to use Peyk metrics: {used:?}");
    // GPU series exist only where NVML loads (a GPU host); here, check that
    // the worker declares each one with the labels the panels and alerts use.
    let gpu_source = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../worker/src/gpu.rs")).unwrap();
    assert!(used.keys().any(|name| name.starts_with("peyk_gpu_")), "the transcription dashboard shows GPUs");
    for (name, labels) in used {
        if name.starts_with("peyk_gpu_") {
            assert!(gpu_source.contains(&format!("\"{name}\"")), "{name} is not a GPU metric the worker exports");
            assert!(labels.iter().all(|l| ["gpu", "name", "instance"].contains(&l.as_str())), "{name} selected by {labels:?}");
            continue;
        }
        let samples: Vec<&str> = scraped
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter(|line| line.strip_prefix(name.as_str()).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
            .collect();
        assert!(!samples.is_empty(), "alerts or dashboards use {name}, which neither the API nor the worker serves");
        for label in labels {
            assert!(
                samples.iter().any(|line| line.contains(&format!("{label}=\""))),
                "alerts or dashboards select {name} by `{label}`, which its samples lack: {samples:?}"
            );
        }
    }
    // The process metrics the runbooks point at.
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"] {
        assert!(scraped.contains(name), "{name} missing");
    }
}

/// The shipped nginx configuration in a folder of its own, with a
/// throwaway certificate; `rewrite` adapts the site (ports, upstream).
/// Answers the folder and the `nginx` arguments that use it.
fn nginx_setup(name: &str, rewrite: impl Fn(String) -> String) -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("peyk-nginx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=peyk.test"])
        .arg("-keyout")
        .arg(dir.join("privkey.pem"))
        .arg("-out")
        .arg(dir.join("fullchain.pem"))
        .output()
        .expect("openssl");
    assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
    let site = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/nginx/peyk.conf"))
        .unwrap()
        .replace("/etc/peyk/tls", dir.to_str().unwrap());
    std::fs::write(dir.join("peyk.conf"), rewrite(site)).unwrap();
    let main = format!(
        "pid {0}/nginx.pid;\nerror_log {0}/logs/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {0}/peyk.conf;\n}}\n",
        dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let args = vec!["-p".into(), dir.display().to_string(), "-c".into(), dir.join("nginx.conf").display().to_string()];
    (dir, args)
}

/// `nginx -t` on the shipped configuration.
#[test]
fn nginx_configuration_passes_nginx_t() {
    let (_, args) = nginx_setup("t", |site| site);
    let output = Command::new("nginx")
        .arg("-t")
        .args(&args)
        .output()
        .expect("nginx (Debian package nginx-light) is installed by infrastructure/dev/test.sh");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && text.contains("test is successful"), "nginx -t failed:\n{text}");
}

/// A job's event stream through the shipped nginx: each event arrives as
/// Peyk writes it (not when the response ends), and the stream ends with
/// the job.
#[tokio::test]
async fn job_events_pass_through_the_shipped_nginx_as_they_happen() {
    let env = TestEnv::new("nginx-events").await;
    let key = env.create_key("clinic").await;
    let api = env.start_api().await;
    let api_port = api.url.rsplit(':').next().unwrap().to_string();
    let (https, http) = (peyk_tests::free_port(), peyk_tests::free_port());
    let (_, args) = nginx_setup("events", |site| {
        site.replace("server 127.0.0.1:8080;", &format!("server 127.0.0.1:{api_port};"))
            .replace("listen 443 ssl http2;", &format!("listen 127.0.0.1:{https} ssl;"))
            .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
    });
    let mut nginx = tokio::process::Command::new("nginx").args(&args).args(["-g", "daemon off;"]).kill_on_drop(true).spawn().unwrap();
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let base = format!("https://127.0.0.1:{https}");
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A job that waits a minute: the stream stays open, with one status so far.
    let mut job = webhook("https://example.com/hook", json!({}));
    job["delay_seconds"] = json!(60);
    let id = api.submit(&key, &job).await;
    let response = client.get(format!("{base}/v1/jobs/{id}/events")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = SseReader::new(response);
    let first = tokio::time::timeout(Duration::from_secs(3), events.next()).await.expect("the first event comes at once").unwrap();
    assert_eq!((first.event.as_str(), first.json()["status"].clone()), ("status", json!("scheduled")), "{first:?}");
    // Cancelled: the new status and the record follow, and the stream ends.
    assert_eq!(api.post(&format!("/v1/jobs/{id}/cancel"), &key, &json!({})).await.0, 200);
    let next = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap();
    assert_eq!((next.event.as_str(), next.json()["status"].clone()), ("status", json!("cancelled")), "{next:?}");
    let done = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap();
    assert_eq!((done.event.as_str(), done.json()["status"].clone()), ("done", json!("cancelled")), "{done:?}");
    assert!(tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().is_none());
    let _ = nginx.kill().await;
}
