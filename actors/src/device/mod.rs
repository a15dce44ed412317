//! The device backend: the NanoKVM's video through the vendor library (`nanokvm_ffi`), plus the
//! files the rest of the firmware watches.
//!
//! `DeviceCore` (here) is the logic, with no I/O and no clock: what to ask the library for on
//! each read (output size, GOP, an IDR request *before* the read that must return the IDR),
//! what a result means for the signal and the input size, when to retry after an error, the
//! measured frame rate, and which state files need writing. The media thread's loop around it
//! (`media/device.rs`) makes the blocking calls; `state_files.rs` writes `/kvmapp/kvm/*`;
//! `watchdog.rs` feeds the firmware's watchdog from the executor.
//!
//! Pacing at the configured fps is the capture actor's (`CapturePacer`, as for every source);
//! this core only holds reads back after an error or while there is no signal.
//!
//! The input size: the library has no call that tells it. A read at 0 x 0 follows the input,
//! and the SPS in front of its IDR gives the size; so whenever the input size is unknown (at
//! start, after a resolution change or a loss of signal) the next read is such a probe, and
//! later reads ask for the configured resolution scaled from it (keeping the aspect ratio).

pub mod state_files;
pub mod watchdog;

use nanokvm_ffi::{Encoding, ReadError, ReadOutcome, ReadRequest};
use nanokvm_protocol::{Resolution, StreamSettings};

use crate::clock::Micros;
use crate::idr_policy::FrameChange;
use crate::media::GrabInfo;

/// After an error that does not clear by itself (no image, unsupported input), the library is
/// asked again this much later rather than at every frame.
const RETRY_AFTER_ERROR_US: Micros = 500_000;
/// Without a signal, a read is still tried this often: a successful read is how the library
/// itself notices the picture is back.
const RETRY_WITHOUT_SIGNAL_US: Micros = 1_000_000;
/// `now_fps` covers this window, as the stock server's does (frames in 3 s, divided by 3).
const FPS_WINDOW_US: Micros = 3_000_000;

/// One of the state files under `/kvmapp/kvm/` (read by the OLED daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    /// HDMI signal, `1` or `0`.
    State,
    /// The measured frame rate.
    NowFps,
    /// The HDMI input's size.
    Width,
    Height,
}

impl StateFile {
    pub fn name(self) -> &'static str {
        match self {
            StateFile::State => "state",
            StateFile::NowFps => "now_fps",
            StateFile::Width => "width",
            StateFile::Height => "height",
        }
    }
}

/// What the media thread does for one H.264 frame, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// Set the GOP first (this recreates the encoder: the frame is an IDR anyway).
    pub set_gop: Option<u16>,
    /// Ask for an IDR before the read, so the frame it returns is the IDR.
    pub request_idr: bool,
    pub request: ReadRequest,
}

/// What a read returned, as the core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadResult {
    /// A frame; `size` is the picture size from the SPS in front of an IDR.
    Frame {
        keyframe: bool,
        size: Option<(u16, u16)>,
    },
    /// A code that is not an H.264 frame (JPEG, unchanged): nothing to send.
    NotH264(ReadOutcome),
    Failed(ReadError),
}

pub struct DeviceCore {
    /// `kvmv_hdmi_signal_active()` at the last tick (or a frame, which proves it).
    signal_flag: bool,
    /// The library answers that it has no picture (no image, unsupported or undetectable
    /// input) although the flag may say otherwise.
    picture_error: bool,
    source_size: Option<(u16, u16)>,
    /// The size of the last frame the library returned.
    frame_size: (u16, u16),
    gop_applied: Option<u16>,
    /// No read before this, after an error that does not clear by itself.
    error_retry_at: Option<Micros>,
    /// No read before this, while there is no signal.
    signal_retry_at: Option<Micros>,
    last_error: Option<ReadError>,
    fps_window_start: Option<Micros>,
    fps_frames: u32,
    /// State file contents last written (or queued), so each is written only on change.
    written: [Option<u32>; 4],
    pending: Vec<(StateFile, u32)>,
}

impl Default for DeviceCore {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceCore {
    pub fn new() -> Self {
        Self {
            signal_flag: false,
            picture_error: false,
            source_size: None,
            frame_size: (0, 0),
            gop_applied: None,
            error_retry_at: None,
            signal_retry_at: None,
            last_error: None,
            fps_window_start: None,
            fps_frames: 0,
            written: [None; 4],
            pending: Vec::new(),
        }
    }

    /// The output size asked of the library: 0 x 0 (follow the input) while its size is
    /// unknown or the stream is native, else the configured resolution scaled from it.
    fn output_request(&self, resolution: Resolution) -> (u16, u16) {
        match (self.source_size, resolution) {
            (None, _) | (_, Resolution::Native) => (0, 0),
            (Some((w, h)), r) => r.output_size(w, h),
        }
    }

    /// A capture tick: `signal` is `kvmv_hdmi_signal_active()`. Says whether a read is due
    /// (`Changed`: the hardware encoder gives no change signal, so every due frame is new) and
    /// what the video looks like.
    pub fn grab(&mut self, now: Micros, signal: bool, resolution: Resolution) -> GrabInfo {
        self.set_signal_flag(signal);
        self.roll_fps_window(now);
        let passed = |t: Option<Micros>| t.is_none_or(|t| now >= t);
        let due = passed(self.error_retry_at) && passed(self.signal_retry_at);
        let change = if due {
            FrameChange::Changed { fraction: 0.0 }
        } else {
            FrameChange::Unchanged
        };
        if due && !self.signal_flag {
            // Tried now; the next try without a signal is a while off.
            self.signal_retry_at = Some(now + RETRY_WITHOUT_SIGNAL_US);
        }
        let source = self.source_size.unwrap_or(self.frame_size);
        let output = match self.output_request(resolution) {
            (0, 0) => source,
            planned => planned,
        };
        GrabInfo {
            change,
            signal: self.showing(),
            source_size: source,
            output_size: output,
        }
    }

    /// A picture can be shown: the library has a signal and no error says otherwise.
    fn showing(&self) -> bool {
        self.signal_flag && !self.picture_error
    }

    fn set_signal_flag(&mut self, signal: bool) {
        if signal != self.signal_flag {
            self.signal_flag = signal;
            if signal {
                // A new situation: read at once, and forget why the last picture failed.
                self.signal_retry_at = None;
                self.picture_error = false;
            } else {
                // The input may come back at another size: probe it then.
                self.source_size = None;
            }
        }
        self.queue(StateFile::State, self.showing() as u32);
    }

    fn no_picture(&mut self, now: Micros) {
        self.picture_error = true;
        let retry = now + RETRY_AFTER_ERROR_US;
        self.error_retry_at = Some(self.error_retry_at.map_or(retry, |t| t.max(retry)));
        self.queue(StateFile::State, 0);
    }

    /// What to do for one H.264 frame; `force_idr` comes from the IDR policy.
    pub fn plan_read(&mut self, settings: &StreamSettings, force_idr: bool) -> ReadPlan {
        let set_gop = (self.gop_applied != Some(settings.gop)).then_some(settings.gop);
        self.gop_applied = Some(settings.gop);
        let (width, height) = self.output_request(settings.resolution);
        ReadPlan {
            set_gop,
            // A new GOP recreates the encoder: that frame is an IDR without asking.
            request_idr: force_idr && set_gop.is_none(),
            request: ReadRequest {
                width,
                height,
                encoding: Encoding::H264,
                quality: settings.h264_bitrate_kbps.clamp(1, u16::MAX as u32) as u16,
            },
        }
    }

    /// The result of the read made for `request`. Returns the error when it is news (the first
    /// of its kind in a row), for the log.
    pub fn read_done(
        &mut self,
        now: Micros,
        request: &ReadRequest,
        result: ReadResult,
    ) -> Option<ReadError> {
        match result {
            ReadResult::Frame { keyframe, size } => {
                self.last_error = None;
                self.error_retry_at = None;
                self.picture_error = false;
                // A picture is proof of a signal, whatever the flag said a moment ago.
                self.set_signal_flag(true);
                if let (true, Some(size)) = (keyframe, size) {
                    self.frame_size = size;
                    if (request.width, request.height) == (0, 0) {
                        self.learn_source_size(size);
                    }
                }
                self.count_frame(now);
                None
            }
            ReadResult::NotH264(_) => None,
            ReadResult::Failed(e) => {
                match e {
                    ReadError::ResolutionChanging => self.source_size = None,
                    ReadError::UnsupportedResolution | ReadError::ResolutionError => {
                        self.source_size = None;
                        self.no_picture(now);
                    }
                    ReadError::NoImage => self.no_picture(now),
                    ReadError::Unknown(_) | ReadError::BadFrame(_) => {
                        self.error_retry_at = Some(now + RETRY_AFTER_ERROR_US);
                    }
                    // Clear up by themselves (or, for the encoder, with the next IDR, which
                    // the encoder actor asks for when a frame is lost): the next tick retries.
                    ReadError::LockTimeout | ReadError::BufferFull | ReadError::EncoderError => {}
                }
                let news = self.last_error != Some(e);
                self.last_error = Some(e);
                news.then_some(e)
            }
        }
    }

    fn learn_source_size(&mut self, size: (u16, u16)) {
        self.source_size = Some(size);
        self.queue(StateFile::Width, size.0 as u32);
        self.queue(StateFile::Height, size.1 as u32);
    }

    /// Time passes without frames (nobody watches, so nothing is captured): `now_fps` still
    /// goes on being written, and falls to 0.
    pub fn tick(&mut self, now: Micros) {
        self.roll_fps_window(now);
    }

    fn count_frame(&mut self, now: Micros) {
        self.roll_fps_window(now);
        self.fps_frames += 1;
    }

    fn roll_fps_window(&mut self, now: Micros) {
        let start = *self.fps_window_start.get_or_insert(now);
        let elapsed = now.saturating_sub(start);
        if elapsed >= FPS_WINDOW_US {
            // Over the time that really passed: after an idle spell the rate is near 0, not
            // the last window's frames divided by 3 s.
            let fps = (self.fps_frames as u64 * 1_000_000 + elapsed / 2) / elapsed;
            let fps = fps as u32;
            self.fps_frames = 0;
            self.fps_window_start = Some(now);
            self.queue_always(StateFile::NowFps, fps);
        }
    }

    fn queue(&mut self, file: StateFile, value: u32) {
        if self.written[file as usize] != Some(value) {
            self.queue_always(file, value);
        }
    }

    fn queue_always(&mut self, file: StateFile, value: u32) {
        self.written[file as usize] = Some(value);
        self.pending.retain(|(f, _)| *f != file);
        self.pending.push((file, value));
    }

    /// The size of the last frame read (from the SPS of the last IDR).
    pub fn frame_size(&self) -> (u16, u16) {
        self.frame_size
    }

    /// State files to write now (each only when its value changed; `now_fps` every window).
    pub fn take_file_writes(&mut self) -> std::vec::Drain<'_, (StateFile, u32)> {
        self.pending.drain(..)
    }
}

#[cfg(test)]
mod tests;
