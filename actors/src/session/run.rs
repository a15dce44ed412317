//! The session's I/O loop: a reader and a writer running side by side on one task.

use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::WebSocketStream;
use futures_lite::{future, AsyncRead, AsyncWrite, StreamExt};
use nanokvm_protocol::Codec;

use super::{close, Inbound, Request, SessionAction, SessionCore};
use crate::clock::Clock;
use crate::encoder::{EncoderMsg, ViewerEvent};
use crate::hub::ViewerId;
use crate::media::EncodedFrame;
use crate::metrics::{Metrics, ViewerKind};

/// Frames queued for one client. Small on purpose: a client more than this far behind is
/// better served by skipping to the next IDR than by watching the past.
const FRAME_QUEUE: usize = 4;

/// The server pings this often; browsers answer pings by themselves, so a live client is
/// never silent for long even in a background tab.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A client silent this long (no message, no pong) is gone: its socket is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

enum Outgoing {
    Bytes(Vec<u8>),
    Close(u16, String),
}

pub async fn run<S>(
    ws: WebSocketStream<S>,
    id: ViewerId,
    encoder: Sender<EncoderMsg>,
    clock: Clock,
    shutdown: Receiver<()>,
    metrics: Arc<Metrics>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (frames_tx, frames_rx) = async_channel::bounded::<EncodedFrame>(FRAME_QUEUE);
    let (events_tx, events_rx) = async_channel::bounded::<ViewerEvent>(16);
    let (out_tx, out_rx) = async_channel::bounded::<Outgoing>(16);
    let (mut sink, mut stream) = ws.split();
    metrics.viewer_joined(ViewerKind::WebSocket);
    let _leave = LeaveOnDrop {
        id,
        encoder: encoder.clone(),
        metrics: metrics.clone(),
    };

    let reader = async {
        let mut core = SessionCore::new();
        let mut actions = Vec::new();
        let mut frames_tx = Some(frames_tx);
        let mut events_tx = Some(events_tx);
        loop {
            let received = future::or(async { Some(stream.next().await) }, async {
                smol::Timer::after(IDLE_TIMEOUT).await;
                None
            })
            .await;
            let Some(received) = received else {
                log::info!("session {id}: nothing received for {IDLE_TIMEOUT:?}, closing");
                let reason = format!("nothing received for {} s", IDLE_TIMEOUT.as_secs());
                let _ = out_tx.send(Outgoing::Close(close::POLICY, reason)).await;
                return future::pending().await;
            };
            let inbound = match received {
                Some(Ok(Message::Binary(b))) => Ok(b),
                Some(Ok(Message::Text(_))) => Err(Inbound::Text),
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => continue, // pings are answered by tungstenite; pongs just prove life
                Some(Err(WsError::Capacity(_))) => Err(Inbound::TooLarge),
                Some(Err(e)) => {
                    log::debug!("session {id}: {e}");
                    return;
                }
            };
            match &inbound {
                Ok(bytes) => core.inbound(clock.now_us(), Inbound::Binary(bytes), &mut actions),
                Err(Inbound::Text) => core.inbound(clock.now_us(), Inbound::Text, &mut actions),
                Err(_) => core.inbound(clock.now_us(), Inbound::TooLarge, &mut actions),
            }
            for action in actions.drain(..) {
                let msg = match action {
                    SessionAction::Reply(bytes) => {
                        let _ = out_tx.send(Outgoing::Bytes(bytes)).await;
                        continue;
                    }
                    SessionAction::Close(code, reason) => {
                        log::info!("session {id} closed: {reason}");
                        let _ = out_tx.send(Outgoing::Close(code, reason)).await;
                        // The writer sends the close frame and ends the session.
                        return future::pending().await;
                    }
                    SessionAction::Request(Request::Join { visible }) => {
                        let (Some(frames), Some(events)) = (frames_tx.take(), events_tx.take())
                        else {
                            continue;
                        };
                        EncoderMsg::Join {
                            id,
                            codec: Codec::H264,
                            frames,
                            events: Some(events),
                            visible,
                        }
                    }
                    SessionAction::Request(Request::Visibility(visible)) => {
                        EncoderMsg::Visibility { id, visible }
                    }
                    SessionAction::Request(Request::Keyframe(reason)) => {
                        EncoderMsg::KeyframeRequest { id, reason }
                    }
                    SessionAction::Request(Request::Settings(settings)) => {
                        EncoderMsg::ChangeSettings { id, settings }
                    }
                };
                if encoder.send(msg).await.is_err() {
                    return;
                }
            }
        }
    };

    let writer = async {
        let mut ping_timer = smol::Timer::interval(PING_INTERVAL);
        let mut messages = Vec::new();
        loop {
            enum Next {
                Frame(EncodedFrame),
                Event(ViewerEvent),
                Out(Outgoing),
                Ping,
                Shutdown,
            }
            // Control first (shutdown, closes, replies), then events, then frames.
            let control = future::or(
                async {
                    let _ = shutdown.recv().await;
                    Next::Shutdown
                },
                async { out_rx.recv().await.map_or(Next::Shutdown, Next::Out) },
            );
            let events = async {
                match events_rx.recv().await {
                    Ok(e) => Next::Event(e),
                    Err(_) => future::pending().await,
                }
            };
            let frames = async {
                match frames_rx.recv().await {
                    Ok(f) => Next::Frame(f),
                    Err(_) => future::pending().await,
                }
            };
            let ping = async {
                ping_timer.next().await;
                Next::Ping
            };
            let next = future::or(control, future::or(events, future::or(frames, ping))).await;
            let sent = match next {
                Next::Frame(frame) => sink.send(Message::Binary(frame.wire().clone())).await,
                Next::Ping => sink.send(Message::Ping(bytes::Bytes::new())).await,
                Next::Event(event) => {
                    super::event(&event, &mut messages);
                    let mut r = Ok(());
                    for m in messages.drain(..) {
                        r = r.and(sink.send(Message::Binary(m.into())).await);
                    }
                    r
                }
                Next::Out(Outgoing::Bytes(bytes)) => sink.send(Message::Binary(bytes.into())).await,
                Next::Out(Outgoing::Close(code, reason)) => {
                    let _ = sink.close(Some(close_frame(code, reason))).await;
                    return;
                }
                Next::Shutdown => {
                    let _ = sink
                        .close(Some(close_frame(
                            close::GOING_AWAY,
                            "server shutting down".into(),
                        )))
                        .await;
                    return;
                }
            };
            if let Err(e) = sent {
                log::debug!("session {id}: write failed: {e}");
                return;
            }
        }
    };

    future::or(reader, writer).await;
}

fn close_frame(code: u16, reason: String) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

struct LeaveOnDrop {
    id: ViewerId,
    encoder: Sender<EncoderMsg>,
    metrics: Arc<Metrics>,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.metrics.viewer_left(ViewerKind::WebSocket);
        // If the mailbox is full the hub still notices the closed queue on the next frame.
        let _ = self.encoder.try_send(EncoderMsg::Leave { id: self.id });
    }
}
