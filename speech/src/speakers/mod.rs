//! Speaker labels (diarization): who spoke when. The speech of a recording
//! is cut into 0.8 s windows every 0.4 s; a speaker encoder (a d-vector
//! LSTM, ONNX, run by ONNX Runtime) turns each window into a voice
//! embedding. Four windows (1.6 s) averaged are a unit: single windows are
//! too short to tell voices apart reliably (one real speaker's windows are
//! as little as 0.3 alike), units are not. Alike units are one speaker
//! ([`clustering`]); each window takes the speaker whose units it is most
//! like, and each 10 ms of speech the speaker of the window centred nearest
//! to it. The transcript's segments and words then take the
//! speaker they overlap most (`Transcript::assign_speakers`).
//!
//! ONNX Runtime is loaded at run time from the library file that
//! `infrastructure/models/fetch.sh speakers` takes out of PyPI's onnxruntime
//! wheel: nothing of it is linked, so a worker without it still builds and
//! transcribes (jobs asking for speakers then fail with a clear reason).

mod clustering;
mod features;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::Tensor;
use peyk_jobs::transcription::{SpeakerCount, SpeakerTurn};

use crate::decode::SAMPLE_RATE;
use features::{LogMel, HOP, N_MELS};

/// The encoder's input: 80 frames (0.8 s), every 40 (0.4 s).
const WINDOW_FRAMES: usize = 80;
const WINDOW_STEP: usize = 40;
/// Windows per encoder call.
const BATCH: usize = 64;
const FRAMES_PER_SECOND: f64 = SAMPLE_RATE as f64 / HOP as f64;

/// The loaded speaker encoder.
pub struct SpeakerLabeler {
    /// ONNX Runtime sessions run one call at a time.
    encoder: Mutex<Session>,
    mel: LogMel,
}

impl SpeakerLabeler {
    /// Loads ONNX Runtime from `runtime` (once per process) and the encoder
    /// from `model`, to run on `threads` threads.
    pub fn load(runtime: &Path, model: &Path, threads: usize) -> anyhow::Result<Self> {
        load_runtime(runtime)?;
        let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("loading the speaker encoder {}: {e}", model.display());
        let mut builder = Session::builder().map_err(|e| failed(&e))?.with_intra_threads(threads.max(1)).map_err(|e| failed(&e))?;
        let encoder = builder.commit_from_file(model).map_err(|e| failed(&e))?;
        Ok(Self { encoder: Mutex::new(encoder), mel: LogMel::new() })
    }

    /// Who spoke when in `samples` (16 kHz), given its stretches of speech
    /// (sample ranges, in order): turns in order, speakers named `S1`,
    /// `S2`… in order of first appearance.
    pub fn turns(&self, samples: &[f32], speech: &[(usize, usize)], count: SpeakerCount) -> anyhow::Result<Vec<SpeakerTurn>> {
        let frames = self.mel.frames(samples);
        let regions: Vec<(usize, usize)> =
            speech.iter().map(|&(start, end)| (start / HOP, (end / HOP).min(frames.len()))).filter(|(start, end)| end > start).collect();
        let windows = windows(&regions, frames.len());
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self.embed(&frames, &windows)?;
        let units = units(&windows, &embeddings);
        let unit_labels = clustering::cluster(&units, count, clustering::SAME_VOICE);
        let centroids = clustering::centroids(&units, &unit_labels);
        let nearest: Vec<usize> = embeddings.iter().map(|e| clustering::nearest(e, &centroids)).collect();
        let mut labels = clustering::in_order_of_appearance(&nearest);
        smooth(&windows, &mut labels);
        Ok(turns(&regions, &windows, &labels))
    }

    /// One unit-length embedding per window.
    fn embed(&self, frames: &[[f32; N_MELS]], windows: &[Window]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut encoder = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        let mut embeddings = Vec::with_capacity(windows.len());
        for batch in windows.chunks(BATCH) {
            let mut input = Vec::with_capacity(batch.len() * WINDOW_FRAMES * N_MELS);
            for window in batch {
                for frame in &frames[window.start..window.start + WINDOW_FRAMES] {
                    input.extend_from_slice(frame);
                }
            }
            let shape = vec![batch.len() as i64, WINDOW_FRAMES as i64, N_MELS as i64];
            let tensor = Tensor::from_array((shape, input)).map_err(|e| anyhow::anyhow!("speaker encoder input: {e}"))?;
            let outputs = encoder.run(ort::inputs![tensor]).map_err(|e| anyhow::anyhow!("speaker encoder: {e}"))?;
            let (shape, values) = outputs[0].try_extract_tensor::<f32>().map_err(|e| anyhow::anyhow!("speaker encoder output: {e}"))?;
            let dim = shape.last().copied().unwrap_or(0) as usize;
            anyhow::ensure!(dim > 0 && values.len() == dim * batch.len(), "speaker encoder answered shape {shape:?}");
            embeddings.extend(values.chunks(dim).map(unit));
        }
        Ok(embeddings)
    }
}

/// ONNX Runtime's library, loaded once per process (it installs itself
/// globally; a second load would be refused).
fn load_runtime(path: &Path) -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            ort::init_from(path)
                .map(|builder| {
                    builder.with_name("peyk").commit();
                })
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("loading ONNX Runtime from {}: {e}", path.display()))
}

fn unit(values: &[f32]) -> Vec<f32> {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    values.iter().map(|v| v / norm).collect()
}

/// An encoder window: its first frame, the speech region it belongs to,
/// and the frame its centre is at.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start: usize,
    region: usize,
    centre: usize,
}

/// Windows over each region of speech (frame ranges): every `WINDOW_STEP`
/// frames, the last one ending with the region; a region shorter than a
/// window gets one window centred on it (some of the silence around it).
fn windows(regions: &[(usize, usize)], frame_count: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    if frame_count < WINDOW_FRAMES {
        return windows;
    }
    let last_start = frame_count - WINDOW_FRAMES;
    for (region, &(start, end)) in regions.iter().enumerate() {
        if end - start <= WINDOW_FRAMES {
            let first = ((start + end) / 2).saturating_sub(WINDOW_FRAMES / 2).min(last_start);
            windows.push(Window { start: first, region, centre: (start + end) / 2 });
            continue;
        }
        let mut first = start;
        loop {
            let first_frame = first.min(end - WINDOW_FRAMES);
            windows.push(Window { start: first_frame, region, centre: first_frame + WINDOW_FRAMES / 2 });
            if first_frame + WINDOW_FRAMES >= end {
                break;
            }
            first += WINDOW_STEP;
        }
    }
    windows
}

/// Windows per unit, and the step between units (in windows).
const UNIT_WINDOWS: usize = 4;
const UNIT_STEP: usize = 2;

/// The mean (unit length) of every `UNIT_WINDOWS` consecutive windows of
/// one region, every `UNIT_STEP`; a region with fewer windows is one unit.
fn units(windows: &[Window], embeddings: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut units = Vec::new();
    let mut first = 0;
    while first < windows.len() {
        let region = windows[first].region;
        let end = first + windows[first..].iter().take_while(|w| w.region == region).count();
        let mut start = first;
        loop {
            let stop = (start + UNIT_WINDOWS).min(end);
            let dim = embeddings[start].len();
            let mut sum = vec![0.0f32; dim];
            for e in &embeddings[start..stop] {
                sum.iter_mut().zip(e).for_each(|(s, v)| *s += v);
            }
            units.push(unit(&sum));
            if stop == end {
                break;
            }
            start += UNIT_STEP;
        }
        first = end;
    }
    units
}

/// A window of one speaker between two windows of another, in the same
/// stretch of speech, is taken as that other speaker: turns shorter than
/// 0.4 s do not happen in conversation, single-window errors do.
fn smooth(windows: &[Window], labels: &mut [usize]) {
    for i in 1..windows.len().saturating_sub(1) {
        let same_region = windows[i - 1].region == windows[i].region && windows[i + 1].region == windows[i].region;
        if same_region && labels[i - 1] == labels[i + 1] && labels[i] != labels[i - 1] {
            labels[i] = labels[i - 1];
        }
    }
}

/// Each frame of speech takes the label of the window of its region
/// centred nearest to it; runs of one label are turns.
fn turns(regions: &[(usize, usize)], windows: &[Window], labels: &[usize]) -> Vec<SpeakerTurn> {
    let mut turns: Vec<SpeakerTurn> = Vec::new();
    for (region, &(start, end)) in regions.iter().enumerate() {
        let own: Vec<(usize, usize)> =
            windows.iter().zip(labels).filter(|(w, _)| w.region == region).map(|(w, &label)| (w.centre, label)).collect();
        if own.is_empty() {
            continue;
        }
        let mut next = 0;
        for frame in start..end {
            while next + 1 < own.len() && own[next + 1].0.abs_diff(frame) <= own[next].0.abs_diff(frame) {
                next += 1;
            }
            let speaker = format!("S{}", own[next].1 + 1);
            let (from, to) = (frame as f64 / FRAMES_PER_SECOND, (frame + 1) as f64 / FRAMES_PER_SECOND);
            match turns.last_mut() {
                Some(last) if last.speaker == speaker && frame > start => last.end = to,
                _ => turns.push(SpeakerTurn { speaker, start: from, end: to }),
            }
        }
    }
    for turn in &mut turns {
        turn.start = (turn.start * 100.0).round() / 100.0;
        turn.end = (turn.end * 100.0).round() / 100.0;
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_each_region_and_end_with_it() {
        // 0–2 s and 3–3.3 s of speech in 10 s.
        let windows = windows(&[(0, 200), (300, 330)], 1000);
        let starts: Vec<usize> = windows.iter().map(|w| w.start).collect();
        assert_eq!(starts, [0, 40, 80, 120, 275]);
        assert_eq!(windows[4].centre, 315);
        assert_eq!(windows[4].region, 1);
        // Less audio than one window: nothing to embed.
        assert!(super::windows(&[(0, 50)], 60).is_empty());
    }

    #[test]
    fn units_average_four_windows_of_one_region() {
        let windows = windows(&[(0, 200), (300, 330)], 1000);
        let axis = |i: usize| {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            v
        };
        let embeddings = vec![axis(0), axis(0), axis(1), axis(1), axis(2)];
        let units = units(&windows, &embeddings);
        // Windows 0–3 of the first region, then the second region's one window.
        assert_eq!(units.len(), 2);
        let half = 0.5f32.sqrt();
        assert!((units[0][0] - half).abs() < 1e-6 && (units[0][1] - half).abs() < 1e-6);
        assert_eq!(units[1], axis(2));
    }

    #[test]
    fn frames_follow_the_nearest_window_and_runs_become_turns() {
        let regions = [(0, 200), (300, 330)];
        let windows = windows(&regions, 1000);
        let mut labels = vec![0, 0, 1, 1, 1];
        let turns = turns(&regions, &windows, &labels);
        let got: Vec<(&str, f64, f64)> = turns.iter().map(|t| (t.speaker.as_str(), t.start, t.end)).collect();
        // Centres 40, 80, 120, 160: frames up to 100 are nearer 80 (ties go later).
        assert_eq!(got, [("S1", 0.0, 1.0), ("S2", 1.0, 2.0), ("S2", 3.0, 3.3)]);
        // A lone window of another speaker inside a region is smoothed away.
        labels = vec![0, 1, 0, 0, 1];
        smooth(&windows, &mut labels);
        assert_eq!(labels, [0, 0, 0, 0, 1]);
    }
}
