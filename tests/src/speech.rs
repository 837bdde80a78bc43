//! Speech test material: the real Whisper models and audio fixtures that
//! `infrastructure/dev/test.sh` fetches and generates, and word error rate.

use std::path::PathBuf;

/// Folder of `ggml-*.bin` models: tiny.en and base, each also as q8_0 and
/// q5_1, and the Silero VAD model.
pub fn models_dir() -> String {
    std::env::var("PEYK_TEST_MODELS_DIR").expect("PEYK_TEST_MODELS_DIR is not set: run the tests with infrastructure/dev/test.sh")
}

/// The Silero VAD model's file name in that folder (whisper.cpp's name).
pub const VAD_MODEL: &str = "ggml-silero-v6.2.0.bin";

/// The speaker encoder and ONNX Runtime (`fetch.sh speakers`) in that folder.
pub const SPEAKER_MODEL: &str = "speaker-dvector.int8.onnx";
pub const ONNXRUNTIME_LIB: &str = "libonnxruntime.so.1.31.1";

/// The true turns of a conversation fixture (`conversation_en.turns`):
/// (start, end, speaker) in seconds.
pub fn true_turns(name: &str) -> Vec<(f64, f64, String)> {
    let text = String::from_utf8(fixture(name)).unwrap();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            (parts[0].parse().unwrap(), parts[1].parse().unwrap(), parts[2].to_string())
        })
        .collect()
}

/// Diarization error rate, in 10 ms frames with no forgiveness collar:
/// (missed speech + false alarm + speaker confusion) / true speech, under
/// the mapping of found speakers to true ones that makes it least (every
/// one-to-one mapping is tried; a found speaker left unmapped is wrong
/// wherever it speaks).
pub fn diarization_error_rate(truth: &[(f64, f64, String)], found: &[(f64, f64, String)]) -> f64 {
    let end = truth.iter().chain(found).map(|t| t.1).fold(0.0, f64::max);
    let frames = (end * 100.0).ceil() as usize + 1;
    let label = |turns: &[(f64, f64, String)], names: &mut Vec<String>| {
        let mut at = vec![None; frames];
        for (start, end, speaker) in turns {
            let index = names.iter().position(|n| n == speaker).unwrap_or_else(|| {
                names.push(speaker.clone());
                names.len() - 1
            });
            for slot in &mut at[(start * 100.0).round() as usize..(end * 100.0).round() as usize] {
                *slot = Some(index);
            }
        }
        at
    };
    let (mut true_names, mut found_names) = (Vec::new(), Vec::new());
    let truth_at = label(truth, &mut true_names);
    let found_at = label(found, &mut found_names);
    let speech = truth_at.iter().filter(|t| t.is_some()).count().max(1);
    // Every assignment of found speakers to true ones (or to none).
    let mut best = usize::MAX;
    let options = true_names.len() + 1;
    for code in 0..options.pow(found_names.len() as u32) {
        let mapping: Vec<Option<usize>> =
            (0..found_names.len()).map(|i| Some(code / options.pow(i as u32) % options).filter(|&m| m < true_names.len())).collect();
        let mapped: Vec<usize> = mapping.iter().flatten().copied().collect();
        if mapped.iter().enumerate().any(|(i, m)| mapped[..i].contains(m)) {
            continue;
        }
        let errors = truth_at
            .iter()
            .zip(&found_at)
            .filter(|(truth, found)| match (truth, found) {
                (None, None) => false,
                (Some(t), Some(f)) => mapping[*f] != Some(*t),
                _ => true,
            })
            .count();
        best = best.min(errors);
    }
    best as f64 / speech as f64
}

/// A file made by `infrastructure/dev/fixtures.sh`.
pub fn fixture_path(name: &str) -> PathBuf {
    let dir = std::env::var("PEYK_TEST_FIXTURES").expect("PEYK_TEST_FIXTURES is not set: run the tests with infrastructure/dev/test.sh");
    let path = PathBuf::from(dir).join(name);
    assert!(path.exists(), "fixture {} missing: run infrastructure/dev/fixtures.sh", path.display());
    path
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// What JFK says in `jfk.wav`.
pub const JFK: &str = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
/// What espeak-ng says in `medical_en.wav`.
pub const MEDICAL: &str = "The patient reports chest pain and shortness of breath since yesterday morning.";

fn words(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// Word error rate of `hypothesis` against `reference`: word-level edit
/// distance over the reference's length, ignoring case and punctuation.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut previous: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut current = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let substitution = previous[j] + usize::from(rw != hw);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[h.len()] as f64 / r.len().max(1) as f64
}

/// A 16-bit PCM WAV file of `samples` at `rate` Hz, mono.
pub fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// The samples of a 16-bit PCM WAV whose data chunk follows a plain
/// 44-byte header (as `jfk.wav`'s does).
pub fn wav_samples(wav: &[u8]) -> Vec<i16> {
    let data = wav.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    wav[data..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

#[cfg(test)]
mod tests {
    use super::word_error_rate;

    #[test]
    fn word_error_rate_counts_edits_per_reference_word() {
        assert_eq!(word_error_rate("ask not what", "Ask not, what"), 0.0);
        assert_eq!(word_error_rate("ask not what your country", "ask what your county"), 0.4);
        assert_eq!(word_error_rate("a b", ""), 1.0);
    }
}

#[cfg(test)]
mod der_tests {
    use super::diarization_error_rate;

    fn turns(list: &[(f64, f64, &str)]) -> Vec<(f64, f64, String)> {
        list.iter().map(|(a, b, s)| (*a, *b, s.to_string())).collect()
    }

    #[test]
    fn labels_are_matched_and_each_kind_of_error_counts() {
        let truth = turns(&[(0.0, 2.0, "D"), (2.5, 4.5, "P")]);
        // Perfect under renaming.
        assert_eq!(diarization_error_rate(&truth, &turns(&[(0.0, 2.0, "S2"), (2.5, 4.5, "S1")])), 0.0);
        // 0.5 s missed, 0.5 s false alarm, 1 s confused, of 4 s of speech.
        let found = turns(&[(0.5, 2.0, "S1"), (2.0, 2.5, "S1"), (2.5, 3.5, "S2"), (3.5, 4.5, "S1")]);
        assert!((diarization_error_rate(&truth, &found) - 0.5).abs() < 1e-9);
        // One speaker for everything: the other's speech is all confusion.
        assert!((diarization_error_rate(&truth, &turns(&[(0.0, 2.0, "S1"), (2.5, 4.5, "S1")])) - 0.5).abs() < 1e-9);
    }
}
