//! The simulated target's part of start-up: its picture source, its stand-in for the
//! device's `/dev` and `/sys`, and its power and USB sides.

use std::path::PathBuf;

use smol::LocalExecutor;

use super::DaemonError;
use super::TaskLinks;
use crate::hid::HidPaths;
use crate::media::source::SimCapture;
use crate::media::Source;
use crate::sim::power::{self, run as power_run};
use crate::sim::screen::SimScreen;
use crate::sim::state::SimStateFeed;
use crate::sim::target::SimTargetMsg;
use crate::watch::watch;
use crate::{atx, web};

pub(super) use crate::sim::root::SimRoot;

/// The running simulated target, as the web actor reaches it.
pub(super) struct SimTarget {
    /// For `/api/sim/state`.
    state: SimStateFeed,
    /// Its USB side's mailbox.
    usb: async_channel::Sender<SimTargetMsg>,
}

pub(super) fn source(stamp: bool) -> Result<Source, DaemonError> {
    Ok(Source::Sim(Box::new(
        SimCapture::new(SimScreen::new()).with_stamp(stamp),
    )))
}

/// The sim's stand-in for the device's `/dev` and `/sys`, removed again at exit.
pub(super) fn root() -> Result<SimRoot, DaemonError> {
    let root = SimRoot::create()
        .map_err(|e| DaemonError::Io("creating the simulated target's directory", e))?;
    log::info!("simulated target's files under {}", root.path().display());
    Ok(root)
}

/// The sim's GPIO tree is under its scratch root.
pub(super) fn gpio_root(root: &SimRoot) -> PathBuf {
    root.path().to_owned()
}

pub(super) fn hid_paths(root: &SimRoot) -> Result<HidPaths, DaemonError> {
    crate::sim::target::create_fifos(root.path())
        .map_err(|e| DaemonError::Io("creating the simulated target's HID FIFOs", e))
}

/// Lays out the simulated target's front-panel files and starts its power side, which
/// watches them, then its USB side, whose typing blinks the power side's HDD LED.
pub(super) fn start(
    ex: &LocalExecutor<'static>,
    root: &SimRoot,
    variant: Option<atx::Variant>,
    hid_paths: &HidPaths,
    links: TaskLinks,
) -> Result<SimTarget, DaemonError> {
    // Alpha unless configured: the only board with an HDD LED, so the sim shows everything.
    let variant = variant.unwrap_or(atx::Variant::Alpha);
    let files = power_run::PanelFiles::create(root.path(), variant)
        .map_err(|e| DaemonError::Io("creating the simulated target's GPIO files", e))?;
    let (state, feed) = watch(power::PowerState::On);
    let (disk_light, disk) = power_run::disk_light();
    ex.spawn(power_run::run(
        files,
        disk,
        power_run::SimPowerLinks {
            media: links.media.clone(),
            state,
            clock: links.clock,
        },
    ))
    .detach();
    let (usb, rx) = async_channel::bounded(16);
    ex.spawn(crate::sim::target::run(
        rx,
        hid_paths.clone(),
        links.media,
        disk_light,
    ))
    .detach();
    Ok(SimTarget {
        state: SimStateFeed::new(feed),
        usb,
    })
}

/// Hands the running simulated target to the web actor.
pub(super) fn attach(app: &mut web::App, target: Option<SimTarget>) {
    if let Some(SimTarget { state, usb }) = target {
        app.sim_state = Some(state);
        app.sim_target = Some(usb);
    }
}
