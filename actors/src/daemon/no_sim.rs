//! Stands in for `sim.rs` in a build without the simulated target (feature `sim` off): the
//! same items, none of which can produce one.

use std::path::PathBuf;

use smol::LocalExecutor;

use super::DaemonError;
use super::TaskLinks;
use crate::hid::HidPaths;
use crate::media::Source;
use crate::{atx, web};

/// No value of these exists: code holding one cannot run in this build.
pub(super) enum SimRoot {}
pub(super) enum SimTarget {}

fn absent() -> DaemonError {
    DaemonError::Backend("this build has no simulated target (feature `sim`)".into())
}

pub(super) fn source(_stamp: bool) -> Result<Source, DaemonError> {
    Err(absent())
}

pub(super) fn root() -> Result<SimRoot, DaemonError> {
    Err(absent())
}

pub(super) fn gpio_root(root: &SimRoot) -> PathBuf {
    match *root {}
}

pub(super) fn hid_paths(root: &SimRoot) -> Result<HidPaths, DaemonError> {
    match *root {}
}

pub(super) fn start(
    _ex: &LocalExecutor<'static>,
    root: &SimRoot,
    _variant: Option<atx::Variant>,
    _hid_paths: &HidPaths,
    _links: TaskLinks,
) -> Result<SimTarget, DaemonError> {
    match *root {}
}

pub(super) fn attach(_app: &mut web::App, target: Option<SimTarget>) {
    if let Some(target) = target {
        match target {}
    }
}
