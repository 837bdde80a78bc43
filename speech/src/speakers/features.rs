//! The speaker encoder's input: 40 log10 mel bands every 10 ms, exactly as
//! the encoder was trained on them (librosa's `melspectrogram` with a
//! 400-sample Hamming window in a 512-point FFT, no centring, power 2, the
//! Slaney mel scale and area normalisation, then `log10(x + 1e-10)`).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::decode::SAMPLE_RATE;

pub const N_MELS: usize = 40;
const N_FFT: usize = 512;
const WINDOW: usize = 400;
/// 10 ms: one frame of the encoder's input.
pub const HOP: usize = 160;
const N_BINS: usize = N_FFT / 2 + 1;

pub struct LogMel {
    fft: Arc<dyn RealToComplex<f32>>,
    /// The Hamming window, centred in the FFT's length.
    window: Vec<f32>,
    /// `N_MELS` rows of `N_BINS` weights.
    filters: Vec<Vec<f32>>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let offset = (N_FFT - WINDOW) / 2;
        let mut window = vec![0.0; N_FFT];
        for (i, w) in window[offset..offset + WINDOW].iter_mut().enumerate() {
            // Periodic Hamming (scipy's `get_window("hamming", 400)`).
            *w = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / WINDOW as f32).cos();
        }
        Self { fft, window, filters: slaney_filters() }
    }

    /// One row of `N_MELS` values per full 512-sample frame, 160 samples apart.
    pub fn frames(&self, samples: &[f32]) -> Vec<[f32; N_MELS]> {
        if samples.len() < N_FFT {
            return Vec::new();
        }
        let count = 1 + (samples.len() - N_FFT) / HOP;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0.0f32; N_BINS];
        let mut rows = Vec::with_capacity(count);
        for frame in 0..count {
            let start = frame * HOP;
            for ((slot, sample), weight) in input.iter_mut().zip(&samples[start..start + N_FFT]).zip(&self.window) {
                *slot = sample * weight;
            }
            self.fft.process(&mut input, &mut spectrum).expect("buffers come from the same plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            let mut row = [0.0f32; N_MELS];
            for (value, filter) in row.iter_mut().zip(&self.filters) {
                let energy: f32 = filter.iter().zip(&power).map(|(w, p)| w * p).sum();
                *value = (energy + 1e-10).log10();
            }
            rows.push(row);
        }
        rows
    }
}

/// Hz to mel on the Slaney scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const LINEAR: f64 = 200.0 / 3.0;
    let knee = 1000.0 / LINEAR;
    if hz >= 1000.0 {
        knee + (hz / 1000.0).ln() / (6.4f64.ln() / 27.0)
    } else {
        hz / LINEAR
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    const LINEAR: f64 = 200.0 / 3.0;
    let knee = 1000.0 / LINEAR;
    if mel >= knee {
        1000.0 * ((6.4f64.ln() / 27.0) * (mel - knee)).exp()
    } else {
        mel * LINEAR
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=512, n_mels=40)`: triangles
/// between equally spaced mel points from 0 Hz to 8 kHz, each scaled to
/// unit area (`norm="slaney"`).
fn slaney_filters() -> Vec<Vec<f32>> {
    let nyquist = SAMPLE_RATE as f64 / 2.0;
    let top = hz_to_mel(nyquist);
    let points: Vec<f64> = (0..N_MELS + 2).map(|i| mel_to_hz(top * i as f64 / (N_MELS + 1) as f64)).collect();
    let bins: Vec<f64> = (0..N_BINS).map(|i| nyquist * i as f64 / (N_BINS - 1) as f64).collect();
    (0..N_MELS)
        .map(|m| {
            let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
            let area = 2.0 / (right - left);
            bins.iter()
                .map(|&f| {
                    let rising = (f - left) / (centre - left);
                    let falling = (right - f) / (right - centre);
                    (rising.min(falling).max(0.0) * area) as f32
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_bank_is_librosas() {
        let filters = slaney_filters();
        // Values of librosa 0.11's `filters.mel(sr=16000, n_fft=512, n_mels=40)`.
        assert_eq!(filters.len(), N_MELS);
        let close = |got: f32, want: f32| assert!((got - want).abs() < want * 1e-4, "{got} != {want}");
        assert_eq!(filters[0][0], 0.0);
        close(filters[0][1], 0.005_773_6);
        close(filters[0][2], 0.011_547_2);
        close(filters[39][255], 9.493_39e-5);
        assert_eq!(filters[39][256], 0.0);
        // Slaney: linear below 1 kHz (15 mel points to 1 kHz), log above.
        assert!((mel_to_hz(hz_to_mel(3210.0)) - 3210.0).abs() < 1e-6);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_tone_lands_in_its_band() {
        let tone: Vec<f32> = (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let frames = LogMel::new().frames(&tone);
        assert_eq!(frames.len(), 1 + (16_000 - N_FFT) / HOP);
        let row = frames[10];
        // librosa 0.11's melspectrogram of the same tone (module doc's settings), log10.
        for (got, want) in row.iter().zip([-2.458_022, -2.783_274, -2.406_069, -2.712_264]) {
            assert!((got - want).abs() < 1e-3, "{got} != {want}");
        }
        let loudest = (0..N_MELS).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        let band = |m: usize| (mel_to_hz(hz_to_mel(8000.0) * m as f64 / 41.0), mel_to_hz(hz_to_mel(8000.0) * (m + 2) as f64 / 41.0));
        let (low, high) = band(loudest);
        assert!(low < 1000.0 && 1000.0 < high, "band {loudest}: {low}-{high} Hz");
        // Silence is the floor, log10(1e-10).
        assert_eq!(LogMel::new().frames(&[0.0; 1000])[0][5], -10.0);
    }
}
