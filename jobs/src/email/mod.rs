//! Email delivery over SMTP (lettre), from a template or from a one-off
//! subject and body, with attachments from uploaded files.
//!
//! A 2xx answer to the whole transaction is success. SMTP 4xx replies,
//! timeouts and connection failures are retried; 5xx replies fail at once
//! with the server's reply. The Message-ID is derived from the job id, so a
//! retried email carries the same one. Addresses and bodies are never
//! logged.

pub mod address;
pub mod message;
pub mod templates;
pub mod transport;

use std::str::FromStr;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::AsyncTransport;
use peyk_schema::queries::{email_templates, files};
use peyk_schema::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metrics::observe_provider;
use crate::storage::StorageError;
use crate::{Job, JobContext, JobError, ValidationErrors};
use message::{Addresses, AttachmentData};
use templates::{Rendered, Sources};

const MAX_RECIPIENTS: usize = 100;
const MAX_ATTACHMENTS: usize = 10;
/// Attachments together, before base64 (most servers refuse ~25 MB messages).
const MAX_ATTACHMENT_BYTES: usize = 20 * 1024 * 1024;
const MAX_SUBJECT_CHARS: usize = 500;
/// Field names for `Job::file_ids`, which wants `&'static str`.
const ATTACHMENT_FIELDS: [&str; MAX_ATTACHMENTS] = [
    "attachments.0.file_id",
    "attachments.1.file_id",
    "attachments.2.file_id",
    "attachments.3.file_id",
    "attachments.4.file_id",
    "attachments.5.file_id",
    "attachments.6.file_id",
    "attachments.7.file_id",
    "attachments.8.file_id",
    "attachments.9.file_id",
];
const DEFAULT_LANGUAGE: &str = "en";

/// Payload of an `email` job: either `template` (+ `language`, `variables`)
/// or `subject` with `html` and/or `text`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailJob {
    /// Recipients: `user@example.com` or `Name <user@example.com>` (1–100 with cc and bcc).
    #[schema(example = json!(["patient@example.com"]))]
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Recipients not shown in the headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Sender; default `PEYK_EMAIL_FROM` of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A template name: the tenant's own (`PUT /v1/email/templates/{name}`)
    /// or a built-in one (`appointment-reminder`, `report-ready`, `verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "appointment-reminder")]
    pub template: Option<String>,
    /// Language of the template (`fa`, `en`…; default `en`). Persian (and
    /// other right-to-left languages) get a right-to-left layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Values for the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// One-off subject (instead of `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// One-off HTML body (a fragment is laid out in a page; sent as given otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// One-off plain-text body (derived from `html` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Uploaded files (`POST /v1/files`) to attach, at most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<EmailAttachment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailAttachment {
    pub file_id: Uuid,
    /// Name shown to the recipient; default the uploaded file's name. The
    /// content type follows it (e.g. `.pdf` → `application/pdf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// Template names: lowercase letters, digits, `-` and `_` (they appear in URLs).
pub fn valid_template_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `fa`, `en`, `pt-br`…: a lowercase primary tag and an optional region.
pub fn valid_language(language: &str) -> bool {
    let mut parts = language.split('-');
    let primary = parts.next().unwrap_or("");
    let region = parts.next();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts.next().is_none()
}

fn check_filename(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() || name.len() > 255 {
        Err("must be 1 to 255 bytes")
    } else if name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        Err("must not contain control characters or slashes")
    } else {
        Ok(())
    }
}

/// Checks an address as [`parse_mailbox`] will parse it when the message
/// is built (`address.rs`: without linking lettre into the API).
fn check_mailbox(text: &str) -> Result<(), String> {
    address::check_mailbox(text.trim()).map_err(|e| format!("is not a valid email address ({e})"))
}

fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    Mailbox::from_str(text.trim()).map_err(|e| format!("is not a valid email address ({e})"))
}

/// The domain of a sender address (`Name <user@Example.ir>` → `example.ir`).
pub fn sender_domain(from: &str) -> Option<String> {
    parse_mailbox(from).ok().map(|mailbox| mailbox.email.domain().to_ascii_lowercase())
}

/// Whether `from` is at one of `domains` (the tenant's sender domains; an
/// address at a subdomain is not): tenants share the operator's relay, and
/// none may send as another tenant, or as a bank.
pub fn sender_allowed(from: &str, domains: &[String]) -> bool {
    sender_domain(from).is_some_and(|domain| domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)))
}

/// Sender domains as an operator gives them, checked and in lower case.
pub fn sender_domains(given: &[String]) -> Result<Vec<String>, String> {
    given
        .iter()
        .map(|domain| {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = domain.contains('.')
                && domain.len() <= 253
                && domain.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if valid {
                Ok(domain)
            } else {
                Err(format!("`{domain}` is not a domain name (e.g. clinic.ir)"))
            }
        })
        .collect()
}

/// The refusal of a `from` outside the tenant's sender domains.
pub fn sender_refusal(domains: &[String]) -> String {
    if domains.is_empty() {
        "this tenant has no sender domains: leave `from` out (the server's PEYK_EMAIL_FROM is used), or ask the operator to add yours (peyk-api set-limits --sender-domain)".into()
    } else {
        format!("must be an address at one of this tenant's sender domains: {}", domains.join(", "))
    }
}

impl Job for EmailJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "email";
    const SENSITIVE: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = 6;
    const RESULT_FIELDS: &'static [&'static str] = &["message_id", "accepted", "latency_ms", "smtp_code", "smtp_reply"];
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(180);
    /// Sends wait for one of `PEYK_SMTP_POOL_SIZE` connections (relays limit
    /// a client's connections): more jobs in flight would only wait there,
    /// their attempt timeouts running.
    const DEFAULT_CONCURRENCY: usize = 64;

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.to.is_empty() {
            errors.add("to", "must name at least one recipient");
        }
        for (field, list) in [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)] {
            for (i, address) in list.iter().enumerate() {
                if let Err(problem) = check_mailbox(address) {
                    errors.add(format!("{field}.{i}"), problem);
                }
            }
        }
        if self.to.len() + self.cc.len() + self.bcc.len() > MAX_RECIPIENTS {
            errors.add("to", format!("at most {MAX_RECIPIENTS} recipients in to, cc and bcc together"));
        }
        for (field, address) in [("reply_to", &self.reply_to), ("from", &self.from)] {
            if let Some(Err(problem)) = address.as_deref().map(check_mailbox) {
                errors.add(field, problem);
            }
        }
        if let Some(language) = &self.language {
            if !valid_language(language) {
                errors.add("language", "must be a language code such as `fa` or `en`");
            }
        }
        match &self.template {
            Some(template) => {
                if !valid_template_name(template) {
                    errors.add("template", "must be 1 to 64 lowercase letters, digits, `-` or `_`");
                }
                for (field, given) in [("subject", self.subject.is_some()), ("html", self.html.is_some()), ("text", self.text.is_some())] {
                    if given {
                        errors.add(field, "give either `template` or `subject` with `html`/`text`, not both");
                    }
                }
            }
            None => {
                match &self.subject {
                    None => errors.add("subject", "is required without `template`"),
                    Some(subject) if subject.trim().is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS => {
                        errors.add("subject", format!("must be 1 to {MAX_SUBJECT_CHARS} characters"))
                    }
                    Some(_) => {}
                }
                if self.html.is_none() && self.text.is_none() {
                    errors.add("html", "give `html`, `text` or both (or a `template`)");
                }
                if self.variables.is_some() {
                    errors.add("variables", "only apply to a `template`");
                }
            }
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            errors.add("attachments", format!("at most {MAX_ATTACHMENTS} attachments"));
        }
        for (i, attachment) in self.attachments.iter().enumerate() {
            if let Some(Err(problem)) = attachment.filename.as_deref().map(check_filename) {
                errors.add(format!("attachments.{i}.filename"), problem);
            }
        }
        errors.into_result()
    }

    fn file_ids(&self) -> Vec<(&'static str, Uuid)> {
        self.attachments.iter().zip(ATTACHMENT_FIELDS).map(|(a, field)| (field, a.file_id)).collect()
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let client = &ctx.clients.email;
        let language = self.language.as_deref().unwrap_or(DEFAULT_LANGUAGE);
        let content = self.content(ctx, language).await?;
        // Checked at submission too; checked again here for jobs stored
        // earlier (schedules, pipelines, delays) and domains removed since.
        if let Some(from) = &self.from {
            let domains = peyk_schema::queries::queue_controls::sender_domains(&ctx.clients.backbone.pool, ctx.tenant_id)
                .await
                .map_err(|e| JobError::retry("database_error", format!("sender domains: {e}")))?;
            if !sender_allowed(from, &domains) {
                return Err(JobError::permanent("sender_not_allowed", format!("from {}", sender_refusal(&domains))));
            }
        }
        let addresses = self.addresses(client.default_from.as_ref())?;
        let attachments = self.read_attachments(ctx).await?;
        let message = message::build(ctx.job_id, addresses, content, attachments)
            .map_err(|e| JobError::permanent("invalid_message", format!("the message could not be built: {e}")))?;
        let recipients: Vec<String> = message.envelope().to().iter().map(|a| a.to_string()).collect();

        // Waiting for a free connection is queueing, not provider latency.
        let _connection = client.connections.acquire().await.map_err(|_| JobError::retry("shutting_down", "the SMTP client is closed"))?;
        let started = Instant::now();
        let sent = client.transport.send(message).await;
        let took = started.elapsed();
        let response = sent.map_err(|e| transport::classify(&e, took))?;
        observe_provider("smtp", "success", Some(took));
        tracing::debug!(recipients = recipients.len(), latency_ms = took.as_millis() as u64, "email accepted by the SMTP server");
        Ok(serde_json::json!({
            "message_id": message::message_id(ctx.job_id),
            "accepted": recipients,
            "latency_ms": (took.as_secs_f64() * 100_000.0).round() / 100.0,
            "smtp_code": response.code().to_string(),
            "smtp_reply": response.message().next().unwrap_or("").chars().take(200).collect::<String>(),
        }))
    }
}

impl EmailJob {
    /// The subject and bodies: the tenant's template, else the built-in one
    /// of that name, else the one-off fields.
    async fn content(&self, ctx: &JobContext, language: &str) -> Result<Rendered, JobError> {
        let Some(name) = &self.template else {
            let subject = self.subject.as_deref().unwrap_or_default();
            return Ok(templates::raw(subject, self.html.as_deref(), self.text.as_deref(), language));
        };
        let empty = serde_json::Map::new();
        let variables = self.variables.as_ref().unwrap_or(&empty);
        let render_error =
            |e: templates::TemplateError| JobError::permanent("template_error", format!("template `{name}` ({language}): {e}"));
        let own = email_templates::find(&ctx.clients.backbone.pool, TenantId(ctx.tenant_id), name, language)
            .await
            .map_err(|e| JobError::retry("database_unavailable", format!("could not read the template: {e}")))?;
        if let Some(row) = own {
            let sources = Sources { subject: &row.subject, html: row.html.as_deref(), text: row.text.as_deref() };
            return templates::render(sources, language, variables).map_err(render_error);
        }
        match templates::builtin(name, language) {
            Some(sources) => templates::render(sources, language, variables).map_err(render_error),
            None => Err(JobError::permanent(
                "unknown_template",
                format!(
                    "no template `{name}` in language `{language}`: neither the tenant's own nor a built-in one ({})",
                    templates::builtin_names().join(", ")
                ),
            )),
        }
    }

    fn addresses(&self, default_from: Option<&Mailbox>) -> Result<Addresses, JobError> {
        // Validated at submission; a failure here is a stored payload gone bad.
        let parse_all = |list: &[String]| -> Result<Vec<Mailbox>, JobError> {
            list.iter().map(|a| parse_mailbox(a).map_err(|p| JobError::permanent("invalid_address", format!("an address {p}")))).collect()
        };
        let from = match &self.from {
            Some(from) => parse_mailbox(from).map_err(|p| JobError::permanent("invalid_address", format!("from {p}")))?,
            None => default_from
                .cloned()
                .ok_or_else(|| JobError::permanent("no_sender", "the payload names no `from` and the worker has no PEYK_EMAIL_FROM"))?,
        };
        let reply_to = self
            .reply_to
            .as_deref()
            .map(|r| parse_mailbox(r).map_err(|p| JobError::permanent("invalid_address", format!("reply_to {p}"))))
            .transpose()?;
        Ok(Addresses { from, to: parse_all(&self.to)?, cc: parse_all(&self.cc)?, bcc: parse_all(&self.bcc)?, reply_to })
    }

    /// Reads every attachment's record (for its name) and bytes.
    /// Reads the attachments, after checking their total size from the
    /// files' records: an oversized set fails before a byte is read (a
    /// worker reading 200 MiB uploads whole would be the one to run out of
    /// memory).
    async fn read_attachments(&self, ctx: &JobContext) -> Result<Vec<AttachmentData>, JobError> {
        let mut records = Vec::with_capacity(self.attachments.len());
        for attachment in &self.attachments {
            let id = attachment.file_id;
            let record = files::get(&ctx.clients.backbone.pool, TenantId(ctx.tenant_id), id)
                .await
                .map_err(|e| JobError::retry("database_unavailable", format!("could not read file {id}: {e}")))?
                .ok_or_else(|| attachment_gone(id))?;
            records.push(record);
        }
        let total: i64 = records.iter().map(|r| r.size_bytes).sum();
        if total > MAX_ATTACHMENT_BYTES as i64 {
            return Err(attachments_too_large());
        }
        let mut out = Vec::with_capacity(records.len());
        for (attachment, record) in self.attachments.iter().zip(records) {
            let id = attachment.file_id;
            // The stored object must be what its record says; one that grew
            // is not read past the record's size.
            let changed = || JobError::permanent("attachment_changed", format!("attachment {id} is not the size its record says"));
            let bytes = ctx.clients.files.get_at_most(ctx.tenant_id, id, record.size_bytes as u64).await.map_err(|e| match e {
                StorageError::NotFound(_) => attachment_gone(id),
                StorageError::TooLarge(_) => changed(),
                other => JobError::retry("storage_unavailable", other.to_string()),
            })?;
            if bytes.len() as i64 != record.size_bytes {
                return Err(changed());
            }
            let filename = attachment.filename.clone().unwrap_or(record.filename);
            let content_type = message::guess_content_type(&filename, record.content_type.as_deref());
            out.push(AttachmentData { filename, content_type, bytes: Vec::from(bytes) });
        }
        Ok(out)
    }
}

fn attachment_gone(id: uuid::Uuid) -> JobError {
    JobError::permanent("file_not_found", format!("attachment {id} was deleted"))
}

fn attachments_too_large() -> JobError {
    JobError::permanent("attachments_too_large", format!("attachments total more than {} MiB", MAX_ATTACHMENT_BYTES / (1024 * 1024)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(payload: serde_json::Value) -> Vec<String> {
        let job: EmailJob = serde_json::from_value(payload).unwrap();
        match job.validate() {
            Ok(()) => vec![],
            Err(errors) => errors.0.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn validation_names_each_field() {
        assert_eq!(
            fields(json!({"to": ["a@example.com"], "template": "verify", "language": "fa", "variables": {"code": "1"}})),
            Vec::<String>::new()
        );
        assert_eq!(fields(json!({"to": ["Ali <a@example.com>"], "subject": "Hi", "text": "x"})), Vec::<String>::new());
        assert_eq!(
            fields(json!({"to": ["a@example.com", "not an address"], "cc": ["@x"], "subject": "Hi", "html": "<p>x</p>"})),
            ["to.1", "cc.0"]
        );
        assert_eq!(fields(json!({"to": ["a@example.com"], "template": "verify", "subject": "Hi"})), ["subject"]);
        assert_eq!(fields(json!({"to": ["a@example.com"], "subject": "Hi"})), ["html"]);
        assert_eq!(fields(json!({"to": [], "text": "x"})), ["to", "subject"]);
        assert_eq!(fields(json!({"to": ["a@example.com"], "template": "Bad Name!", "language": "farsi"})), ["language", "template"]);
        assert_eq!(
            fields(
                json!({"to": ["a@example.com"], "text": "x", "subject": "s", "attachments": [{"file_id": Uuid::nil(), "filename": "a/b"}]})
            ),
            ["attachments.0.filename"]
        );
    }

    #[test]
    fn attachments_name_their_field() {
        let job: EmailJob = serde_json::from_value(json!({"to": ["a@example.com"], "subject": "s", "text": "t",
            "attachments": [{"file_id": Uuid::nil()}, {"file_id": Uuid::max(), "filename": "x.pdf"}]}))
        .unwrap();
        assert_eq!(job.file_ids(), [("attachments.0.file_id", Uuid::nil()), ("attachments.1.file_id", Uuid::max())]);
    }

    #[test]
    fn languages_and_names() {
        for ok in ["fa", "en", "pt-br", "zh-Hant"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in ["", "f", "FA", "farsi", "en-", "en-us-x"] {
            assert!(!valid_language(bad), "{bad}");
        }
        assert!(valid_template_name("appointment-reminder") && !valid_template_name("a b") && !valid_template_name(""));
    }
}
