//! What differs per backend: where pictures come from (the simulated target, the device's
//! vendor library, a recording), where the HID devices and GPIO lines are, and the tasks the
//! backend runs besides the actors.

use std::path::PathBuf;
use std::time::Duration;

use smol::LocalExecutor;

use super::{sim, DaemonError, TaskLinks};
use crate::clock::Clock;
use crate::config::{BackendChoice, Config};
use crate::device::state_files::StateFiles;
use crate::device::watchdog::{self, Watchdog};
use crate::hid::HidPaths;
use crate::media::{self, DeviceSource, ReplaySource, Source};
use crate::{atx, board};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BackendKind {
    Sim,
    Device,
    Replay,
}

/// Returns the source and which backend it belongs to.
pub(super) fn select_source(cfg: &Config) -> Result<(Source, BackendKind), DaemonError> {
    let backend = match cfg.backend {
        BackendChoice::Auto if board::nanokvm_detected() || cfg.device.library_dir.exists() => {
            BackendChoice::Device
        }
        BackendChoice::Auto => BackendChoice::Sim,
        b => b,
    };
    match (&cfg.source, backend) {
        (Some(crate::config::SourceSpec::Replay(path)), _) => Ok((
            Source::Replay(ReplaySource::load(path).map_err(DaemonError::Media)?),
            BackendKind::Replay,
        )),
        (None, BackendChoice::Device) => device_source(cfg).map(|s| (s, BackendKind::Device)),
        (None, _) => sim::source(cfg.sim_stamp).map(|s| (s, BackendKind::Sim)),
    }
}

/// Loads the vendor library now, so that a missing or broken one stops start-up with a
/// clear message instead of a stream that never starts; the media thread starts it.
fn device_source(cfg: &Config) -> Result<Source, DaemonError> {
    let library = nanokvm_ffi::LoadedLibrary::load(&cfg.device.library_dir).map_err(|e| {
        DaemonError::Backend(format!(
            "device backend: {e}; point [device] library_dir (or --vendor-lib-dir) at the \
             directory holding libkvm.so, or use --backend sim"
        ))
    })?;
    let files = StateFiles::new(&cfg.device.root);
    log::info!(
        "vendor video library loaded from {} ({}); OLED state files in {}",
        cfg.device.library_dir.display(),
        library.capabilities(),
        files.dir().display()
    );
    Ok(Source::Device(Box::new(DeviceSource::new(
        library,
        files,
        &cfg.device.root,
    ))))
}

/// Where the hid and atx actors find their files, and the simulated target's scratch root
/// that holds them in sim mode (removed as this is dropped).
pub(super) struct BackendPaths {
    pub kind: BackendKind,
    pub sim_root: Option<sim::SimRoot>,
    pub atx: atx::AtxConfig,
    pub hid: HidPaths,
}

impl BackendPaths {
    pub fn new(cfg: &Config, kind: BackendKind) -> Result<Self, DaemonError> {
        let sim_root = match kind {
            BackendKind::Sim => Some(sim::root()?),
            BackendKind::Device | BackendKind::Replay => None,
        };
        let atx = atx::AtxConfig {
            root: cfg
                .atx
                .gpio_root
                .clone()
                .or_else(|| sim_root.as_ref().map(sim::gpio_root))
                .unwrap_or_else(|| PathBuf::from("/")),
            variant: cfg.atx.variant,
            power_long_ms: cfg.atx.power_long_ms,
        };
        // The simulated target's FIFOs stand where the gadget's devices would be.
        let hid = match &sim_root {
            Some(root) => sim::hid_paths(root)?,
            None => cfg.hid.clone(),
        };
        Ok(Self {
            kind,
            sim_root,
            atx,
            hid,
        })
    }
}

/// Starts the backend's own tasks once the media thread runs: the simulated target's power
/// and USB sides, or the device's watchdog and housekeeping ticks. Returns the running
/// simulated target, for the web actor.
pub(super) fn start_tasks(
    ex: &LocalExecutor<'static>,
    cfg: &Config,
    paths: &BackendPaths,
    links: TaskLinks,
) -> Result<Option<sim::SimTarget>, DaemonError> {
    if let Some(root) = &paths.sim_root {
        return sim::start(ex, root, cfg.atx.variant, &paths.hid, links).map(Some);
    }
    if paths.kind == BackendKind::Device {
        ex.spawn(watchdog::run(
            Watchdog::new(&cfg.device.root),
            links.shutdown,
        ))
        .detach();
        ex.spawn(media_ticks(links.media, links.clock)).detach();
    }
    Ok(None)
}

/// The device backend's housekeeping clock: the media thread only acts on commands, and the
/// measured frame rate must fall to 0 when nothing is captured.
async fn media_ticks(media: async_channel::Sender<media::MediaCmd>, clock: Clock) {
    loop {
        smol::Timer::after(Duration::from_secs(1)).await;
        match media.try_send(media::MediaCmd::Tick {
            now_us: clock.now_us(),
        }) {
            // A busy media thread gets the next one.
            Ok(()) | Err(async_channel::TrySendError::Full(_)) => {}
            Err(async_channel::TrySendError::Closed(_)) => break,
        }
    }
}
