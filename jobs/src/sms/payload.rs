//! The `sms` payload: its four shapes (`mode`) and their validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::phone::{self, Mobile};
use crate::ValidationErrors;

/// Kavenegar takes at most 200 receptors per request.
const MAX_RECEPTORS: usize = 200;
/// Kavenegar's limit on a message is about 900 characters (≈ 13 parts).
const MAX_MESSAGE_CHARS: usize = 900;

/// Payload of an `sms` job; `mode` says which of the shapes below it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsJob {
    /// One text to one or more numbers.
    Send {
        /// Iranian mobile numbers in any common form (stored as 09XXXXXXXXX).
        receptors: Vec<Mobile>,
        message: String,
        /// Sender line; default `PEYK_SMS_SENDER` or the account's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
    },
    /// A different text per number.
    Sendarray { messages: Vec<ArrayMessage> },
    /// An approved template (e.g. `verify`, `appointment-reminder`,
    /// `report-ready`) filled with tokens.
    Lookup(TemplateMessage),
    /// The same, read out by a voice call (OTP; `token` must be digits).
    Call(TemplateMessage),
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrayMessage {
    pub receptor: Mobile,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    pub receptor: Mobile,
    /// Template name as approved in the Kavenegar panel.
    #[schema(example = "verify")]
    pub template: String,
    #[schema(example = "4821")]
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token3: Option<String>,
    /// May contain spaces (up to 5 words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token10: Option<String>,
    /// May contain spaces (up to 8 words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token20: Option<String>,
}

impl TemplateMessage {
    pub(super) fn tokens(&self) -> Vec<(&'static str, &str)> {
        [
            ("token", Some(&self.token)),
            ("token2", self.token2.as_ref()),
            ("token3", self.token3.as_ref()),
            ("token10", self.token10.as_ref()),
            ("token20", self.token20.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.as_str())))
        .collect()
    }

    fn validate(&self, voice: bool, errors: &mut ValidationErrors) {
        self.receptor.check("receptor", errors);
        if self.template.is_empty() || !self.template.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            errors.add("template", "must be a template name (letters, digits, - and _)");
        }
        for (name, value) in self.tokens() {
            // Kavenegar refuses spaces, newlines and underscores in the short
            // tokens (status 431); token10/token20 may have spaces.
            let spaces_allowed = matches!(name, "token10" | "token20");
            if value.is_empty() {
                errors.add(name, "must not be empty");
            } else if value.contains(['\n', '\r', '_']) || (!spaces_allowed && value.contains(char::is_whitespace)) {
                errors.add(
                    name,
                    if spaces_allowed {
                        "must not contain newlines or underscores"
                    } else {
                        "must not contain spaces, newlines or underscores"
                    },
                );
            } else if value.chars().count() > 100 {
                errors.add(name, "must be at most 100 characters");
            }
        }
        if voice && !phone::ascii_digits(&self.token).chars().all(|c| c.is_ascii_digit()) {
            errors.add("token", "must be digits for a voice call");
        }
    }
}

fn validate_text(field: &str, text: &str, errors: &mut ValidationErrors) {
    if text.trim().is_empty() {
        errors.add(field, "must not be empty");
    } else if text.chars().count() > MAX_MESSAGE_CHARS {
        errors.add(field, format!("must be at most {MAX_MESSAGE_CHARS} characters"));
    }
}

fn validate_sender(field: &str, sender: &Option<String>, errors: &mut ValidationErrors) {
    if let Some(sender) = sender {
        if !(3..=20).contains(&sender.len()) || !sender.chars().all(|c| c.is_ascii_digit()) {
            errors.add(field, "must be a sender line number (3-20 digits)");
        }
    }
}

impl SmsJob {
    pub(super) fn mode(&self) -> &'static str {
        match self {
            SmsJob::Send { .. } => "send",
            SmsJob::Sendarray { .. } => "sendarray",
            SmsJob::Lookup(_) => "lookup",
            SmsJob::Call(_) => "call",
        }
    }

    /// The numbers it goes to (as stored: `09XXXXXXXXX`).
    pub fn receptors(&self) -> Vec<String> {
        match self {
            SmsJob::Send { receptors, .. } => receptors.iter().map(|r| r.0.clone()).collect(),
            SmsJob::Sendarray { messages } => messages.iter().map(|m| m.receptor.0.clone()).collect(),
            SmsJob::Lookup(t) | SmsJob::Call(t) => vec![t.receptor.0.clone()],
        }
    }

    /// Template (`lookup`) and voice (`call`) messages: the OTP rate rules apply.
    pub fn is_otp(&self) -> bool {
        matches!(self, SmsJob::Lookup(_) | SmsJob::Call(_))
    }

    /// The Kavenegar template a `lookup` or `call` uses.
    pub fn template(&self) -> Option<&str> {
        match self {
            SmsJob::Lookup(t) | SmsJob::Call(t) => Some(&t.template),
            SmsJob::Send { .. } | SmsJob::Sendarray { .. } => None,
        }
    }

    /// The checks of `Job::validate`: each field named with what is wrong.
    pub(super) fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        match self {
            SmsJob::Send { receptors, message, sender } => {
                if receptors.is_empty() || receptors.len() > MAX_RECEPTORS {
                    errors.add("receptors", format!("must list 1 to {MAX_RECEPTORS} numbers"));
                }
                let mut seen = std::collections::HashSet::new();
                for (i, receptor) in receptors.iter().enumerate() {
                    receptor.check(format!("receptors[{i}]"), &mut errors);
                    if let Some(normal) = phone::normalize_mobile(&receptor.0) {
                        if !seen.insert(normal) {
                            errors.add(format!("receptors[{i}]"), format!("`{}` is listed twice", receptor.0));
                        }
                    }
                }
                validate_text("message", message, &mut errors);
                validate_sender("sender", sender, &mut errors);
            }
            SmsJob::Sendarray { messages } => {
                if messages.is_empty() || messages.len() > MAX_RECEPTORS {
                    errors.add("messages", format!("must list 1 to {MAX_RECEPTORS} messages"));
                }
                for (i, m) in messages.iter().enumerate() {
                    m.receptor.check(format!("messages[{i}].receptor"), &mut errors);
                    validate_text(&format!("messages[{i}].message"), &m.message, &mut errors);
                    validate_sender(&format!("messages[{i}].sender"), &m.sender, &mut errors);
                }
            }
            SmsJob::Lookup(t) => t.validate(false, &mut errors),
            SmsJob::Call(t) => t.validate(true, &mut errors),
        }
        errors.into_result()
    }

    /// Numbers in their stored form (09XXXXXXXXX), for `Job::normalize`.
    pub(super) fn normalize_numbers(&mut self) {
        match self {
            SmsJob::Send { receptors, .. } => receptors.iter_mut().for_each(Mobile::normalize),
            SmsJob::Sendarray { messages } => messages.iter_mut().for_each(|m| m.receptor.normalize()),
            SmsJob::Lookup(t) | SmsJob::Call(t) => t.receptor.normalize(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(payload: serde_json::Value) -> Result<SmsJob, String> {
        let mut job: SmsJob = serde_json::from_value(payload).map_err(|e| e.to_string())?;
        job.check().map_err(|e| e.to_string())?;
        job.normalize_numbers();
        Ok(job)
    }

    #[test]
    fn numbers_are_normalised_and_bad_ones_named() {
        let job = parse(json!({ "mode": "send", "receptors": ["+98 912 123 4567", "۰۹۳۵۱۲۳۴۵۶۷"], "message": "سلام" })).unwrap();
        assert_eq!(job.receptors(), ["09121234567", "09351234567"]);
        let err = parse(json!({ "mode": "send", "receptors": ["09121234567", "02112345678"], "message": "x" })).unwrap_err();
        assert!(err.contains("receptors[1]: `02112345678` is not an Iranian mobile number"), "{err}");
    }

    #[test]
    fn template_tokens_are_checked() {
        assert!(parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "verify", "token": "4821" })).is_ok());
        let err = parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "verify", "token": "48 21" })).unwrap_err();
        assert!(err.contains("token: must not contain spaces"), "{err}");
        assert!(parse(json!({ "mode": "lookup", "receptor": "09121234567", "template": "remind", "token": "x", "token10": "دکتر رضایی" }))
            .is_ok());
        let err = parse(json!({ "mode": "call", "receptor": "09121234567", "template": "verify", "token": "abc" })).unwrap_err();
        assert!(err.contains("must be digits"), "{err}");
        assert!(parse(json!({ "mode": "fax", "receptor": "09121234567" })).is_err());
        assert!(parse(json!({ "mode": "send", "receptors": ["09121234567", "09121234567"], "message": "x" }))
            .unwrap_err()
            .contains("listed twice"));
    }
}
