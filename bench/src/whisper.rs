//! `peyk-bench-whisper FILE [RUNS]`: times Peyk's speech engine alone (decode,
//! whisper.cpp, the transcript) on one file, as a transcription job calls it,
//! without the API or the queue: the models and threads come from the
//! worker's settings (`PEYK_WHISPER_MODELS`, `PEYK_WHISPER_THREADS`,
//! `PEYK_WHISPER_FLASH_ATTN`, `PEYK_WHISPER_VAD_MODEL`…), the model and
//! language from `MODEL` and `LANGUAGE` (unset: detected), voice activity
//! detection from `VAD` (`true`/`false`; unset: the worker's default).
//! Prints each run's seconds and the text. With `SPEAKERS=true`, also
//! times labelling the speakers alone (diarization, `PEYK_SPEAKER_MODEL`)
//! on the decoded audio and prints the turns.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use peyk_jobs::transcription::engine::{Listener, SpeechEngine, TranscribeOptions};
use peyk_jobs::transcription::SpeakerCount;
use peyk_speech::engine::{SpeechConfig, SpeechModels};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: peyk-bench-whisper FILE [RUNS]"))?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3).max(1);
    let data = std::fs::read(&path)?;
    let models = SpeechModels::load(&SpeechConfig::from_env()?)?;
    let options = TranscribeOptions {
        model: std::env::var("MODEL").ok(),
        language: std::env::var("LANGUAGE").ok().filter(|l| !l.is_empty()),
        vad: std::env::var("VAD").ok().filter(|v| !v.is_empty()).map(|v| v == "true"),
        ..Default::default()
    };
    let mut text = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let transcript = models
            .transcribe_file(&data, &options, Listener::deaf(), Arc::new(AtomicBool::new(false)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("seconds: {:.3}", started.elapsed().as_secs_f64());
        text = transcript.text;
    }
    println!("text: {text}");
    if std::env::var("SPEAKERS").is_ok_and(|v| v == "true") {
        let audio = peyk_speech::decode::decode(&data, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        let count = SpeakerCount { min: 1, max: 4 };
        for _ in 0..runs {
            let started = Instant::now();
            let turns = models.speaker_turns(&audio.samples, &[], count).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let minutes = audio.samples.len() as f64 / 16_000.0 / 60.0;
            println!("speakers seconds: {seconds:.3} ({:.3} per audio minute), {} turns", seconds / minutes, turns.len());
            if runs == 1 || std::env::var("SHOW_TURNS").is_ok() {
                for turn in &turns {
                    println!("{:8.2} {:8.2} {}", turn.start, turn.end, turn.speaker);
                }
            }
        }
    }
    Ok(())
}
