//! Turns an uploaded audio (or video) file into what Whisper expects:
//! 16 kHz mono `f32` samples in -1..1.
//!
//! Symphonia probes the container (wav, mp3, flac, ogg, mp4/m4a, webm/mkv,
//! aiff, caf, adts; `peyk_jobs::transcription::audio` opens it and picks the
//! track, as the API's duration probe does) and decodes every codec it knows. Symphonia has no Opus
//! decoder, but its Ogg and Matroska demuxers hand out Opus packets, so those
//! go to libopus (through the `opus` crate) instead. Channels are averaged to
//! mono and rubato's FFT resampler converts to 16 kHz while decoding, so the
//! whole file is never held at its source rate (an hour at 48 kHz would be
//! 690 MB of `f32`; at 16 kHz mono it is 230 MB).
//!
//! Rules for bad input (the job turns each [`AudioError`] into a user-facing
//! error code with [`AudioError::code`]; [`PacketTally::verdict`] applies
//! the packet rules):
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

use std::panic::{self, AssertUnwindSafe};

use peyk_jobs::transcription::audio::{choose_track, codec_name, open, AudioError, ChosenTrack, MAX_CONSECUTIVE_DEMUX_ERRORS};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};
use symphonia::core::codecs::audio::well_known as codec_ids;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::well_known::FORMAT_ID_MKV;
use symphonia::core::packet::Packet;

mod decoder;
mod opus;
mod resample;
#[cfg(test)]
mod tests;

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

    let mut tally = PacketTally { ended_early: reopened, ..PacketTally::default() };
    // Every packet costs the demuxer at least a byte of input, in practice;
    // more packets than bytes means a reader going round in circles.
    let max_packets = data.len() as u64 + 1024;
    let mut packets_read: u64 = 0;
    let mut consecutive_demux_errors = 0;

    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            // The clean end of the stream.
            Ok(None) => break,
            // Out of data mid-stream (readers that cannot tell a truncated
            // file from a finished one return Ok(None) instead; the declared
            // duration catches those below).
            Err(SymphoniaError::IoError(_)) => {
                tally.ended_early |= !eof_is_normal || tally.decoded == 0;
                break;
            }
            // A new chained Ogg stream begins; we keep the first one.
            Err(SymphoniaError::ResetRequired) => break,
            // Malformed container data: the demuxer skips to the next packet
            // it can find, so count it and carry on, within reason.
            Err(_) => {
                tally.demux_errors += 1;
                consecutive_demux_errors += 1;
                if consecutive_demux_errors > MAX_CONSECUTIVE_DEMUX_ERRORS {
                    tally.ended_early = true;
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
            Ok(()) => tally.decoded += 1,
            Err(PacketError::Fatal(e)) => return Err(e),
            Err(failure) => {
                tally.failed += 1;
                if let PacketError::Unsupported(reason) = failure {
                    tally.unsupported += 1;
                    tally.unsupported_reason = reason;
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
            tally.ended_early = true;
        }
    }
    tracing::debug!(
        codec = %codec,
        decoded_packets = tally.decoded,
        failed_packets = tally.failed,
        unsupported_packets = tally.unsupported,
        demux_errors = tally.demux_errors,
        reopened,
        ended_early = tally.ended_early,
        decoded_seconds,
        declared_seconds = track.declared_seconds,
        "decoded audio"
    );
    tally.verdict(&codec, decoded_seconds)?;

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

    Ok(DecodedAudio { samples, source_sample_rate, source_channels, codec, truncated: tally.ended_early })
}

/// What became of the chosen track's packets while decoding.
#[derive(Debug, Default)]
struct PacketTally {
    decoded: u64,
    failed: u64,
    /// Of the failed packets, those the decoder called unsupported, and why.
    unsupported: u64,
    unsupported_reason: String,
    /// Malformed container data the demuxer skipped.
    demux_errors: u64,
    /// The file ended before its header said it would, or mid-packet.
    ended_early: bool,
}

impl PacketTally {
    /// Whether what decoded is the file, or the file is broken (and how).
    ///
    /// Packets the decoder declares unsupported are as likely corruption (a
    /// garbled AAC element id reads as a "coupling channel element") as an
    /// unsupported feature; only when they are most of the failures is it
    /// the codec.
    fn verdict(&self, codec: &str, decoded_seconds: f64) -> Result<(), AudioError> {
        let failed = self.failed + self.demux_errors;
        let total = self.decoded + failed;
        let unsupported = || AudioError::UnsupportedCodec(format!("{codec} ({})", self.unsupported_reason));
        if self.decoded == 0 {
            if failed == 0 && !self.ended_early {
                // A well-formed container with nothing in it.
                return Err(AudioError::NoSpeech);
            }
            if self.unsupported * 2 > failed {
                return Err(unsupported());
            }
            return Err(AudioError::Corrupted(if self.failed > 0 {
                format!("none of the {total} audio packets could be decoded")
            } else if self.demux_errors > 0 {
                "the container's audio packets could not be read".into()
            } else {
                "the file ends before any audio".into()
            }));
        }
        if failed > TOLERATED_FAILURES && failed as f64 > MAX_FAILED_FRACTION * total as f64 {
            if self.unsupported * 2 > failed {
                return Err(unsupported());
            }
            return Err(AudioError::Corrupted(format!("{failed} of {total} audio packets could not be decoded")));
        }
        if self.ended_early && decoded_seconds < MIN_TRUNCATED_SECONDS {
            return Err(AudioError::Corrupted(format!("the file is truncated: only {decoded_seconds:.2} s of audio could be decoded")));
        }
        Ok(())
    }
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
