//! The WebSocket upgrade of `/api/ws`; the session actor takes over the socket afterwards.

use std::rc::Rc;

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use nanokvm_protocol::MAX_CLIENT_MSG;
use smol::net::TcpStream;
use smol_hyper::rt::FuturesIo;

use super::write_deadline::WriteDeadline;
use super::{respond, App, Body, TEXT};

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub fn upgrade(mut req: Request<Incoming>, app: Rc<App>) -> Response<Body> {
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
    let id = app.viewer_id();
    let session_app = app.clone();
    app.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("session {id}: upgrade failed: {e}");
                return;
            }
        };
        let parts = match upgraded.downcast::<FuturesIo<WriteDeadline<TcpStream>>>() {
            Ok(p) => p,
            Err(_) => {
                log::error!("session {id}: upgraded connection is not a TCP stream");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(4 << 20)
            .max_message_size(Some(MAX_CLIENT_MSG))
            .max_frame_size(Some(MAX_CLIENT_MSG));
        let ws = WebSocketStream::from_partially_read(
            parts.io.into_inner(),
            parts.read_buf.to_vec(),
            Role::Server,
            Some(config),
        )
        .await;
        log::info!("session {id} started");
        crate::session::run(
            ws,
            id,
            session_app.encoder.clone(),
            session_app.clock,
            session_app.shutdown.clone(),
            session_app.metrics.clone(),
        )
        .await;
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
