//! The web actor: accepts connections, routes requests, spawns sessions. The only module that
//! knows HTTP.

mod assets;
mod atx;
mod auth_api;
mod ctx;
pub mod exposure;
mod hid;
pub mod redirect;
mod routes;
#[cfg(feature = "sim")]
mod sim;
mod socket_options;
mod streams;
pub mod tls;
mod write_deadline;
mod ws;

pub use routes::describe as describe_routes;

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::future;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use smol::net::TcpListener;
use smol::LocalExecutor;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::atx::AtxHandle;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::hid::HidMsg;
use crate::hub::ViewerId;
use crate::media::MediaCmd;
use crate::metrics::Metrics;
use crate::session::DeviceFeeds;
use crate::video_msgs::EncoderMsg;
use write_deadline::WriteDeadline;

/// A peer that accepts no bytes for this long is disconnected (HTTP and WebSocket alike).
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Response bodies are not `Send`: they live and die on the one executor thread.
pub type Body = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = Infallible>>>;

pub fn boxed(body: impl hyper::body::Body<Data = Bytes, Error = Infallible> + 'static) -> Body {
    Box::pin(body)
}

/// What request handlers share. Only handles to other actors and immutable facts: the state
/// lives in the actors.
pub struct App {
    /// The actors and shared handles (built by the daemon, kept as one struct).
    pub links: AppLinks,
    pub sim: bool,
    pub jpeg_available: bool,
    /// The source's pictures can be had as H.264 (not from the simulated target without the
    /// software encoder).
    pub h264_available: bool,
    /// The simulated target's state for `/api/sim/state`, when it runs.
    #[cfg(feature = "sim")]
    pub sim_state: Option<crate::sim::state::SimStateFeed>,
    /// The simulated target's HID side (sim mode only).
    #[cfg(feature = "sim")]
    pub sim_target: Option<Sender<crate::sim::target::SimTargetMsg>>,
    /// Accounts, sessions, tokens: every request's access decision asks it.
    pub auth: Rc<Auth>,
    /// Connections arrive over TLS (cookies get `Secure`).
    pub tls: bool,
    next_id: Cell<ViewerId>,
    connections: Cell<usize>,
}

impl App {
    pub fn new(links: AppLinks, offer: StreamOffer, security: Security) -> Self {
        Self {
            links,
            sim: offer.sim,
            jpeg_available: offer.jpeg_available,
            h264_available: offer.h264_available,
            #[cfg(feature = "sim")]
            sim_state: None,
            #[cfg(feature = "sim")]
            sim_target: None,
            auth: security.auth,
            tls: security.tls.is_some(),
            next_id: Cell::new(1),
            connections: Cell::new(0),
        }
    }

    fn viewer_id(&self) -> ViewerId {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// A place among the connections served at once, or `None` when all are taken.
    pub fn connection_slot(self: &Rc<Self>) -> Option<ConnectionSlot> {
        let open = self.connections.get();
        if open >= MAX_CONNECTIONS {
            return None;
        }
        self.connections.set(open + 1);
        Some(ConnectionSlot(self.clone()))
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + 'static) {
        if let Some(ex) = self.links.executor.upgrade() {
            ex.spawn(fut).detach();
        }
    }
}

/// The actors and shared handles request handlers reach.
pub struct AppLinks {
    pub encoder: Sender<EncoderMsg>,
    pub media: Sender<MediaCmd>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Closed (all senders dropped) when the daemon shuts down.
    pub shutdown: Receiver<()>,
    pub executor: Weak<LocalExecutor<'static>>,
    pub devices: DeviceFeeds,
    pub atx: AtxHandle,
    pub hid: Sender<HidMsg>,
}

/// What the source can give viewers, fixed at start-up.
pub struct StreamOffer {
    /// The source is the simulated target.
    pub sim: bool,
    pub jpeg_available: bool,
    pub h264_available: bool,
}

/// How connections are secured: who may do what, and TLS when it is on.
pub struct Security {
    pub auth: Rc<Auth>,
    pub tls: Option<futures_rustls::TlsAcceptor>,
}

/// A TLS handshake that takes longer than this is given up (it only holds a slot).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections (HTTP and WebSocket sessions) served at once. More are refused at once, so a
/// flood of idle sockets cannot take the memory the video needs.
pub const MAX_CONNECTIONS: usize = 64;

/// Held for as long as a connection or session is served.
pub struct ConnectionSlot(Rc<App>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0
            .connections
            .set(self.0.connections.get().saturating_sub(1));
    }
}

/// Accepts connections until shutdown (TLS ones when `tls` is given).
pub async fn serve(listener: TcpListener, app: Rc<App>, tls: Option<futures_rustls::TlsAcceptor>) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _ = app.links.shutdown.recv().await;
            None
        })
        .await;
        let (tcp, peer) = match accepted {
            None => break,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                log::warn!("accept failed: {e}");
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = app.connection_slot() else {
            log::warn!("refusing {peer}: {MAX_CONNECTIONS} connections already open");
            continue;
        };
        if let Err(e) = socket_options::tune(&tcp) {
            log::debug!("socket options for {peer}: {e}");
        }
        let conn_app = app.clone();
        let tls = tls.clone();
        app.spawn(async move {
            let _slot = slot;
            let tcp = WriteDeadline::new(tcp, WRITE_DEADLINE);
            let conn = match tls {
                None => tls::Conn::Left(tcp),
                Some(acceptor) => {
                    let handshake = future::or(async { Some(acceptor.accept(tcp).await) }, async {
                        smol::Timer::after(TLS_HANDSHAKE_TIMEOUT).await;
                        None
                    });
                    match handshake.await {
                        Some(Ok(s)) => tls::Conn::Right(Box::new(s)),
                        Some(Err(e)) => {
                            log::debug!("TLS handshake with {peer}: {e}");
                            return;
                        }
                        None => {
                            log::debug!("TLS handshake with {peer}: timed out");
                            return;
                        }
                    }
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let app = conn_app.clone();
                async move {
                    Ok::<_, Infallible>(with_security_headers(
                        routes::dispatch(req, app, peer).await,
                    ))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(SmolTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                // Stream bodies are shared frame bytes: write them vectored, not copied.
                .writev(true)
                .serve_connection(FuturesIo::new(conn), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                log::debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// Reads a JSON body of at most `limit` bytes; otherwise the response to give: 413 for a
/// longer body, 400 saying what was expected for anything else.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
    expected: &str,
) -> Result<T, Response<Body>> {
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                TEXT,
                format!("request body over {limit} bytes\n"),
            ))
        }
        Err(e) => {
            return Err(respond(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!("unreadable body: {e}\n"),
            ))
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            format!("expected {expected}: {e}\n"),
        )
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleRequest {
    console: u8,
}

async fn switch_console(req: Request<Incoming>, app: &App) -> Response<Body> {
    let console = match read_json::<ConsoleRequest>(req, 1024, "{\"console\": 1..4}").await {
        Ok(r) => r.console,
        Err(res) => return res,
    };
    let (tx, rx) = async_channel::bounded(1);
    if app
        .links
        .media
        .send(MediaCmd::SwitchConsole { console, reply: tx })
        .await
        .is_err()
    {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "media thread stopped\n",
        );
    }
    match rx.recv().await {
        Ok(Ok(())) => respond(StatusCode::NO_CONTENT, TEXT, Bytes::new()),
        Ok(Err(e)) => respond(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
        Err(_) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "media thread stopped\n",
        ),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(boxed(Full::new(body.into())));
    *res.status_mut() = status;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(CONTENT_TYPE, ct);
    }
    res
}

pub fn not_found() -> Response<Body> {
    respond(StatusCode::NOT_FOUND, TEXT, "not found\n")
}

/// Headers every response carries: the console runs no inline script and is never framed.
pub fn with_security_headers(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; worker-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
