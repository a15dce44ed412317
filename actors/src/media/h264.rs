//! The software H.264 encoder of the simulated target (OpenH264), configured the way a KVM
//! needs: Constrained Baseline (no B-frames, nothing for the browser to reorder), screen-content
//! tuning, SPS+PPS with every IDR, and IDRs forced by our policy. OpenH264 turns its own
//! scene-change detection back on in screen-content mode whatever the flag says, so a
//! full-screen change may already come out as an IDR; those are counted as `gop` (the
//! encoder's own choice) and answer any IDR request pending at the time.

use bytes::BytesMut;
use nanokvm_protocol::StreamSettings;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::MediaError;
use crate::media::yuv::I420Frame;

/// How much the target bitrate is raised for the quality burst after a pause; the rate
/// controller answers with a lower QP for those frames.
const BOOST_FACTOR: u32 = 3;

pub struct H264Encoder {
    encoder: Option<Encoder>,
    /// The parameters `encoder` was built with; a change rebuilds it (and so starts with an IDR).
    built_for: Option<(u16, u16, StreamSettings)>,
    boosted: bool,
}

pub struct EncodeResult {
    pub keyframe: bool,
}

impl H264Encoder {
    pub fn new() -> Self {
        Self {
            encoder: None,
            built_for: None,
            boosted: false,
        }
    }

    /// Encodes one picture and appends the Annex-B access unit to `out`.
    pub fn encode(
        &mut self,
        picture: &I420Frame,
        settings: &StreamSettings,
        force_idr: bool,
        boost: bool,
        out: &mut BytesMut,
    ) -> Result<EncodeResult, MediaError> {
        let params = (picture.width, picture.height, *settings);
        if self.built_for != Some(params) || self.encoder.is_none() {
            self.encoder = Some(build_encoder(settings)?);
            self.built_for = Some(params);
            self.boosted = false;
        }
        let Some(encoder) = self.encoder.as_mut() else {
            return Err(MediaError::Encoder("H.264 encoder missing".into()));
        };
        if boost != self.boosted {
            let kbps = settings.h264_bitrate_kbps * if boost { BOOST_FACTOR } else { 1 };
            // Best effort: OpenH264 refuses rates above its level's limit (small pictures).
            if let Err(e) = set_bitrate(encoder, kbps * 1000) {
                log::debug!("quality burst not applied: {e}");
            }
            self.boosted = boost;
        }
        if force_idr {
            encoder.force_intra_frame();
        }
        let stream = encoder
            .encode(&I420View(picture))
            .map_err(|e| MediaError::Encoder(format!("OpenH264: {e}")))?;
        for layer in (0..stream.num_layers()).filter_map(|l| stream.layer(l)) {
            for nal in (0..layer.nal_count()).filter_map(|n| layer.nal_unit(n)) {
                out.extend_from_slice(nal);
            }
        }
        Ok(EncodeResult {
            keyframe: matches!(stream.frame_type(), FrameType::IDR),
        })
    }
}

fn build_encoder(settings: &StreamSettings) -> Result<Encoder, MediaError> {
    let config = EncoderConfig::new()
        .profile(Profile::Baseline)
        .usage_type(UsageType::ScreenContentRealTime)
        .complexity(Complexity::Low)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(settings.h264_bitrate_kbps * 1000))
        .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
        .intra_frame_period(IntraFramePeriod::from_num_frames(settings.gop as u32))
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        // Skipped frames would freeze the picture a user is waiting on; the policy decides IDRs.
        .skip_frames(false)
        .adaptive_quantization(false)
        .background_detection(false)
        .scene_change_detect(false)
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| MediaError::Encoder(format!("OpenH264 init: {e}")))
}

// The openh264 crate has no safe call for a bitrate change on a running encoder, only its raw
// option API; the call is the encoder's own business, so it stays here rather than in `sys`.
#[allow(unsafe_code)]
fn set_bitrate(encoder: &mut Encoder, bps: u32) -> Result<(), MediaError> {
    use openh264_sys2::{
        SBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_ALL,
    };
    // OpenH264 refuses a target above the layer's maximum, so the maximum moves with it:
    // raised first when boosting, lowered last when restoring.
    for option in [
        ENCODER_OPTION_MAX_BITRATE,
        ENCODER_OPTION_BITRATE,
        ENCODER_OPTION_MAX_BITRATE,
    ] {
        let mut info = SBitrateInfo {
            iLayer: SPATIAL_LAYER_ALL,
            iBitrate: bps as i32,
        };
        // SAFETY: the encoder is initialised (built before the first encode), and both options
        // read exactly one SBitrateInfo from the pointer.
        let rc = unsafe { encoder.raw_api().set_option(option, (&raw mut info).cast()) };
        if rc != 0 && option == ENCODER_OPTION_BITRATE {
            return Err(MediaError::Encoder(format!(
                "OpenH264 set bitrate {bps}: code {rc}"
            )));
        }
    }
    Ok(())
}

struct I420View<'a>(&'a I420Frame);

impl YUVSource for I420View<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::annexb::{access_units, nal, nal_type, nal_units, sps_picture_size};

    fn picture(w: u16, h: u16, shade: u8) -> I420Frame {
        let mut p = I420Frame::new(w, h);
        for (i, y) in p.y.iter_mut().enumerate() {
            *y = (i as u8).wrapping_mul(shade);
        }
        p
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        nal_units(au)
            .into_iter()
            .map(|r| nal_type(&au[r]))
            .collect()
    }

    #[test]
    fn first_frame_and_forced_frames_are_idr_with_sps_pps() {
        let mut enc = H264Encoder::new();
        let s = StreamSettings::default();
        let mut out = BytesMut::new();
        assert!(
            enc.encode(&picture(320, 240, 3), &s, false, false, &mut out)
                .unwrap()
                .keyframe
        );
        assert_eq!(&nal_types(&out)[..3], &[nal::SPS, nal::PPS, nal::IDR]);
        let sps = &out[nal_units(&out)[0].clone()];
        assert_eq!(sps[1], 66, "Baseline profile_idc");
        assert_ne!(sps[2] & 0x40, 0, "constraint_set1: Constrained Baseline");
        assert_eq!(sps_picture_size(sps), Some((320, 240)));

        out.clear();
        let mut small_change = picture(320, 240, 3);
        small_change.y[1000] ^= 0xff;
        assert!(
            !enc.encode(&small_change, &s, false, false, &mut out)
                .unwrap()
                .keyframe
        );
        assert_eq!(nal_types(&out), vec![nal::SLICE]);

        out.clear();
        assert!(
            enc.encode(&picture(320, 240, 7), &s, true, true, &mut out)
                .unwrap()
                .keyframe
        );
        assert_eq!(&nal_types(&out)[..3], &[nal::SPS, nal::PPS, nal::IDR]);
        assert_eq!(access_units(&out).len(), 1);
    }

    #[test]
    fn size_change_restarts_with_an_idr_at_the_new_size() {
        let mut enc = H264Encoder::new();
        let s = StreamSettings::default();
        let mut out = BytesMut::new();
        enc.encode(&picture(320, 240, 3), &s, false, false, &mut out)
            .unwrap();
        out.clear();
        assert!(
            enc.encode(&picture(1920, 1080, 3), &s, false, false, &mut out)
                .unwrap()
                .keyframe
        );
        let sps = &out[nal_units(&out)[0].clone()];
        assert_eq!(sps_picture_size(sps), Some((1920, 1080)));
    }
}
