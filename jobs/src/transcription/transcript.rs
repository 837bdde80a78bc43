//! A finished transcription (what the job stores as its result) and the
//! download formats: json, text, srt, vtt and verbose_json, the last in
//! OpenAI's shape so that its SDKs read it unchanged.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::persian::{self, Digits};
use super::speakers::SpeakerTurn;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Segment {
    pub id: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Mean log-probability of the segment's text tokens.
    pub avg_logprob: f64,
    /// Whisper's probability that the segment holds no speech.
    pub no_speech_prob: f64,
    /// Who said it (`S1`, `S2`…), when the job asked for `speakers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// One text token and its log-probability, in OpenAI's shape: `bytes` are
/// the token's own (a token may end inside a Persian letter, which `token`
/// then shows as U+FFFD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

/// A segment as it is decoded, before the transcript is complete (the
/// `segment` events of `GET /v1/jobs/{id}/events`): the final record's
/// segment `id` will have the same times and text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveSegment {
    pub id: usize,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
    /// Who said it, when the job asked for `speakers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// The result of a `transcription` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transcript {
    pub text: String,
    /// ISO 639-1 code, detected or as asked.
    pub language: String,
    /// Probability of the detected language; absent when it was not detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_probability: Option<f64>,
    /// Seconds of audio.
    pub duration: f64,
    /// Seconds of speech that voice activity detection kept and Whisper
    /// heard; absent when it did not run (`vad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_duration: Option<f64>,
    pub segments: Vec<Segment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
    /// Which model and device produced it, and how fast.
    pub model: String,
    pub device: String,
    pub processing_seconds: f64,
    /// Processing time over audio duration (below 1 is faster than real time).
    pub real_time_factor: f64,
    /// `transcribe` or `translate`.
    pub task: String,
    /// The file ended before its header said it would (an interrupted
    /// upload or recording): the transcript covers what was there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Each text token's log-probability, when the job asked (`logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// Who spoke when, when the job asked for `speakers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_turns: Option<Vec<SpeakerTurn>>,
}

/// The formats `GET /v1/jobs/{id}/transcript` and the OpenAI endpoint serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
    /// OpenAI's speaker-labelled JSON (`Transcript::diarized_json`).
    DiarizedJson,
}

impl TranscriptFormat {
    pub const NAMES: &'static str = "json, text, srt, verbose_json, vtt, diarized_json";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            "diarized_json" => Self::DiarizedJson,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson | Self::DiarizedJson => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

impl Transcript {
    /// Persian spelling, punctuation and digits ([`persian::normalize`])
    /// for the text and each segment; letters and digits for each word.
    pub fn normalize_persian(&mut self, digits: Digits) {
        self.text = persian::normalize(&self.text, digits);
        for segment in &mut self.segments {
            segment.text = persian::normalize_segment(&segment.text, digits);
        }
        for word in self.words.iter_mut().flatten() {
            word.word = persian::characters(&word.word, digits);
        }
    }

    /// The document in `format`.
    pub fn render(&self, format: TranscriptFormat) -> String {
        match format {
            TranscriptFormat::Json => {
                let mut body = serde_json::json!({ "text": self.text });
                if let Some(logprobs) = &self.logprobs {
                    body["logprobs"] = serde_json::to_value(logprobs).unwrap_or_default();
                }
                if self.speaker_turns.is_some() {
                    body["segments"] = self.diarized_json()["segments"].take();
                }
                body.to_string()
            }
            TranscriptFormat::Text if self.speaker_turns.is_some() => self.text_by_speaker(),
            TranscriptFormat::Text => format!("{}\n", self.text),
            TranscriptFormat::Srt => self.srt(),
            TranscriptFormat::Vtt => self.vtt(),
            TranscriptFormat::VerboseJson => self.verbose_json().to_string(),
            TranscriptFormat::DiarizedJson => self.diarized_json().to_string(),
        }
    }

    /// A cue's text, after its speaker's label when there is one.
    fn cue(segment: &Segment) -> String {
        match &segment.speaker {
            Some(speaker) => format!("[{speaker}] {}", cue_text(&segment.text)),
            None => cue_text(&segment.text),
        }
    }

    fn srt(&self) -> String {
        let mut out = String::new();
        for (n, segment) in self.segments.iter().enumerate() {
            out.push_str(&format!("{}\n{} --> {}\n{}\n\n", n + 1, clock(segment.start, ','), clock(segment.end, ','), Self::cue(segment)));
        }
        out
    }

    fn vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for segment in &self.segments {
            out.push_str(&format!("{} --> {}\n{}\n\n", clock(segment.start, '.'), clock(segment.end, '.'), Self::cue(segment)));
        }
        out
    }

    /// OpenAI's `verbose_json`: language as a lowercase English name, and
    /// segment fields its SDKs expect (seek, tokens, temperature…).
    pub fn verbose_json(&self) -> serde_json::Value {
        let segments: Vec<serde_json::Value> = self
            .segments
            .iter()
            .map(|s| {
                let mut segment = serde_json::json!({
                    "id": s.id, "seek": 0, "start": s.start, "end": s.end, "text": s.text,
                    "tokens": [], "temperature": 0.0, "avg_logprob": s.avg_logprob,
                    "compression_ratio": 0.0, "no_speech_prob": s.no_speech_prob,
                });
                if let Some(speaker) = &s.speaker {
                    segment["speaker"] = speaker.as_str().into();
                }
                segment
            })
            .collect();
        let mut body = serde_json::json!({
            "task": self.task,
            "language": language_name(&self.language),
            "duration": self.duration,
            "text": self.text,
            "segments": segments,
        });
        if let Some(words) = &self.words {
            body["words"] = serde_json::to_value(words).unwrap_or_default();
        }
        if let Some(logprobs) = &self.logprobs {
            body["logprobs"] = serde_json::to_value(logprobs).unwrap_or_default();
        }
        if let Some(turns) = &self.speaker_turns {
            body["speaker_turns"] = serde_json::to_value(turns).unwrap_or_default();
        }
        body
    }
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn clock(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60, millis % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// A cue's text on one line: a blank line would end the cue early, and
/// `-->` inside it would be read as a timing line.
fn cue_text(text: &str) -> String {
    let one_line: Vec<&str> = text.split_whitespace().collect();
    one_line.join(" ").replace("-->", "->")
}

/// OpenAI answers `verbose_json` with the language's English name.
fn language_name(code: &str) -> String {
    super::languages::name_of(code).unwrap_or(code).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transcript {
        Transcript {
            text: "Hello there. General Kenobi.".into(),
            language: "en".into(),
            language_probability: None,
            duration: 3725.5,
            speech_duration: None,
            segments: vec![
                Segment {
                    id: 0,
                    start: 0.0,
                    end: 1.5,
                    text: " Hello there.".into(),
                    avg_logprob: -0.2,
                    no_speech_prob: 0.01,
                    speaker: None,
                },
                Segment {
                    id: 1,
                    start: 3723.25,
                    end: 3725.5,
                    text: " General\n\nKenobi --> end".into(),
                    avg_logprob: -0.3,
                    no_speech_prob: 0.02,
                    speaker: None,
                },
            ],
            words: None,
            model: "tiny.en".into(),
            device: "cpu".into(),
            processing_seconds: 1.0,
            real_time_factor: 0.1,
            task: "transcribe".into(),
            truncated: false,
            logprobs: None,
            speaker_turns: None,
        }
    }

    #[test]
    fn srt_numbers_cues_from_one_with_comma_milliseconds() {
        let srt = sample().render(TranscriptFormat::Srt);
        assert_eq!(srt, "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:02:03,250 --> 01:02:05,500\nGeneral Kenobi -> end\n\n");
    }

    #[test]
    fn vtt_starts_with_its_signature_and_uses_dots() {
        let vtt = sample().render(TranscriptFormat::Vtt);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"), "{vtt}");
    }

    #[test]
    fn verbose_json_names_the_language_in_english() {
        let body = sample().verbose_json();
        assert_eq!(body["language"], "english");
        assert_eq!(body["segments"][1]["start"], 3723.25);
        assert_eq!(body["task"], "transcribe");
    }

    #[test]
    fn persian_normalisation_covers_text_segments_and_words() {
        let mut transcript = sample();
        transcript.text = "بيمار مي گويد 3 روز".into();
        transcript.segments[0].text = " بيمار مي گويد".into();
        transcript.words = Some(vec![Word { word: " بيمار".into(), start: 0.0, end: 0.5, probability: 0.9, speaker: None }]);
        transcript.normalize_persian(Digits::Latin);
        assert_eq!(transcript.text, "بیمار می\u{200c}گوید 3 روز");
        assert_eq!(transcript.segments[0].text, " بیمار می\u{200c}گوید");
        assert_eq!(transcript.words.unwrap()[0].word, " بیمار");
    }

    #[test]
    fn speaker_labels_show_in_every_format() {
        let mut transcript = sample();
        transcript.segments.insert(
            1,
            Segment { id: 1, start: 1.6, end: 3.0, text: " How are you?".into(), avg_logprob: -0.1, no_speech_prob: 0.0, speaker: None },
        );
        transcript.segments[2].id = 2;
        transcript.assign_speakers(vec![
            SpeakerTurn { speaker: "S1".into(), start: 0.0, end: 3.1 },
            SpeakerTurn { speaker: "S2".into(), start: 3723.0, end: 3725.5 },
        ]);
        assert_eq!(transcript.render(TranscriptFormat::Text), "[S1] Hello there. How are you?\n[S2] General Kenobi --> end\n");
        assert!(transcript.render(TranscriptFormat::Srt).contains("00:00:01,500\n[S1] Hello there.\n"));
        assert!(transcript.render(TranscriptFormat::Vtt).contains("01:02:05.500\n[S2] General Kenobi -> end\n"));
        let json: serde_json::Value = serde_json::from_str(&transcript.render(TranscriptFormat::Json)).unwrap();
        assert_eq!(json["segments"][2]["speaker"], "S2");
        assert_eq!(transcript.verbose_json()["segments"][0]["speaker"], "S1");
        assert_eq!(transcript.verbose_json()["speaker_turns"][1]["start"], 3723.0);
        let diarized = transcript.diarized_json();
        assert_eq!(
            diarized["segments"][1],
            serde_json::json!({"type": "transcript.text.segment", "id": "seg_001", "start": 1.6, "end": 3.0, "text": "How are you?", "speaker": "S1"})
        );
        assert_eq!(diarized["task"], "transcribe");
        assert_eq!(diarized["usage"]["type"], "duration");
    }

    #[test]
    fn every_format_name_parses() {
        for name in TranscriptFormat::NAMES.split(", ") {
            assert!(TranscriptFormat::parse(name).is_some(), "{name}");
        }
        assert_eq!(TranscriptFormat::parse("docx"), None);
    }
}
