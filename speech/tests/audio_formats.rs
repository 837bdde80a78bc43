//! The audio path on real files (made by `infrastructure/dev/fixtures.sh`
//! from the same 11 s recording): every container and codec decodes to the
//! same 16 kHz mono length, and broken files are refused with the right
//! reason.

use std::path::PathBuf;

use peyk_jobs::transcription::audio::{probe_duration, AudioError};
use peyk_speech::decode::{decode, SAMPLE_RATE};

fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var("PEYK_TEST_FIXTURES").expect("PEYK_TEST_FIXTURES is not set: run the tests with infrastructure/dev/test.sh");
    let path = PathBuf::from(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_format_decodes_to_the_same_length_within_one_percent() {
    let reference = decode(fixture("jfk.wav"), Some("wav")).unwrap();
    assert_eq!(reference.source_sample_rate, SAMPLE_RATE);
    assert_eq!(reference.samples.len(), 176_000, "jfk.wav is 11 s at 16 kHz");
    let rms = |s: &[f32]| (s.iter().map(|x| (x * x) as f64).sum::<f64>() / s.len() as f64).sqrt();
    let reference_rms = rms(&reference.samples);
    for (file, codec) in [
        ("jfk.mp3", "mp3"),
        ("jfk.ogg", "vorbis"),
        ("jfk.opus", "opus"),
        ("jfk.webm", "opus"),
        ("jfk.flac", "flac"),
        ("jfk.m4a", "aac"),
        ("jfk_stereo_44k.wav", "pcm_s16le"),
    ] {
        let extension = file.rsplit('.').next();
        let audio = decode(fixture(file), extension).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ratio = audio.samples.len() as f64 / reference.samples.len() as f64;
        assert!((ratio - 1.0).abs() <= 0.01, "{file}: {} samples vs {}", audio.samples.len(), reference.samples.len());
        assert_eq!(audio.codec, codec, "{file}");
        assert!(!audio.truncated, "{file}");
        // Same speech, same loudness (lossy codecs shift it a little).
        let level = rms(&audio.samples) / reference_rms;
        assert!((0.8..1.25).contains(&level), "{file}: level {level:.2} of the original");
        let probed = probe_duration(&fixture(file), extension).unwrap_or_else(|| panic!("{file}: no duration"));
        assert!((probed - 11.0).abs() < 0.15, "{file}: probed {probed}");
    }
    let stereo = decode(fixture("jfk_stereo_44k.wav"), None).unwrap();
    assert_eq!((stereo.source_sample_rate, stereo.source_channels), (44_100, 2));
}

#[test]
fn broken_files_are_refused_with_the_reason() {
    assert_eq!(decode(fixture("empty.wav"), None).unwrap_err(), AudioError::Empty);
    assert_eq!(decode(fixture("not_audio.wav"), Some("wav")).unwrap_err(), AudioError::NotAudio);
    assert!(matches!(decode(fixture("truncated.mp3"), Some("mp3")).unwrap_err(), AudioError::Corrupted(_)));
    assert_eq!(decode(fixture("silence.wav"), None).unwrap_err(), AudioError::NoSpeech);
    assert_eq!(probe_duration(&fixture("not_audio.wav"), Some("wav")), None);
}

#[test]
fn a_file_cut_in_half_keeps_what_is_there_and_says_so() {
    let mp3 = fixture("jfk.mp3");
    let half = decode(&mp3[..mp3.len() / 2], Some("mp3")).unwrap();
    assert!(half.truncated);
    assert!((4.5..6.5).contains(&half.duration_seconds()), "{}", half.duration_seconds());
}
