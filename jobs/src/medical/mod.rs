//! The `medical_analysis` job type: Persian or English clinical text
//! analysed by an LLM behind any OpenAI-compatible chat API, answered as
//! JSON that matches a schema per analysis type.
//!
//! - `llm`: the provider call (one HTTP request, errors classified for
//!   Peyk's own retries, `Retry-After` honoured, token metrics).
//! - `redact`: identifiers removed before text leaves for a third party.
//! - `schema`: the output schemas and the check every answer goes through.
//! - `prompt`: what the model is asked, the answer's language, the disclaimer.
//! - `analysis`: one job's requests, the check of each answer, the correction.
//!
//! An answer that does not match its schema gets one correction request
//! (the validation problems are sent back); a second bad answer fails the
//! job with `invalid_model_output`. Medical text and model output never
//! reach logs or error messages.

mod analysis;
pub mod conversation;
pub mod llm;
pub mod prompt;
pub mod redact;
pub mod schema;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use peyk_queue::queue::UsageKind;
use peyk_queue::Clients;

use crate::{Job, JobContext, JobError, ValidationErrors};
use analysis::Analysis;

const MAX_TEXT_CHARS: usize = 32_000;
const MAX_HISTORY_CHARS: usize = 4_000;
const MAX_MEDICATIONS: usize = 50;
const GENERATE_MAX_TOKENS_LIMIT: u32 = 8_192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisType {
    /// Symptoms with duration and severity, and red flags.
    Symptoms,
    /// Subjective / Objective / Assessment / Plan from a consultation transcript.
    SoapNote,
    /// Urgency level with reasons.
    Triage,
    /// Drugs mentioned, doses, interactions to check.
    Medications,
    /// A short summary and key points.
    Summary,
    /// Free prompt (`text`), with `max_tokens` and `temperature`.
    Generate,
}

impl AnalysisType {
    pub const ALL: [AnalysisType; 6] = [Self::Symptoms, Self::SoapNote, Self::Triage, Self::Medications, Self::Summary, Self::Generate];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Symptoms => "symptoms",
            Self::SoapNote => "soap_note",
            Self::Triage => "triage",
            Self::Medications => "medications",
            Self::Summary => "summary",
            Self::Generate => "generate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Fa,
    En,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

/// What helps the model read the text. `name` is never sent: it is only
/// used to remove the patient's name from the text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientContext {
    /// Years, 0–130.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    /// Relevant history (up to 4,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// Current medications (up to 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medications: Option<Vec<String>>,
    /// The patient's name: removed from everything sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Payload of a `medical_analysis` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "بیمار ۵۴ ساله با درد قفسه سینه از دو روز پیش و تنگی نفس", "analysis_type": "triage", "patient_context": {"age": 54, "sex": "male"}}))]
pub struct MedicalAnalysisJob {
    /// Clinical text, Persian or English (up to 32,000 characters); the
    /// prompt itself for `generate`. Give this or `segments`.
    #[serde(default)]
    pub text: String,
    /// A consultation as a speaker-labelled transcript instead of `text`:
    /// a `transcription` result's `segments` (with `speakers`: true), e.g.
    /// `{"from": "steps.0.result.segments"}` in a pipeline. The model gets
    /// one line per turn with the speaker's label and role, and keeps the
    /// patient's complaints apart from the clinician's findings and plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<conversation::Utterance>>,
    /// Who each speaker of `segments` is (documented in
    /// `conversation::speaker_roles_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = conversation::speaker_roles_schema)]
    pub speaker_roles: Option<conversation::SpeakerRoles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = true)]
    pub analysis_type: Option<AnalysisType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_context: Option<PatientContext>,
    /// Language of the answer; default: the language of `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// `generate` only: most tokens to generate (1–8192, default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// `generate` only: sampling temperature (0–2, default 0.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl Job for MedicalAnalysisJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "medical_analysis";
    const SENSITIVE: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = 5;
    const RESULT_FIELDS: &'static [&'static str] = &[
        "analysis_type",
        "language",
        "output",
        "disclaimer",
        "model",
        "usage",
        "redaction",
        "response_format",
        "model_calls",
        "finish_reason",
        "timing_ms",
    ];
    /// Up to three requests (answer, `json_object` fallback, correction) of
    /// at most `llm::MAX_TIMEOUT` each.
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
    /// An LLM server answers a few requests at once and queues the rest;
    /// hundreds queued there would run into their timeouts.
    const DEFAULT_CONCURRENCY: usize = 64;

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        match &self.segments {
            Some(_) if !self.text.is_empty() => errors.add("segments", "give text or segments, not both"),
            Some(segments) => {
                conversation::validate(segments, self.speaker_roles.as_ref(), &mut errors);
                if self.input_text().chars().count() > MAX_TEXT_CHARS {
                    errors.add("segments", format!("must hold at most {MAX_TEXT_CHARS} characters of text"));
                }
            }
            None if self.text.trim().is_empty() => errors.add("text", "is required (or segments) and must not be empty"),
            None if self.text.chars().count() > MAX_TEXT_CHARS => {
                errors.add("text", format!("must be at most {MAX_TEXT_CHARS} characters"))
            }
            None => {}
        }
        if self.speaker_roles.is_some() && self.segments.is_none() {
            errors.add("speaker_roles", "needs segments with speakers");
        }
        let kinds: Vec<&str> = AnalysisType::ALL.iter().map(|k| k.as_str()).collect();
        let generate = match self.analysis_type {
            None => {
                errors.add("analysis_type", format!("is required: one of {}", kinds.join(", ")));
                false
            }
            Some(kind) => kind == AnalysisType::Generate,
        };
        if let Some(max) = self.max_tokens {
            if !generate {
                errors.add("max_tokens", "only applies to analysis_type `generate`");
            } else if !(1..=GENERATE_MAX_TOKENS_LIMIT).contains(&max) {
                errors.add("max_tokens", format!("must be between 1 and {GENERATE_MAX_TOKENS_LIMIT}"));
            }
        }
        if let Some(t) = self.temperature {
            if !generate {
                errors.add("temperature", "only applies to analysis_type `generate`");
            } else if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                errors.add("temperature", "must be between 0 and 2");
            }
        }
        if let Some(context) = &self.patient_context {
            if context.age.is_some_and(|age| !(0..=130).contains(&age)) {
                errors.add("patient_context.age", "must be between 0 and 130 (years)");
            }
            if let Some(history) = &context.history {
                if history.chars().count() > MAX_HISTORY_CHARS {
                    errors.add("patient_context.history", format!("must be at most {MAX_HISTORY_CHARS} characters"));
                }
            }
            if let Some(medications) = &context.medications {
                if medications.len() > MAX_MEDICATIONS {
                    errors.add("patient_context.medications", format!("must list at most {MAX_MEDICATIONS} drugs"));
                }
                for (i, m) in medications.iter().enumerate() {
                    if m.trim().is_empty() || m.chars().count() > 200 {
                        errors.add(format!("patient_context.medications[{i}]"), "must be 1 to 200 characters");
                    }
                }
            }
            if let Some(name) = &context.name {
                if name.trim().chars().count() < 2 || name.chars().count() > 200 {
                    errors.add("patient_context.name", "must be 2 to 200 characters");
                }
            }
        }
        errors.into_result()
    }

    fn result_schemas() -> Vec<(String, Value)> {
        let mut schemas: Vec<(String, Value)> =
            AnalysisType::ALL.iter().map(|k| (format!("MedicalAnalysisOutput_{}", k.as_str()), schema::output_schema(*k))).collect();
        schemas.push(("MedicalAnalysisResult".into(), schema::result_schema()));
        schemas
    }

    async fn run(self, ctx: &JobContext) -> Result<Value, JobError> {
        let started = Instant::now();
        let client = &ctx.clients.llm;
        if !client.config.configured {
            return Err(not_configured());
        }
        let kind = self.analysis_type.ok_or_else(|| JobError::permanent("invalid_payload", "analysis_type is missing"))?;
        let language = self.language.unwrap_or_else(|| prompt::detect_language(&self.input_text()));
        let sent = self.outgoing(client.config.redact);
        let mut analysis = Analysis::new(client, kind);
        let output = if kind == AnalysisType::Generate {
            analysis.generate(&sent, language, self.max_tokens, self.temperature).await
        } else {
            analysis.structured(&sent, language).await
        };
        // Tokens count against the tenant's month whether or not the answer was usable.
        let used = analysis.usage.total_tokens as i64;
        if used > 0 {
            let queue = &ctx.clients.backbone().queue;
            if let Err(e) = queue.record_usage(&ctx.tenant_id.to_string(), UsageKind::LlmTokens, used).await {
                tracing::warn!(error = %e, "LLM tokens not recorded in the tenant's usage");
            }
        }
        let output = output?;
        let usage = &analysis.usage;
        tracing::info!(
            analysis_type = kind.as_str(),
            model = %client.config.model,
            calls = analysis.calls,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            "medical analysis done"
        );
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        let provider_ms = analysis.provider_time.as_secs_f64() * 1000.0;
        Ok(json!({
            "analysis_type": kind.as_str(),
            "language": language,
            "output": output,
            "disclaimer": { "en": prompt::DISCLAIMER_EN, "fa": prompt::DISCLAIMER_FA },
            "model": analysis.model.unwrap_or_else(|| client.config.model.clone()),
            "usage": { "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens },
            "redaction": { "applied": client.config.redact, "removed": sent.counts },
            "response_format": analysis.format,
            "model_calls": analysis.calls,
            "finish_reason": analysis.finish_reason,
            "timing_ms": { "provider": round(provider_ms), "worker": round((total_ms - provider_ms).max(0.0)) },
        }))
    }
}

impl MedicalAnalysisJob {
    /// What the model analyses: `text`, or the conversation in `segments`.
    fn input_text(&self) -> String {
        match &self.segments {
            Some(segments) => conversation::render(segments, self.speaker_roles.as_ref().unwrap_or(&Default::default())),
            None => self.text.clone(),
        }
    }

    /// The system message's note on who speaks, for a conversation.
    fn conversation_note(&self) -> Option<String> {
        let segments = self.segments.as_ref()?;
        Some(conversation::instructions(segments, self.speaker_roles.as_ref().unwrap_or(&Default::default())))
    }
}

fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// The error of an analysis on a worker without an LLM: permanent (retrying
/// cannot configure one), naming the setting.
pub fn not_configured() -> JobError {
    JobError::permanent(
        "provider_not_configured",
        "no LLM is configured on this worker: set PEYK_LLM_BASE_URL (an OpenAI-compatible /v1 URL) and PEYK_LLM_MODEL, or PEYK_LLM_API_KEY for OpenAI itself",
    )
    .with_details(serde_json::json!({ "provider": "llm", "setting": "PEYK_LLM_BASE_URL" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: Value) -> Result<MedicalAnalysisJob, String> {
        let job: MedicalAnalysisJob = serde_path_to_error::deserialize(payload).map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        job.validate().map_err(|e| e.to_string())?;
        Ok(job)
    }

    #[test]
    fn payloads_are_checked_field_by_field() {
        assert!(parse(json!({ "text": "سردرد از دیروز", "analysis_type": "symptoms" })).is_ok());
        assert!(parse(json!({ "text": "write a leaflet", "analysis_type": "generate", "max_tokens": 100, "temperature": 0.3 })).is_ok());
        let err = parse(json!({ "text": "  " })).unwrap_err();
        assert!(err.contains("text: is required") && err.contains("analysis_type: is required"), "{err}");
        assert!(parse(json!({ "text": "x", "analysis_type": "diagnose" })).unwrap_err().starts_with("analysis_type: unknown variant"));
        let err = parse(json!({ "text": "x", "analysis_type": "triage", "patient_context": { "age": 200 } })).unwrap_err();
        assert!(err.contains("patient_context.age: must be between 0 and 130"), "{err}");
        assert!(parse(json!({ "text": "x", "analysis_type": "triage", "patient_context": { "sex": "x" } }))
            .unwrap_err()
            .starts_with("patient_context.sex"));
        assert!(parse(json!({ "text": "x", "analysis_type": "triage", "max_tokens": 5 }))
            .unwrap_err()
            .contains("max_tokens: only applies"));
        assert!(parse(json!({ "text": "x", "analysis_type": "generate", "temperature": 3 }))
            .unwrap_err()
            .contains("temperature: must be between 0 and 2"));
        assert!(parse(json!({ "text": "x", "analysis_type": "summary", "language": "de" })).unwrap_err().starts_with("language"));
        assert!(parse(json!({ "text": "x", "analysis_type": "summary", "extra": 1 })).is_err());
    }

    #[test]
    fn a_labelled_transcript_goes_out_as_turns_with_roles_and_redacted() {
        // A transcription result's segments, as a pipeline passes them.
        let job = parse(json!({
            "segments": [
                { "id": 0, "start": 0.0, "end": 2.1, "text": " What brings you in?", "avg_logprob": -0.2, "no_speech_prob": 0.0, "speaker": "S1" },
                { "id": 1, "start": 2.5, "end": 5.0, "text": " I am Ali Rezaei, I cough at night.", "avg_logprob": -0.3, "no_speech_prob": 0.0, "speaker": "S2" }
            ],
            "speaker_roles": { "S1": "clinician", "S2": "patient" },
            "analysis_type": "soap_note",
            "patient_context": { "name": "Ali Rezaei" }
        }))
        .unwrap();
        let sent = job.outgoing(true);
        assert_eq!(sent.text, "[S1 (clinician)] What brings you in?\n[S2 (patient)] I am [NAME], I cough at night.");
        assert!(sent.conversation.as_deref().unwrap().contains("S1 is the clinician, S2 is the patient."));
        assert!(
            job.outgoing(true).conversation.is_some()
                && parse(json!({"text": "x", "analysis_type": "summary"})).unwrap().outgoing(true).conversation.is_none()
        );
        let both = parse(json!({ "text": "x", "segments": [{ "text": "y" }], "analysis_type": "summary" }));
        assert!(both.unwrap_err().contains("segments: give text or segments, not both"));
        let roles_alone = parse(json!({ "text": "x", "speaker_roles": { "S1": "patient" }, "analysis_type": "summary" }));
        assert!(roles_alone.unwrap_err().contains("speaker_roles: needs segments"));
        let bad_role = parse(
            json!({ "segments": [{ "text": "y", "speaker": "S1" }], "speaker_roles": { "S1": "nurse" }, "analysis_type": "summary" }),
        );
        assert!(bad_role.unwrap_err().starts_with("speaker_roles.S1"));
    }

    #[test]
    fn outgoing_text_is_redacted_only_when_asked() {
        let job = parse(json!({
            "text": "علی رضایی، موبایل ۰۹۱۲۱۲۳۴۵۶۷، سرفه از یک هفته پیش",
            "analysis_type": "symptoms",
            "patient_context": { "name": "علی رضایی", "history": "آسم؛ تماس: ali@example.com", "medications": ["سالبوتامول"] }
        }))
        .unwrap();
        let sent = job.outgoing(true);
        assert_eq!(sent.text, "[NAME]، موبایل [PHONE]، سرفه از یک هفته پیش");
        assert_eq!(sent.history.as_deref(), Some("آسم؛ تماس: [EMAIL]"));
        assert_eq!(sent.counts.total(), 3);
        let user = prompt::user_message(&sent.text, sent.context.as_ref(), sent.history.as_deref(), &sent.medications);
        assert!(!user.contains("رضایی") && !user.contains("0912") && !user.contains("۰۹۱۲"), "{user}");
        assert_eq!(job.outgoing(false).text, job.text);
    }

    #[test]
    fn result_schemas_convert_for_openapi() {
        for (name, schema) in MedicalAnalysisJob::result_schemas() {
            let converted: Result<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, _> = serde_json::from_value(schema);
            assert!(converted.is_ok(), "{name}: {:?}", converted.err());
        }
    }
}
