//! One decoder per audio track: Symphonia's for every codec it knows,
//! libopus for Opus.

use super::opus::OpusDecoder;
use super::*;

/// Symphonia's decoder for everything but Opus, libopus for Opus.
pub(super) enum TrackDecoder {
    Symphonia { decoder: Box<dyn AudioDecoder>, params: AudioCodecParameters },
    Opus(OpusDecoder),
}

impl TrackDecoder {
    pub(super) fn new(track: &ChosenTrack) -> Result<Self, AudioError> {
        if track.params.codec == codec_ids::CODEC_ID_OPUS {
            return Ok(TrackDecoder::Opus(OpusDecoder::new(&track.params, track.delay)?));
        }
        let decoder = make_symphonia_decoder(&track.params)?;
        Ok(TrackDecoder::Symphonia { decoder, params: track.params.clone() })
    }

    pub(super) fn name(&self) -> String {
        match self {
            TrackDecoder::Symphonia { decoder, .. } => decoder.codec_info().short_name.into(),
            TrackDecoder::Opus(_) => "opus".into(),
        }
    }

    pub(super) fn decode(&mut self, packet: &Packet, sink: &mut Sink) -> Result<(), PacketError> {
        match self {
            TrackDecoder::Opus(opus) => {
                let channels = opus.channels;
                let pcm = opus.decode(packet).ok_or(PacketError::Skip)?;
                sink.push(pcm, channels, OPUS_RATE).map_err(PacketError::Fatal)
            }
            TrackDecoder::Symphonia { decoder, params } => match decoder.decode(packet) {
                Ok(buffer) => {
                    if buffer.frames() == 0 {
                        return Ok(());
                    }
                    let channels = buffer.num_planes();
                    let rate = buffer.spec().rate();
                    buffer.copy_to_vec_interleaved::<f32>(&mut sink.scratch);
                    sink.push_scratch(channels, rate).map_err(PacketError::Fatal)
                }
                Err(SymphoniaError::Unsupported(what)) => Err(PacketError::Unsupported(what.to_string())),
                // The stream's parameters changed; start a fresh decoder.
                Err(SymphoniaError::ResetRequired) => {
                    *decoder = make_symphonia_decoder(params).map_err(PacketError::Fatal)?;
                    Err(PacketError::Skip)
                }
                // DecodeError (bad bitstream), IoError (the bit reader ran
                // off the end of a short packet), and anything newer.
                Err(_) => Err(PacketError::Skip),
            },
        }
    }
}

pub(super) fn make_symphonia_decoder(params: &AudioCodecParameters) -> Result<Box<dyn AudioDecoder>, AudioError> {
    // Gapless (the default) makes the mp3 and Vorbis decoders drop encoder
    // delay and padding, so lengths match the source.
    symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default()).map_err(|e| match e {
        SymphoniaError::Unsupported(what) => AudioError::UnsupportedCodec(format!("{} ({what})", codec_name(params.codec))),
        e => AudioError::Corrupted(format!("bad codec parameters: {e}")),
    })
}
