//! The WebSocket upgrade of `/api/ws`; the session actor takes over the socket afterwards.

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncRead, AsyncWrite};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use nanokvm_protocol::MAX_CLIENT_MSG;
use smol_hyper::rt::FuturesIo;

use super::ctx::Ctx;
use super::tls::Conn;
use super::{respond, App, Body, TEXT};
use crate::auth::SessionGuard;
use crate::hub::ViewerId;
use crate::session::{DiscardWrites, SessionLinks, WsWriter};

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// True when `origin` (`http://HOST[:PORT]` or `https://...`) names the host the request was
/// sent to, ignoring case.
pub(super) fn same_origin(origin: &str, host: &str) -> bool {
    let (origin, host) = (origin.trim(), host.trim());
    if host.is_empty() {
        return false;
    }
    let scheme_end = ["http://", "https://"].into_iter().find_map(|scheme| {
        let prefix = origin.get(..scheme.len())?;
        prefix.eq_ignore_ascii_case(scheme).then_some(scheme.len())
    });
    scheme_end.is_some_and(|n| origin[n..].eq_ignore_ascii_case(host))
}

/// Cross-site WebSocket hijacking: a browser sends the page's `Origin` with every WebSocket
/// handshake, and a page from another site must not drive this console with the user's
/// network position. Tools that send no `Origin` are let in.
fn origin_allowed(req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return true;
    };
    // A header that is not even UTF-8 matches nothing.
    let origin = origin.to_str().unwrap_or("");
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    if same_origin(origin, host.unwrap_or("")) {
        return true;
    }
    log::info!("refused a cross-origin WebSocket: Origin {origin:?}, Host {host:?}");
    false
}

pub fn upgrade(mut req: Request<Incoming>, ctx: Ctx) -> Response<Body> {
    let app = ctx.app;
    // The route table lets only authenticated callers get here.
    let Some(caller) = ctx.caller else {
        return respond(StatusCode::UNAUTHORIZED, TEXT, "authentication required\n");
    };
    if !origin_allowed(&req) {
        return respond(
            StatusCode::FORBIDDEN,
            TEXT,
            "cross-origin WebSocket refused: the Origin header does not match the Host header\n",
        );
    }
    if !header_has(&req, UPGRADE, "websocket") || !header_has(&req, CONNECTION, "upgrade") {
        return respond(
            StatusCode::UPGRADE_REQUIRED,
            TEXT,
            "this endpoint speaks WebSocket only\n",
        );
    }
    if req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            "Sec-WebSocket-Version must be 13\n",
        );
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return respond(StatusCode::BAD_REQUEST, TEXT, "Sec-WebSocket-Key missing\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let Some(slot) = app.connection_slot() else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "too many connections\n",
        );
    };
    let id = app.viewer_id();
    let session_app = app.clone();
    app.spawn(async move {
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("session {id}: upgrade failed: {e}");
                return;
            }
        };
        let parts = match upgraded.downcast::<FuturesIo<Conn>>() {
            Ok(p) => p,
            Err(_) => {
                log::error!("session {id}: upgraded connection is not ours");
                return;
            }
        };
        let read_buf = parts.read_buf.to_vec();
        let guard = session_app.auth.guard(&caller);
        log::info!("session {id} started ({})", caller.name);
        match parts.io.into_inner() {
            // tungstenite reads from one handle of the socket; the session writes its own
            // frames to the other, which keeps the connection's write deadline.
            Conn::Left(write_side) => {
                let read_side = DiscardWrites(write_side.get_ref().clone());
                run_session(read_side, read_buf, write_side, id, &session_app, guard).await
            }
            // TLS is one state machine: reader and writer share it through a split.
            Conn::Right(tls) => {
                let (read_half, write_half) = futures_lite::io::split(*tls);
                run_session(
                    DiscardWrites(read_half),
                    read_buf,
                    write_half,
                    id,
                    &session_app,
                    guard,
                )
                .await
            }
        }
        log::info!("session {id} ended");
    });
    let mut res = respond(StatusCode::SWITCHING_PROTOCOLS, TEXT, bytes::Bytes::new());
    let h = res.headers_mut();
    h.remove(hyper::header::CONTENT_TYPE);
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

async fn run_session<R, W>(
    read_side: DiscardWrites<R>,
    read_buf: Vec<u8>,
    write_side: W,
    id: ViewerId,
    app: &App,
    auth: SessionGuard,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(MAX_CLIENT_MSG))
        .max_frame_size(Some(MAX_CLIENT_MSG));
    let ws =
        WebSocketStream::from_partially_read(read_side, read_buf, Role::Server, Some(config)).await;
    crate::session::run(
        ws,
        WsWriter::new(write_side),
        id,
        SessionLinks {
            encoder: app.links.encoder.clone(),
            clock: app.links.clock,
            shutdown: app.links.shutdown.clone(),
            metrics: app.links.metrics.clone(),
            devices: app.links.devices.clone(),
            atx: app.links.atx.clone(),
            hid: app.links.hid.clone(),
            auth,
            h264: app.h264_available,
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn origin_must_name_the_host() {
        for (origin, host) in [
            ("http://kvm.local", "kvm.local"),
            ("https://kvm.local", "kvm.local"),
            ("http://192.168.1.20:8080", "192.168.1.20:8080"),
            ("HTTP://KVM.Local", "kvm.LOCAL"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            assert!(same_origin(origin, host), "{origin} vs {host}");
        }
        for (origin, host) in [
            ("http://evil.example", "kvm.local"),
            ("http://kvm.local.evil.example", "kvm.local"),
            ("http://kvm.local:8080", "kvm.local"),
            ("http://kvm.local", "kvm.local:8080"),
            ("null", "kvm.local"),
            ("kvm.local", "kvm.local"),
            ("ftp://kvm.local", "kvm.local"),
            ("http://kvm.local/", "kvm.local"),
            ("http://", ""),
            ("", ""),
        ] {
            assert!(!same_origin(origin, host), "{origin} vs {host}");
        }
    }
}
