//! whisper.cpp (through whisper-rs): the models a worker loads once at
//! start-up and shares between the jobs it runs, each job with its own
//! decoding state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use futures::future::BoxFuture;
use peyk_jobs::env::{env_or, env_parse, EnvError};
use peyk_jobs::metrics;
use peyk_jobs::transcription::engine::{Listener, SpeechEngine, TranscribeOptions};
use peyk_jobs::transcription::transcript::{LiveSegment, Segment, TokenLogprob, Transcript, Word};
use peyk_jobs::transcription::{SpeakerCount, SpeakerTurn, VadSettings};
use peyk_jobs::JobError;
use tokio::sync::OwnedSemaphorePermit;

use crate::decode;
use crate::speakers::SpeakerLabeler;
use crate::vad::{Speech, VoiceDetector};

/// Which models to load and how to run them.
#[derive(Debug, Clone)]
pub struct SpeechConfig {
    /// Model name → ggml file.
    pub models: BTreeMap<String, PathBuf>,
    /// Used when a job names none; default: `base` if loaded, else the first.
    pub default_model: Option<String>,
    /// CPU threads per running transcription.
    pub threads: usize,
    /// Run on the GPU when the binary was built with `cuda`.
    pub use_gpu: bool,
    /// whisper.cpp's flash attention: its own default, but slower on the
    /// CPUs measured (README "Transcription speed"), so off unless set.
    pub flash_attention: bool,
    /// Run the encoder over the audio's length instead of a whole 30 s
    /// window when a recording (or its speech) is shorter (`fitted_encoder_frames`).
    pub fit_encoder: bool,
    pub gpu_device: i32,
    /// Silero VAD in whisper.cpp's format (`ggml-silero-*.bin`); without
    /// it, jobs that ask for `vad` fail and the default is off.
    pub vad_model: Option<PathBuf>,
    /// Recordings at least this long are cut to their speech unless a job
    /// says otherwise.
    pub vad_min_seconds: f64,
    /// The speaker encoder and ONNX Runtime's library, for jobs asking for
    /// `speakers`; without them, those jobs fail with `speakers_unavailable`.
    pub speaker_model: Option<PathBuf>,
    pub onnxruntime: Option<PathBuf>,
}

impl SpeechConfig {
    /// `PEYK_MODELS_DIR` (every `ggml-NAME.bin` in it, named NAME) plus
    /// `PEYK_WHISPER_MODELS` (`name=/path/file.bin,…`, which wins on a clash).
    /// The VAD model: `PEYK_WHISPER_VAD_MODEL`, else the newest
    /// `ggml-silero-*.bin` of `PEYK_MODELS_DIR`.
    pub fn from_env() -> Result<Self, EnvError> {
        let mut models = BTreeMap::new();
        let dir = env_or("PEYK_MODELS_DIR", "");
        let (mut vad_model, mut speaker_model, mut onnxruntime) = (None, None, None);
        if !dir.is_empty() {
            let (whisper, vad) = models_in(Path::new(&dir));
            models.extend(whisper);
            vad_model = vad;
            speaker_model = Some(Path::new(&dir).join(SPEAKER_MODEL_FILE)).filter(|p| p.is_file());
            onnxruntime = onnxruntime_in(Path::new(&dir));
        }
        for (setting, slot) in [("PEYK_SPEAKER_MODEL", &mut speaker_model), ("PEYK_ONNXRUNTIME_LIB", &mut onnxruntime)] {
            let value = env_or(setting, "");
            if !value.is_empty() {
                *slot = Some(PathBuf::from(value));
            }
        }
        let vad_setting = env_or("PEYK_WHISPER_VAD_MODEL", "");
        if !vad_setting.is_empty() {
            vad_model = Some(PathBuf::from(vad_setting));
        }
        for item in env_or("PEYK_WHISPER_MODELS", "").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, path)) = item.split_once('=') else {
                return Err(EnvError::new(format!("PEYK_WHISPER_MODELS: `{item}` is not name=path")));
            };
            models.insert(name.trim().to_string(), PathBuf::from(path.trim()));
        }
        let cores = available_cores();
        Ok(Self {
            models,
            default_model: Some(env_or("PEYK_WHISPER_DEFAULT_MODEL", "")).filter(|m| !m.is_empty()),
            threads: whisper_threads(env_parse("PEYK_WHISPER_THREADS", cores.min(8))?, cores),
            use_gpu: env_parse("PEYK_WHISPER_USE_GPU", true)?,
            flash_attention: env_parse("PEYK_WHISPER_FLASH_ATTN", false)?,
            fit_encoder: env_parse("PEYK_WHISPER_FIT_ENCODER", true)?,
            gpu_device: env_parse("PEYK_WHISPER_GPU_DEVICE", 0)?,
            vad_model,
            vad_min_seconds: env_parse("PEYK_WHISPER_VAD_MIN_SECONDS", 30.0)?,
            speaker_model,
            onnxruntime,
        })
    }
}

/// Threads per transcription: as asked, but never more than the cores this
/// process has (see `SpeechModels::cores` for why more only slows).
fn whisper_threads(asked: usize, cores: usize) -> usize {
    if asked > cores {
        tracing::warn!(asked, cores, "PEYK_WHISPER_THREADS is more than this process's cores; using {cores}");
    }
    asked.clamp(1, cores.max(1))
}

/// The cores this process may run on: its CPU affinity (`taskset`, a
/// container's cpuset) and its cgroup CPU quota, not the host's core count.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// whisper.cpp's name for its Silero files: `ggml-silero-v6.2.0.bin`.
const VAD_PREFIX: &str = "silero-";

/// The Whisper models in `dir`, its `ggml-NAME.bin` files (official names:
/// `ggml-base.bin`, `ggml-large-v3-turbo-q5_0.bin`…), and the newest of its
/// `ggml-silero-*.bin` VAD models (by name: versions sort).
fn models_in(dir: &Path) -> (Vec<(String, PathBuf)>, Option<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (Vec::new(), None) };
    let (vad, whisper): (Vec<_>, Vec<_>) = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_prefix("ggml-")?.strip_suffix(".bin")?.to_string();
            Some((name, path))
        })
        .partition(|(name, _)| name.starts_with(VAD_PREFIX));
    (whisper, vad.into_iter().map(|(_, path)| path).max())
}

/// `fetch.sh speakers`' name for the speaker encoder.
const SPEAKER_MODEL_FILE: &str = "speaker-dvector.int8.onnx";

/// ONNX Runtime's library in `dir` (`libonnxruntime.so.1.31.1`…), the
/// newest by name.
fn onnxruntime_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
        .max()
}

struct LoadedModel {
    context: WhisperContext,
    multilingual: bool,
}

/// Every loaded model; shared (read-only) by all running transcriptions.
pub struct SpeechModels {
    models: BTreeMap<String, LoadedModel>,
    default_model: String,
    threads: usize,
    /// `cpu` or `cuda:N`, for results and metrics.
    pub device: String,
    /// The worker's cores, as permits: a running transcription holds one
    /// per whisper thread. whisper.cpp's threads wait for each other at
    /// every step of the model (hundreds per second), spinning before they
    /// sleep; with more of them than cores, a waiting thread spins on the
    /// core that the thread it waits for needs, and everything slows many
    /// times over (the cause of the slow-machine test failures). So a worker
    /// never runs more whisper threads than it has cores: further jobs wait
    /// here for a free core instead.
    cores: Arc<tokio::sync::Semaphore>,
    vad: Option<VoiceDetector>,
    vad_min_seconds: f64,
    fit_encoder: bool,
    speakers: Option<SpeakerLabeler>,
}

impl SpeechModels {
    pub fn load(config: &SpeechConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !config.models.is_empty(),
            "no Whisper model configured: set PEYK_MODELS_DIR (a folder of ggml-*.bin files) or PEYK_WHISPER_MODELS; \
             infrastructure/models/fetch.sh fetches tiny.en and base"
        );
        // whisper.cpp logs ~70 lines per load to stderr; route them to tracing.
        crate::logs::install();
        crate::cpu::check()?;
        let gpus = crate::gpu::devices();
        let gpu = crate::gpu::choose(cfg!(feature = "cuda"), config.use_gpu, config.gpu_device, &gpus)?;
        if let Some(gpu) = gpu {
            tracing::info!(gpu = %gpu.name, card = %gpu.description, memory_mib = gpu.total_bytes >> 20, free_mib = gpu.free_bytes >> 20, "transcribing on the GPU");
        }
        let on_gpu = gpu.is_some();
        let device = if on_gpu { format!("cuda:{}", config.gpu_device) } else { "cpu".to_string() };
        let mut models = BTreeMap::new();
        for (name, path) in &config.models {
            let started = Instant::now();
            let mut params = WhisperContextParameters::default();
            params.use_gpu(on_gpu).gpu_device(config.gpu_device).flash_attn(config.flash_attention);
            let path_str = path.to_str().ok_or_else(|| anyhow::anyhow!("model path {} is not UTF-8", path.display()))?;
            let context = WhisperContext::new_with_params(path_str, params)
                .map_err(|e| anyhow::anyhow!("loading Whisper model `{name}` from {}: {e}", path.display()))?;
            let multilingual = context.is_multilingual();
            tracing::info!(model = %name, path = %path.display(), multilingual, %device, took_ms = started.elapsed().as_millis() as u64, "whisper model loaded");
            metrics::SPEECH_MODELS.with_label_values(&[name, &device]).set(1);
            models.insert(name.clone(), LoadedModel { context, multilingual });
        }
        let default_model = match &config.default_model {
            Some(name) if models.contains_key(name) => name.clone(),
            Some(name) => anyhow::bail!("PEYK_WHISPER_DEFAULT_MODEL={name} is not among the loaded models ({})", names(&models)),
            None if models.contains_key("base") => "base".into(),
            None => models.keys().next().cloned().unwrap_or_default(),
        };
        // On a GPU the threads only feed the device: no need to share cores.
        let cores = if on_gpu { usize::MAX >> 4 } else { available_cores().max(config.threads) };
        let vad = match &config.vad_model {
            Some(path) => {
                let detector = VoiceDetector::load(path, config.threads)?;
                tracing::info!(path = %path.display(), min_seconds = config.vad_min_seconds, "voice activity detection loaded");
                Some(detector)
            }
            None => None,
        };
        let speakers = match (&config.speaker_model, &config.onnxruntime) {
            (Some(model), Some(runtime)) => {
                let labeler = SpeakerLabeler::load(runtime, model, config.threads)?;
                tracing::info!(model = %model.display(), runtime = %runtime.display(), "speaker labels loaded");
                Some(labeler)
            }
            (Some(_), None) | (None, Some(_)) => {
                tracing::warn!("speaker labels need both PEYK_SPEAKER_MODEL and PEYK_ONNXRUNTIME_LIB (infrastructure/models/fetch.sh speakers); jobs asking for them will fail");
                None
            }
            (None, None) => None,
        };
        Ok(Self {
            models,
            default_model,
            threads: config.threads,
            device,
            cores: Arc::new(tokio::sync::Semaphore::new(cores)),
            vad,
            vad_min_seconds: config.vad_min_seconds,
            fit_encoder: config.fit_encoder,
            speakers,
        })
    }

    pub fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// Runs whisper on 16 kHz mono samples. Blocking and CPU-heavy: call it
    /// from `spawn_blocking`. `progress` gets whisper's percentage.
    ///
    /// Stops once `abort` is set, answering `aborted`: a cancelled or
    /// timed-out job must not keep its cores busy. whisper.cpp 1.8.3 looks
    /// at the flag between encoder passes and decoder steps, so the stop
    /// lands within one encoder pass (0.3 s for tiny.en on 2 cores).
    fn transcribe(
        &self,
        samples: &[f32],
        options: &TranscribeOptions,
        progress: impl FnMut(i32) + 'static,
        mut on_segment: Box<dyn FnMut(LiveSegment) + Send>,
        abort: Arc<AtomicBool>,
    ) -> Result<Transcript, JobError> {
        let started = Instant::now();
        let model_name = options.model.clone().unwrap_or_else(|| self.default_model.clone());
        let model = self.models.get(&model_name).ok_or_else(|| {
            JobError::permanent(
                "unknown_model",
                format!("model `{model_name}` is not loaded on this worker; loaded: {}", names(&self.models)),
            )
        })?;
        let duration = samples.len() as f64 / decode::SAMPLE_RATE as f64;
        let speech = self.speech_of(samples, duration, options)?;
        // What Whisper hears: the recording, or only its speech.
        let heard = speech.as_ref().map_or(samples, |speech| &speech.samples[..]);
        let at = |centiseconds: i64| speech.as_ref().map_or(centiseconds, |speech| speech.original_time(centiseconds));
        let audio_ctx = if self.fit_encoder { fitted_encoder_frames(heard.len()) } else { None };
        let mut state = model.context.create_state().map_err(whisper_failed)?;
        let (language, language_probability) = self.language_for(model, &model_name, &mut state, heard, audio_ctx, options)?;

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
        params.set_n_threads(self.threads as i32);
        if let Some(frames) = audio_ctx {
            params.set_audio_ctx(frames);
        }
        params.set_language(Some(&language));
        params.set_translate(options.translate);
        params.set_token_timestamps(options.words);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if let Some(prompt) = &options.prompt {
            params.set_initial_prompt(prompt);
        }
        if let Some(temperature) = options.temperature {
            params.set_temperature(temperature);
        }
        params.set_progress_callback_safe(progress);
        // whisper-rs 0.16's `set_abort_callback_safe` casts its user data to
        // the wrong type (it reads the box of a boxed closure as the closure),
        // so the callback answers garbage — "abort" — at once. The C callback
        // reads the flag itself; `abort` outlives `full`, so the pointer stays valid.
        unsafe extern "C" fn should_abort(flag: *mut std::ffi::c_void) -> bool {
            // SAFETY: the pointer is `Arc::as_ptr` of the `abort` held below for the whole call.
            unsafe { (*(flag as *const AtomicBool)).load(Ordering::Relaxed) }
        }
        // SAFETY: `should_abort` only reads the AtomicBool behind the pointer.
        unsafe {
            params.set_abort_callback(Some(should_abort));
            params.set_abort_callback_user_data(Arc::as_ptr(&abort) as *mut std::ffi::c_void);
        }
        // Each segment as whisper.cpp finishes it, at the recording's own times.
        let mut live = |id: usize, t0: i64, t1: i64, text: String| {
            on_segment(LiveSegment { id, start: at(t0) as f64 / 100.0, end: at(t1) as f64 / 100.0, text })
        };
        let mut sink: &mut dyn FnMut(usize, i64, i64, String) = &mut live;
        // SAFETY: `new_segments` only calls the closure behind the pointer,
        // which lives on this stack frame until after `full` returns.
        unsafe {
            params.set_new_segment_callback(Some(new_segments));
            params.set_new_segment_callback_user_data(&mut sink as *mut _ as *mut std::ffi::c_void);
        }
        let finished = state.full(params, heard);
        if abort.load(Ordering::Relaxed) {
            return Err(JobError::permanent("aborted", "the transcription was stopped"));
        }
        finished.map_err(whisper_failed)?;

        let eot = model.context.token_eot();
        let mut segments = Vec::new();
        let mut words = Vec::new();
        let mut logprobs = Vec::new();
        for segment in state.as_iter() {
            let mut logprob_sum = 0.0f64;
            let mut text_tokens = 0usize;
            for index in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(index) else { continue };
                // Ids at and above end-of-text are special (timestamps, language…).
                if token.token_id() >= eot {
                    continue;
                }
                let data = token.token_data();
                logprob_sum += data.plog as f64;
                text_tokens += 1;
                let bytes = token.to_bytes().unwrap_or_default();
                if options.words {
                    add_token_to_words(&mut words, bytes, at(data.t0), at(data.t1), data.p);
                }
                if options.logprobs {
                    let token = String::from_utf8_lossy(bytes).into_owned();
                    logprobs.push(TokenLogprob { token, logprob: data.plog as f64, bytes: bytes.to_vec() });
                }
            }
            let text = segment.to_str_lossy().map(|t| t.into_owned()).unwrap_or_default();
            segments.push(Segment {
                id: segments.len(),
                start: at(segment.start_timestamp()) as f64 / 100.0,
                end: at(segment.end_timestamp()) as f64 / 100.0,
                text,
                avg_logprob: if text_tokens == 0 { 0.0 } else { logprob_sum / text_tokens as f64 },
                no_speech_prob: segment.no_speech_probability() as f64,
                speaker: None,
            });
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>().trim().to_string();
        if text.is_empty() {
            return Err(JobError::permanent("no_speech", "no speech was recognised in the audio"));
        }
        let processing_seconds = started.elapsed().as_secs_f64();
        let real_time_factor = if duration > 0.0 { processing_seconds / duration } else { 0.0 };
        metrics::TRANSCRIBED_AUDIO.with_label_values(&[&model_name, &self.device]).inc_by(duration);
        metrics::TRANSCRIPTION_RTF.with_label_values(&[&model_name, &self.device]).observe(real_time_factor);
        Ok(Transcript {
            text,
            language,
            language_probability,
            duration,
            speech_duration: speech.as_ref().map(Speech::seconds),
            segments,
            words: options.words.then(|| words.into_iter().map(PartialWord::finish).filter(|w| !w.word.is_empty()).collect()),
            model: model_name,
            device: self.device.clone(),
            processing_seconds,
            real_time_factor,
            task: if options.translate { "translate" } else { "transcribe" }.into(),
            truncated: false,
            logprobs: options.logprobs.then_some(logprobs),
            speaker_turns: None,
        })
    }

    fn speaker_labeler(&self) -> Result<&SpeakerLabeler, JobError> {
        self.speakers.as_ref().ok_or_else(|| {
            JobError::permanent(
                "speakers_unavailable",
                "speaker labels were asked for, but this worker has no speaker model \
                 (PEYK_SPEAKER_MODEL and PEYK_ONNXRUNTIME_LIB, or infrastructure/models/fetch.sh speakers into PEYK_MODELS_DIR)",
            )
        })
    }

    /// Labels `transcript`'s speakers ([`Self::speaker_turns`]).
    fn label_speakers(&self, samples: &[f32], transcript: &mut Transcript, count: SpeakerCount) -> Result<(), JobError> {
        let started = Instant::now();
        let whisper_speech: Vec<(f64, f64)> = transcript.segments.iter().map(|s| (s.start, s.end)).collect();
        let turns = self.speaker_turns(samples, &whisper_speech, count)?;
        let seconds = started.elapsed().as_secs_f64();
        let speakers = turns.iter().map(|t| t.speaker.as_str()).collect::<std::collections::BTreeSet<_>>().len();
        tracing::info!(speakers, turns = turns.len(), took_ms = (seconds * 1000.0) as u64, "speakers labelled");
        metrics::SPEAKER_LABELLING_SECONDS.observe(seconds);
        transcript.assign_speakers(turns);
        transcript.processing_seconds += seconds;
        transcript.real_time_factor = if transcript.duration > 0.0 { transcript.processing_seconds / transcript.duration } else { 0.0 };
        Ok(())
    }

    /// Who spoke when in `samples`. The stretches of speech come from
    /// Silero VAD, cut tight (30 ms of padding: a turn should not reach into
    /// the pause after it), or, on a worker without it, are `whisper_speech`
    /// (the transcript's segments, in seconds).
    pub fn speaker_turns(&self, samples: &[f32], whisper_speech: &[(f64, f64)], count: SpeakerCount) -> Result<Vec<SpeakerTurn>, JobError> {
        let labeler = self.speaker_labeler()?;
        let rate = decode::SAMPLE_RATE as f64;
        let speech = match &self.vad {
            Some(detector) => {
                let tight = VadSettings { padding_ms: Some(30), ..VadSettings::default() };
                detector.speech_ranges(samples, &tight).map_err(|e| JobError::retry("vad_failed", e.to_string()))?
            }
            None => whisper_speech
                .iter()
                .map(|&(start, end)| ((start * rate) as usize, ((end * rate) as usize).min(samples.len())))
                .filter(|(start, end)| end > start)
                .collect(),
        };
        labeler.turns(samples, &speech, count).map_err(|e| JobError::retry("speakers_failed", e.to_string()))
    }

    /// With voice activity detection (asked for, or by default for long
    /// recordings): the recording's speech, cut out and joined; `None`:
    /// the whole recording.
    fn speech_of(&self, samples: &[f32], duration: f64, options: &TranscribeOptions) -> Result<Option<Speech>, JobError> {
        let wanted = options.vad.unwrap_or(self.vad.is_some() && duration >= self.vad_min_seconds);
        if !wanted {
            return Ok(None);
        }
        let Some(detector) = &self.vad else {
            return Err(JobError::permanent(
                "vad_unavailable",
                "voice activity detection was asked for, but this worker has no VAD model \
                 (PEYK_WHISPER_VAD_MODEL, or ggml-silero-*.bin in PEYK_MODELS_DIR: infrastructure/models/fetch.sh silero-vad)",
            ));
        };
        let ranges = detector.speech_ranges(samples, &options.vad_settings).map_err(|e| JobError::retry("vad_failed", e.to_string()))?;
        if ranges.is_empty() {
            return Err(JobError::permanent("no_speech", "no speech was found in the audio (voice activity detection)"));
        }
        Ok(Some(Speech::join(samples, &ranges)))
    }

    /// The language to decode in, and its probability when it was detected.
    /// English-only models can only do English; detection costs one extra
    /// encoder pass, so it runs only when the job did not say.
    ///
    /// With a fitted encoder (`audio_ctx`), detection runs over the same
    /// shortened window (`prime_encoder_window`).
    fn language_for(
        &self,
        model: &LoadedModel,
        model_name: &str,
        state: &mut WhisperState,
        samples: &[f32],
        audio_ctx: Option<i32>,
        options: &TranscribeOptions,
    ) -> Result<(String, Option<f64>), JobError> {
        match (&options.language, model.multilingual) {
            (Some(language), false) if language != "en" => Err(JobError::permanent(
                "unsupported_language",
                format!("model `{model_name}` is English-only and cannot transcribe `{language}`; use a multilingual model"),
            )),
            (Some(language), _) => Ok((language.clone(), None)),
            (None, false) => Ok(("en".into(), None)),
            (None, true) => {
                if let Some(frames) = audio_ctx {
                    let first_second = &samples[..samples.len().min(decode::SAMPLE_RATE as usize)];
                    prime_encoder_window(state, frames, first_second)?;
                }
                state.pcm_to_mel(samples, self.threads).map_err(whisper_failed)?;
                let (id, probabilities) = state.lang_detect(0, self.threads).map_err(whisper_failed)?;
                let language = whisper_rs::get_lang_str(id).unwrap_or("en").to_string();
                let probability = probabilities.get(id as usize).copied().unwrap_or(0.0) as f64;
                Ok((language, Some(probability)))
            }
        }
    }
}

impl SpeechEngine for SpeechModels {
    fn models(&self) -> Vec<String> {
        self.model_names()
    }

    fn reserve_cores(&self) -> BoxFuture<'_, OwnedSemaphorePermit> {
        let wanted = u32::try_from(self.threads).unwrap_or(u32::MAX);
        let cores = self.cores.clone();
        Box::pin(async move { cores.acquire_many_owned(wanted).await.expect("the core semaphore is never closed") })
    }

    fn transcribe_file(
        &self,
        file: &[u8],
        options: &TranscribeOptions,
        listener: Listener,
        abort: Arc<AtomicBool>,
    ) -> Result<Transcript, JobError> {
        let Listener { mut progress, segment } = listener;
        if options.speakers.is_some() {
            self.speaker_labeler()?; // before the work, not after it
        }
        let audio = decode::decode(file, None).map_err(|e| JobError::permanent(e.code(), e.to_string()))?;
        // Decoding is a few percent of the work; whisper reports the rest.
        progress(5);
        let progress = move |percent: i32| progress(5 + (percent.clamp(0, 100) as i16) * 95 / 100);
        let mut transcript = self.transcribe(&audio.samples, options, progress, segment, abort)?;
        transcript.truncated = audio.truncated;
        if let Some(count) = options.speakers {
            self.label_speakers(&audio.samples, &mut transcript, count)?;
        }
        Ok(transcript)
    }
}

/// whisper.cpp's new-segment callback: hands each new segment's index,
/// times (centiseconds) and text to the closure behind `user_data`.
/// whisper-rs' `set_segment_callback_safe` leaks its closure (and whatever
/// it holds) on every call, hence this one.
unsafe extern "C" fn new_segments(
    _: *mut whisper_rs_sys::whisper_context,
    state: *mut whisper_rs_sys::whisper_state,
    n_new: std::ffi::c_int,
    user_data: *mut std::ffi::c_void,
) {
    // SAFETY: whisper.cpp passes the state being decoded and the user data
    // set in `transcribe`: a `&mut dyn FnMut` that outlives the call.
    unsafe {
        let sink = &mut *(user_data as *mut &mut dyn FnMut(usize, i64, i64, String));
        let total = whisper_rs_sys::whisper_full_n_segments_from_state(state);
        for index in (total - n_new).max(0)..total {
            let text = whisper_rs_sys::whisper_full_get_segment_text_from_state(state, index);
            let text = if text.is_null() { String::new() } else { std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned() };
            let t0 = whisper_rs_sys::whisper_full_get_segment_t0_from_state(state, index);
            let t1 = whisper_rs_sys::whisper_full_get_segment_t1_from_state(state, index);
            sink(index as usize, t0, t1, text);
        }
    }
}

/// Sets the encoder window `lang_detect` will use. whisper.cpp 1.8.3 takes
/// it from the state's last `full` call (a fresh state: the whole 30 s) and
/// has no other way to set it; so a `full` call with that window is started
/// on a little audio and stopped by its encoder-begin callback, after the
/// window is set and before anything is encoded (a few ms: the mel of
/// `audio`). Detecting over the fitted window instead of a whole one took
/// jfk.wav from 2.25 s to about 1.5 s with base on two cores.
fn prime_encoder_window(state: &mut WhisperState, frames: i32, audio: &[f32]) -> Result<(), JobError> {
    unsafe extern "C" fn stop(
        _: *mut whisper_rs::WhisperSysContext,
        _: *mut whisper_rs::WhisperSysState,
        _: *mut std::ffi::c_void,
    ) -> bool {
        false
    }
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(1);
    params.set_language(Some("en"));
    params.set_audio_ctx(frames);
    params.set_print_progress(false);
    // SAFETY: `stop` touches nothing; no user data.
    unsafe { params.set_start_encoder_callback(Some(stop)) };
    state.full(params, audio).map(|_| ()).map_err(whisper_failed)
}

/// Encoder frames (20 ms each, 1,500 per 30 s window) for audio of
/// `samples` at 16 kHz, plus a margin of 64 (1.28 s), when that is less than
/// a whole window. Whisper pads every window to 30 s and encodes all of it;
/// for an 11 s clip most of that work is silence. Encoding only the audio's
/// length (whisper.cpp's `audio_ctx`) took base from 2.25 s to 0.9 s on
/// jfk.wav at the same words; without a margin the last word could be lost
/// or a `[BLANK_AUDIO]` invented (README "Transcription speed").
fn fitted_encoder_frames(samples: usize) -> Option<i32> {
    const WINDOW: usize = 1500;
    const MARGIN: usize = 64;
    let frames = samples.div_ceil(decode::SAMPLE_RATE as usize / 50) + MARGIN;
    (frames < WINDOW).then_some(frames as i32)
}

fn names(models: &BTreeMap<String, LoadedModel>) -> String {
    models.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn whisper_failed(e: whisper_rs::WhisperError) -> JobError {
    JobError::retry("whisper_failed", format!("whisper.cpp failed: {e}"))
}

/// A word being assembled from BPE tokens. Bytes, not text: a Persian
/// letter can be split across two tokens.
struct PartialWord {
    bytes: Vec<u8>,
    start: i64,
    end: i64,
    probability_sum: f64,
    tokens: usize,
}

impl PartialWord {
    fn finish(self) -> Word {
        Word {
            word: String::from_utf8_lossy(&self.bytes).trim().to_string(),
            start: self.start as f64 / 100.0,
            end: self.end as f64 / 100.0,
            probability: self.probability_sum / self.tokens.max(1) as f64,
            speaker: None,
        }
    }
}

/// A token that begins with a space starts a new word; others continue it.
fn add_token_to_words(words: &mut Vec<PartialWord>, bytes: &[u8], t0: i64, t1: i64, p: f32) {
    match words.last_mut() {
        Some(word) if !bytes.starts_with(b" ") => {
            word.bytes.extend_from_slice(bytes);
            word.end = t1;
            word.probability_sum += p as f64;
            word.tokens += 1;
        }
        _ => words.push(PartialWord { bytes: bytes.to_vec(), start: t0, end: t1, probability_sum: p as f64, tokens: 1 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_is_fitted_only_to_audio_shorter_than_a_window() {
        assert_eq!(fitted_encoder_frames(11 * 16_000), Some(550 + 64));
        assert_eq!(fitted_encoder_frames(1), Some(65));
        assert_eq!(fitted_encoder_frames(28 * 16_000), Some(1464));
        assert_eq!(fitted_encoder_frames(29 * 16_000), None); // 1,450 + 64: a whole window
        assert_eq!(fitted_encoder_frames(600 * 16_000), None);
    }

    #[test]
    fn words_are_joined_from_tokens_at_spaces() {
        let mut words = Vec::new();
        for (bytes, t0, t1) in [(&b" And"[..], 0, 30), (b" Amer", 40, 60), (b"icans", 60, 90), (b",", 90, 91)] {
            add_token_to_words(&mut words, bytes, t0, t1, 0.5);
        }
        let words: Vec<Word> = words.into_iter().map(PartialWord::finish).collect();
        assert_eq!(words.len(), 2);
        assert_eq!(words[1].word, "Americans,");
        assert_eq!((words[1].start, words[1].end), (0.4, 0.91));
    }

    #[test]
    fn a_letter_split_across_tokens_is_rejoined() {
        let letter = "س".as_bytes(); // two bytes
        let mut words = Vec::new();
        add_token_to_words(&mut words, &[b' ', letter[0]], 0, 10, 1.0);
        add_token_to_words(&mut words, &[letter[1]], 10, 20, 1.0);
        assert_eq!(words.into_iter().map(PartialWord::finish).next().unwrap().word, "س");
    }

    #[test]
    fn the_language_table_of_peyk_jobs_is_whisper_cpps() {
        use peyk_jobs::transcription::languages::LANGUAGES;
        let linked: Vec<(&str, &str)> = (0..=whisper_rs::get_lang_max_id())
            .map(|id| (whisper_rs::get_lang_str(id).unwrap(), whisper_rs::get_lang_str_full(id).unwrap()))
            .collect();
        assert_eq!(LANGUAGES, linked.as_slice());
    }

    #[test]
    fn model_files_are_named_after_their_ggml_file_name() {
        let dir = std::env::temp_dir().join(format!("peyk-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["ggml-base.bin", "ggml-large-v3-turbo-q5_0.bin", "notes.txt", "ggml-silero-v5.1.2.bin", "ggml-silero-v6.2.0.bin"] {
            std::fs::write(dir.join(file), b"").unwrap();
        }
        let (models, vad) = models_in(&dir);
        let mut names: Vec<String> = models.into_iter().map(|(name, _)| name).collect();
        names.sort();
        assert_eq!(names, ["base", "large-v3-turbo-q5_0"]);
        assert_eq!(vad, Some(dir.join("ggml-silero-v6.2.0.bin")));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
