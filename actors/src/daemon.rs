//! Start-up and shutdown: picks the backend and source, starts the media thread and the
//! actors on the one executor, serves until SIGINT/SIGTERM, then closes sessions and releases
//! everything.

use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use nanokvm_protocol::{AtxState, HidLink, HidStatus};
use smol::LocalExecutor;

use crate::clock::Clock;
use crate::config::{BackendChoice, Config, IdrPolicyMode, SourceSpec};
use crate::idr_policy::PolicyConfig;
use crate::media::{self, MediaError, ReplaySource, Source};
use crate::metrics::Metrics;
use crate::session::DeviceFeeds;
use crate::watch::watch;
use crate::{capture, encoder, web};

#[derive(Debug)]
pub enum DaemonError {
    Backend(String),
    Media(MediaError),
    Io(&'static str, std::io::Error),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Backend(m) => write!(f, "{m}"),
            DaemonError::Media(e) => write!(f, "{e}"),
            DaemonError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// How long sessions get to say goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Files that exist only on a NanoKVM.
fn nanokvm_detected() -> bool {
    Path::new("/etc/kvm/hw").exists() || Path::new("/kvmapp/server/dl_lib").exists()
}

fn select_source(cfg: &Config) -> Result<(Source, bool), DaemonError> {
    let backend = match cfg.backend {
        BackendChoice::Auto if nanokvm_detected() => BackendChoice::Device,
        BackendChoice::Auto => BackendChoice::Sim,
        b => b,
    };
    if backend == BackendChoice::Device {
        return Err(DaemonError::Backend(
            "the device backend (vendor video library, /dev/hidg*, GPIO) is not part of this build yet; \
             use --backend sim for the simulated target"
                .into(),
        ));
    }
    match &cfg.source {
        Some(SourceSpec::Replay(path)) => Ok((
            Source::Replay(ReplaySource::load(path).map_err(DaemonError::Media)?),
            false,
        )),
        None => sim_source(cfg.sim_stamp).map(|s| (s, true)),
    }
}

#[cfg(feature = "sim")]
fn sim_source(stamp: bool) -> Result<Source, DaemonError> {
    use crate::media::source::SimCapture;
    use crate::sim::screen::SimScreen;
    Ok(Source::Sim(Box::new(
        SimCapture::new(SimScreen::new()).with_stamp(stamp),
    )))
}

/// The sim's stand-in for the device's `/dev` and `/sys`, removed again at exit.
#[cfg(feature = "sim")]
fn sim_root() -> Result<crate::sim::root::SimRoot, DaemonError> {
    let root = crate::sim::root::SimRoot::create()
        .map_err(|e| DaemonError::Io("creating the simulated target's directory", e))?;
    log::info!("simulated target's files under {}", root.path().display());
    Ok(root)
}

#[cfg(not(feature = "sim"))]
fn sim_root() -> Result<(), DaemonError> {
    Ok(())
}

#[cfg(not(feature = "sim"))]
fn sim_source(_stamp: bool) -> Result<Source, DaemonError> {
    Err(DaemonError::Backend(
        "this build has no simulated target (feature `sim`)".into(),
    ))
}

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let (source, sim) = select_source(&cfg)?;
    let _sim_root = if sim { Some(sim_root()?) } else { None };
    let jpeg_available = !matches!(source, Source::Replay(_));
    let clock = Clock::start();
    let metrics = Arc::new(Metrics::default());
    let media = media::spawn(source, metrics.clone())
        .map_err(|e| DaemonError::Io("starting the media thread", e))?;
    let media_join = media.join;

    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let result = smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| DaemonError::Io("binding the listen address", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DaemonError::Io("listen address", e))?;
        let mut signals =
            async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
                .map_err(|e| DaemonError::Io("installing signal handlers", e))?;

        let (encoder_tx, encoder_rx) = async_channel::bounded(64);
        // One slot: the capture actor needs only the latest desired state.
        let (capture_tx, capture_rx) = async_channel::bounded(1);
        let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);

        ex.spawn(capture::run(
            capture_rx,
            media.grabs,
            media.handle.commands.clone(),
            encoder_tx.clone(),
            cfg.stream,
            clock,
        ))
        .detach();
        ex.spawn(encoder::run(
            encoder_rx,
            media.encodes,
            media.handle.commands.clone(),
            capture_tx,
            cfg.stream,
            PolicyConfig {
                forced_idrs: cfg.idr_policy == IdrPolicyMode::On,
                ..PolicyConfig::default()
            },
            clock,
            metrics.clone(),
        ))
        .detach();
        // Until the hid and atx actors own these, clients are told truthfully that there is
        // no keyboard, mouse or front panel.
        let (_hid_status, hid_feed) = watch(HidStatus {
            keyboard: HidLink::Absent,
            mouse: HidLink::Absent,
            absolute: HidLink::Absent,
            leds: None,
        });
        let (_atx_state, atx_feed) = watch(AtxState {
            power_led: false,
            hdd_led: None,
            busy: None,
        });
        let app = Rc::new(web::App::new(
            encoder_tx,
            media.handle.commands.clone(),
            metrics.clone(),
            clock,
            shutdown_rx,
            Rc::downgrade(&ex),
            sim,
            jpeg_available,
            DeviceFeeds {
                hid: hid_feed,
                atx: atx_feed,
            },
        ));
        ex.spawn(web::serve(listener, app)).detach();

        let what = match &cfg.source {
            Some(SourceSpec::Replay(path)) => format!("replaying {}", path.display()),
            None => "simulated target".to_string(),
        };
        log::info!("serving the console on http://{addr}/ ({what})");
        println!("nanokvmd listening on http://{addr}/");
        let _ = std::io::stdout().flush();

        let signal = signals.next().await;
        log::info!("{signal:?}: shutting down");
        drop(shutdown_tx);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while metrics.viewers_total() > 0 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        Ok(())
    }));
    // Dropping the executor drops every task and with them the media thread's command queue,
    // which ends that thread.
    drop(ex);
    drop(media.handle);
    if media_join.join().is_err() {
        log::error!("media thread panicked");
    }
    result
}
