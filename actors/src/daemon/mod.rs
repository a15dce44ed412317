//! Start-up and shutdown: picks the backend and source, starts the media thread and the
//! actors on the one executor, serves until SIGINT/SIGTERM, then closes sessions and releases
//! everything.
//!
//! What differs per backend (sim, device, replay) is in [`backend`]; what only the simulated
//! target has is in `sim` (with the `sim` feature) or its empty stand-in `no_sim`.

mod backend;
// The one place the `sim` feature chooses code here: both files offer the same items.
#[cfg_attr(not(feature = "sim"), path = "no_sim.rs")]
mod sim;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use nanokvm_protocol::{AtxState, HidLink, HidStatus};
use smol::LocalExecutor;

use crate::auth::worker::AuthWorker;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::{Config, IdrPolicyMode, SourceSpec};
use crate::idr_policy::PolicyConfig;
use crate::media::{self, MediaError, MediaThread, Source};
use crate::metrics::Metrics;
use crate::session::DeviceFeeds;
use crate::watch::watch;
use crate::{atx, board, capture, encoder, hid, web};
use backend::{BackendKind, BackendPaths};

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

/// What start-up settled before the executor runs.
struct Prepared<'a> {
    cfg: &'a Config,
    exposure: web::exposure::Exposure,
    clock: Clock,
    data_dir: PathBuf,
    auth: Rc<Auth>,
    tls: Option<futures_rustls::TlsAcceptor>,
    paths: &'a BackendPaths,
    offer: web::StreamOffer,
    metrics: Arc<Metrics>,
}

/// The media thread's queues the actors use.
struct MediaLinks {
    commands: async_channel::Sender<media::MediaCmd>,
    grabs: async_channel::Receiver<media::GrabReport>,
    encodes: async_channel::Receiver<media::EncodeReport>,
}

/// What the backend's own tasks are connected to.
struct TaskLinks {
    media: async_channel::Sender<media::MediaCmd>,
    /// Closed when the daemon shuts down.
    shutdown: async_channel::Receiver<()>,
    clock: Clock,
}

pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let (source, kind) = backend::select_source(&cfg)?;
    let sim = kind == BackendKind::Sim;
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
        Some(tls_acceptor(&cfg, &data_dir)?)
    } else {
        None
    };
    // Lives until the end: the simulated target's files are removed as it is dropped.
    let paths = BackendPaths::new(&cfg, kind)?;
    // The device's one hardware encoder stays on H.264 (see ARCHITECTURE.md, "MJPEG on the
    // device"); the replay source has only its file.
    let offer = web::StreamOffer {
        sim,
        jpeg_available: !matches!(source, Source::Replay(_) | Source::Device(_)),
        h264_available: source.has_h264(),
    };
    let metrics = Arc::new(Metrics::default());
    let MediaThread {
        handle: media_handle,
        grabs,
        encodes,
        join: media_join,
    } = media::spawn(source, metrics.clone())
        .map_err(|e| DaemonError::Io("starting the media thread", e))?;
    let media = MediaLinks {
        commands: media_handle.commands.clone(),
        grabs,
        encodes,
    };
    let prepared = Prepared {
        cfg: &cfg,
        exposure,
        clock,
        data_dir,
        auth: auth.clone(),
        tls,
        paths: &paths,
        offer,
        metrics,
    };
    let ex: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let result = smol::block_on(ex.run(serve(&ex, prepared, media)));
    // Dropping the executor drops every task and with them the media thread's command queue,
    // which ends that thread.
    drop(ex);
    drop(auth);
    drop(media_handle);
    if media_join.join().is_err() {
        log::error!("media thread panicked");
    }
    if auth_join.join().is_err() {
        log::error!("auth thread panicked");
    }
    result
}

fn tls_acceptor(cfg: &Config, data_dir: &Path) -> Result<futures_rustls::TlsAcceptor, DaemonError> {
    let configured = cfg.web.tls_cert.as_deref().zip(cfg.web.tls_key.as_deref());
    let (acceptor, source) = web::tls::acceptor(configured, data_dir).map_err(DaemonError::Tls)?;
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
    Ok(acceptor)
}

/// Starts the actors, serves until a signal, then winds down.
async fn serve(
    ex: &Rc<LocalExecutor<'static>>,
    prepared: Prepared<'_>,
    media: MediaLinks,
) -> Result<(), DaemonError> {
    let Prepared {
        cfg,
        exposure,
        clock,
        data_dir,
        auth,
        tls,
        paths,
        offer,
        metrics,
    } = prepared;
    let (listener, redirect, addr) = bind(&exposure).await?;
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
        media.commands.clone(),
        encoder_tx.clone(),
        cfg.stream,
        clock,
    ))
    .detach();
    ex.spawn(encoder::run(
        encoder::EncoderLinks {
            mailbox: encoder_rx,
            encodes: media.encodes,
            media: media.commands.clone(),
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
    // Before the hid actor: the simulated target's USB side opens the FIFOs it will find.
    let sim_target = backend::start_tasks(
        ex,
        cfg,
        paths,
        TaskLinks {
            media: media.commands.clone(),
            shutdown: shutdown_rx.clone(),
            clock,
        },
    )?;
    let devices = start_device_actors(ex, paths, shutdown_rx.clone(), clock, &metrics);
    let mut app = web::App::new(
        web::AppLinks {
            encoder: encoder_tx,
            media: media.commands.clone(),
            metrics: metrics.clone(),
            clock,
            shutdown: shutdown_rx,
            executor: Rc::downgrade(ex),
            devices: devices.feeds,
            atx: devices.atx,
            hid: devices.hid,
        },
        offer,
        web::Security {
            auth: auth.clone(),
            tls: tls.clone(),
        },
    );
    sim::attach(&mut app, sim_target);
    let app = Rc::new(app);
    ex.spawn(auth.clone().sweep(app.links.shutdown.clone()))
        .detach();
    if let Some(r) = redirect {
        ex.spawn(web::redirect::serve(r, app.clone(), addr.port()))
            .detach();
    }
    ex.spawn(web::serve(listener, app, tls)).detach();

    announce(cfg, paths.kind, &exposure, addr, &auth, &data_dir);

    let signal = signals.next().await;
    log::info!("{signal:?}: shutting down");
    drop(shutdown_tx);
    wind_down(devices.atx_task, &metrics).await;
    Ok(())
}

/// The console's listener, the optional plain-HTTP redirect's, and the address bound.
async fn bind(
    exposure: &web::exposure::Exposure,
) -> Result<
    (
        smol::net::TcpListener,
        Option<smol::net::TcpListener>,
        std::net::SocketAddr,
    ),
    DaemonError,
> {
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
    Ok((listener, redirect, addr))
}

/// The hid and atx actors, as the web actor reaches them.
struct DeviceActors {
    feeds: DeviceFeeds,
    atx: atx::AtxHandle,
    hid: async_channel::Sender<crate::hid::HidMsg>,
    /// Awaited at shutdown: a held button is let go.
    atx_task: smol::Task<()>,
}

fn start_device_actors(
    ex: &LocalExecutor<'static>,
    paths: &BackendPaths,
    shutdown: async_channel::Receiver<()>,
    clock: Clock,
    metrics: &Arc<Metrics>,
) -> DeviceActors {
    let (hid_status, hid_feed) = watch(HidStatus {
        keyboard: HidLink::Absent,
        mouse: HidLink::Absent,
        absolute: HidLink::Absent,
        leds: None,
    });
    let (hid_tx, hid_rx) = async_channel::bounded(64);
    ex.spawn(hid::run(
        hid_rx,
        paths.hid.clone(),
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
        power_long_ms: paths.atx.power_long_ms,
    };
    let atx_task = ex.spawn(atx::run(
        paths.atx.clone(),
        atx_rx,
        atx_state,
        shutdown,
        clock,
    ));
    DeviceActors {
        feeds: DeviceFeeds {
            hid: hid_feed,
            atx: atx_feed,
        },
        atx: atx_handle,
        hid: hid_tx,
        atx_task,
    }
}

/// Tells the log and stdout where the console is (and how to set it up, when new).
fn announce(
    cfg: &Config,
    kind: BackendKind,
    exposure: &web::exposure::Exposure,
    addr: std::net::SocketAddr,
    auth: &Auth,
    data_dir: &Path,
) {
    let what = match &cfg.source {
        Some(SourceSpec::Replay(path)) => format!("replaying {}", path.display()),
        None if kind == BackendKind::Device => format!(
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
}

/// Lets a held button go, then gives sessions their grace to say goodbye.
async fn wind_down(atx_task: smol::Task<()>, metrics: &Metrics) {
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
        log::warn!("the atx actor did not stop in time; its lines are released as it is dropped");
    }
    while metrics.viewers_total() > 0 && Instant::now() < deadline {
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}
