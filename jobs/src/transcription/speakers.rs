//! Speaker labels on a transcript: the worker's diarization finds who spoke
//! when ([`SpeakerTurn`]s); each segment and word then takes the speaker
//! it overlaps most, and the formats show it (`[S1]` in text, srt and vtt).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::transcript::Transcript;

/// Speakers a job expects when it does not say (`min_speakers`, `max_speakers`).
pub const DEFAULT_MIN_SPEAKERS: usize = 1;
pub const DEFAULT_MAX_SPEAKERS: usize = 4;
/// Most speakers a job may ask for.
pub const MOST_SPEAKERS: usize = 10;

/// How many speakers a recording may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerCount {
    pub min: usize,
    pub max: usize,
}

/// One stretch of one speaker's speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpeakerTurn {
    /// `S1`, `S2`…, numbered in order of first appearance.
    pub speaker: String,
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
}

/// Seconds of `turn` inside `start..end`.
fn overlap(turn: &SpeakerTurn, start: f64, end: f64) -> f64 {
    (turn.end.min(end) - turn.start.max(start)).max(0.0)
}

/// The speaker of `start..end`: the one whose turns overlap it most; for a
/// stretch no turn touches (whisper's times are coarser than the turns),
/// the speaker of the nearest turn.
fn speaker_of(turns: &[SpeakerTurn], start: f64, end: f64) -> Option<String> {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for turn in turns {
        let seconds = overlap(turn, start, end);
        if seconds > 0.0 {
            match totals.iter_mut().find(|(s, _)| *s == turn.speaker) {
                Some(total) => total.1 += seconds,
                None => totals.push((&turn.speaker, seconds)),
            }
        }
    }
    if let Some((speaker, _)) = totals.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        return Some(speaker.to_string());
    }
    let middle = (start + end) / 2.0;
    let distance = |t: &SpeakerTurn| if middle < t.start { t.start - middle } else { (middle - t.end).max(0.0) };
    turns.iter().min_by(|a, b| distance(a).total_cmp(&distance(b))).map(|t| t.speaker.clone())
}

impl Transcript {
    /// Labels each segment and word with its speaker and keeps the turns.
    pub fn assign_speakers(&mut self, turns: Vec<SpeakerTurn>) {
        for segment in &mut self.segments {
            segment.speaker = speaker_of(&turns, segment.start, segment.end);
        }
        for word in self.words.iter_mut().flatten() {
            word.speaker = speaker_of(&turns, word.start, word.end);
        }
        self.speaker_turns = Some(turns);
    }

    /// The transcript as lines of one speaker each, `[S1] …`: consecutive
    /// segments of one speaker share a line.
    pub fn text_by_speaker(&self) -> String {
        let mut lines: Vec<(String, String)> = Vec::new();
        for segment in &self.segments {
            let speaker = segment.speaker.clone().unwrap_or_default();
            // One line per turn: a segment's own line breaks would split it.
            let text = segment.text.split_whitespace().collect::<Vec<_>>().join(" ");
            match lines.last_mut() {
                Some((last, line)) if *last == speaker => {
                    line.push(' ');
                    line.push_str(&text);
                }
                _ => lines.push((speaker, text)),
            }
        }
        lines.iter().map(|(speaker, line)| format!("[{speaker}] {line}\n")).collect()
    }

    /// OpenAI's `diarized_json`: the text, and each segment with its speaker.
    pub fn diarized_json(&self) -> serde_json::Value {
        let segments: Vec<serde_json::Value> = self
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({
                    "type": "transcript.text.segment", "id": format!("seg_{:03}", s.id),
                    "start": s.start, "end": s.end, "text": s.text.trim(),
                    "speaker": s.speaker.clone().unwrap_or_default(),
                })
            })
            .collect();
        serde_json::json!({
            "task": self.task,
            "duration": self.duration,
            "text": self.text,
            "segments": segments,
            "usage": { "type": "duration", "seconds": self.duration.ceil() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: &str, start: f64, end: f64) -> SpeakerTurn {
        SpeakerTurn { speaker: speaker.into(), start, end }
    }

    #[test]
    fn a_stretch_takes_the_speaker_it_overlaps_most_or_the_nearest() {
        let turns = [turn("S1", 0.0, 2.0), turn("S2", 2.5, 4.0), turn("S1", 4.2, 5.0)];
        assert_eq!(speaker_of(&turns, 0.0, 2.4).as_deref(), Some("S1"));
        assert_eq!(speaker_of(&turns, 1.5, 4.0).as_deref(), Some("S2"));
        // S1 twice (1.0 + 0.8 s) outweighs S2 (1.5 s).
        assert_eq!(speaker_of(&turns, 1.0, 5.0).as_deref(), Some("S1"));
        // In a pause: the nearest turn.
        assert_eq!(speaker_of(&turns, 2.3, 2.45).as_deref(), Some("S2"));
        assert_eq!(speaker_of(&turns, 2.05, 2.15).as_deref(), Some("S1"));
        assert_eq!(speaker_of(&[], 0.0, 1.0), None);
    }
}
