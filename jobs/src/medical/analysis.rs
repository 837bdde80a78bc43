//! One job's conversation with the provider: the structured request
//! (`json_schema`, falling back to `json_object`), the check of each
//! answer, the one correction request, and what it all cost.

use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CompletionUsage, CreateChatCompletionRequest, ResponseFormat, ResponseFormatJsonSchema,
};
use serde_json::{json, Value};

use super::llm::{self, LlmClient, LlmError};
use super::{prompt, redact, schema, AnalysisType, Language, MedicalAnalysisJob, PatientContext};
use crate::JobError;

/// Output budget of the structured analyses (a SOAP note of a long visit).
const ANALYSIS_MAX_TOKENS: u32 = 2_000;
const GENERATE_MAX_TOKENS: u32 = 512;

/// What leaves for the provider: text and context, redacted when asked.
pub(super) struct Outgoing {
    pub(super) text: String,
    /// For a conversation: who speaks, for the system message.
    pub(super) conversation: Option<String>,
    pub(super) history: Option<String>,
    pub(super) medications: Vec<String>,
    pub(super) context: Option<PatientContext>,
    pub(super) counts: redact::Counts,
}

impl MedicalAnalysisJob {
    pub(super) fn outgoing(&self, redact: bool) -> Outgoing {
        let mut counts = redact::Counts::default();
        let names: Vec<String> = self.patient_context.as_ref().and_then(|c| c.name.clone()).into_iter().collect();
        let mut clean = |text: &str| if redact { redact::redact(text, &names, &mut counts) } else { text.to_string() };
        let context = self.patient_context.as_ref();
        Outgoing {
            text: clean(&self.input_text()),
            conversation: self.conversation_note(),
            history: context.and_then(|c| c.history.as_deref()).map(&mut clean),
            medications: context.and_then(|c| c.medications.as_ref()).map(|m| m.iter().map(|d| clean(d)).collect()).unwrap_or_default(),
            context: self.patient_context.clone(),
            counts,
        }
    }
}

/// One job's conversation with the provider, and what it cost.
pub(super) struct Analysis<'a> {
    client: &'a LlmClient,
    kind: AnalysisType,
    pub(super) usage: CompletionUsage,
    pub(super) calls: u32,
    pub(super) provider_time: Duration,
    pub(super) format: &'static str,
    pub(super) finish_reason: Option<String>,
    pub(super) model: Option<String>,
}

impl<'a> Analysis<'a> {
    pub(super) fn new(client: &'a LlmClient, kind: AnalysisType) -> Self {
        Self {
            client,
            kind,
            usage: CompletionUsage::default(),
            calls: 0,
            provider_time: Duration::ZERO,
            format: "text",
            finish_reason: None,
            model: None,
        }
    }

    fn request(
        &self,
        messages: Vec<ChatCompletionRequestMessage>,
        max_tokens: u32,
        temperature: f32,
        format: Option<ResponseFormat>,
    ) -> CreateChatCompletionRequest {
        let mut request = CreateChatCompletionRequest {
            model: self.client.config.model.clone(),
            messages,
            temperature: Some(temperature),
            response_format: format,
            ..Default::default()
        };
        // OpenAI's newer models only take `max_completion_tokens`; llama.cpp,
        // vLLM and Ollama read `max_tokens`.
        if self.client.config.base_url.contains("api.openai.com") {
            request.max_completion_tokens = Some(max_tokens);
        } else {
            #[allow(deprecated)]
            {
                request.max_tokens = Some(max_tokens);
            }
        }
        request
    }

    async fn call(&mut self, request: &CreateChatCompletionRequest) -> Result<llm::Completion, LlmError> {
        let completion = self.client.complete(request).await;
        self.calls += 1;
        let completion = completion?;
        self.provider_time += completion.took;
        if let Some(u) = &completion.usage {
            self.usage.prompt_tokens += u.prompt_tokens;
            self.usage.completion_tokens += u.completion_tokens;
            self.usage.total_tokens += u.total_tokens;
        }
        self.finish_reason = completion.finish_reason.clone();
        if !completion.model.is_empty() {
            self.model = Some(completion.model.clone());
        }
        Ok(completion)
    }

    pub(super) async fn generate(
        &mut self,
        sent: &Outgoing,
        language: Language,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
    ) -> Result<Value, JobError> {
        let messages = vec![
            ChatCompletionRequestSystemMessage::from(match &sent.conversation {
                Some(note) => format!("{}\n{note}", prompt::generate_system_message(language)),
                None => prompt::generate_system_message(language),
            })
            .into(),
            ChatCompletionRequestUserMessage::from(sent.text.as_str()).into(),
        ];
        let request = self.request(messages, max_tokens.unwrap_or(GENERATE_MAX_TOKENS), temperature.unwrap_or(0.7), None);
        for _ in 0..2 {
            let completion = self.call(&request).await.map_err(job_error)?;
            if !completion.content.trim().is_empty() {
                return Ok(json!({ "text": completion.content }));
            }
            llm::LLM_INVALID_OUTPUTS.with_label_values(&[&self.client.config.model]).inc();
        }
        Err(JobError::permanent("invalid_model_output", "the model gave an empty answer twice")
            .with_details(json!({ "model_calls": self.calls })))
    }

    pub(super) async fn structured(&mut self, sent: &Outgoing, language: Language) -> Result<Value, JobError> {
        let name = schema::schema_name(self.kind);
        let output_schema = schema::output_schema(self.kind);
        let model_schema = schema::for_model(&output_schema);
        let mut system = prompt::system_message(self.kind, language, name, &model_schema);
        if let Some(note) = &sent.conversation {
            system = format!("{system}\n{note}");
        }
        let user = prompt::user_message(&sent.text, sent.context.as_ref(), sent.history.as_deref(), &sent.medications);
        let mut messages: Vec<ChatCompletionRequestMessage> =
            vec![ChatCompletionRequestSystemMessage::from(system).into(), ChatCompletionRequestUserMessage::from(user).into()];
        let json_schema = || ResponseFormat::JsonSchema {
            json_schema: ResponseFormatJsonSchema {
                name: name.into(),
                description: None,
                schema: model_schema.clone(),
                strict: Some(true),
            },
        };
        let mut problems = Vec::new();
        for round in 0..2 {
            let use_schema = self.client.use_json_schema();
            self.format = if use_schema { "json_schema" } else { "json_object" };
            let format = if use_schema { json_schema() } else { ResponseFormat::JsonObject };
            let mut result = self.call(&self.request(messages.clone(), ANALYSIS_MAX_TOKENS, 0.2, Some(format))).await;
            if use_schema && result.as_ref().err().is_some_and(llm::refuses_json_schema) {
                // The provider does not do structured outputs: JSON mode,
                // with the schema in the prompt, and our own check.
                self.client.mark_schema_unsupported();
                self.format = "json_object";
                result = self.call(&self.request(messages.clone(), ANALYSIS_MAX_TOKENS, 0.2, Some(ResponseFormat::JsonObject))).await;
            }
            let completion = result.map_err(job_error)?;
            problems = match serde_json::from_str::<Value>(prompt::extract_json(&completion.content)) {
                Ok(value) => {
                    let problems = schema::validate(&value, &output_schema);
                    if problems.is_empty() {
                        return Ok(value);
                    }
                    problems
                }
                Err(e) => vec![format!("the answer is not a JSON object ({}, line {} column {})", category(&e), e.line(), e.column())],
            };
            if completion.finish_reason.as_deref() == Some("length") {
                problems.push(format!("the answer was cut off at {ANALYSIS_MAX_TOKENS} tokens"));
            }
            llm::LLM_INVALID_OUTPUTS.with_label_values(&[&self.client.config.model]).inc();
            if round == 0 {
                messages.push(ChatCompletionRequestAssistantMessage::from(completion.content.as_str()).into());
                messages.push(ChatCompletionRequestUserMessage::from(prompt::correction_message(&problems)).into());
            }
        }
        Err(JobError::permanent(
            "invalid_model_output",
            format!(
                "the model's answer did not match the `{}` schema, also after a correction request: {}",
                self.kind.as_str(),
                problems.join("; ")
            ),
        )
        .with_details(json!({ "problems": problems, "model_calls": self.calls, "response_format": self.format })))
    }
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "cut off",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong data",
        serde_json::error::Category::Io => "unreadable",
    }
}

fn job_error(e: LlmError) -> JobError {
    match e {
        LlmError::Retry { code, message, retry_after } => JobError::retry(code, message).retry_after(retry_after),
        LlmError::Permanent { code, message, status } => {
            JobError::permanent(code, message).with_details(json!({ "provider_status": status }))
        }
    }
}
