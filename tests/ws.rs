//! A WebSocket client for `/api/ws`, speaking the protocol the browser speaks; every wait is
//! bounded, and messages skipped while waiting for another are kept for failure messages.

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::{self, ClientMsg, ServerMsg, StreamSettings};
use crate::{timeout, within};

mod message;
pub use message::{Event, Frame, Msg};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct WsClient {
    ws: WebSocketStream<crate::AsyncConn>,
    /// Every message skipped by the `recv_*` helpers, for failure messages.
    skipped: Vec<String>,
}

impl WsClient {
    /// Opens `/api/ws` (handshake only; no Hello sent), authenticated with the daemon's
    /// token.
    pub async fn connect(addr: SocketAddr) -> WsClient {
        match Self::connect_as(addr, &crate::Auth::Default, None).await {
            Ok(c) => c,
            Err(e) => panic!("WebSocket handshake with {addr}/api/ws: {e}"),
        }
    }

    /// Opens `/api/ws` with the given authentication and `Origin` header; the error says
    /// why the handshake failed (e.g. `HTTP error: 401 Unauthorized`).
    pub async fn connect_as(
        addr: SocketAddr,
        auth: &crate::Auth,
        origin: Option<&str>,
    ) -> Result<WsClient, String> {
        use async_tungstenite::tungstenite::client::IntoClientRequest;
        use async_tungstenite::tungstenite::http::HeaderValue;
        within(CONNECT_TIMEOUT, "the WebSocket handshake", async {
            let conn = crate::connect_async(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let scheme = if matches!(conn, futures_util::future::Either::Right(_)) {
                "wss"
            } else {
                "ws"
            };
            let mut req = format!("{scheme}://{addr}/api/ws")
                .into_client_request()
                .map_err(|e| e.to_string())?;
            let headers = req.headers_mut();
            if let Some((k, v)) = auth.header(addr) {
                headers.insert(k, HeaderValue::from_str(&v).map_err(|e| e.to_string())?);
            }
            if let Some(o) = origin {
                headers.insert(
                    "origin",
                    HeaderValue::from_str(o).map_err(|e| e.to_string())?,
                );
            }
            let mut cfg = WebSocketConfig::default();
            cfg.max_message_size = Some(64 << 20);
            cfg.max_frame_size = Some(64 << 20);
            let (ws, _resp) = async_tungstenite::client_async_with_config(req, conn, Some(cfg))
                .await
                .map_err(|e| e.to_string())?;
            Ok(WsClient {
                ws,
                skipped: Vec::new(),
            })
        })
        .await
    }

    /// Connects, sends `Hello { version: 1, visible }` and waits for the server's Hello,
    /// which must be the first message. Returns the client, the settings and when the Hello
    /// arrived.
    pub async fn connect_hello(
        addr: SocketAddr,
        visible: bool,
    ) -> (WsClient, StreamSettings, Instant) {
        let mut c = Self::connect(addr).await;
        c.send(&ClientMsg::Hello {
            version: proto::PROTOCOL_VERSION,
            visible,
        })
        .await;
        match c.recv(Duration::from_secs(5)).await {
            Msg::Hello { version, settings } => {
                assert_eq!(version, proto::PROTOCOL_VERSION, "server Hello version");
                (c, settings, Instant::now())
            }
            other => panic!(
                "the first server message is not Hello: {}",
                other.describe()
            ),
        }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(Message::binary(msg.encode())).await;
    }

    /// Sends any WebSocket message (bounded by 5 s).
    pub async fn send_raw(&mut self, m: Message) {
        within(
            Duration::from_secs(5),
            "sending a WebSocket message",
            self.ws.send(m),
        )
        .await
        .unwrap_or_else(|e| panic!("WebSocket send: {e}"));
    }

    /// Like [`send_raw`](Self::send_raw) but returns the error (the server may already
    /// have closed).
    pub async fn try_send_raw(&mut self, m: Message) -> Result<(), String> {
        match timeout(Duration::from_secs(5), self.ws.send(m)).await {
            Some(r) => r.map_err(|e| e.to_string()),
            None => Err("send timed out".into()),
        }
    }

    /// The next event, or `None` after `d`.
    pub async fn next_event(&mut self, d: Duration) -> Option<Event> {
        timeout(d, self.next_event_unbounded()).await
    }

    async fn next_event_unbounded(&mut self) -> Event {
        loop {
            let item = self.ws.next().await;
            let at = Instant::now();
            return match item {
                None => Event::Ended("the connection ended without a close frame".into()),
                Some(Err(e)) => Event::Ended(format!("WebSocket error: {e}")),
                Some(Ok(Message::Binary(b))) => match ServerMsg::decode(&b) {
                    Ok(m) => Event::Msg(Msg::from_wire(m, at)),
                    Err(e) => Event::Undecodable(format!(
                        "{e} ({} bytes: {:02x?})",
                        b.len(),
                        &b[..b.len().min(16)]
                    )),
                },
                Some(Ok(Message::Text(t))) => Event::Text(t.to_string()),
                Some(Ok(Message::Close(f))) => {
                    Event::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => continue,
            };
        }
    }

    /// The next server message; panics on timeout, close or anything that is not a valid
    /// binary `ServerMsg`.
    pub async fn recv(&mut self, d: Duration) -> Msg {
        match self.next_event(d).await {
            Some(Event::Msg(m)) => m,
            Some(other) => panic!("expected a server message, got {other:?}"),
            None => panic!("no server message within {d:?}"),
        }
    }

    /// Skips messages until one matches `pred`; panics (listing what was skipped) when
    /// none does within `d`.
    pub async fn recv_until(
        &mut self,
        d: Duration,
        what: &str,
        mut pred: impl FnMut(&Msg) -> bool,
    ) -> Msg {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(Event::Msg(m)) if pred(&m) => {
                    self.skipped.append(&mut seen);
                    return m;
                }
                Some(Event::Msg(m)) => seen.push(m.describe()),
                Some(other) => panic!("waiting for {what}: got {other:?} (after {seen:?})"),
                None => panic!("no {what} within {d:?}; received meanwhile: {seen:?}"),
            }
        }
    }

    /// The next Video, skipping other messages.
    pub async fn recv_video(&mut self, d: Duration) -> Frame {
        match self
            .recv_until(d, "a Video message", |m| matches!(m, Msg::Video(_)))
            .await
        {
            Msg::Video(f) => f,
            _ => unreachable!(),
        }
    }

    /// The next Video within `d`, or `None`; other messages are skipped. Panics on close.
    pub async fn try_recv_video(&mut self, d: Duration) -> Option<Frame> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(Event::Msg(Msg::Video(f))) => return Some(f),
                Some(Event::Msg(m)) => self.skipped.push(m.describe()),
                Some(other) => panic!("waiting for video: got {other:?}"),
                None => return None,
            }
        }
    }

    /// Every Video received during `d` (other messages are skipped).
    pub async fn collect_video(&mut self, d: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + d;
        let mut frames = Vec::new();
        while let Some(f) = self
            .try_recv_video(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            frames.push(f);
        }
        frames
    }

    /// Reads until a close frame; returns its code and reason and the messages before it.
    /// Panics when the connection ends without one or nothing comes within `d`.
    pub async fn expect_close(&mut self, d: Duration) -> (u16, String, Vec<Msg>) {
        let deadline = Instant::now() + d;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Some(Event::Closed(Some((code, reason)))) => return (code, reason, before),
                Some(Event::Closed(None)) => panic!(
                    "close frame without a status code (messages before: {:?})",
                    before.iter().map(Msg::describe).collect::<Vec<_>>()
                ),
                Some(Event::Msg(m)) => before.push(m),
                Some(other) => panic!(
                    "expected a close frame, got {other:?} (messages before: {:?})",
                    before.iter().map(Msg::describe).collect::<Vec<_>>()
                ),
                None => panic!(
                    "no close frame within {d:?} (messages before: {:?})",
                    before.iter().map(Msg::describe).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Messages skipped so far by the `recv_*` helpers.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}
