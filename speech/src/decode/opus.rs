//! Opus through libopus: Symphonia demuxes Ogg and Matroska Opus but has
//! no decoder for it.

use super::*;

pub(super) enum OpusInner {
    /// Mapping family 0: mono or stereo, one Opus stream.
    Single(::opus::Decoder),
    /// Families 1 and 255: several streams mapped to up to 255 channels.
    Multi(::opus::MSDecoder),
}

pub(super) struct OpusDecoder {
    pub(super) inner: OpusInner,
    pub(super) channels: usize,
    /// Pre-skip frames still to drop from the start of the stream.
    pub(super) skip: usize,
    pub(super) pcm: Vec<f32>,
}

/// The parts of an OpusHead (RFC 7845, section 5.1) we need. Ogg carries it
/// as the first packet, Matroska as the track's CodecPrivate; Symphonia hands
/// over both as the codec parameters' extra data.
pub(super) struct OpusHead {
    pub(super) channels: u8,
    pub(super) pre_skip: u16,
    /// Output gain, Q7.8 dB: exactly what libopus's OPUS_SET_GAIN takes.
    pub(super) gain: i16,
    pub(super) mapping_family: u8,
    pub(super) streams: u8,
    pub(super) coupled_streams: u8,
    pub(super) mapping: Vec<u8>,
}

pub(super) fn parse_opus_head(b: &[u8]) -> Option<OpusHead> {
    if b.len() < 19 || &b[..8] != b"OpusHead" {
        return None;
    }
    let channels = b[9];
    let mapping_family = b[18];
    let (streams, coupled_streams, mapping) = if mapping_family == 0 {
        (1, channels.saturating_sub(1), (0..channels).collect())
    } else {
        let table = b.get(21..21 + usize::from(channels))?;
        (*b.get(19)?, *b.get(20)?, table.to_vec())
    };
    Some(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([b[10], b[11]]),
        gain: i16::from_le_bytes([b[16], b[17]]),
        mapping_family,
        streams,
        coupled_streams,
        mapping,
    })
}

impl OpusDecoder {
    pub(super) fn new(params: &AudioCodecParameters, track_delay: Option<u32>) -> Result<Self, AudioError> {
        let bad = |what: &str| AudioError::Corrupted(format!("bad Opus header: {what}"));
        let head = match params.extra_data.as_deref().and_then(parse_opus_head) {
            Some(head) => head,
            // No OpusHead: a plain mono/stereo stream, pre-skip from the track.
            None => {
                let channels = params.channels.as_ref().map_or(0, |c| c.count());
                if !(1..=2).contains(&channels) {
                    return Err(bad("no OpusHead and no usable channel count"));
                }
                OpusHead {
                    channels: channels as u8,
                    pre_skip: track_delay.unwrap_or(0).min(u32::from(u16::MAX)) as u16,
                    gain: 0,
                    mapping_family: 0,
                    streams: 1,
                    coupled_streams: channels as u8 - 1,
                    mapping: (0..channels as u8).collect(),
                }
            }
        };
        if head.channels == 0 {
            return Err(bad("zero channels"));
        }
        let mut inner = if head.mapping_family == 0 {
            let channels = match head.channels {
                1 => ::opus::Channels::Mono,
                2 => ::opus::Channels::Stereo,
                _ => return Err(bad("more than two channels without a channel mapping")),
            };
            OpusInner::Single(::opus::Decoder::new(OPUS_RATE, channels).map_err(|e| bad(&e.to_string()))?)
        } else {
            OpusInner::Multi(
                ::opus::MSDecoder::new(OPUS_RATE, head.streams, head.coupled_streams, &head.mapping).map_err(|e| bad(&e.to_string()))?,
            )
        };
        if head.gain != 0 {
            // Best effort: a gain libopus refuses leaves the level as encoded.
            let _ = match &mut inner {
                OpusInner::Single(d) => d.set_gain(i32::from(head.gain)),
                OpusInner::Multi(d) => d.set_gain(i32::from(head.gain)),
            };
        }
        let channels = usize::from(head.channels);
        Ok(OpusDecoder { inner, channels, skip: usize::from(head.pre_skip), pcm: vec![0.0; OPUS_MAX_FRAMES * channels] })
    }

    /// Decodes one packet into interleaved 48 kHz samples, trimmed; `None` if
    /// the packet is bad.
    pub(super) fn decode(&mut self, packet: &Packet) -> Option<&[f32]> {
        // An empty packet asks libopus to conceal a lost one, for a length it
        // cannot know here; Ogg uses them for DTX. Skip it as if it decoded.
        if packet.data.is_empty() {
            return Some(&[]);
        }
        if packet.data.len() > OPUS_MAX_PACKET_BYTES {
            return None;
        }
        let frames = match &mut self.inner {
            OpusInner::Single(d) => d.decode_float(&packet.data, &mut self.pcm, false),
            OpusInner::Multi(d) => d.decode_float(&packet.data, &mut self.pcm, false),
        }
        .ok()?
        .min(OPUS_MAX_FRAMES);

        // The pre-skip is the encoder's look-ahead at the start of the
        // stream; the demuxer's trims are the padding of the last packet.
        let skip = self.skip.min(frames);
        self.skip -= skip;
        let start = (skip + packet.trim_start.get() as usize).min(frames);
        let end = frames.saturating_sub(packet.trim_end.get() as usize).max(start);
        Some(&self.pcm[start * self.channels..end * self.channels])
    }
}
