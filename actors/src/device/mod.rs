//! The device backend: the NanoKVM's video through the vendor library (`nanokvm_ffi`), plus the
//! files the rest of the firmware watches.
//!
//! `DeviceCore` (here) is the logic, with no I/O and no clock: what to ask the library for on
//! each read (output size, bitrate, GOP, an IDR request *before* the read that must return the
//! IDR), what a result means for the signal and the input size, when to retry after an error,
//! the measured frame rate, and which state files need writing. The media thread's loop around
//! it (`media/device.rs`) makes the blocking calls; `state_files.rs` writes `/kvmapp/kvm/*`;
//! `limits.rs` holds what the library can be asked for (bitrate, GOP, widths);
//! `watchdog.rs` feeds the firmware's watchdog from the executor.
//!
//! Pacing at the configured fps is the capture actor's (`CapturePacer`, as for every source);
//! this core only holds reads back after an error or while there is no signal.
//!
//! The input size: the library has no call that tells it. A read at 0 x 0 follows the input,
//! and the SPS in front of its IDR gives the size; so whenever the input size is unknown (at
//! start, after a resolution change or a loss of signal) the next read is such a probe, and
//! later reads ask for the configured resolution scaled from it (keeping the aspect ratio, the
//! width a multiple of 64: [`limits::output_size`]).
//!
//! # What each `kvmv_read_img` result means, and what `DeviceCore` does
//!
//! From the library's source, `support/sg2002/additional/kvm/src/kvm_vision.cpp`
//! (`kvmv_read_img`, `raw_to_h264`, `h264_stream_dump`, `check_kvmv`) and
//! `support/sg2002/additional/kvm_mmf/src/kvm_mmf.cpp` (`mmf_venc_pop`, `mmf_vi_frame_pop`),
//! sipeed/NanoKVM:
//!
//! | code | the library means | `DeviceCore` does |
//! |---|---|---|
//! | `-7` | the input's resolution could not be detected (`hdmi_res_err == ERROR_RES`, before any capture) | no picture: `signal = false` to clients, forget the input size, back off 500 ms, probe the size when a frame comes |
//! | `-6` | the input's resolution is on the library's unsupported list (`hdmi_res_type == UNSUPPORT_RES`) | as `-7` |
//! | `-5` | its lock was not taken within 1 s (`pthread_mutex_timedlock`): another caller — e.g. the stock server still running — or its detector holds it | retry at the next tick |
//! | `-4` | its detector is probing a new input mode (`vi_detect_state == 1`) | forget the input size (the next read probes it), retry at the next tick |
//! | `-3` | the ring slot for the result is still taken (four results not freed), or a JPEG buffer could not be allocated | retry at the next tick (cannot happen through `VideoLibrary::read`, which frees each buffer before returning) |
//! | `-2` | the encoder returned a packet count other than 1 or 3 (`h264_stream_dump`) | retry at the next tick; the encoder actor asks for an IDR for the lost frame |
//! | `-1` | (a) H.264: the frame could not be pushed into the encoder, or its output did not come within the 80 ms `select` of `mmf_venc_pop`; the library then deletes the encoder channel, so the next frame is an IDR of a new encoder. (b) no picture: the video processor gave no frame within its 1 s wait (`CVI_VPSS_GetChnFrame(…, 1000)`), and the detector says the cable is gone (`hdmi_cable_state == 0`), or three such waits failed; (c) after `kvmv_hdmi_control(1)` the first frames are discarded (`fresh_frame_count`) and use up the read's tries | an isolated `-1` is transient: retry at the next tick, `signal` stays true, no back-off, and no IDR request before the next read (the new encoder starts with one). No signal only when the library says so: its flag (`kvmv_hdmi_signal_active`, where it exists) is down, or a run of `-1` lasts [`NO_SIGNAL_AFTER_US`] (2 s) without a frame; then `signal = false`, forget the input size, one read a second until a frame comes |
//! | `0` | one JPEG | not asked for (we read H.264 only): nothing sent |
//! | `1`, `2` | SPS / PPS alone: retired, never returned now | unknown code: back off 500 ms |
//! | `3` | an IDR: SPS + PPS + IDR slice (three packets) | a frame; the SPS gives the picture size (the input's size after a 0 x 0 probe) |
//! | `4` | a P-frame (one packet) | a frame |
//! | `5` | the frame detector saw no change (MJPEG only) | not asked for: nothing sent |
//! | other | — | back off 500 ms |
//!
//! Why 2 s: without a picture one read blocks about 1 s (the video processor's wait) before it
//! returns `-1`, so the ticks of a lost signal are a second apart and 2 s is the third `-1` in a
//! row — about 3 s after the picture went away. A transient `-1` costs at most one encoder wait
//! (80 ms) and the next read brings a frame, so it never makes such a run: at 30 fps it would take
//! some 60 failed reads in a row.
//!
//! The library writes `/kvmapp/kvm/state` itself (every release: `echo 0/1 > /kvmapp/kvm/state`
//! in the binaries since v1.3.0; `write_hdmi_signal_file` in the newest source), and
//! `/kvmapp/kvm/width` and `height` when its detector finds a new input (`write_res_to_file`);
//! in HDMI mode 2 it *reads* `width` and `height` as the input size to capture
//! (`get_manual_resolution`). So this core writes none of the three: a second writer would
//! flap `state` against the library's and could change the capture size in mode 2.
//! It writes what the stock server writes (`now_fps`, `type`, `qlty`, `res`, `fps`).

pub mod limits;
pub mod state_files;
pub mod watchdog;

use nanokvm_ffi::{Encoding, ReadError, ReadOutcome, ReadRequest};
use nanokvm_protocol::{Resolution, StreamSettings};

use self::limits::EncoderParams;
use crate::clock::Micros;
use crate::idr_policy::FrameChange;
use crate::media::GrabInfo;

/// After an error that does not clear by itself (unsupported input, an unknown code), the
/// library is asked again this much later rather than at every frame.
const RETRY_AFTER_ERROR_US: Micros = 500_000;
/// Without a signal, a read is still tried this often: a successful read is how the library
/// itself notices the picture is back.
const RETRY_WITHOUT_SIGNAL_US: Micros = 1_000_000;
/// A run of `-1` this long, from the first of the run to the latest, means there is no signal
/// (where the library has no signal flag to say so). See the table above for why.
pub const NO_SIGNAL_AFTER_US: Micros = 2_000_000;
/// `now_fps` covers this window, as the stock server's does (frames in 3 s, divided by 3).
const FPS_WINDOW_US: Micros = 3_000_000;

/// One of the files under `/kvmapp/kvm/` the OLED daemon reads, with the value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    /// The measured frame rate.
    NowFps(u32),
    /// The codec: always `h264` (the device backend serves H.264 only).
    Type,
    /// The bitrate in kbit/s the stream gets (the OLED shows it as one of four levels).
    Qlty(u32),
    /// The configured height: 720, 1080, or 0 for the input's own (as the stock server's).
    Res(u32),
    /// The configured frame rate.
    Fps(u32),
}

impl StateFile {
    const COUNT: usize = 5;

    pub fn name(self) -> &'static str {
        match self {
            StateFile::NowFps(_) => "now_fps",
            StateFile::Type => "type",
            StateFile::Qlty(_) => "qlty",
            StateFile::Res(_) => "res",
            StateFile::Fps(_) => "fps",
        }
    }

    /// What the file holds: the stock server writes the bare value, no newline.
    pub fn content(self) -> String {
        match self {
            StateFile::Type => "h264".to_string(),
            StateFile::NowFps(v) | StateFile::Qlty(v) | StateFile::Res(v) | StateFile::Fps(v) => {
                v.to_string()
            }
        }
    }

    fn slot(self) -> usize {
        match self {
            StateFile::NowFps(_) => 0,
            StateFile::Type => 1,
            StateFile::Qlty(_) => 2,
            StateFile::Res(_) => 3,
            StateFile::Fps(_) => 4,
        }
    }
}

fn res_file_value(resolution: Resolution) -> u32 {
    match resolution {
        Resolution::P720 => 720,
        Resolution::P1080 => 1080,
        Resolution::Native => 0,
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

/// An error worth a log line: the first of its kind in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorNews {
    pub error: ReadError,
    /// Retried at the next tick with nothing shown to clients (log it quietly).
    pub transient: bool,
}

pub struct DeviceCore {
    /// `kvmv_hdmi_signal_active()` at the last tick (a frame since proves a signal); `None`
    /// when the library has no such flag (no released library has).
    flag: Option<bool>,
    /// When the current run of `-1` began (reset by a frame).
    no_image_since: Option<Micros>,
    /// That run lasted [`NO_SIGNAL_AFTER_US`]: no signal until a frame comes.
    no_image_long: bool,
    /// The library has no picture to give (unsupported or undetectable input).
    picture_error: bool,
    source_size: Option<(u16, u16)>,
    /// The size of the last frame the library returned.
    frame_size: (u16, u16),
    gop_applied: Option<u16>,
    kbps_applied: Option<u16>,
    /// What the library was last asked for, and what the stream gets of the settings.
    encoder: Option<EncoderParams>,
    /// The last read returned `-1`: the library threw its encoder away, the next frame is the
    /// IDR of a new one.
    encoder_recreated: bool,
    /// No read before this, after an error that does not clear by itself.
    error_retry_at: Option<Micros>,
    /// No read before this, while there is no signal.
    signal_retry_at: Option<Micros>,
    last_error: Option<ReadError>,
    fps_window_start: Option<Micros>,
    fps_frames: u32,
    /// State files last written (or queued), so each is written only on change.
    written: [Option<StateFile>; StateFile::COUNT],
    pending: Vec<StateFile>,
}

impl Default for DeviceCore {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceCore {
    pub fn new() -> Self {
        Self {
            flag: None,
            no_image_since: None,
            no_image_long: false,
            picture_error: false,
            source_size: None,
            frame_size: (0, 0),
            gop_applied: None,
            kbps_applied: None,
            encoder: None,
            encoder_recreated: false,
            error_retry_at: None,
            signal_retry_at: None,
            last_error: None,
            fps_window_start: None,
            fps_frames: 0,
            written: [None; StateFile::COUNT],
            pending: Vec::with_capacity(StateFile::COUNT),
        }
    }

    /// The output size asked of the library: 0 x 0 (follow the input) while its size is
    /// unknown, or when that gives the configured size exactly; else the configured resolution
    /// scaled from it (see [`limits::output_size`]).
    fn output_request(&self, resolution: Resolution) -> (u16, u16) {
        self.source_size
            .and_then(|src| limits::output_size(resolution, src))
            .unwrap_or((0, 0))
    }

    /// A capture tick: `flag` is `kvmv_hdmi_signal_active()`, `None` where the library lacks
    /// it. Says whether a read is due (`Changed`: the hardware encoder gives no change signal,
    /// so every due frame is new) and what the video looks like.
    pub fn grab(&mut self, now: Micros, flag: Option<bool>, resolution: Resolution) -> GrabInfo {
        let before = self.signal();
        if flag == Some(true) && self.flag != Some(true) {
            // A new situation: read at once, and forget why the last picture failed.
            self.signal_retry_at = None;
            self.picture_error = false;
            self.no_image_since = None;
            self.no_image_long = false;
        }
        self.flag = flag;
        self.signal_changed(before);
        self.roll_fps_window(now);
        let passed = |t: Option<Micros>| t.is_none_or(|t| now >= t);
        let due = passed(self.error_retry_at) && passed(self.signal_retry_at);
        let change = if due {
            FrameChange::Changed { fraction: 0.0 }
        } else {
            FrameChange::Unchanged
        };
        if due && !self.signal() {
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
            encoder: self.encoder,
        }
    }

    /// The library has a signal, as far as it tells: its flag is not down, and reads have not
    /// failed with `-1` for [`NO_SIGNAL_AFTER_US`].
    fn signal(&self) -> bool {
        self.flag != Some(false) && !self.no_image_long
    }

    /// A picture can be shown: a signal, and no error says otherwise.
    fn showing(&self) -> bool {
        self.signal() && !self.picture_error
    }

    fn signal_changed(&mut self, before: bool) {
        let now = self.signal();
        if before && !now {
            // The input may come back at another size: probe it then.
            self.source_size = None;
        } else if !before && now {
            self.signal_retry_at = None;
        }
    }

    fn no_picture(&mut self, now: Micros) {
        self.picture_error = true;
        let retry = now + RETRY_AFTER_ERROR_US;
        self.error_retry_at = Some(self.error_retry_at.map_or(retry, |t| t.max(retry)));
    }

    /// What to do for one H.264 frame; `force_idr` comes from the IDR policy.
    pub fn plan_read(&mut self, settings: &StreamSettings, force_idr: bool) -> ReadPlan {
        let params = EncoderParams::for_settings(settings);
        self.encoder = Some(params);
        let set_gop = (self.gop_applied != Some(params.library_gop)).then_some(params.library_gop);
        self.gop_applied = Some(params.library_gop);
        // The library recreates its encoder when the bitrate differs from the last read's.
        let new_bitrate =
            self.kbps_applied.replace(params.library_kbps) != Some(params.library_kbps);
        self.queue(StateFile::Type);
        self.queue(StateFile::Qlty(params.effective_kbps));
        self.queue(StateFile::Res(res_file_value(settings.resolution)));
        self.queue(StateFile::Fps(u32::from(settings.fps)));
        let (width, height) = self.output_request(settings.resolution);
        let new_encoder = set_gop.is_some() || new_bitrate || self.encoder_recreated;
        ReadPlan {
            set_gop,
            // A new encoder starts with an IDR without asking.
            request_idr: force_idr && !new_encoder,
            request: ReadRequest {
                width,
                height,
                encoding: Encoding::H264,
                quality: params.library_kbps,
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
    ) -> Option<ErrorNews> {
        match result {
            ReadResult::Frame { keyframe, size } => {
                let before = self.signal();
                self.last_error = None;
                self.error_retry_at = None;
                self.picture_error = false;
                self.encoder_recreated = false;
                self.no_image_since = None;
                self.no_image_long = false;
                // A picture is proof of a signal, whatever the flag said a moment ago.
                if self.flag.is_some() {
                    self.flag = Some(true);
                }
                self.signal_changed(before);
                if let (true, Some(size)) = (keyframe, size) {
                    self.frame_size = size;
                    if (request.width, request.height) == (0, 0) {
                        self.source_size = Some(size);
                    }
                }
                self.count_frame(now);
                None
            }
            ReadResult::NotH264(_) => None,
            ReadResult::Failed(e) => {
                let transient = match e {
                    ReadError::NoImage => self.no_image(now),
                    ReadError::ResolutionChanging => {
                        self.source_size = None;
                        true
                    }
                    ReadError::UnsupportedResolution | ReadError::ResolutionError => {
                        self.source_size = None;
                        self.no_picture(now);
                        false
                    }
                    ReadError::Unknown(_) | ReadError::BadFrame(_) => {
                        self.error_retry_at = Some(now + RETRY_AFTER_ERROR_US);
                        false
                    }
                    // Clear up by themselves (or, for the encoder, with the next IDR, which
                    // the encoder actor asks for when a frame is lost): the next tick retries.
                    ReadError::LockTimeout | ReadError::BufferFull | ReadError::EncoderError => {
                        true
                    }
                };
                let news = self.last_error != Some(e);
                self.last_error = Some(e);
                news.then_some(ErrorNews {
                    error: e,
                    transient,
                })
            }
        }
    }

    /// A `-1`: transient unless the run of them has lasted long enough to mean no signal.
    /// Returns whether it is (still) transient.
    fn no_image(&mut self, now: Micros) -> bool {
        self.encoder_recreated = true;
        let since = *self.no_image_since.get_or_insert(now);
        if !self.no_image_long && now.saturating_sub(since) >= NO_SIGNAL_AFTER_US {
            let before = self.signal();
            self.no_image_long = true;
            self.signal_changed(before);
        }
        self.signal()
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
            self.fps_frames = 0;
            self.fps_window_start = Some(now);
            self.queue_always(StateFile::NowFps(fps as u32));
        }
    }

    fn queue(&mut self, file: StateFile) {
        if self.written[file.slot()] != Some(file) {
            self.queue_always(file);
        }
    }

    fn queue_always(&mut self, file: StateFile) {
        self.written[file.slot()] = Some(file);
        self.pending.retain(|f| f.slot() != file.slot());
        self.pending.push(file);
    }

    /// The size of the last frame read (from the SPS of the last IDR).
    pub fn frame_size(&self) -> (u16, u16) {
        self.frame_size
    }

    /// State files to write now (each only when its value changed; `now_fps` every window).
    pub fn take_file_writes(&mut self) -> std::vec::Drain<'_, StateFile> {
        self.pending.drain(..)
    }
}

#[cfg(test)]
mod tests;
