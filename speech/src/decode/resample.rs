//! Down-mix to mono and streaming resampling to 16 kHz.

use super::*;

/// Collects decoded audio: averages channels, resamples to 16 kHz as it goes.
#[derive(Default)]
pub(super) struct Sink {
    /// 16 kHz mono output so far.
    pub(super) out: Vec<f32>,
    /// Interleaved samples of the packet being added (reused).
    pub(super) scratch: Vec<f32>,
    /// The packet down-mixed to mono (reused).
    pub(super) mono: Vec<f32>,
    /// `None` until the first samples, and while the source is 16 kHz.
    pub(super) resampler: Option<StreamResampler>,
    /// The rate of the samples arriving now (0 before the first).
    pub(super) rate: u32,
    pub(super) first_rate: u32,
    pub(super) first_channels: usize,
    /// Seconds of source audio taken in.
    pub(super) source_seconds: f64,
}

impl Sink {
    pub(super) fn push(&mut self, interleaved: &[f32], channels: usize, rate: u32) -> Result<(), AudioError> {
        downmix(interleaved, channels, &mut self.mono);
        self.push_mono(channels, rate)
    }

    /// [`Sink::push`] for samples already in `self.scratch`.
    pub(super) fn push_scratch(&mut self, channels: usize, rate: u32) -> Result<(), AudioError> {
        downmix(&self.scratch, channels, &mut self.mono);
        self.push_mono(channels, rate)
    }

    pub(super) fn push_mono(&mut self, channels: usize, rate: u32) -> Result<(), AudioError> {
        if self.mono.is_empty() {
            return Ok(());
        }
        if rate != self.rate {
            if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
                return Err(AudioError::Corrupted(format!("implausible sample rate {rate} Hz")));
            }
            if self.rate == 0 {
                self.first_rate = rate;
                self.first_channels = channels;
            }
            // A chained stream or a codec switching rates mid-file: finish
            // what the old rate produced, then carry on at the new one.
            if let Some(old) = self.resampler.take() {
                old.finish(&mut self.out)?;
            }
            if rate != SAMPLE_RATE {
                self.resampler = Some(StreamResampler::new(rate)?);
            }
            self.rate = rate;
        }
        self.source_seconds += self.mono.len() as f64 / f64::from(rate);
        match &mut self.resampler {
            Some(resampler) => resampler.push(&self.mono, &mut self.out),
            None => {
                self.out.extend_from_slice(&self.mono);
                Ok(())
            }
        }
    }

    /// Silence in place of a packet that did not decode, at the current
    /// rate (or `fallback_rate` before anything decoded).
    pub(super) fn push_silence(&mut self, seconds: f64, fallback_rate: u32) -> Result<(), AudioError> {
        let rate = if self.rate != 0 { self.rate } else { fallback_rate };
        if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) || seconds.is_nan() || seconds <= 0.0 {
            return Ok(());
        }
        let channels = if self.first_channels != 0 { self.first_channels } else { 1 };
        self.mono.clear();
        self.mono.resize((seconds * f64::from(rate)).round() as usize, 0.0);
        self.push_mono(channels, rate)
    }

    pub(super) fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        if let Some(resampler) = self.resampler.take() {
            resampler.finish(&mut self.out)?;
        }
        // Resampling can overshoot full scale a little (Gibbs ringing), and
        // float sources may exceed it; Whisper expects -1..1.
        for sample in &mut self.out {
            *sample = sample.clamp(-1.0, 1.0);
        }
        Ok(self.out)
    }
}

/// Averages interleaved channels into `mono`; NaN and infinities (possible
/// in float WAVs) become 0 so they cannot poison the resampler.
pub(super) fn downmix(interleaved: &[f32], channels: usize, mono: &mut Vec<f32>) {
    let finite = |s: f32| if s.is_finite() { s } else { 0.0 };
    mono.clear();
    match channels {
        0 => {}
        1 => mono.extend(interleaved.iter().map(|&s| finite(s))),
        _ => {
            let scale = 1.0 / channels as f32;
            mono.extend(interleaved.chunks_exact(channels).map(|frame| finite(frame.iter().map(|&s| finite(s)).sum::<f32>() * scale)));
        }
    }
}

/// rubato's FFT resampler fed as packets arrive, in fixed input chunks.
///
/// `Resampler::process_all` would do the chunking, delay trimming and flush
/// for us, but needs the whole clip in memory at the source rate.
pub(super) struct StreamResampler {
    pub(super) fft: Fft<f32>,
    pub(super) rate_in: u32,
    /// Input not yet resampled (less than a chunk after each push).
    pub(super) pending: Vec<f32>,
    /// One chunk of output.
    pub(super) chunk: Vec<f32>,
    /// Output frames still to drop: the resampler's delay.
    pub(super) to_trim: usize,
    pub(super) frames_in: u64,
    /// Output frames kept so far.
    pub(super) frames_out: u64,
}

impl StreamResampler {
    /// Target input chunk, in frames. With one sub-chunk the FFT spans the
    /// whole chunk, which puts the anti-aliasing cutoff close to 8 kHz.
    const CHUNK: usize = 2048;

    pub(super) fn new(rate_in: u32) -> Result<Self, AudioError> {
        // rubato makes the FFT a multiple of the reduced rate ratio
        // (441:160 for 44.1 kHz, 3:1 for 48 kHz) and reports its delay as
        // half the output FFT size, rounded down. An odd size would leave the
        // output half a sample late, so round the chunk to an even number of
        // ratio blocks: 44.1 kHz gives FFTs of 2646:960, 48 kHz 2052:684.
        let rate_out = SAMPLE_RATE as usize;
        let block_in = rate_in as usize / gcd(rate_in as usize, rate_out);
        let blocks = Self::CHUNK.div_ceil(block_in).next_multiple_of(2);
        let fft =
            Fft::<f32>::new_custom(rate_in as usize, rate_out, blocks * block_in, 1, 1, WindowFunction::BlackmanHarris2, FixedSync::Input)
                .map_err(|e| AudioError::Corrupted(format!("cannot resample from {rate_in} Hz: {e}")))?;
        let chunk = vec![0.0; fft.output_frames_max()];
        let to_trim = fft.output_delay();
        Ok(StreamResampler { fft, rate_in, pending: Vec::with_capacity(Self::CHUNK * 2), chunk, to_trim, frames_in: 0, frames_out: 0 })
    }

    pub(super) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.frames_in += input.len() as u64;
        self.pending.extend_from_slice(input);
        let mut start = 0;
        loop {
            let need = self.fft.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            self.process(start, need, None, out)?;
            start += need;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Resamples `pending[start..start + len]`; with `partial`, only that
    /// many frames are real and the resampler pads the rest with silence.
    pub(super) fn process(&mut self, start: usize, len: usize, partial: Option<usize>, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let failed = |e: &dyn std::fmt::Display| AudioError::Corrupted(format!("resampling: {e}"));
        let input = InterleavedSlice::new(&self.pending[start..start + len], 1, len).map_err(|e| failed(&e))?;
        let capacity = self.chunk.len();
        let mut output = InterleavedSlice::new_mut(&mut self.chunk, 1, capacity).map_err(|e| failed(&e))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = self.fft.process_into_buffer(&input, &mut output, indexing.as_ref()).map_err(|e| failed(&e))?;
        let produced = &self.chunk[..produced.min(capacity)];
        let trim = self.to_trim.min(produced.len());
        self.to_trim -= trim;
        out.extend_from_slice(&produced[trim..]);
        self.frames_out += (produced.len() - trim) as u64;
        Ok(())
    }

    /// Flushes the tail so the output has round(frames_in * 16000 / rate_in)
    /// frames, lined up with the input.
    pub(super) fn finish(mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let expected = (self.frames_in as f64 * f64::from(SAMPLE_RATE) / f64::from(self.rate_in)).round() as u64;
        let rest = self.pending.len();
        if rest > 0 {
            self.process(0, rest, Some(rest), out)?;
        }
        self.pending.clear();
        // Push silence through until the delayed tail has come out. Bounded:
        // each call yields about a chunk, and the delay is under two chunks.
        let mut rounds = 0;
        while self.frames_out < expected && rounds < 64 {
            self.process(0, 0, Some(0), out)?;
            rounds += 1;
        }
        let excess = self.frames_out.saturating_sub(expected) as usize;
        out.truncate(out.len().saturating_sub(excess));
        Ok(())
    }
}

pub(super) fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
