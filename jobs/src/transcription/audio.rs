//! Audio containers read without decoding: the duration probe the API runs
//! on every upload, and the container and track choice that peyk-speech's
//! decoder (a worker's, with libopus and rubato) starts from. Symphonia
//! alone, so the API links no codec library.
//!
//! Symphonia probes the container (wav, mp3, flac, ogg, mp4/m4a, webm/mkv,
//! aiff, caf, adts). Opus counts as decodable although Symphonia has no Opus
//! decoder: its Ogg and Matroska demuxers hand out the packets, and the
//! worker decodes them with libopus. How bad input maps to [`AudioError`] is
//! in peyk-speech's `decode` module.

use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::TimeBase;

/// Demuxer errors in a row after which a reader is given up on (it cannot
/// resynchronise and would otherwise spin).
pub const MAX_CONSECUTIVE_DEMUX_ERRORS: u32 = 64;

/// Why a file could not be turned into audio. The messages never contain
/// anything read from the file beyond counts and codec names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// The file has zero bytes.
    #[error("the file is empty")]
    Empty,
    /// No known container or stream format recognised, or no audio track in it.
    #[error("the file is not a recognised audio format")]
    NotAudio,
    /// Audio, but in a codec we cannot decode (the name says which).
    #[error("unsupported audio codec: {0}")]
    UnsupportedCodec(String),
    /// Recognised as audio but broken: truncated, or too many bad packets.
    #[error("the audio is corrupted: {0}")]
    Corrupted(String),
    /// Decoded, but empty, shorter than 0.1 s, or digital (near-)silence.
    #[error("the audio is silent or too short to contain speech")]
    NoSpeech,
}

impl AudioError {
    /// Stable machine-readable code for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Empty => "empty_file",
            AudioError::NotAudio => "not_audio",
            AudioError::UnsupportedCodec(_) => "unsupported_codec",
            AudioError::Corrupted(_) => "corrupted_audio",
            AudioError::NoSpeech => "silent_audio",
        }
    }
}

/// Cheap duration estimate in seconds, for upload limits, without decoding.
///
/// Taken from the container or codec header when it says (frame count over
/// sample rate, or a duration in the track's time base); otherwise, as for
/// WebM from a browser's MediaRecorder, from the timestamps of the packets,
/// read without decoding them.
///
/// `None` when the data is not audio at all (uploads may be any file), or is
/// audio whose duration cannot be told without decoding. It trusts headers: a
/// truncated mp3 whose Xing header counts the full length reports the full
/// length; the worker's decoder finds out.
pub fn probe_duration(data: &[u8], extension_hint: Option<&str>) -> Option<f64> {
    if data.is_empty() {
        return None;
    }
    panic::catch_unwind(AssertUnwindSafe(|| probe_duration_inner(data, extension_hint)))
        .ok()
        .flatten()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

// ---------------------------------------------------------------------------
// Opening the container and picking the track

/// Opens the container. The flag says the file only opened when read front
/// to back (see below), which means its end is missing or broken.
pub fn open<'a>(data: &'a [u8], extension_hint: Option<&str>) -> Result<(Box<dyn FormatReader + 'a>, bool), AudioError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension_hint {
        hint.with_extension(&ext.trim_start_matches('.').to_ascii_lowercase());
    }
    let probe = |source: Box<dyn MediaSource + 'a>| {
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        symphonia::default::get_probe().probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
    };
    let error = match probe(Box::new(Cursor::new(data))) {
        Ok(reader) => return Ok((reader, false)),
        Err(e) => e,
    };
    if !starts_like_audio(data) {
        // Nothing recognisable, or a chance format marker somewhere inside
        // an unrelated file.
        return Err(AudioError::NotAudio);
    }
    if let SymphoniaError::Unsupported(what) = error {
        if what.contains("unsupported") {
            // "wav: unsupported wave format" and the like.
            return Err(AudioError::UnsupportedCodec(what.to_string()));
        }
    }
    // Given a seekable source, readers look at the end of the file while
    // opening it (Matroska checks the segment's size and reads the cues at
    // the end, Ogg reads the last page for the duration), so a cut-off file
    // fails to open at all. Read front to back, the part that is there still
    // plays.
    match probe(Box::new(ReadOnlySource::new(Cursor::new(data)))) {
        Ok(reader) => Ok((reader, true)),
        // The MP4 reader needs the moov atom, wherever it is.
        Err(_) => Err(AudioError::Corrupted(format!("cannot read the container: {error}"))),
    }
}

/// Whether the data begins like an audio (or video) container, so that a
/// container that then fails to open is a broken file rather than another
/// kind of file. Deliberately excludes the RIFF and ISO-BMFF files that are
/// not media (WebP, AVI is video but fine either way, HEIC/AVIF images).
fn starts_like_audio(data: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| data.get(offset..offset + magic.len()) == Some(magic);
    let riff = (at(0, b"RIFF") || at(0, b"RIFX") || at(0, b"RF64")) && at(8, b"WAVE");
    let aiff = at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC"));
    let mp4 = at(4, b"ftyp")
        && !["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif", "avis"].iter().any(|brand| at(8, brand.as_bytes()));
    let mpeg_sync = data.len() >= 2 && data[0] == 0xff && data[1] & 0xe0 == 0xe0;
    riff || aiff
        || mp4
        || mpeg_sync // MPEG audio or ADTS
        || at(0, b"fLaC")
        || at(0, b"OggS")
        || at(0, b"ID3")
        || at(0, b"caff")
        || at(0, &[0x1a, 0x45, 0xdf, 0xa3]) // EBML: Matroska, WebM
}

/// The audio track we decode, with what its headers promise.
pub struct ChosenTrack {
    pub id: u32,
    pub params: AudioCodecParameters,
    /// Encoder delay in frames (the Ogg Opus pre-skip, for example).
    pub delay: Option<u32>,
    pub time_base: Option<TimeBase>,
    /// Duration the headers announce, when they do.
    pub declared_seconds: Option<f64>,
}

fn is_decodable(codec: AudioCodecId) -> bool {
    codec == codec_ids::CODEC_ID_OPUS || symphonia::default::get_codecs().get_audio_decoder(codec).is_some()
}

/// Picks the first audio track we can decode. With `require_decodable`
/// false, falls back to the first audio track (good enough for a duration).
pub fn choose_track(reader: &dyn FormatReader, require_decodable: bool) -> Result<ChosenTrack, AudioError> {
    let audio_tracks: Vec<_> = reader
        .tracks()
        .iter()
        .filter_map(|t| match &t.codec_params {
            Some(CodecParameters::Audio(p)) => Some((t, p)),
            _ => None,
        })
        .collect();
    let Some(&(first, first_params)) = audio_tracks.first() else {
        // A container with no audio in it (a silent video, say).
        return Err(AudioError::NotAudio);
    };
    let (track, params) = match audio_tracks.iter().find(|(_, p)| is_decodable(p.codec)) {
        Some(&found) => found,
        None if require_decodable => return Err(AudioError::UnsupportedCodec(codec_name(first_params.codec))),
        None => (first, first_params),
    };

    let rate = params.sample_rate.filter(|r| *r > 0).map(f64::from);
    let is_opus = params.codec == codec_ids::CODEC_ID_OPUS;
    let from_frames = track.num_frames.zip(rate).map(|(frames, rate)| {
        // Ogg counts Opus frames including the pre-skip; other formats don't.
        let skip = if is_opus { u64::from(track.delay.unwrap_or(0)) } else { 0 };
        frames.saturating_sub(skip) as f64 / rate
    });
    let from_duration = track.duration.zip(track.time_base).map(|(d, tb)| d.get() as f64 * f64::from(tb));
    let media = reader.media_info();
    let from_media = media.duration.zip(media.time_base).map(|(d, tb)| d.get() as f64 * f64::from(tb));

    Ok(ChosenTrack {
        id: track.id,
        params: params.clone(),
        delay: track.delay,
        time_base: track.time_base,
        declared_seconds: from_frames.or(from_duration).or(from_media).filter(|s| s.is_finite()),
    })
}

/// A short name for a codec, for the decoded audio and error messages.
pub fn codec_name(codec: AudioCodecId) -> String {
    use codec_ids::*;
    if codec == CODEC_ID_OPUS {
        return "opus".into();
    }
    if let Some(registered) = symphonia::default::get_codecs().get_audio_decoder(codec) {
        return registered.codec.info.short_name.into();
    }
    // Codecs Symphonia demuxes but cannot decode.
    const NAMES: &[(AudioCodecId, &str)] = &[
        (CODEC_ID_AC3, "ac3"),
        (CODEC_ID_EAC3, "eac3"),
        (CODEC_ID_AC4, "ac4"),
        (CODEC_ID_DCA, "dts"),
        (CODEC_ID_TRUEHD, "truehd"),
        (CODEC_ID_WMA, "wma"),
        (CODEC_ID_SPEEX, "speex"),
        (CODEC_ID_MUSEPACK, "musepack"),
        (CODEC_ID_WAVPACK, "wavpack"),
        (CODEC_ID_MONKEYS_AUDIO, "ape"),
        (CODEC_ID_TTA, "tta"),
        (CODEC_ID_RALF, "ralf"),
        (CODEC_ID_ATRAC1, "atrac1"),
        (CODEC_ID_ATRAC3, "atrac3"),
        (CODEC_ID_ATRAC3PLUS, "atrac3plus"),
        (CODEC_ID_ATRAC9, "atrac9"),
        (CODEC_ID_RA10, "realaudio"),
        (CODEC_ID_RA20, "realaudio"),
        (CODEC_ID_COOK, "cook"),
        (CODEC_ID_SIPR, "sipr"),
        (CODEC_ID_SBC, "sbc"),
        (CODEC_ID_APTX, "aptx"),
        (CODEC_ID_APTX_HD, "aptx_hd"),
        (CODEC_ID_LDAC, "ldac"),
        (CODEC_ID_BINK_AUDIO, "bink_audio"),
        (CODEC_ID_SMACKER_AUDIO, "smacker_audio"),
        (CODEC_ID_PCM_ALAW, "pcm_alaw"),
        (CODEC_ID_PCM_MULAW, "pcm_mulaw"),
    ];
    NAMES.iter().find(|(id, _)| *id == codec).map_or_else(|| format!("unknown codec {codec}"), |(_, name)| (*name).into())
}

fn probe_duration_inner(data: &[u8], extension_hint: Option<&str>) -> Option<f64> {
    let (mut reader, _) = open(data, extension_hint).ok()?;
    let track = choose_track(reader.as_ref(), false).ok()?;
    if let Some(seconds) = track.declared_seconds {
        return Some(seconds);
    }
    // No duration in the headers (live WebM, for one): read the packets'
    // timestamps, without decoding them.
    let time_base = track.time_base.or_else(|| track.params.sample_rate.and_then(TimeBase::try_from_recip))?;
    let mut first: Option<i64> = None;
    let mut end: Option<i64> = None;
    let max_packets = data.len() as u64 + 1024;
    let mut packets: u64 = 0;
    let mut consecutive_errors = 0;
    loop {
        match reader.next_packet() {
            Ok(Some(packet)) => {
                consecutive_errors = 0;
                packets += 1;
                if packets > max_packets {
                    break;
                }
                if packet.track_id != track.id {
                    continue;
                }
                let pts = packet.pts.get();
                let dur = i64::try_from(packet.dur.get()).unwrap_or(i64::MAX);
                first = Some(first.map_or(pts, |f| f.min(pts)));
                let packet_end = pts.saturating_add(dur);
                end = Some(end.map_or(packet_end, |e| e.max(packet_end)));
            }
            Ok(None) | Err(SymphoniaError::IoError(_) | SymphoniaError::ResetRequired) => break,
            Err(_) => {
                consecutive_errors += 1;
                if consecutive_errors > MAX_CONSECUTIVE_DEMUX_ERRORS {
                    break;
                }
            }
        }
    }
    let ticks = end?.saturating_sub(first?).max(0);
    Some(ticks as f64 * f64::from(time_base))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of a 16-bit PCM WAV file: 1 s at 22,050 Hz, mono (the
    /// decoder's tests in peyk-speech write whole files).
    const WAV_HEADER: &[u8; 44] =
        b"RIFF\x68\xac\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data\x44\xac\x00\x00";

    fn wav_file() -> Vec<u8> {
        let mut data = WAV_HEADER.to_vec();
        data.extend((0..44_100u32).map(|i| (i * 37 % 251) as u8));
        data
    }

    #[test]
    fn probe_duration_reads_the_header() {
        assert_eq!(probe_duration(&wav_file(), Some("wav")), Some(1.0));
        // The header of a cut file still announces the whole length.
        assert_eq!(probe_duration(WAV_HEADER, None), Some(1.0));
    }

    #[test]
    fn empty_files_and_text_have_no_duration() {
        assert_eq!(probe_duration(&[], None), None);
        let text = b"Dear team,\nplease find the minutes of Monday's meeting below.\n".repeat(50);
        for hint in [None, Some("wav"), Some("mp3"), Some("ogg")] {
            assert_eq!(probe_duration(&text, hint), None, "hint {hint:?}");
            assert_eq!(open(&text, hint).err(), Some(AudioError::NotAudio), "hint {hint:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        // Mutations of a valid file and plain noise: any answer is fine, a
        // panic or a hang is not (so the inner function, without the
        // catch_unwind of probe_duration).
        let base = wav_file();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let mut data = base.clone();
            for _ in 0..(1 + next() % 16) {
                let i = (next() as usize) % data.len();
                data[i] = next() as u8;
            }
            if round % 7 == 0 {
                data.truncate((next() as usize) % data.len());
            }
            let _ = probe_duration_inner(&data, None);
        }
        let noise: Vec<u8> = (0..100_000).map(|_| next() as u8).collect();
        let _ = probe_duration_inner(&noise, None);
    }
}
