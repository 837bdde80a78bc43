//! Which outside providers the workers have: each worker reports, for the
//! queues it serves, whether each provider is configured (and which
//! setting configures it) and, where a check is cheap, whether it answers.
//! The reports live in Redis (`{prefix}:providers`, a hash of worker →
//! report), refreshed every [`REPORT_EVERY`]; the API reads them for
//! `/readyz?providers=1` and to refuse, at submission, a job no worker
//! could run (an LLM analysis when no worker has `PEYK_LLM_BASE_URL`).
//!
//! Only live reports count (younger than [`REPORT_TTL`]): with no worker
//! reporting for a queue, nothing is known and nothing is refused — jobs
//! wait for a worker as they always did.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::context::SharedClients;
use crate::email::EmailJob;
use crate::medical::MedicalAnalysisJob;
use crate::sms::SmsJob;
use crate::transcription::TranscriptionJob;
use crate::Job;

pub const REPORT_EVERY: Duration = Duration::from_secs(15);
/// Reports older than this are ignored (a worker that stopped without
/// saying so) and removed by the next writer.
pub const REPORT_TTL: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One provider as one worker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderStatus {
    /// `llm`, `smtp`, `kavenegar`, `whisper`.
    pub name: String,
    /// The queue (job type) that needs it.
    pub queue: String,
    pub configured: bool,
    /// The environment variable that configures it.
    pub setting: String,
    /// Where it is (`host:port`, never a credential), when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether it answered the last cheap check (a TCP connection, an SMTP
    /// greeting); absent where there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// What happens without it, when that is not a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The models it offers (`whisper`: the ones the worker loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// One worker's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    pub at: DateTime<Utc>,
    pub providers: Vec<ProviderStatus>,
}

fn key(prefix: &str) -> String {
    format!("{prefix}:providers")
}

fn host_port(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

/// What this worker has for the queues it serves, without the checks.
pub fn configured(clients: &SharedClients, queues: &[String]) -> Vec<ProviderStatus> {
    let serves = |queue: &str| queues.iter().any(|q| q == queue);
    let status = |name: &str, queue: &str, configured: bool, setting: &str, address: Option<String>| ProviderStatus {
        name: name.into(),
        queue: queue.into(),
        configured,
        setting: setting.into(),
        address: address.filter(|_| configured),
        reachable: None,
        note: None,
        models: None,
    };
    let mut report = Vec::new();
    if serves(MedicalAnalysisJob::TYPE) {
        let config = &clients.llm.config;
        report.push(status("llm", MedicalAnalysisJob::TYPE, config.configured, "PEYK_LLM_BASE_URL", host_port(&config.base_url)));
    }
    if serves(EmailJob::TYPE) {
        report.push(status("smtp", EmailJob::TYPE, true, "PEYK_SMTP_URL", Some(clients.email.description.clone())));
    }
    if serves(SmsJob::TYPE) {
        let kavenegar = clients.sms.kavenegar.as_ref();
        let mut sms = status(
            "kavenegar",
            SmsJob::TYPE,
            kavenegar.is_some(),
            "PEYK_KAVENEGAR_API_KEY",
            kavenegar.and_then(|k| host_port(k.base_url())),
        );
        if kavenegar.is_none() {
            sms.note = Some("messages are kept in the local outbox (GET /v1/sms/outbox), not sent".into());
        }
        report.push(sms);
    }
    if serves(TranscriptionJob::TYPE) {
        let mut whisper = status("whisper", TranscriptionJob::TYPE, clients.speech.is_some(), "PEYK_WHISPER_MODELS", None);
        whisper.models = clients.speech.as_ref().map(|speech| speech.models());
        report.push(whisper);
    }
    report
}

/// Fills in `reachable` where a check is cheap: a TCP connection to the
/// LLM and Kavenegar, an SMTP greeting from the relay.
pub async fn check(clients: &SharedClients, mut report: Vec<ProviderStatus>) -> Vec<ProviderStatus> {
    for provider in report.iter_mut().filter(|p| p.configured) {
        provider.reachable = match provider.name.as_str() {
            "smtp" => Some(matches!(tokio::time::timeout(PROBE_TIMEOUT, clients.email.transport.test_connection()).await, Ok(Ok(true)))),
            "llm" | "kavenegar" => match &provider.address {
                Some(address) => {
                    Some(matches!(tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await, Ok(Ok(_))))
                }
                None => None,
            },
            _ => None,
        };
    }
    report
}

/// Stores this worker's report and drops reports that are too old.
pub async fn publish(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    worker: &str,
    providers: Vec<ProviderStatus>,
) -> redis::RedisResult<()> {
    let report = WorkerReport { at: Utc::now(), providers };
    let text = serde_json::to_string(&report).unwrap_or_default();
    let _: () = redis.hset(key(prefix), worker, text).await?;
    let stale: Vec<String> = live_and_stale(redis, prefix).await?.1;
    if !stale.is_empty() {
        let _: () = redis.hdel(key(prefix), stale).await?;
    }
    Ok(())
}

/// Removes this worker's report (it is stopping).
pub async fn withdraw(redis: &mut redis::aio::ConnectionManager, prefix: &str, worker: &str) -> redis::RedisResult<()> {
    redis.hdel(key(prefix), worker).await
}

/// The live reports, by worker.
pub async fn live(redis: &mut redis::aio::ConnectionManager, prefix: &str) -> redis::RedisResult<HashMap<String, WorkerReport>> {
    Ok(live_and_stale(redis, prefix).await?.0)
}

async fn live_and_stale(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<(HashMap<String, WorkerReport>, Vec<String>)> {
    let all: HashMap<String, String> = redis.hgetall(key(prefix)).await?;
    let oldest = Utc::now() - chrono::Duration::from_std(REPORT_TTL).unwrap_or_default();
    let (mut live, mut stale) = (HashMap::new(), Vec::new());
    for (worker, text) in all {
        match serde_json::from_str::<WorkerReport>(&text) {
            Ok(report) if report.at >= oldest => {
                live.insert(worker, report);
            }
            _ => stale.push(worker),
        }
    }
    Ok((live, stale))
}

/// The fleet's view of one provider: configured on at least one live
/// worker that serves its queue (`None` when no live worker reports it).
pub fn configured_anywhere(reports: &HashMap<String, WorkerReport>, provider: &str) -> Option<(bool, String)> {
    let mut seen: Option<(bool, String)> = None;
    for status in reports.values().flat_map(|r| &r.providers).filter(|p| p.name == provider) {
        let configured = seen.as_ref().is_some_and(|(c, _)| *c) || status.configured;
        seen = Some((configured, status.setting.clone()));
    }
    seen
}

/// The models the live workers offer for `provider`, each once, sorted.
pub fn models_anywhere(reports: &HashMap<String, WorkerReport>, provider: &str) -> Vec<String> {
    let models: std::collections::BTreeSet<&String> =
        reports.values().flat_map(|r| &r.providers).filter(|p| p.name == provider).flat_map(|p| p.models.iter().flatten()).collect();
    models.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(configured: bool) -> WorkerReport {
        let llm = ProviderStatus {
            name: "llm".into(),
            queue: "medical_analysis".into(),
            configured,
            setting: "PEYK_LLM_BASE_URL".into(),
            address: None,
            reachable: None,
            note: None,
            models: None,
        };
        WorkerReport { at: Utc::now(), providers: vec![llm] }
    }

    #[test]
    fn one_configured_worker_is_enough_and_no_report_says_nothing() {
        let mut reports = HashMap::from([("w1".to_string(), report(false))]);
        assert_eq!(configured_anywhere(&reports, "llm"), Some((false, "PEYK_LLM_BASE_URL".into())));
        reports.insert("w2".into(), report(true));
        reports.insert("w3".into(), report(false));
        assert!(configured_anywhere(&reports, "llm").unwrap().0);
        assert_eq!(configured_anywhere(&reports, "smtp"), None);
    }

    #[test]
    fn the_fleets_models_are_the_union_of_its_workers() {
        let whisper = |models: &[&str]| {
            let mut report = report(true);
            report.providers[0].name = "whisper".into();
            report.providers[0].models = Some(models.iter().map(|m| m.to_string()).collect());
            report
        };
        let reports = HashMap::from([
            ("w1".to_string(), whisper(&["tiny.en", "base"])),
            ("w2".to_string(), whisper(&["base-q8_0", "base"])),
            ("w3".to_string(), report(true)),
        ]);
        assert_eq!(models_anywhere(&reports, "whisper"), ["base", "base-q8_0", "tiny.en"]);
        assert!(models_anywhere(&reports, "llm").is_empty());
    }

    #[test]
    fn addresses_never_carry_credentials() {
        assert_eq!(host_port("https://user:pw@llm.example/v1").as_deref(), Some("llm.example:443"));
        assert_eq!(host_port("http://127.0.0.1:8080/v1").as_deref(), Some("127.0.0.1:8080"));
    }
}
