//! The decoder on files written here: WAV by hand, Ogg Opus with libopus's encoder.

use peyk_jobs::transcription::audio::probe_duration;

use super::*;

/// A 16-bit PCM WAV file, written by hand.
fn wav(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// `seconds` of a sine at `freq` Hz, amplitude `amp`, interleaved into
/// `channels` identical channels.
fn sine(freq: f64, rate: u32, channels: u16, seconds: f64, amp: f64) -> Vec<i16> {
    let frames = (seconds * f64::from(rate)).round() as usize;
    (0..frames)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            let s = (amp * (2.0 * std::f64::consts::PI * freq * t).sin() * 32767.0) as i16;
            std::iter::repeat_n(s, usize::from(channels))
        })
        .collect()
}

/// A linear chirp from 200 Hz to 6 kHz (well inside the 8 kHz band kept).
fn chirp(rate: u32, channels: u16, seconds: f64) -> Vec<i16> {
    let frames = (seconds * f64::from(rate)).round() as usize;
    let k = (6000.0 - 200.0) / seconds;
    (0..frames)
        .flat_map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = 2.0 * std::f64::consts::PI * (200.0 * t + 0.5 * k * t * t);
            let s = (0.5 * phase.sin() * 32767.0) as i16;
            std::iter::repeat_n(s, usize::from(channels))
        })
        .collect()
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

#[test]
fn decodes_a_16k_mono_wav_unchanged() {
    let pcm = sine(440.0, 16_000, 1, 1.0, 0.5);
    let audio = decode(wav(&pcm, 16_000, 1), Some("wav")).unwrap();
    assert_eq!(audio.samples.len(), 16_000);
    assert_eq!(audio.source_sample_rate, 16_000);
    assert_eq!(audio.source_channels, 1);
    assert_eq!(audio.codec, "pcm_s16le");
    assert!(!audio.truncated);
    assert!((audio.duration_seconds() - 1.0).abs() < 1e-9);
    for (got, want) in audio.samples.iter().zip(&pcm) {
        assert!((got - f32::from(*want) / 32768.0).abs() < 1e-4);
    }
}

#[test]
fn resamples_44k_stereo_to_16k_mono() {
    let seconds = 2.5;
    let pcm = chirp(44_100, 2, seconds);
    let audio = decode(wav(&pcm, 44_100, 2), None).unwrap();
    assert_eq!(audio.source_sample_rate, 44_100);
    assert_eq!(audio.source_channels, 2);
    let expected = (seconds * 16_000.0) as i64;
    assert!((audio.samples.len() as i64 - expected).abs() <= 2, "{}", audio.samples.len());
    // A 0.5 sine has an RMS of 0.354; the chirp stays below 8 kHz, so it
    // all survives the low-pass.
    let r = rms(&audio.samples[1600..audio.samples.len() - 1600]);
    assert!((r - 0.354).abs() < 0.02, "rms {r}");
}

#[test]
fn resampled_output_lines_up_with_the_input() {
    // 1 kHz at 48 kHz, resampled, must match 1 kHz computed at 16 kHz
    // sample by sample: the resampler's delay is trimmed, not left in.
    let pcm = sine(1000.0, 48_000, 1, 1.0, 0.5);
    let audio = decode(wav(&pcm, 48_000, 1), None).unwrap();
    assert_eq!(audio.samples.len(), 16_000);
    let worst = audio.samples[400..15_600]
        .iter()
        .enumerate()
        .map(|(i, &got)| {
            let t = (i + 400) as f64 / 16_000.0;
            let want = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin();
            (f64::from(got) - want).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "max error {worst}");
}

#[test]
fn down_mix_averages_channels() {
    // Left at 0.5, right silent: the mono mix is a 0.25 sine.
    let frames = sine(300.0, 16_000, 1, 1.0, 0.5);
    let pcm: Vec<i16> = frames.iter().flat_map(|&s| [s, 0]).collect();
    let audio = decode(wav(&pcm, 16_000, 2), None).unwrap();
    let r = rms(&audio.samples);
    assert!((r - 0.25 / 2f64.sqrt()).abs() < 0.005, "rms {r}");
}

#[test]
fn empty_file_is_empty() {
    assert_eq!(decode(Vec::new(), Some("mp3")).unwrap_err(), AudioError::Empty);
    assert_eq!(decode(bytes::Bytes::new(), None).unwrap_err(), AudioError::Empty);
    assert_eq!(AudioError::Empty.code(), "empty_file");
    assert_eq!(probe_duration(&[], None), None);
}

#[test]
fn text_is_not_audio() {
    let text = b"Dear team,\nplease find the minutes of Monday's meeting below.\n".repeat(50);
    for hint in [None, Some("wav"), Some("mp3"), Some("ogg")] {
        let err = decode(&text, hint).unwrap_err();
        assert_eq!(err, AudioError::NotAudio, "hint {hint:?}");
        assert_eq!(err.code(), "not_audio");
        assert_eq!(probe_duration(&text, hint), None);
    }
}

#[test]
fn silence_is_no_speech() {
    let zeros = vec![0i16; 16_000 * 3];
    let err = decode(wav(&zeros, 16_000, 1), None).unwrap_err();
    assert_eq!(err, AudioError::NoSpeech);
    assert_eq!(err.code(), "silent_audio");
    // Hiss far below -60 dBFS is still silence.
    let hiss = sine(1000.0, 44_100, 2, 2.0, 0.0005);
    assert_eq!(decode(wav(&hiss, 44_100, 2), None).unwrap_err(), AudioError::NoSpeech);
}

#[test]
fn too_short_and_header_only_are_no_speech() {
    let blip = sine(440.0, 16_000, 1, 0.05, 0.5);
    assert_eq!(decode(wav(&blip, 16_000, 1), None).unwrap_err(), AudioError::NoSpeech);
    assert_eq!(decode(wav(&[], 16_000, 1), None).unwrap_err(), AudioError::NoSpeech);
}

#[test]
fn truncated_wav_keeps_what_is_there_or_is_corrupted() {
    let full = wav(&sine(440.0, 16_000, 1, 10.0, 0.5), 16_000, 1);
    // Cut at 4 s: usable, flagged.
    let audio = decode(&full[..44 + 4 * 32_000], None).unwrap();
    assert!(audio.truncated);
    assert!((audio.duration_seconds() - 4.0).abs() < 0.01);
    // Cut at 0.2 s: too little of a broken file.
    let err = decode(&full[..44 + 6_400], None).unwrap_err();
    assert!(matches!(err, AudioError::Corrupted(_)), "{err:?}");
    // The header announces 10 s.
    let probed = probe_duration(&full[..1000], None).unwrap();
    assert!((probed - 10.0).abs() < 1e-6);
}

#[test]
fn odd_sample_rates_resample_to_the_right_length() {
    // Rates with no common factor with 16 kHz make rubato's FFT as long
    // as a second of input; still correct, just slower.
    for rate in [8_000, 11_025, 22_050, 44_099, 96_001] {
        let pcm = sine(440.0, rate, 1, 2.0, 0.5);
        let audio = decode(wav(&pcm, rate, 1), None).unwrap();
        let want = (pcm.len() as f64 * 16_000.0 / f64::from(rate)).round() as i64;
        assert!((audio.samples.len() as i64 - want).abs() <= 1, "{rate}");
        let r = rms(&audio.samples[1600..audio.samples.len() - 1600]);
        assert!((r - 0.354).abs() < 0.01, "{rate}: rms {r}");
    }
}

#[test]
fn implausible_sample_rates_are_corrupted() {
    let pcm = sine(440.0, 16_000, 1, 1.0, 0.5);
    for rate in [500, 2_000_000] {
        let err = decode(wav(&pcm, rate, 1), None).unwrap_err();
        assert!(matches!(err, AudioError::Corrupted(_)), "{rate}: {err:?}");
    }
}

#[test]
fn probe_duration_reads_the_header() {
    let data = wav(&chirp(44_100, 2, 2.5), 44_100, 2);
    let seconds = probe_duration(&data, Some("wav")).unwrap();
    assert!((seconds - 2.5).abs() < 1e-6, "{seconds}");
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    // Mutations of valid files and plain noise: any error is fine, a
    // panic (caught or not) or a hang is not. (The probe has its own in
    // peyk-jobs.)
    let base = wav(&chirp(22_050, 1, 1.0), 22_050, 1);
    let ogg = ogg_opus(&chirp(48_000, 1, 1.0), 1);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..200 {
        let mut data = if round % 2 == 0 { base.clone() } else { ogg.clone() };
        for _ in 0..(1 + next() % 16) {
            let i = (next() as usize) % data.len();
            data[i] = next() as u8;
        }
        if round % 7 == 0 {
            data.truncate((next() as usize) % data.len());
        }
        let _ = decode_inner(&data, None);
    }
    let noise: Vec<u8> = (0..100_000).map(|_| next() as u8).collect();
    assert!(decode(&noise, None).is_err());
}

// ---- Ogg Opus, built in memory with libopus's encoder ----

/// CRC-32 as Ogg uses it (polynomial 0x04c11db7, no reflection).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

fn ogg_page(out: &mut Vec<u8>, flags: u8, granule: u64, seq: u32, packets: &[Vec<u8>]) {
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    let start = out.len();
    out.extend_from_slice(b"OggS\0");
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&0x1234_5678u32.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// 48 kHz PCM (interleaved) encoded to Ogg Opus in 20 ms packets.
fn ogg_opus(pcm: &[i16], channels: u8) -> Vec<u8> {
    let ch = if channels == 1 { ::opus::Channels::Mono } else { ::opus::Channels::Stereo };
    let mut enc = ::opus::Encoder::new(48_000, ch, ::opus::Application::Audio).unwrap();
    let pre_skip = enc.get_lookahead().unwrap() as u16;
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(channels);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&4u32.to_le_bytes());
    tags.extend_from_slice(b"test");
    tags.extend_from_slice(&0u32.to_le_bytes());

    let mut out = Vec::new();
    ogg_page(&mut out, 2, 0, 0, &[head]);
    ogg_page(&mut out, 0, 0, 1, &[tags]);
    let frame = 960 * usize::from(channels);
    let total_frames = pcm.len() / usize::from(channels);
    // One extra frame of silence flushes the encoder's look-ahead.
    let mut padded_pcm = pcm.to_vec();
    padded_pcm.resize(pcm.len() + frame, 0);
    let chunks: Vec<&[i16]> = padded_pcm.chunks(frame).collect();
    // Granules count decoded samples, pre-skip included.
    let mut granule = 0;
    for (seq, (i, chunk)) in (2..).zip(chunks.iter().enumerate()) {
        let mut padded = chunk.to_vec();
        padded.resize(frame, 0);
        let packet = enc.encode_vec(&padded, 4000).unwrap();
        let last = i + 1 == chunks.len();
        // The last page's granule ends at the real end, so the demuxer
        // trims the padding of the final packet.
        granule = if last { u64::from(pre_skip) + total_frames as u64 } else { granule + 960 };
        ogg_page(&mut out, if last { 4 } else { 0 }, granule, seq, &[packet]);
    }
    out
}

#[test]
fn decodes_ogg_opus_with_pre_skip() {
    let seconds = 1.5;
    let pcm = sine(440.0, 48_000, 2, seconds, 0.5);
    let data = ogg_opus(&pcm, 2);
    let audio = decode(&data, Some("opus")).unwrap();
    assert_eq!(audio.codec, "opus");
    assert_eq!(audio.source_sample_rate, 48_000);
    assert_eq!(audio.source_channels, 2);
    assert!((audio.samples.len() as i64 - 24_000).abs() <= 2, "{} samples", audio.samples.len());
    let r = rms(&audio.samples[1600..audio.samples.len() - 1600]);
    assert!((r - 0.354).abs() < 0.03, "rms {r}");
    // With the pre-skip dropped, the sine starts in phase.
    let worst = audio.samples[800..8000]
        .iter()
        .enumerate()
        .map(|(i, &got)| {
            let t = (i + 800) as f64 / 16_000.0;
            (f64::from(got) - 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst < 0.1, "max error {worst}");
    let probed = probe_duration(&data, None).unwrap();
    assert!((probed - seconds).abs() < 0.01, "{probed}");
}

#[test]
fn the_packet_verdict_tolerates_a_few_failures_and_names_the_cause() {
    let tally = |decoded, failed, unsupported| PacketTally {
        decoded,
        failed,
        unsupported,
        unsupported_reason: "sbr".into(),
        ..PacketTally::default()
    };
    assert_eq!(tally(100, 2, 0).verdict("aac", 10.0), Ok(()));
    assert_eq!(tally(100, 10, 0).verdict("aac", 10.0), Ok(()), "10 % is still tolerated");
    assert!(matches!(tally(100, 12, 0).verdict("aac", 10.0), Err(AudioError::Corrupted(_))));
    assert_eq!(tally(100, 12, 10).verdict("aac", 10.0), Err(AudioError::UnsupportedCodec("aac (sbr)".into())));
    assert_eq!(tally(0, 0, 0).verdict("aac", 0.0), Err(AudioError::NoSpeech), "an empty, well-formed container");
    assert!(matches!(tally(0, 5, 1).verdict("aac", 0.0), Err(AudioError::Corrupted(_))));
    let cut = PacketTally { decoded: 10, ended_early: true, ..PacketTally::default() };
    assert!(matches!(cut.verdict("mp3", 0.5), Err(AudioError::Corrupted(_))), "truncated below 1 s");
    assert_eq!(cut.verdict("mp3", 1.5), Ok(()));
}
