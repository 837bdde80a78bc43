//! The `transcription` job: an uploaded audio file to text with whisper.cpp.
//!
//! The file is read from storage and handed to the worker's speech engine
//! ([`engine::SpeechEngine`], implemented by peyk-speech), which decodes and
//! resamples it to 16 kHz mono and transcribes it with a model loaded at
//! start-up. A file that is not audio, uses a codec we cannot decode, is
//! broken or holds no speech fails at once: retrying cannot change it.
//! [`audio`] reads containers without decoding (the API's duration probe).

pub mod audio;
pub mod engine;
pub mod languages;
pub mod persian;
pub mod speakers;
pub mod transcript;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::storage::StorageError;
use crate::{Job, JobContext, JobError, ValidationErrors};
use engine::{Listener, TranscribeOptions};
pub use speakers::{SpeakerCount, SpeakerTurn};

const MAX_PROMPT_CHARS: usize = 2000;

/// Sets its flag when dropped: the running transcription sees it and stops.
#[derive(Default)]
struct AbortOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Timestamps {
    /// Start and end of each segment (a phrase or sentence).
    #[default]
    Segment,
    /// Also of each word (`words` in the result).
    Word,
}

/// How voice activity detection finds speech: OpenAI's `server_vad`
/// chunking parameters, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VadSettings {
    /// Speech probability from which a frame counts as speech, 0–1;
    /// default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Audio kept before and after each stretch of speech, in ms (0–2000);
    /// default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding_ms: Option<u32>,
    /// The silence that ends a stretch of speech, in ms (0–10000);
    /// default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_silence_ms: Option<u32>,
}

impl VadSettings {
    fn validate(&self, errors: &mut ValidationErrors) {
        if self.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            errors.add("vad_settings.threshold", "must be between 0 and 1");
        }
        if self.padding_ms.is_some_and(|ms| ms > 2000) {
            errors.add("vad_settings.padding_ms", "must be at most 2000");
        }
        if self.min_silence_ms.is_some_and(|ms| ms > 10_000) {
            errors.add("vad_settings.min_silence_ms", "must be at most 10000");
        }
    }
}

/// Payload of a `transcription` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionJob {
    /// An id returned by `POST /v1/files`.
    pub file_id: Uuid,
    /// ISO 639-1 code of the spoken language (`fa`, `en`, …); absent or
    /// `auto` detects it (multilingual models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "fa")]
    pub language: Option<String>,
    /// Initial prompt: vocabulary and style to expect, e.g. drug names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Translate to English instead of transcribing.
    #[serde(default)]
    pub translate: bool,
    #[serde(default)]
    pub timestamps: Timestamps,
    /// A model the workers have loaded (e.g. `base`, `tiny.en`,
    /// `large-v3-turbo`); absent: the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Sampling temperature 0–1; absent: whisper's default with fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Voice activity detection: transcribe only the stretches with speech
    /// (faster on recordings with pauses; no text invented for silence).
    /// Absent: on for recordings of 30 s and more (the worker's
    /// `PEYK_WHISPER_VAD_MIN_SECONDS`), where the worker has the VAD model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad: Option<bool>,
    /// How voice activity detection finds speech, where it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad_settings: Option<VadSettings>,
    /// Each text token's log-probability in the result (`logprobs`), as
    /// OpenAI's `include[]=logprobs` gives them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    /// Persian transcripts: Persian `ی`/`ک` for Arabic look-alikes, the
    /// zero-width non-joiner where Persian spelling needs it (`می‌شود`,
    /// `کتاب‌ها`), Persian `؟ ، ؛` and their spacing, digits as `digits`
    /// says. Absent: on. Other languages are left as Whisper wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    /// The digits of a normalised Persian transcript; default `persian`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digits: Option<persian::Digits>,
    /// Label who spoke when (diarization): each segment and word gets
    /// `speaker` (`S1`, `S2`… in order of first appearance), the result
    /// gets `speaker_turns`, and the text, srt and vtt formats show `[S1]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub speakers: bool,
    /// Fewest speakers to find, 1–10; default 1. Needs `speakers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub min_speakers: Option<u32>,
    /// Most speakers to find, 1–10; default 4. Needs `speakers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub max_speakers: Option<u32>,
}

impl TranscriptionJob {
    fn language_code(&self) -> Option<String> {
        self.language.as_deref().filter(|l| *l != "auto").map(str::to_lowercase)
    }

    fn options(&self) -> TranscribeOptions {
        TranscribeOptions {
            model: self.model.clone(),
            language: self.language_code(),
            prompt: self.prompt.clone().filter(|p| !p.trim().is_empty()),
            translate: self.translate,
            words: self.timestamps == Timestamps::Word,
            temperature: self.temperature,
            vad: self.vad,
            vad_settings: self.vad_settings.unwrap_or_default(),
            logprobs: self.logprobs,
            speakers: self.speakers.then(|| self.speaker_count()),
        }
    }

    fn speaker_count(&self) -> SpeakerCount {
        let min = self.min_speakers.map_or(speakers::DEFAULT_MIN_SPEAKERS, |n| n as usize);
        let max = self.max_speakers.map_or(speakers::DEFAULT_MAX_SPEAKERS.max(min), |n| n as usize);
        SpeakerCount { min, max }
    }
}

impl Job for TranscriptionJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "transcription";
    const SENSITIVE: bool = true;
    const DEFAULT_MAX_ATTEMPTS: i32 = 3;
    const RESULT_FIELDS: &'static [&'static str] = &[
        "text",
        "language",
        "language_probability",
        "duration",
        "speech_duration",
        "segments",
        "words",
        "model",
        "device",
        "processing_seconds",
        "real_time_factor",
        "task",
        "truncated",
        "logprobs",
        "speaker_turns",
    ];
    /// Hours of audio on a CPU worker take a long time; the lease keeps a
    /// running job claimed, so this only bounds a stuck one.
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(language) = self.language_code() {
            if languages::name_of(&language).is_none() {
                errors.add(
                    "language",
                    format!("`{language}` is not a language Whisper knows; use an ISO 639-1 code such as fa or en, or auto"),
                );
            }
        }
        if self.prompt.as_ref().is_some_and(|p| p.chars().count() > MAX_PROMPT_CHARS) {
            errors.add("prompt", format!("must be at most {MAX_PROMPT_CHARS} characters"));
        }
        if let Some(model) = &self.model {
            let valid = !model.is_empty() && model.len() <= 64 && model.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                errors.add("model", "must be a model name such as base, tiny.en or large-v3-turbo");
            }
        }
        if self.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            errors.add("temperature", "must be between 0 and 1");
        }
        if let Some(settings) = &self.vad_settings {
            if self.vad == Some(false) {
                errors.add("vad_settings", "voice activity detection is off (`vad`: false)");
            }
            settings.validate(&mut errors);
        }
        let most = speakers::MOST_SPEAKERS as u32;
        for (field, value) in [("min_speakers", self.min_speakers), ("max_speakers", self.max_speakers)] {
            match value {
                Some(_) if !self.speakers => errors.add(field, "needs `speakers`: true"),
                Some(n) if !(1..=most).contains(&n) => errors.add(field, format!("must be between 1 and {most}")),
                _ => {}
            }
        }
        if let (Some(min), Some(max)) = (self.min_speakers, self.max_speakers) {
            if min > max {
                errors.add("min_speakers", "must not be more than max_speakers");
            }
        }
        errors.into_result()
    }

    fn file_ids(&self) -> Vec<(&'static str, Uuid)> {
        vec![("file_id", self.file_id)]
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let speech = ctx.clients.speech.clone().ok_or_else(|| {
            // A worker without models should not serve this queue; another may.
            JobError::retry("no_models", "this worker has no Whisper model loaded")
        })?;
        // Fetched into a mapped temporary file, not onto the heap: the decoded
        // samples are the only large thing this job holds in memory.
        let data = ctx.clients.files.fetch(ctx.tenant_id, self.file_id).await.map_err(|e| match e {
            StorageError::NotFound(_) => JobError::permanent("file_not_found", format!("file {} does not exist (deleted?)", self.file_id)),
            other => JobError::retry("storage_unavailable", other.to_string()),
        })?;
        let options = self.options();
        let live_digits = self.persian_digits(self.language_code().as_deref().unwrap_or(""), self.translate);
        let (segment, published) = publish_segments(ctx, live_digits).await;
        let listener = Listener { progress: Box::new(ctx.progress_reporter()), segment };
        let cores = speech.reserve_cores().await;
        // Dropping this future (cancel, attempt timeout) stops whisper.cpp,
        // which runs on a blocking thread that dropping alone would not stop.
        let abort = AbortOnDrop::default();
        let abort_flag = abort.0.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _cores = cores;
            speech.transcribe_file(&data, &options, listener, abort_flag)
        })
        .await;
        drop(abort);
        // Every segment is in the live stream before the outcome is stored,
        // so a reader that sees the job end has seen all of them.
        let _ = published.await;
        if let Err(e) = ctx.clients.backbone.queue.end_live(ctx.job_id).await {
            tracing::debug!(error = %e, "could not shorten the live stream's life");
        }
        let mut transcript = outcome.map_err(|e| JobError::retry("worker_panic", format!("transcription crashed: {e}")))??;
        if let Some(digits) = self.persian_digits(&transcript.language, transcript.task == "translate") {
            transcript.normalize_persian(digits);
        }
        serde_json::to_value(transcript).map_err(|e| JobError::permanent("result_encoding", e.to_string()))
    }
}

impl TranscriptionJob {
    /// The digits to normalise a transcript in `language` with, or `None`
    /// where it is not normalised (not Persian, a translation, or
    /// `normalize: false`).
    fn persian_digits(&self, language: &str, translated: bool) -> Option<persian::Digits> {
        (self.normalize != Some(false) && language == "fa" && !translated).then(|| self.digits.unwrap_or_default())
    }
}

/// Where a transcription's segments go as they are decoded: the job's live
/// stream (`peyk_queue::queue::live`), through a channel, because whisper.cpp
/// calls back on its own thread. Persian segments are normalised on the way
/// when the job named Persian (a detected language is known only at the
/// end; the final record is normalised either way). Publishing is best
/// effort: the live view may miss a segment when Redis is down, the result
/// never does. The handle ends once the last segment is out.
async fn publish_segments(
    ctx: &JobContext,
    digits: Option<persian::Digits>,
) -> (Box<dyn FnMut(transcript::LiveSegment) + Send>, tokio::task::JoinHandle<()>) {
    let queue = ctx.clients.backbone.queue.clone();
    let job_id = ctx.job_id;
    // A new attempt starts over: readers drop what earlier ones published.
    let attempt = serde_json::json!({ "attempt": ctx.attempt }).to_string();
    if let Err(e) = queue.publish_live(job_id, "attempt", &attempt).await {
        tracing::debug!(error = %e, "could not publish to the live stream");
    }
    let (sender, mut segments) = tokio::sync::mpsc::unbounded_channel::<transcript::LiveSegment>();
    let published = tokio::spawn(async move {
        while let Some(mut segment) = segments.recv().await {
            if let Some(digits) = digits {
                segment.text = persian::normalize_segment(&segment.text, digits);
            }
            let data = serde_json::to_string(&segment).unwrap_or_default();
            if let Err(e) = queue.publish_live(job_id, "segment", &data).await {
                tracing::debug!(error = %e, "could not publish a segment to the live stream");
            }
        }
    });
    (Box::new(move |segment| drop(sender.send(segment))), published)
}
