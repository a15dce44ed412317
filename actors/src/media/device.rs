//! The device's capture and hardware encoder, as the media thread drives it: a thin loop
//! around [`DeviceCore`] that makes the vendor library's blocking calls (on this thread, never
//! on the executor) and writes the state files the core asks for.
//!
//! Each frame is copied once, from the library's buffer into a pooled frame buffer, and the
//! library's buffer is given back before the read returns (`VideoLibrary::read`).

use bytes::BytesMut;
use nanokvm_ffi::{IdrMethod, ReadOutcome, VideoLibrary};
use nanokvm_protocol::{Resolution, StreamSettings, VIDEO_PREFIX_MAX};

use super::annexb::{nal, nal_type, sps_picture_size};
use super::{GrabInfo, H264Job, MediaError};
use crate::clock::Micros;
use crate::device::state_files::StateFiles;
use crate::device::{DeviceCore, ReadResult};

pub struct DeviceSource {
    library: VideoLibrary,
    core: DeviceCore,
    files: StateFiles,
    /// Forced IDRs that needed the encoder recreated (no `CVI_VENC_RequestIDR`).
    idr_fallbacks: u64,
}

impl DeviceSource {
    pub fn new(library: VideoLibrary, files: StateFiles) -> Self {
        if let Err(why) = library.instant_idr() {
            log::warn!(
                "no instant IDR ({why}); forced IDRs recreate the encoder instead (same \
                 result, a little slower)"
            );
        }
        Self {
            library,
            core: DeviceCore::new(),
            files,
            idr_fallbacks: 0,
        }
    }

    pub fn grab(&mut self, now: Micros, resolution: Resolution) -> GrabInfo {
        let flag = self.signal_flag();
        let info = self.core.grab(now, flag, resolution);
        self.write_files();
        info
    }

    /// Reads one H.264 frame into `buf` (after its prefix room); returns whether it is a
    /// keyframe and its picture size (from the SPS of the last IDR).
    pub fn read_h264(
        &mut self,
        now: Micros,
        job: H264Job,
        settings: &StreamSettings,
        buf: &mut BytesMut,
    ) -> Result<(bool, (u16, u16)), MediaError> {
        let plan = self.core.plan_read(settings, job.force_idr);
        if let Some(gop) = plan.set_gop {
            self.library.set_gop(gop);
        }
        if plan.request_idr && self.library.request_idr() == IdrMethod::EncoderRecreated {
            self.idr_fallbacks += 1;
        }
        let outcome = self
            .library
            .read(plan.request, |bytes| buf.extend_from_slice(bytes));
        let result = match outcome {
            Ok(ReadOutcome::H264Idr) => ReadResult::Frame {
                keyframe: true,
                size: first_sps_size(buf.get(VIDEO_PREFIX_MAX..).unwrap_or_default()),
            },
            Ok(ReadOutcome::H264P) => ReadResult::Frame {
                keyframe: false,
                size: None,
            },
            Ok(other) => ReadResult::NotH264(other),
            Err(e) => ReadResult::Failed(e),
        };
        if let Some(news) = self.core.read_done(now, &plan.request, result) {
            if news.transient {
                log::debug!("video library: {} (retried at the next frame)", news.error);
            } else {
                log::warn!("video library: {}", news.error);
            }
        }
        self.write_files();
        match result {
            ReadResult::Frame { keyframe, .. } => Ok((keyframe, self.core.frame_size())),
            ReadResult::NotH264(o) => Err(MediaError::Device(format!(
                "the library answered {o:?} to an H.264 read"
            ))),
            ReadResult::Failed(e) => Err(MediaError::Device(e.to_string())),
        }
    }

    /// Housekeeping while no frames come: keeps `now_fps` current.
    pub fn tick(&mut self, now: Micros) {
        self.core.tick(now);
        self.write_files();
    }

    /// The library's own word on the signal, `None` where it has no flag. The seam for the
    /// wrapper: every released library lacks `kvmv_hdmi_signal_active`, so once the wrapper
    /// loads it as an optional symbol this becomes its `Option<bool>` answer as it is.
    fn signal_flag(&self) -> Option<bool> {
        Some(self.library.signal_active())
    }

    fn write_files(&mut self) {
        for file in self.core.take_file_writes() {
            self.files.write(file);
        }
    }
}

/// The picture size in the SPS of an access unit, without allocating: the SPS is the first
/// NAL unit of the library's IDRs.
fn first_sps_size(au: &[u8]) -> Option<(u16, u16)> {
    let mut rest = au;
    while let Some(at) = rest.windows(3).position(|w| w == [0, 0, 1]) {
        let unit = &rest[at + 3..];
        if nal_type(unit) == nal::SPS {
            let end = unit
                .windows(3)
                .position(|w| w == [0, 0, 1] || w == [0, 0, 0])
                .unwrap_or(unit.len());
            return sps_picture_size(&unit[..end]);
        }
        rest = unit;
    }
    None
}

#[cfg(test)]
mod tests;
