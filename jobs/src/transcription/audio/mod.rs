//! Turns an uploaded audio (or video) file into what Whisper expects:
//! 16 kHz mono `f32` samples in -1..1.
//!
//! Symphonia probes the container (wav, mp3, flac, ogg, mp4/m4a, webm/mkv,
//! aiff, caf, adts) and decodes every codec it knows. Symphonia has no Opus
//! decoder, but its Ogg and Matroska demuxers hand out Opus packets, so those
//! go to libopus (through the `opus` crate) instead. Channels are averaged to
//! mono and rubato's FFT resampler converts to 16 kHz while decoding, so the
//! whole file is never held at its source rate (an hour at 48 kHz would be
//! 690 MB of `f32`; at 16 kHz mono it is 230 MB).
//!
//! Rules for bad input (the job turns each [`AudioError`] into a user-facing
//! error code with [`AudioError::code`]):
//!
//! * zero bytes: [`AudioError::Empty`];
//! * nothing Symphonia recognises, or a recognised container without any
//!   audio track (a silent video): [`AudioError::NotAudio`]. A file that
//!   starts with an audio container's magic number but cannot be opened is
//!   [`AudioError::Corrupted`] (an MP4 cut before its moov atom, say);
//! * an audio track in a codec neither Symphonia nor libopus decodes (AC-3,
//!   WMA, HE-AAC signalled in the header, ...): [`AudioError::UnsupportedCodec`];
//! * packets that fail to decode are skipped, counted, and replaced by silence
//!   of their duration so later speech keeps its timestamps. If no packet
//!   decodes, or more than 10 % fail (two failures are always tolerated, so
//!   one bad frame in a short clip does not sink it), the file is
//!   [`AudioError::Corrupted`], or [`AudioError::UnsupportedCodec`] when most
//!   failures were the decoder reporting a feature it lacks;
//! * a file that ends early keeps what was decoded when that is at least 1 s,
//!   with [`DecodedAudio::truncated`] set; shorter, it is
//!   [`AudioError::Corrupted`]. So the head of a file (the first 600 bytes of
//!   an mp3) is Corrupted, never a 0.01 s success. "Ends early" means the
//!   header announced a duration at least 5 % (and 0.5 s) longer than what
//!   decoded, or the demuxer ran out of data mid-stream, or the file could
//!   only be opened read front to back (see `open`). A live WebM (a browser's
//!   MediaRecorder) announces no length and ends by running out of data, so
//!   a cut one cannot be told from a whole one: it decodes, unflagged;
//! * what decoded but is shorter than 0.1 s, or never rises above a peak of
//!   1e-3 (-60 dBFS), is [`AudioError::NoSpeech`]: Whisper would only
//!   hallucinate text for it;
//! * anything that decodes to more than [`MAX_DECODED_SECONDS`] is
//!   [`AudioError::Corrupted`]: a guard against small files that expand into
//!   gigabytes of samples (FLAC compresses digital silence to almost
//!   nothing), whatever the upload limit let through;
//! * a panic inside a decoder is caught and reported as
//!   [`AudioError::Corrupted`] (none was seen fuzzing 3000 damaged files).
//!
//! Nothing here logs sample data or metadata from the file, only counts.

use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};
use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_MKV;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;
use symphonia::core::units::TimeBase;

mod decoder;
mod opus;
mod resample;

use decoder::TrackDecoder;
use resample::Sink;

/// The sample rate Whisper works at.
pub const SAMPLE_RATE: u32 = 16_000;

/// The longest audio [`decode`] returns (4 h, 921 MB of samples). Longer
/// output is reported as [`AudioError::Corrupted`]; see the module docs.
pub const MAX_DECODED_SECONDS: u32 = 4 * 3600;

/// Peak amplitude under which the whole file counts as silence (-60 dBFS).
const SILENCE_PEAK: f32 = 1e-3;
/// Output shorter than this is not worth transcribing.
const MIN_SECONDS: f64 = 0.1;
/// A truncated file must still give at least this much audio to be used.
const MIN_TRUNCATED_SECONDS: f64 = 1.0;
/// Share of packets allowed to fail before the file counts as corrupted.
const MAX_FAILED_FRACTION: f64 = 0.10;
/// Failures always tolerated, whatever the share.
const TOLERATED_FAILURES: u64 = 2;
/// Demuxer errors in a row after which we stop reading (the demuxer cannot
/// resynchronise and would otherwise spin).
const MAX_CONSECUTIVE_DEMUX_ERRORS: u32 = 64;
/// Source sample rates accepted; outside them the header is garbage (and an
/// FFT resampler sized from it could be huge).
const MIN_SOURCE_RATE: u32 = 1_000;
const MAX_SOURCE_RATE: u32 = 768_000;
/// libopus always decodes at 48 kHz here (what Opus runs at internally).
const OPUS_RATE: u32 = 48_000;
/// 120 ms at 48 kHz: the longest Opus packet.
const OPUS_MAX_FRAMES: usize = 5_760;
/// An Opus packet is at most 120 ms of 1275-byte frames per stream; anything
/// bigger is not Opus (and libopus takes the length as an `i32`).
const OPUS_MAX_PACKET_BYTES: usize = 1 << 20;

/// Decoded audio, ready for Whisper.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    /// 16 kHz mono samples in -1..1.
    pub samples: Vec<f32>,
    /// The sample rate of the decoded stream, before resampling (for Opus
    /// always 48000, the rate libopus decodes at).
    pub source_sample_rate: u32,
    /// Channels in the source, before the down-mix.
    pub source_channels: usize,
    /// Short codec name: "mp3", "aac", "opus", "flac", "vorbis", "pcm_s16le", ...
    pub codec: String,
    /// The file ended before its header said it would, or mid-packet; the
    /// samples are what could be decoded (at least 1 s). The job may want to
    /// tell the user the transcript covers only part of the file.
    pub truncated: bool,
}

impl DecodedAudio {
    /// Length of the audio in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }
}

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

/// Decodes any supported file (wav, mp3, flac, ogg/vorbis, m4a/aac, Ogg Opus,
/// WebM/Matroska Opus, aiff, caf, adts), down-mixes it to mono and resamples
/// it to 16 kHz.
///
/// `data` is the whole file: a `bytes::Bytes` (as storage returns it; moved
/// into `spawn_blocking` as is), a `Vec<u8>` or a `&[u8]`, all read in
/// place, never copied.
/// `extension_hint` is the upload's extension ("mp3", ".m4a"); Symphonia 0.6
/// detects formats from their content alone, so it is only passed along.
///
/// CPU-bound, single-threaded (in release, about 0.06 s per minute of
/// 44.1 kHz stereo mp3, 0.12 s per minute of Opus, 0.005 s per minute of a
/// 16 kHz wav): call it from `spawn_blocking`, not on an async executor
/// thread.
pub fn decode(data: impl AsRef<[u8]>, extension_hint: Option<&str>) -> Result<DecodedAudio, AudioError> {
    let data = data.as_ref();
    if data.is_empty() {
        return Err(AudioError::Empty);
    }
    // Symphonia's decoders are pure Rust but not fuzz-proof; a panic on a
    // malformed upload must fail that one job, not take the worker with it.
    panic::catch_unwind(AssertUnwindSafe(|| decode_inner(data, extension_hint))).unwrap_or_else(|_| {
        tracing::warn!("audio decoder panicked on malformed input");
        Err(AudioError::Corrupted("the decoder failed on malformed data".into()))
    })
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
/// length; [`decode`] finds out.
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
fn open<'a>(data: &'a [u8], extension_hint: Option<&str>) -> Result<(Box<dyn FormatReader + 'a>, bool), AudioError> {
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
struct ChosenTrack {
    id: u32,
    params: AudioCodecParameters,
    /// Encoder delay in frames (the Ogg Opus pre-skip, for example).
    delay: Option<u32>,
    time_base: Option<TimeBase>,
    /// Duration the headers announce, when they do.
    declared_seconds: Option<f64>,
}

fn is_decodable(codec: AudioCodecId) -> bool {
    codec == codec_ids::CODEC_ID_OPUS || symphonia::default::get_codecs().get_audio_decoder(codec).is_some()
}

/// Picks the first audio track we can decode. With `require_decodable`
/// false, falls back to the first audio track (good enough for a duration).
fn choose_track(reader: &dyn FormatReader, require_decodable: bool) -> Result<ChosenTrack, AudioError> {
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

/// A short name for a codec, for [`DecodedAudio::codec`] and error messages.
fn codec_name(codec: AudioCodecId) -> String {
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

// ---------------------------------------------------------------------------
// Decoding

fn decode_inner(data: &[u8], extension_hint: Option<&str>) -> Result<DecodedAudio, AudioError> {
    let (mut reader, reopened) = open(data, extension_hint)?;
    let track = choose_track(reader.as_ref(), true)?;
    // Matroska from a live recorder (a browser's MediaRecorder) has segments
    // and clusters of unknown size: Symphonia finds their end only by running
    // out of data, and reports that as an unexpected end of file. So does
    // any reader on a source it cannot seek.
    let eof_is_normal = reopened || reader.format_info().format == FORMAT_ID_MKV;
    let mut decoder = TrackDecoder::new(&track)?;
    let codec = decoder.name();
    let mut sink = Sink::default();
    if let Some(declared) = track.declared_seconds {
        // Size the output once from the header, but never beyond what the
        // file could plausibly hold (8 kbit/s Opus is 1 kB per second): a
        // header is only a claim.
        let plausible = (data.len() / 1000) as f64;
        let seconds = declared.min(plausible).min(f64::from(MAX_DECODED_SECONDS)).max(0.0);
        sink.out.reserve((seconds * f64::from(SAMPLE_RATE)) as usize + SAMPLE_RATE as usize);
    }
    let fallback_rate = track.params.sample_rate.unwrap_or(0);

    let mut decoded_packets: u64 = 0;
    let mut failed_packets: u64 = 0;
    // Of the failed packets, those the decoder called unsupported, and why.
    let mut unsupported_packets: u64 = 0;
    let mut unsupported_reason = String::new();
    let mut demux_errors: u64 = 0;
    let mut consecutive_demux_errors = 0;
    let mut ended_early = reopened;
    // Every packet costs the demuxer at least a byte of input, in practice;
    // more packets than bytes means a reader going round in circles.
    let max_packets = data.len() as u64 + 1024;
    let mut packets_read: u64 = 0;

    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            // The clean end of the stream.
            Ok(None) => break,
            // Out of data mid-stream (readers that cannot tell a truncated
            // file from a finished one return Ok(None) instead; the declared
            // duration catches those below).
            Err(SymphoniaError::IoError(_)) => {
                ended_early |= !eof_is_normal || decoded_packets == 0;
                break;
            }
            // A new chained Ogg stream begins; we keep the first one.
            Err(SymphoniaError::ResetRequired) => break,
            // Malformed container data: the demuxer skips to the next packet
            // it can find, so count it and carry on, within reason.
            Err(_) => {
                demux_errors += 1;
                consecutive_demux_errors += 1;
                if consecutive_demux_errors > MAX_CONSECUTIVE_DEMUX_ERRORS {
                    ended_early = true;
                    break;
                }
                continue;
            }
        };
        consecutive_demux_errors = 0;
        packets_read += 1;
        if packets_read > max_packets {
            return Err(AudioError::Corrupted("the container never ends".into()));
        }
        if packet.track_id != track.id {
            continue;
        }
        match decoder.decode(&packet, &mut sink) {
            Ok(()) => decoded_packets += 1,
            Err(PacketError::Fatal(e)) => return Err(e),
            Err(failure) => {
                failed_packets += 1;
                if let PacketError::Unsupported(reason) = failure {
                    unsupported_packets += 1;
                    unsupported_reason = reason;
                }
                // Keep the timeline: what comes after stays at its time
                // (for subtitles), with silence where the packet was.
                if let Some(tb) = track.time_base {
                    let seconds = packet.dur.get() as f64 * f64::from(tb);
                    sink.push_silence(seconds.min(1.0), fallback_rate)?;
                }
            }
        }
        if sink.source_seconds > f64::from(MAX_DECODED_SECONDS) {
            return Err(AudioError::Corrupted(format!("the audio is longer than {} hours", MAX_DECODED_SECONDS / 3600)));
        }
    }

    let decoded_seconds = sink.source_seconds;
    if let Some(declared) = track.declared_seconds {
        // 5 % (and 0.5 s) of slack: headers round, and encoders pad.
        if decoded_seconds < declared * 0.95 - 0.5 {
            ended_early = true;
        }
    }
    let failed = failed_packets + demux_errors;
    let total = decoded_packets + failed;
    tracing::debug!(
        codec = %codec,
        decoded_packets,
        failed_packets,
        unsupported_packets,
        demux_errors,
        reopened,
        ended_early,
        decoded_seconds,
        declared_seconds = track.declared_seconds,
        "decoded audio"
    );

    // Packets the decoder declares unsupported are as likely corruption (a
    // garbled AAC element id reads as a "coupling channel element") as an
    // unsupported feature; only when they are most of the failures is it the
    // codec.
    let unsupported = || AudioError::UnsupportedCodec(format!("{codec} ({unsupported_reason})"));
    if decoded_packets == 0 {
        if failed == 0 && !ended_early {
            // A well-formed container with nothing in it.
            return Err(AudioError::NoSpeech);
        }
        if unsupported_packets * 2 > failed {
            return Err(unsupported());
        }
        return Err(AudioError::Corrupted(if failed_packets > 0 {
            format!("none of the {total} audio packets could be decoded")
        } else if demux_errors > 0 {
            "the container's audio packets could not be read".into()
        } else {
            "the file ends before any audio".into()
        }));
    }
    if failed > TOLERATED_FAILURES && failed as f64 > MAX_FAILED_FRACTION * total as f64 {
        if unsupported_packets * 2 > failed {
            return Err(unsupported());
        }
        return Err(AudioError::Corrupted(format!("{failed} of {total} audio packets could not be decoded")));
    }
    if ended_early && decoded_seconds < MIN_TRUNCATED_SECONDS {
        return Err(AudioError::Corrupted(format!("the file is truncated: only {decoded_seconds:.2} s of audio could be decoded")));
    }

    let source_sample_rate = sink.first_rate;
    let source_channels = sink.first_channels;
    let samples = sink.finish()?;
    if (samples.len() as f64) < MIN_SECONDS * f64::from(SAMPLE_RATE) {
        return Err(AudioError::NoSpeech);
    }
    let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    if peak < SILENCE_PEAK {
        return Err(AudioError::NoSpeech);
    }

    Ok(DecodedAudio { samples, source_sample_rate, source_channels, codec, truncated: ended_early })
}

/// What a packet that did not decode means for the file.
enum PacketError {
    /// Skip the packet; the failure counts towards the corruption rule.
    Skip,
    /// The decoder says the packet uses a feature it lacks (the reason);
    /// skipped too, but see the end of [`decode_inner`].
    Unsupported(String),
    /// Give up on the file.
    Fatal(AudioError),
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

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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
        // panic (caught or not) or a hang is not.
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
            let _ = probe_duration_inner(&data, None);
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
}
