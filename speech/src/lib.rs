//! `peyk-speech`: what a worker needs to transcribe. [`decode`] turns an
//! upload into 16 kHz mono samples (Symphonia, libopus for Opus, rubato);
//! [`engine`] runs whisper.cpp on them, [`vad`] cuts long recordings to
//! their speech first, [`cpu`] checks the build against the CPU and [`gpu`]
//! finds the GPUs a CUDA build can use, [`speakers`] labels who spoke when. The transcription job in peyk-jobs
//! reaches it only through `peyk_jobs::transcription::engine::SpeechEngine`,
//! so the API, which depends on peyk-jobs alone, never builds or links
//! whisper.cpp or libopus.

pub mod cpu;
pub mod decode;
pub mod engine;
pub mod gpu;
mod logs;
pub mod speakers;
pub mod vad;

pub use engine::{available_cores, SpeechConfig, SpeechModels};
