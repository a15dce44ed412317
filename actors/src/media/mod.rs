//! The media thread: everything that blocks or burns CPU for milliseconds — rendering the
//! simulated screen, scaling, software encoding (and, on the device, the vendor calls) — runs
//! here, on one named thread, so the executor never waits on it. It owns the source and the
//! encoders and obeys commands from the capture and encoder actors, answering over channels.

// Until the device backend brings the hardware encoder, a build without the simulated target
// has only the replay source, and parts of this module wait for it.
#![cfg_attr(not(feature = "sim"), allow(dead_code, unused_variables))]

pub mod annexb;
// The pixel work of a software capture path (the simulated target's); the device's video
// block scales and converts in hardware.
#[cfg(feature = "sim")]
pub mod change;
#[cfg(feature = "sim")]
pub mod scale;
// RGB → I420 for the software H.264 encoder (the glass-to-glass stamp's tests use it too).
mod device;
pub mod frame;
#[cfg(feature = "soft-h264")]
mod h264;
#[cfg(feature = "sim")]
mod jpeg;
mod replay;
pub mod source;
#[cfg(any(feature = "soft-h264", all(feature = "sim", test)))]
pub mod yuv;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use async_channel::{Receiver, Sender};
use nanokvm_protocol::{Codec, StreamSettings, VideoHeader};

use crate::clock::Micros;
use crate::metrics::Metrics;
pub use device::DeviceSource;
pub use frame::{EncodedFrame, FramePool};
pub use replay::ReplaySource;
pub use source::{GrabInfo, Source};

#[derive(Debug, Clone, PartialEq)]
pub enum MediaError {
    Encoder(String),
    Replay(String),
    /// The vendor video library's answer (device backend).
    Device(String),
    Unsupported(&'static str),
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Encoder(m) => write!(f, "encoder: {m}"),
            MediaError::Replay(m) => write!(f, "replay source: {m}"),
            MediaError::Device(m) => write!(f, "video library: {m}"),
            MediaError::Unsupported(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for MediaError {}

/// Every command carries the settings it is to be carried out with, so a settings change can
/// never be lost or applied to the wrong frame.
pub enum MediaCmd {
    /// Take a picture from the source; answered with a [`GrabReport`].
    Grab {
        grab_seq: u64,
        capture_us: Micros,
        wall_ms: u32,
        settings: StreamSettings,
    },
    /// Encode a picture; always answered with an [`EncodeReport`] (empty when a newer grab
    /// replaced the picture).
    Encode(EncodeJob),
    /// Device backend: time passes (about once a second, also while nothing is captured).
    Tick { now_us: Micros },
    /// Simulated target only: switch its console (Ctrl+Alt+Fn).
    SwitchConsole {
        console: u8,
        reply: Sender<Result<(), String>>,
    },
    /// Simulated target only: what its screen shows as it is powered off, boots, runs.
    #[cfg(feature = "sim")]
    SimPower(crate::sim::power::Display),
    /// Simulated target only: what its keyboard and mouse did.
    #[cfg(feature = "sim")]
    SimInput(SimInput),
    /// Simulated target only: the active console and its visible text.
    #[cfg(feature = "sim")]
    SimScreenState { reply: Sender<(u8, String)> },
}

/// The simulated target's reaction to HID reports, for its screen.
#[cfg(feature = "sim")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimInput {
    Text(String),
    Console(u8),
    /// In 0..=32767 units across the screen.
    Pointer {
        x: u16,
        y: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeJob {
    pub grab_seq: u64,
    pub h264: Option<H264Job>,
    pub jpeg: bool,
    pub settings: StreamSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Job {
    pub force_idr: bool,
    pub quality_boost: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrabReport {
    pub grab_seq: u64,
    pub capture_us: Micros,
    pub settings: StreamSettings,
    pub info: GrabInfo,
}

/// The result of an [`EncodeJob`]: a codec's frame is `None` when it was not asked for, the
/// picture was replaced by a newer grab, or encoding failed.
#[derive(Debug, Clone)]
pub struct EncodeReport {
    pub grab_seq: u64,
    pub h264: Option<EncodedFrame>,
    pub jpeg: Option<EncodedFrame>,
}

impl EncodeReport {
    pub fn skipped(grab_seq: u64) -> Self {
        Self {
            grab_seq,
            h264: None,
            jpeg: None,
        }
    }
}

/// The executor's end of the media thread.
#[derive(Clone)]
pub struct MediaHandle {
    pub commands: Sender<MediaCmd>,
}

pub struct MediaThread {
    pub handle: MediaHandle,
    pub grabs: Receiver<GrabReport>,
    pub encodes: Receiver<EncodeReport>,
    pub join: std::thread::JoinHandle<()>,
}

/// Starts the media thread. It ends when every [`MediaHandle`] is dropped.
pub fn spawn(source: Source, metrics: Arc<Metrics>) -> std::io::Result<MediaThread> {
    let (cmd_tx, cmd_rx) = async_channel::bounded(8);
    let (grab_tx, grab_rx) = async_channel::bounded(4);
    let (enc_tx, enc_rx) = async_channel::bounded(8);
    let join = std::thread::Builder::new()
        .name("nanokvmd-media".into())
        .spawn(move || {
            let mut worker = Worker::new(source, metrics);
            while let Ok(cmd) = cmd_rx.recv_blocking() {
                let sent = match cmd {
                    MediaCmd::Grab {
                        grab_seq,
                        capture_us,
                        wall_ms,
                        settings,
                    } => {
                        let info = worker.grab(grab_seq, capture_us, wall_ms, settings);
                        grab_tx
                            .send_blocking(GrabReport {
                                grab_seq,
                                capture_us,
                                settings,
                                info,
                            })
                            .is_ok()
                    }
                    MediaCmd::Encode(job) => {
                        let report = if job.grab_seq == worker.grab_seq {
                            worker.encode(&job)
                        } else {
                            EncodeReport::skipped(job.grab_seq)
                        };
                        enc_tx.send_blocking(report).is_ok()
                    }
                    MediaCmd::Tick { now_us } => {
                        if let Source::Device(device) = &mut worker.source {
                            device.tick(now_us);
                        }
                        true
                    }
                    MediaCmd::SwitchConsole { console, reply } => {
                        let _ = reply.try_send(worker.switch_console(console));
                        true
                    }
                    #[cfg(feature = "sim")]
                    MediaCmd::SimPower(display) => {
                        if let Source::Sim(sim) = &mut worker.source {
                            sim.set_display(display);
                        }
                        true
                    }
                    #[cfg(feature = "sim")]
                    MediaCmd::SimInput(input) => {
                        worker.sim_input(input);
                        true
                    }
                    #[cfg(feature = "sim")]
                    MediaCmd::SimScreenState { reply } => {
                        if let Source::Sim(sim) = &worker.source {
                            let console = sim.screen.active_console();
                            let _ = reply.try_send((console, sim.screen.text(console)));
                        }
                        true
                    }
                };
                if !sent {
                    break;
                }
            }
            log::debug!("media thread stopped");
        })?;
    Ok(MediaThread {
        handle: MediaHandle { commands: cmd_tx },
        grabs: grab_rx,
        encodes: enc_rx,
        join,
    })
}

struct Worker {
    source: Source,
    /// The settings of the encode being carried out.
    settings: StreamSettings,
    metrics: Arc<Metrics>,
    grab_seq: u64,
    capture_us: Micros,
    output_size: (u16, u16),
    #[cfg(feature = "soft-h264")]
    h264: h264::H264Encoder,
    h264_seq: u32,
    jpeg_seq: u32,
    pool: FramePool,
}

/// Frame buffers kept for reuse: enough for the frames in flight to a few viewers, few enough
/// that idle memory stays small (each holds up to one IDR or JPEG).
const POOLED_BUFFERS: usize = 6;

impl Worker {
    fn new(source: Source, metrics: Arc<Metrics>) -> Self {
        Self {
            source,
            settings: StreamSettings::default(),
            metrics,
            grab_seq: 0,
            capture_us: 0,
            output_size: (0, 0),
            #[cfg(feature = "soft-h264")]
            h264: h264::H264Encoder::new(),
            h264_seq: 0,
            jpeg_seq: 0,
            pool: FramePool::new(POOLED_BUFFERS),
        }
    }

    fn grab(
        &mut self,
        grab_seq: u64,
        capture_us: Micros,
        wall_ms: u32,
        settings: StreamSettings,
    ) -> GrabInfo {
        let info = self.source.grab(capture_us, wall_ms, settings.resolution);
        self.grab_seq = grab_seq;
        self.capture_us = capture_us;
        self.output_size = info.output_size;
        info
    }

    fn switch_console(&mut self, console: u8) -> Result<(), String> {
        match &mut self.source {
            #[cfg(feature = "sim")]
            Source::Sim(sim) => sim
                .screen
                .switch_console(console)
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "console {console}: only the simulated target has consoles"
            )),
        }
    }

    #[cfg(feature = "sim")]
    fn sim_input(&mut self, input: SimInput) {
        let Source::Sim(sim) = &mut self.source else {
            return;
        };
        match input {
            SimInput::Text(text) => sim.screen.type_str(&text),
            SimInput::Console(n) => {
                if let Err(e) = sim.screen.switch_console(n) {
                    log::warn!("sim target: {e}");
                }
            }
            SimInput::Pointer { x, y } => sim.screen.set_pointer(x, y),
        }
    }

    fn header(&self, codec: Codec, keyframe: bool, seq: u32) -> VideoHeader {
        VideoHeader {
            codec,
            keyframe,
            seq,
            capture_us: self.capture_us,
            width: self.output_size.0,
            height: self.output_size.1,
        }
    }

    fn encode(&mut self, job: &EncodeJob) -> EncodeReport {
        self.settings = job.settings;
        let h264 = job
            .h264
            .and_then(|h| self.timed(Codec::H264, |w| w.encode_h264(h)));
        let jpeg = if job.jpeg {
            self.timed(Codec::Jpeg, Self::encode_jpeg)
        } else {
            None
        };
        EncodeReport {
            grab_seq: job.grab_seq,
            h264,
            jpeg,
        }
    }

    fn timed(
        &mut self,
        codec: Codec,
        f: impl FnOnce(&mut Self) -> Result<EncodedFrame, MediaError>,
    ) -> Option<EncodedFrame> {
        let start = Instant::now();
        match f(self) {
            Ok(mut frame) => {
                frame.ready_at = Some(Instant::now());
                frame.grab_seq = self.grab_seq;
                let m = self.metrics.codec(codec);
                m.encode_ns
                    .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
                m.encoded.fetch_add(1, Relaxed);
                Some(frame)
            }
            Err(e) => {
                // The device source logs its library's errors itself, once per kind in a row
                // (a target that is off would otherwise log every second).
                if matches!(e, MediaError::Device(_)) {
                    log::debug!("frame {} not encoded: {e}", self.grab_seq);
                } else {
                    log::warn!("frame {} not encoded: {e}", self.grab_seq);
                }
                None
            }
        }
    }

    fn encode_h264(&mut self, job: H264Job) -> Result<EncodedFrame, MediaError> {
        let seq = self.h264_seq;
        let (buf, keyframe) =
            match &mut self.source {
                // Nobody is given an H.264 stream of this source (`Source::has_h264`).
                #[cfg(all(feature = "sim", not(feature = "soft-h264")))]
                Source::Sim(_) => return Err(MediaError::Unsupported(
                    "no H.264 encoder for the simulated target in this build (feature `soft-h264`)",
                )),
                #[cfg(feature = "soft-h264")]
                Source::Sim(sim) => {
                    let mut buf = self.pool.take(64 * 1024);
                    let r = self.h264.encode(
                        sim.i420(),
                        &self.settings,
                        job.force_idr,
                        job.quality_boost,
                        &mut buf,
                    )?;
                    (buf, r.keyframe)
                }
                Source::Replay(replay) => {
                    let mut buf = self.pool.take(64 * 1024);
                    let keyframe = replay.read(job.force_idr, &mut buf)?;
                    (buf, keyframe)
                }
                Source::Device(device) => {
                    let mut buf = self.pool.take(64 * 1024);
                    let (keyframe, size) =
                        device.read_h264(self.capture_us, job, &self.settings, &mut buf)?;
                    // The header says what the frame holds, which the grab could only predict.
                    self.output_size = size;
                    (buf, keyframe)
                }
            };
        self.h264_seq = seq.wrapping_add(1);
        let header = self.header(Codec::H264, keyframe, seq);
        Ok(self.pool.seal(header, buf))
    }

    fn encode_jpeg(&mut self) -> Result<EncodedFrame, MediaError> {
        #[cfg(feature = "sim")]
        if let Source::Sim(sim) = &mut self.source {
            let seq = self.jpeg_seq;
            let mut buf = self.pool.take(256 * 1024);
            jpeg::encode_jpeg(sim.rgb(), self.settings.jpeg_quality, &mut buf)?;
            self.jpeg_seq = seq.wrapping_add(1);
            let header = self.header(Codec::Jpeg, true, seq);
            return Ok(self.pool.seal(header, buf));
        }
        Err(MediaError::Unsupported("this source has no JPEG encoder"))
    }
}
