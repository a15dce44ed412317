//! Where pictures come from: the simulated target's screen, a replayed H.264 file, or the
//! device's capture and hardware encoder.

use nanokvm_protocol::Resolution;

use super::device::DeviceSource;
use super::replay::ReplaySource;
use crate::clock::Micros;
use crate::device::limits::EncoderParams;
use crate::idr_policy::FrameChange;
#[cfg(feature = "sim")]
use crate::media::change::{Change, ChangeDetector};
#[cfg(feature = "sim")]
use crate::media::scale::{RgbFrame, Scaler};
#[cfg(feature = "soft-h264")]
use crate::media::yuv::{rgb_to_i420, I420Frame};
#[cfg(feature = "sim")]
use crate::sim::power::Display;
#[cfg(feature = "sim")]
use crate::sim::{boot_screen, screen::SimScreen};

/// What one grab saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrabInfo {
    pub change: FrameChange,
    /// The source sends a picture (a powered-off target does not: its frame is black).
    pub signal: bool,
    pub source_size: (u16, u16),
    pub output_size: (u16, u16),
    /// What the source's own encoder makes of the bitrate and GOP, where it cannot take the
    /// settings as they are (the device); `None`: as configured.
    pub encoder: Option<EncoderParams>,
}

pub enum Source {
    #[cfg(feature = "sim")]
    Sim(Box<SimCapture>),
    Replay(ReplaySource),
    /// The NanoKVM's capture and hardware encoder, through the vendor library.
    Device(Box<DeviceSource>),
}

impl Source {
    /// Whether this build can serve the source's pictures as H.264 (the simulated target needs
    /// the software encoder, feature `soft-h264`).
    pub fn has_h264(&self) -> bool {
        match self {
            #[cfg(feature = "sim")]
            Source::Sim(_) => cfg!(feature = "soft-h264"),
            Source::Replay(_) | Source::Device(_) => true,
        }
    }

    pub fn grab(&mut self, capture_us: Micros, wall_ms: u32, resolution: Resolution) -> GrabInfo {
        match self {
            #[cfg(feature = "sim")]
            Source::Sim(sim) => sim.grab(capture_us, wall_ms, resolution),
            Source::Replay(replay) => {
                replay.advance();
                GrabInfo {
                    // Every replayed frame is new; its magnitude is unknown, so no scene-change IDRs.
                    change: FrameChange::Changed { fraction: 0.0 },
                    signal: true,
                    source_size: replay.size(),
                    output_size: replay.size(),
                    encoder: None,
                }
            }
            Source::Device(device) => device.grab(capture_us, resolution),
        }
    }
}

/// The simulated target's screen as a capture device sees it: rendered at the console's own
/// resolution, scaled to the output size, compared with the previous picture.
#[cfg(feature = "sim")]
pub struct SimCapture {
    pub screen: SimScreen,
    native: RgbFrame,
    scaler: Option<((u16, u16, u16, u16), Scaler)>,
    output: RgbFrame,
    /// The picture for the software H.264 encoder, converted when it first asks.
    #[cfg(feature = "soft-h264")]
    i420: I420Frame,
    #[cfg(feature = "soft-h264")]
    i420_fresh: bool,
    detector: ChangeDetector,
    grabbed_once: bool,
    /// What the target shows (it may be off, or booting).
    display: Display,
    /// `display` changed since the last grab: draw it.
    display_changed: bool,
    /// Draw the capture time into each picture ([`crate::sim::stamp`]).
    stamp: bool,
}

#[cfg(feature = "sim")]
impl SimCapture {
    pub fn new(screen: SimScreen) -> Self {
        Self {
            screen,
            native: RgbFrame::new(0, 0),
            scaler: None,
            output: RgbFrame::new(0, 0),
            #[cfg(feature = "soft-h264")]
            i420: I420Frame::new(0, 0),
            #[cfg(feature = "soft-h264")]
            i420_fresh: false,
            detector: ChangeDetector::new(),
            grabbed_once: false,
            display: Display::Console,
            display_changed: false,
            stamp: false,
        }
    }

    /// Stamps every picture with its capture time (ms on the daemon's clock), for
    /// glass-to-glass measurements; every frame then differs from the one before.
    pub fn with_stamp(mut self, stamp: bool) -> Self {
        self.stamp = stamp;
        self
    }

    /// The target was powered off, started booting, or is up.
    pub fn set_display(&mut self, display: Display) {
        if display == self.display {
            return;
        }
        // Power-on: the OS starts afresh, its consoles with their login banners.
        let booting = |d: Display| matches!(d, Display::Boot { .. });
        if booting(display) && !booting(self.display) {
            self.screen = SimScreen::new();
        }
        self.display = display;
        self.display_changed = true;
    }

    /// Brings the native picture up to date with what the target shows; true when it changed.
    fn draw(&mut self, wall_ms: u32) -> bool {
        let changed = std::mem::take(&mut self.display_changed);
        match self.display {
            Display::Console => {
                self.screen.set_time(wall_ms);
                self.screen.render(&mut self.native) || changed
            }
            Display::Boot { lines } => {
                if changed {
                    boot_screen::render(&mut self.native, lines);
                }
                changed
            }
            // No signal: black, at the size the target last sent.
            Display::NoSignal => {
                if changed {
                    if self.native.width == 0 {
                        self.native.resize(boot_screen::SIZE.0, boot_screen::SIZE.1);
                    }
                    self.native.data.fill(0);
                }
                changed
            }
        }
    }

    fn grab(&mut self, capture_us: Micros, wall_ms: u32, resolution: Resolution) -> GrabInfo {
        let rendered = self.draw(wall_ms);
        let signal = self.display != Display::NoSignal;
        let source_size = (self.native.width, self.native.height);
        let output_size = resolution.output_size(source_size.0, source_size.1);
        let resized = (self.output.width, self.output.height) != output_size;
        // The renderer knows exactly when nothing moved; skip scaling and hashing then.
        if !rendered && !resized && self.grabbed_once && !self.stamp {
            return GrabInfo {
                change: FrameChange::Unchanged,
                signal,
                source_size,
                output_size,
                encoder: None,
            };
        }
        let first = !std::mem::replace(&mut self.grabbed_once, true);
        let key = (source_size.0, source_size.1, output_size.0, output_size.1);
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            self.scaler = Some((key, Scaler::new(key.0, key.1, key.2, key.3)));
            self.output.resize(output_size.0, output_size.1);
        }
        // With the stamp on, an unchanged screen needs no new scaling: only the stamp changes.
        if rendered || resized || first || !self.stamp {
            if let Some((_, scaler)) = &self.scaler {
                if let Err(e) = scaler.scale(&self.native, &mut self.output) {
                    log::error!("scaling the picture: {e}");
                }
            }
        }
        if self.stamp {
            crate::sim::stamp::draw(&mut self.output, (capture_us / 1000) as u32);
        }
        #[cfg(feature = "soft-h264")]
        {
            self.i420_fresh = false;
        }
        let change = match self
            .detector
            .observe(&self.output.data, output_size.0, output_size.1)
        {
            Change::Unchanged => FrameChange::Unchanged,
            Change::Changed { fraction } => FrameChange::Changed { fraction },
        };
        GrabInfo {
            change,
            signal,
            source_size,
            output_size,
            encoder: None,
        }
    }

    pub fn rgb(&self) -> &RgbFrame {
        &self.output
    }

    /// The picture in the encoder's format, converted at most once per grab.
    #[cfg(feature = "soft-h264")]
    pub fn i420(&mut self) -> &I420Frame {
        if !self.i420_fresh {
            self.i420.resize(self.output.width, self.output.height);
            rgb_to_i420(&self.output, &mut self.i420);
            self.i420_fresh = true;
        }
        &self.i420
    }
}
