//! Start-up and shutdown: picks the backend and source, starts the media thread and the
//! actors on the one executor, serves until SIGINT/SIGTERM, then closes sessions and releases
//! everything.

use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use nanokvm_protocol::{AtxState, HidLink, HidStatus};
use smol::LocalExecutor;

use crate::auth::worker::AuthWorker;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::{BackendChoice, Config, IdrPolicyMode, SourceSpec};
use crate::device::state_files::StateFiles;
use crate::device::watchdog::{self, Watchdog};
use crate::hid::HidPaths;
use crate::idr_policy::PolicyConfig;
use crate::media::{self, DeviceSource, MediaError, ReplaySource, Source};
use crate::metrics::Metrics;
use crate::session::DeviceFeeds;
use crate::watch::watch;
use crate::{atx, board, capture, encoder, hid, web};

#[derive(Debug)]
pub enum DaemonError {
    Backend(String),
    Media(MediaError),
    Io(&'static str, std::io::Error),
    /// How the console would be exposed is refused (plain HTTP beyond loopback, ...).
    Exposure(String),
    Auth(crate::auth::AuthError),
    Tls(web::tls::TlsError),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Backend(m) => write!(f, "{m}"),
            DaemonError::Media(e) => write!(f, "{e}"),
            DaemonError::Io(what, e) => write!(f, "{what}: {e}"),
            DaemonError::Exposure(m) => write!(f, "{m}"),
            DaemonError::Auth(e) => write!(f, "{e}"),
            DaemonError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// How long sessions get to say goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How long the atx actor gets to let go of a button at shutdown (it needs microseconds; if
/// it does not answer, dropping its task releases the line too).
const ATX_RELEASE_GRACE: Duration = Duration::from_millis(500);

/// Returns the source and whether it is the simulated target.
fn select_source(cfg: &Config) -> Result<(Source, bool), DaemonError> {
    let backend = match cfg.backend {
        BackendChoice::Auto if board::nanokvm_detected() || cfg.device.library_dir.exists() => {
            BackendChoice::Device
        }
        BackendChoice::Auto => BackendChoice::Sim,
        b => b,
    };
    match (&cfg.source, backend) {
        (Some(SourceSpec::Replay(path)), _) => Ok((
            Source::Replay(ReplaySource::load(path).map_err(DaemonError::Media)?),
            false,
        )),
        (None, BackendChoice::Device) => device_source(cfg).map(|s| (s, false)),
        (None, _) => sim_source(cfg.sim_stamp).map(|s| (s, true)),
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

/// The sim's GPIO tree is under its scratch root.
#[cfg(feature = "sim")]
fn sim_gpio_root(root: Option<&crate::sim::root::SimRoot>) -> Option<PathBuf> {
    root.map(|r| r.path().to_owned())
}

#[cfg(not(feature = "sim"))]
fn sim_gpio_root(_: Option<&()>) -> Option<PathBuf> {
    None
}

/// Lays out the simulated target's front-panel files and starts its power side, which
/// watches them. Returns its state for `/api/sim/state` and its HDD LED, which the simulated
/// keyboard's typing blinks.
#[cfg(feature = "sim")]
fn start_sim_target(
    ex: &LocalExecutor<'static>,
    root: &crate::sim::root::SimRoot,
    variant: Option<atx::Variant>,
    media: async_channel::Sender<media::MediaCmd>,
    clock: Clock,
) -> Result<
    (
        crate::sim::state::SimStateFeed,
        crate::sim::power::run::DiskLight,
    ),
    DaemonError,
> {
    use crate::sim::power::{self, run as power_run};
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
            media,
            state,
            clock,
        },
    ))
    .detach();
    Ok((crate::sim::state::SimStateFeed::new(feed), disk_light))
}

#[cfg(feature = "sim")]
fn sim_hid_paths(root: &crate::sim::root::SimRoot) -> Result<HidPaths, DaemonError> {
    crate::sim::target::create_fifos(root.path())
        .map_err(|e| DaemonError::Io("creating the simulated target's HID FIFOs", e))
}

#[cfg(not(feature = "sim"))]
fn sim_hid_paths(_root: &()) -> Result<HidPaths, DaemonError> {
    Err(DaemonError::Backend(
        "this build has no simulated target (feature `sim`)".into(),
    ))
}

#[cfg(not(feature = "sim"))]
fn sim_source(_stamp: bool) -> Result<Source, DaemonError> {
    Err(DaemonError::Backend(
        "this build has no simulated target (feature `sim`)".into(),
    ))
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

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let (source, sim) = select_source(&cfg)?;
    let exposure = web::exposure::plan(&cfg.web, cfg.listen, !sim && board::nanokvm_detected())
        .map_err(DaemonError::Exposure)?;
    let clock = Clock::start();
    let data_dir = crate::cli::data_dir(&cfg);
    let (auth_worker, auth_join) =
        AuthWorker::spawn().map_err(|e| DaemonError::Io("starting the auth thread", e))?;
    let auth = Rc::new(
        Auth::open(&data_dir, cfg.sessions, clock, auth_worker).map_err(DaemonError::Auth)?,
    );
    let tls = if exposure.tls {
        let configured = cfg.web.tls_cert.as_deref().zip(cfg.web.tls_key.as_deref());
        let (acceptor, source) =
            web::tls::acceptor(configured, &data_dir).map_err(DaemonError::Tls)?;
        match source {
            web::tls::CertSource::Configured(p) => log::info!("TLS certificate {}", p.display()),
            web::tls::CertSource::Kept(p) => {
                log::info!("TLS: self-signed certificate {}", p.display())
            }
            web::tls::CertSource::Generated(p) => log::info!(
                "TLS: generated a self-signed certificate, {}; browsers ask to trust it once",
                p.display()
            ),
        }
        Some(acceptor)
    } else {
        None
    };
    let sim_root = if sim { Some(sim_root()?) } else { None };
    let atx_config = atx::AtxConfig {
        root: cfg
            .atx
            .gpio_root
            .clone()
            .or_else(|| sim_gpio_root(sim_root.as_ref()))
            .unwrap_or_else(|| PathBuf::from("/")),
        variant: cfg.atx.variant,
        power_long_ms: cfg.atx.power_long_ms,
    };
    // The simulated target's FIFOs stand where the gadget's devices would be.
    let hid_paths = match &sim_root {
        Some(root) => sim_hid_paths(root)?,
        None => cfg.hid.clone(),
    };
    // The device's one hardware encoder stays on H.264 (see ARCHITECTURE.md, "MJPEG on the
    // device"); the replay source has only its file.
    let jpeg_available = !matches!(source, Source::Replay(_) | Source::Device(_));
    let h264_available = source.has_h264();
    let device = matches!(source, Source::Device(_));
    let metrics = Arc::new(Metrics::default());
    let media = media::spawn(source, metrics.clone())
        .map_err(|e| DaemonError::Io("starting the media thread", e))?;
    let media_join = media.join;

    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let result = smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind(exposure.listen)
            .await
            .map_err(|e| DaemonError::Io("binding the listen address", e))?;
        let redirect = match exposure.redirect {
            Some(a) => Some(
                smol::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| DaemonError::Io("binding the HTTP redirect address", e))?,
            ),
            None => None,
        };
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
            encoder::EncoderLinks {
                mailbox: encoder_rx,
                encodes: media.encodes,
                media: media.handle.commands.clone(),
                capture: capture_tx,
                clock,
                metrics: metrics.clone(),
            },
            cfg.stream,
            PolicyConfig {
                forced_idrs: cfg.idr_policy == IdrPolicyMode::On,
                ..PolicyConfig::default()
            },
        ))
        .detach();
        #[cfg(feature = "sim")]
        let sim_power = match &sim_root {
            Some(root) => Some(start_sim_target(
                &ex,
                root,
                cfg.atx.variant,
                media.handle.commands.clone(),
                clock,
            )?),
            None => None,
        };
        #[cfg(feature = "sim")]
        let (sim_state, disk_light) = match sim_power {
            Some((state, light)) => (Some(state), Some(light)),
            None => (None, None),
        };
        // The simulated target's USB side first, so that the hid actor finds its FIFOs open.
        #[cfg(feature = "sim")]
        let sim_target = sim_root.as_ref().zip(disk_light).map(|(_, disk)| {
            let (tx, rx) = async_channel::bounded(16);
            ex.spawn(crate::sim::target::run(
                rx,
                hid_paths.clone(),
                media.handle.commands.clone(),
                disk,
            ))
            .detach();
            tx
        });
        let (hid_status, hid_feed) = watch(HidStatus {
            keyboard: HidLink::Absent,
            mouse: HidLink::Absent,
            absolute: HidLink::Absent,
            leds: None,
        });
        let (hid_tx, hid_rx) = async_channel::bounded(64);
        ex.spawn(hid::run(
            hid_rx,
            hid_paths,
            hid_status,
            clock,
            metrics.clone(),
        ))
        .detach();
        let (atx_state, atx_feed) = watch(AtxState {
            power_led: false,
            hdd_led: None,
            busy: None,
        });
        let (atx_tx, atx_rx) = async_channel::bounded(16);
        let atx_handle = atx::AtxHandle {
            requests: atx_tx,
            power_long_ms: atx_config.power_long_ms,
        };
        if device {
            ex.spawn(watchdog::run(
                Watchdog::new(&cfg.device.root),
                shutdown_rx.clone(),
            ))
            .detach();
            ex.spawn(media_ticks(media.handle.commands.clone(), clock))
                .detach();
        }
        let atx_task = ex.spawn(atx::run(
            atx_config,
            atx_rx,
            atx_state,
            shutdown_rx.clone(),
            clock,
        ));
        #[allow(unused_mut)]
        let mut app = web::App::new(
            web::AppLinks {
                encoder: encoder_tx,
                media: media.handle.commands.clone(),
                metrics: metrics.clone(),
                clock,
                shutdown: shutdown_rx,
                executor: Rc::downgrade(&ex),
                devices: DeviceFeeds {
                    hid: hid_feed,
                    atx: atx_feed,
                },
                atx: atx_handle,
                hid: hid_tx,
            },
            web::StreamOffer {
                sim,
                jpeg_available,
                h264_available,
            },
            web::Security {
                auth: auth.clone(),
                tls: tls.clone(),
            },
        );
        #[cfg(feature = "sim")]
        {
            app = app.with_sim_state(sim_state);
            app.sim_target = sim_target;
        }
        let app = Rc::new(app);
        ex.spawn(auth.clone().sweep(app.shutdown.clone())).detach();
        if let Some(r) = redirect {
            ex.spawn(web::redirect::serve(r, app.clone(), addr.port()))
                .detach();
        }
        ex.spawn(web::serve(listener, app, tls)).detach();

        let what = match &cfg.source {
            Some(SourceSpec::Replay(path)) => format!("replaying {}", path.display()),
            None if device => format!(
                "device: video library in {}",
                cfg.device.library_dir.display()
            ),
            None => "simulated target".to_string(),
        };
        let scheme = exposure.scheme();
        log::info!("serving the console on {scheme}://{addr}/ ({what})");
        println!("nanokvmd listening on {scheme}://{addr}/");
        if let Some(code) = auth.setup_code() {
            println!(
                "nanokvmd setup: no account exists yet; create the first admin at \
                 {scheme}://{addr}/setup.html#code={code} (the code is also in {})",
                data_dir.join(crate::auth::store::SETUP_CODE_FILE).display()
            );
        }
        let _ = std::io::stdout().flush();

        let signal = signals.next().await;
        log::info!("{signal:?}: shutting down");
        drop(shutdown_tx);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        // A button held at this moment is let go before the process ends.
        let released = futures_lite::future::or(
            async {
                atx_task.await;
                true
            },
            async {
                smol::Timer::after(ATX_RELEASE_GRACE).await;
                false
            },
        )
        .await;
        if !released {
            log::warn!(
                "the atx actor did not stop in time; its lines are released as it is dropped"
            );
        }
        while metrics.viewers_total() > 0 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        Ok(())
    }));
    // Dropping the executor drops every task and with them the media thread's command queue,
    // which ends that thread.
    drop(ex);
    drop(auth);
    drop(media.handle);
    if media_join.join().is_err() {
        log::error!("media thread panicked");
    }
    if auth_join.join().is_err() {
        log::error!("auth thread panicked");
    }
    result
}
