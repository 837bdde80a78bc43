//! Voice activity detection: Silero VAD (whisper.cpp's port) finds the
//! stretches with speech; only those, joined by short pauses, go to
//! Whisper. Long recordings with pauses transcribe faster, and Whisper
//! cannot invent text for silence it never sees.
//!
//! whisper.cpp can do this inside `whisper_full` (`params.vad`), but 1.8.3
//! writes its segment list through the context's default state, which
//! whisper-rs never creates (it loads models `_no_state`): that path
//! dereferences a null pointer. So Peyk cuts the audio itself with
//! whisper.cpp's standalone VAD API and maps the transcript's times back
//! (`Speech::original_time`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use peyk_jobs::transcription::VadSettings;
use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use crate::decode::SAMPLE_RATE;

/// Silence put between two kept stretches, so that Whisper still hears a
/// pause (and ends a sentence) where one was cut out.
const JOINING_PAUSE_SECONDS: f64 = 0.2;
/// Kept around each detected stretch: Silero's edges can clip a word's
/// first or last phoneme.
const SPEECH_PAD_MS: i32 = 200;

/// The Silero model, and a few loaded contexts to reuse: a context holds
/// the model's weights and an LSTM state, and is used by one job at a time.
pub struct VoiceDetector {
    model: PathBuf,
    threads: i32,
    idle: Mutex<Vec<WhisperVadContext>>,
}

impl VoiceDetector {
    /// Loads the model once to check it, and keeps that context.
    pub fn load(model: &Path, threads: usize) -> anyhow::Result<Self> {
        let detector = Self { model: model.to_path_buf(), threads: threads as i32, idle: Mutex::new(Vec::new()) };
        let context = detector.context()?;
        detector.give_back(context);
        Ok(detector)
    }

    fn context(&self) -> anyhow::Result<WhisperVadContext> {
        if let Some(context) = self.idle.lock().expect("vad pool poisoned").pop() {
            return Ok(context);
        }
        let mut params = WhisperVadContextParams::new();
        params.set_n_threads(self.threads);
        params.set_use_gpu(false); // a few ms of work per minute of audio
        let path = self.model.to_str().ok_or_else(|| anyhow::anyhow!("VAD model path {} is not UTF-8", self.model.display()))?;
        WhisperVadContext::new(path, params).map_err(|e| anyhow::anyhow!("loading the Silero VAD model from {}: {e}", self.model.display()))
    }

    fn give_back(&self, context: WhisperVadContext) {
        self.idle.lock().expect("vad pool poisoned").push(context);
    }

    /// The stretches of `samples` with speech, as sample ranges, in order;
    /// `settings` override the defaults (a job's `vad_settings`).
    pub fn speech_ranges(&self, samples: &[f32], settings: &VadSettings) -> anyhow::Result<Vec<(usize, usize)>> {
        let mut context = self.context()?;
        let mut params = WhisperVadParams::new();
        params.set_speech_pad(settings.padding_ms.map_or(SPEECH_PAD_MS, |ms| ms as i32));
        if let Some(threshold) = settings.threshold {
            params.set_threshold(threshold);
        }
        if let Some(ms) = settings.min_silence_ms {
            params.set_min_silence_duration(ms as i32);
        }
        let found = context.segments_from_samples(params, samples);
        self.give_back(context);
        let segments = found.map_err(|e| anyhow::anyhow!("voice activity detection failed: {e}"))?;
        let to_sample = |centiseconds: f32| ((centiseconds as f64 / 100.0) * SAMPLE_RATE as f64).round().max(0.0) as usize;
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for segment in segments {
            let (start, end) = (to_sample(segment.start).min(samples.len()), to_sample(segment.end).min(samples.len()));
            match ranges.last_mut() {
                // Padding can make neighbours overlap: one stretch then.
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ if end > start => ranges.push((start, end)),
                _ => {}
            }
        }
        Ok(ranges)
    }
}

/// The speech of a recording, cut out and joined, with the way back to the
/// recording's own times.
pub struct Speech {
    pub samples: Vec<f32>,
    /// (start in `samples`, start in the recording, length), in samples.
    pieces: Vec<(usize, usize, usize)>,
}

impl Speech {
    pub fn join(recording: &[f32], ranges: &[(usize, usize)]) -> Self {
        let pause = (JOINING_PAUSE_SECONDS * SAMPLE_RATE as f64) as usize;
        let mut samples = Vec::with_capacity(ranges.iter().map(|(s, e)| e - s + pause).sum());
        let mut pieces = Vec::with_capacity(ranges.len());
        for (i, &(start, end)) in ranges.iter().enumerate() {
            if i > 0 {
                samples.resize(samples.len() + pause, 0.0);
            }
            pieces.push((samples.len(), start, end - start));
            samples.extend_from_slice(&recording[start..end]);
        }
        Self { samples, pieces }
    }

    /// Seconds of speech kept.
    pub fn seconds(&self) -> f64 {
        self.pieces.iter().map(|p| p.2).sum::<usize>() as f64 / SAMPLE_RATE as f64
    }

    /// A time in the joined speech (whisper's centiseconds) as a time in
    /// the recording: inside a piece, shifted by where the piece came from;
    /// in a joining pause, the end of the piece before it.
    pub fn original_time(&self, centiseconds: i64) -> i64 {
        let at = (centiseconds.max(0) as usize) * SAMPLE_RATE as usize / 100;
        let index = self.pieces.partition_point(|p| p.0 <= at).saturating_sub(1);
        let Some(&(joined_start, recording_start, length)) = self.pieces.get(index) else { return centiseconds };
        let offset = (at - joined_start.min(at)).min(length);
        ((recording_start + offset) * 100 / SAMPLE_RATE as usize) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_map_back_to_where_the_speech_was() {
        let rate = SAMPLE_RATE as usize;
        let recording = vec![0.5f32; 60 * rate];
        // Speech at 10–12 s and 40–45 s.
        let speech = Speech::join(&recording, &[(10 * rate, 12 * rate), (40 * rate, 45 * rate)]);
        assert_eq!(speech.samples.len(), 7 * rate + rate / 5);
        assert_eq!(speech.seconds(), 7.0);
        assert_eq!(speech.original_time(0), 1000);
        assert_eq!(speech.original_time(150), 1150);
        // In the pause after the first piece: its end.
        assert_eq!(speech.original_time(210), 1200);
        // The second piece starts at 2.2 s of the joined speech.
        assert_eq!(speech.original_time(220), 4000);
        assert_eq!(speech.original_time(520), 4300);
        // Past the end: the end of the last piece.
        assert_eq!(speech.original_time(10_000), 4500);
    }
}
