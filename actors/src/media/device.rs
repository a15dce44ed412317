//! The device's capture and hardware encoder, as the media thread drives it: a thin loop
//! around [`DeviceCore`] that makes the vendor library's blocking calls (on this thread, never
//! on the executor) and writes the state files the core asks for.
//!
//! The library's life cycle: loaded at start (so a missing one stops the daemon at once),
//! started on the media thread at its first command in the stock server's order (`kvmv_init`,
//! HDMI capture off, 10 ms, on unless `/etc/kvm/hdmi_disable` exists), and deinitialised when
//! the media thread drops the source (`kvmv_deinit` only, as the stock server does at exit).
//!
//! Each frame is copied once, from the library's buffer into a pooled frame buffer, and the
//! library's buffer is given back before the read returns (`VideoLibrary::read`).

use std::path::Path;

use bytes::BytesMut;
use nanokvm_ffi::{
    HdmiStart, IdrMethod, LoadedLibrary, Optional, ReadError, ReadOutcome, VideoLibrary,
};
use nanokvm_protocol::{Resolution, StreamSettings, VIDEO_PREFIX_MAX};

use super::annexb::{nal, nal_type, sps_picture_size};
use super::{GrabInfo, H264Job, MediaError};
use crate::clock::Micros;
use crate::device::state_files::StateFiles;
use crate::device::{DeviceCore, ReadResult};

/// The stock server's switch for leaving HDMI capture off (`server/utils/hdmi.go`), under the
/// device root.
pub const HDMI_DISABLE_FILE: &str = "etc/kvm/hdmi_disable";

pub struct DeviceSource {
    /// Loaded, waiting to be started on the media thread (taken by the first command).
    loaded: Option<LoadedLibrary>,
    library: Option<VideoLibrary>,
    hdmi_enabled: bool,
    core: DeviceCore,
    files: StateFiles,
    /// Forced IDRs that needed the encoder recreated (no `CVI_VENC_RequestIDR`).
    idr_fallbacks: u64,
    bad_input: BadInputLog,
}

impl DeviceSource {
    /// Takes the loaded library (not started yet: that blocks, so it waits for the media
    /// thread); `root` is the device root, where `etc/kvm/hdmi_disable` may be. Logs, once,
    /// what the library lacks and what that costs.
    pub fn new(library: LoadedLibrary, files: StateFiles, root: &Path) -> Self {
        let capabilities = library.capabilities();
        for missing in capabilities.missing() {
            match (missing, library.instant_idr()) {
                (Optional::InstantIdr, Err(why)) => {
                    log::warn!("no instant IDR ({why}): {}", missing.loss())
                }
                _ if missing.matters() => log::warn!(
                    "the video library has no {}: {}",
                    missing.symbol(),
                    missing.loss()
                ),
                _ => log::info!(
                    "the video library has no {}: {}",
                    missing.symbol(),
                    missing.loss()
                ),
            }
        }
        if capabilities.separate_parameter_sets {
            log::info!(
                "the video library lends each IDR's SPS and PPS apart (2.2.2 and older); they \
                 are joined to it"
            );
        }
        let disable_file = root.join(HDMI_DISABLE_FILE);
        let hdmi_enabled = !disable_file.exists();
        if !hdmi_enabled {
            log::warn!(
                "{} exists: HDMI capture stays off, as with the stock server",
                disable_file.display()
            );
        }
        Self {
            loaded: Some(library),
            library: None,
            hdmi_enabled,
            core: DeviceCore::new(),
            files,
            idr_fallbacks: 0,
            bad_input: BadInputLog::default(),
        }
    }

    /// The started library: the first call starts it, on the calling (media) thread.
    fn library(&mut self) -> Option<&mut VideoLibrary> {
        if let Some(loaded) = self.loaded.take() {
            let (library, hdmi) = loaded.start(self.hdmi_enabled);
            match hdmi {
                HdmiStart::Enabled { hardware } => log::info!(
                    "video library started; HDMI capture reset and enabled ({})",
                    if hardware {
                        "the receiver's enable line"
                    } else {
                        "the library's flag; this board has no enable line"
                    }
                ),
                HdmiStart::LeftDisabled { .. } => {
                    log::info!("video library started; HDMI capture left off")
                }
                HdmiStart::NoControl => {
                    log::info!("video library started; it has no HDMI capture control")
                }
            }
            self.library = Some(library);
        }
        self.library.as_mut()
    }

    pub fn grab(&mut self, now: Micros, resolution: Resolution) -> GrabInfo {
        // Without `kvmv_hdmi_signal_active` (every release) the library cannot say (`None`);
        // the core then goes by the reads: a run of no-image answers turns the signal off.
        let flag = self.library().and_then(|l| l.signal_active());
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
        let Some(library) = self.library() else {
            return Err(MediaError::Device("the video library is not loaded".into()));
        };
        if let Some(gop) = plan.set_gop {
            library.set_gop(gop);
        }
        let fell_back = plan.request_idr && library.request_idr() == IdrMethod::EncoderRecreated;
        let outcome = library.read(plan.request, |frame| {
            buf.reserve(frame.len());
            for part in frame.parts() {
                buf.extend_from_slice(part);
            }
        });
        self.idr_fallbacks += fell_back as u64;
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
        let news = self.core.read_done(now, &plan.request, result);
        if let ReadResult::Failed(e @ (ReadError::BadFrame(_) | ReadError::Unknown(_))) = result {
            self.bad_input.note(e);
        } else if let Some(news) = news {
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

    /// Housekeeping while no frames come: keeps `now_fps` current. The daemon's first tick
    /// starts the library if no grab has yet.
    pub fn tick(&mut self, now: Micros) {
        self.library();
        self.core.tick(now);
        self.write_files();
    }

    /// The library's own word on the signal, `None` where it has no flag. The seam for the
    /// wrapper: every released library lacks `kvmv_hdmi_signal_active`, so once the wrapper
    /// loads it as an optional symbol this becomes its `Option<bool>` answer as it is.
    fn write_files(&mut self) {
        for file in self.core.take_file_writes() {
            self.files.write(file);
        }
    }
}

/// What the library should never answer (a frame code with no usable buffer, a code it does
/// not document): each kind is logged the first time only, since a library that does it once
/// tends to do it at every frame; the frames are skipped and the stream goes on.
#[derive(Default)]
struct BadInputLog {
    seen: Vec<ReadError>,
    skipped: u64,
}

/// Kinds remembered; an unknown code beyond them is still skipped, just not logged.
const BAD_INPUT_KINDS: usize = 16;

impl BadInputLog {
    fn note(&mut self, e: ReadError) {
        self.skipped += 1;
        if !self.seen.contains(&e) && self.seen.len() < BAD_INPUT_KINDS {
            self.seen.push(e);
            log::warn!("video library: {e}; frame skipped (logged once)");
        }
    }
}

impl Drop for DeviceSource {
    fn drop(&mut self) {
        if self.bad_input.skipped > 0 {
            log::warn!(
                "video library: {} frames skipped for bad answers",
                self.bad_input.skipped
            );
        }
        if self.idr_fallbacks > 0 {
            log::debug!("{} forced IDRs recreated the encoder", self.idr_fallbacks);
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
