//! What the transcription job asks of a worker's speech engine. The engine
//! itself (whisper.cpp, libopus, the resampler) is `peyk_speech::SpeechModels`,
//! which the worker hands in through [`crate::SharedClients`]: behind this
//! trait, neither this crate nor the API that depends on it compiles or
//! links any of that.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;

use super::transcript::{LiveSegment, Transcript};
use crate::JobError;

/// What one transcription asks for.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    pub model: Option<String>,
    /// ISO 639-1 code; `None` detects it.
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub translate: bool,
    pub words: bool,
    pub temperature: Option<f32>,
    /// Transcribe only the stretches with speech; `None`: the worker's
    /// default (on from `PEYK_WHISPER_VAD_MIN_SECONDS` of audio).
    pub vad: Option<bool>,
    pub vad_settings: super::VadSettings,
    /// Each text token's log-probability in the transcript.
    pub logprobs: bool,
    /// Label the speakers (diarization), expecting this many.
    pub speakers: Option<super::SpeakerCount>,
}

/// What a running transcription tells as it goes: its progress (0–100),
/// and each segment as soon as it is decoded (`GET /v1/jobs/{id}/events`).
pub struct Listener {
    pub progress: Box<dyn FnMut(i16) + Send>,
    pub segment: Box<dyn FnMut(LiveSegment) + Send>,
}

impl Listener {
    /// Hears nothing (benchmarks, tests).
    pub fn deaf() -> Self {
        Self { progress: Box::new(|_| {}), segment: Box::new(|_| {}) }
    }
}

/// A worker's loaded speech models.
pub trait SpeechEngine: Send + Sync {
    /// The names of the models this worker loaded (`GET /v1/models`).
    fn models(&self) -> Vec<String>;

    /// Waits until the worker has cores free for one more transcription;
    /// the transcription runs while the returned permit is held.
    fn reserve_cores(&self) -> BoxFuture<'_, OwnedSemaphorePermit>;

    /// Decodes an uploaded file and transcribes it. Blocking and CPU-heavy:
    /// call it from `spawn_blocking`. Stops, answering `aborted`, once
    /// `abort` is set: a cancelled or timed-out job must not keep its cores.
    /// A file that is not usable audio fails permanently with the audio
    /// error's code.
    fn transcribe_file(
        &self,
        file: &[u8],
        options: &TranscribeOptions,
        listener: Listener,
        abort: Arc<AtomicBool>,
    ) -> Result<Transcript, JobError>;
}
