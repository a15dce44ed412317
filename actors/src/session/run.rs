//! The session's I/O. A reader and a writer run side by side on one task until one of them
//! decides how the session ends; then the close handshake finishes it.
//!
//! The reader decodes client messages (tungstenite, over the socket's read side) and never
//! waits on the writer except to hand it a close. The writer owns the socket's write side and
//! sends, in this order of priority: shutdown and the reader's replies and closes, encoder
//! events, frames, pings.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_tungstenite::tungstenite::error::ProtocolError;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::WebSocketStream;
use bytes::Bytes;
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, StreamExt};
use nanokvm_protocol::Codec;

use super::{close, DeviceFeeds, Inbound, Request, SessionAction, SessionCore, WsWriter};
use crate::atx::{AtxHandle, AtxReply, AtxRequest};
use crate::auth::SessionGuard;
use crate::clock::Clock;
use crate::encoder::Membership;
use crate::hid::{HidMsg, PasteOutcome};
use crate::hub::ViewerEvent;
use crate::hub::{frame_queue, FrameReceiver, FrameSender, ViewerId};
use crate::media::EncodedFrame;
use crate::metrics::{Metrics, ViewerKind};
use crate::video_msgs::EncoderMsg;

/// Frames queued for one client. Small on purpose: a client more than this far behind is
/// better served by skipping to the next IDR than by watching the past.
const FRAME_QUEUE: usize = 4;

/// The server pings this often; browsers answer pings by themselves, so a live client is
/// never silent for long even in a background tab.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A client silent this long (no message, no pong) is gone: its socket is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A socket that never says Hello is not a console: it would only hold a connection slot.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// After our close frame, how long the client gets to answer with its own before the socket
/// is dropped.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// How a session ends.
#[derive(Debug)]
enum Ending {
    /// The connection is gone (end of stream, reset, failed write): nothing more to send.
    Gone,
    /// Send this close frame, then wait (briefly) for the client's.
    Close(u16, String),
    /// The client sent a close frame with this code: answer with the same, and that is all.
    Echo(u16),
}

/// From the reader to the writer.
enum Control {
    /// A reply that may be lost when the writer is backed up (the client asks again).
    Reply(Bytes),
    Pong(Bytes),
    /// Everything queued before it is sent first.
    End(Ending),
}

/// The queues the session hands to the encoder actor when the client says Hello.
struct Queues {
    frames: FrameSender,
    events: Sender<ViewerEvent>,
}

/// What a session is connected to besides its socket.
pub struct SessionLinks {
    pub encoder: Sender<EncoderMsg>,
    pub clock: Clock,
    /// Closed when the daemon shuts down.
    pub shutdown: Receiver<()>,
    pub metrics: Arc<Metrics>,
    pub devices: DeviceFeeds,
    pub atx: AtxHandle,
    /// The hid actor's mailbox (keyboard and mouse input, paste).
    pub hid: Sender<HidMsg>,
    /// Ends the session when its login session or token is revoked; activity keeps the
    /// login session alive.
    pub auth: SessionGuard,
    /// The daemon can serve H.264 (else the client is told to use MJPEG).
    pub h264: bool,
}

pub async fn run<R, W>(
    mut ws: WebSocketStream<R>,
    mut out: WsWriter<W>,
    id: ViewerId,
    links: SessionLinks,
) where
    R: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let SessionLinks {
        encoder,
        clock,
        shutdown,
        metrics,
        devices,
        atx,
        hid,
        auth,
        h264,
    } = links;
    // A paste's answer comes back here; one at a time is all a client may have.
    let (paste_tx, paste_rx) = async_channel::bounded(2);
    let (frames_tx, frames_rx) = frame_queue(FRAME_QUEUE);
    let (events_tx, events_rx) = async_channel::bounded(16);
    let (control_tx, control_rx) = async_channel::bounded(16);
    // A client has at most one press running; the rest of its requests are refused at once.
    let (atx_tx, atx_rx) = async_channel::bounded(4);
    let mut membership =
        Membership::new(id, ViewerKind::WebSocket, encoder.clone(), metrics.clone());

    let queues = Queues {
        frames: frames_tx,
        events: events_tx,
    };
    let input = ReaderLinks {
        hid: &hid,
        paste: paste_tx,
        atx: &atx,
        atx_replies: atx_tx,
        auth: &auth,
        h264,
    };
    let ending = future::or(
        read(&mut ws, id, &encoder, clock, &control_tx, queues, input),
        write(
            &mut out,
            id,
            WriterInbox {
                frames: frames_rx,
                events: events_rx,
                control: control_rx,
                pastes: paste_rx,
                atx: atx_rx,
            },
            &shutdown,
            devices,
            auth.revoked(),
            &metrics,
        ),
    )
    .await;
    // No more frames for a session that is closing, and no keys held for it.
    membership.leave();
    let _ = hid.send(HidMsg::Leave { client: id }).await;
    finish(&mut ws, &mut out, id, ending).await;
}

/// What the writer sends on to the client, besides device state: the session's own queues.
struct WriterInbox {
    frames: FrameReceiver,
    events: Receiver<ViewerEvent>,
    /// From the reader.
    control: Receiver<Control>,
    pastes: Receiver<PasteOutcome>,
    atx: Receiver<AtxReply>,
}

/// What the reader hands input to, and tells of activity.
struct ReaderLinks<'a> {
    hid: &'a Sender<HidMsg>,
    paste: Sender<PasteOutcome>,
    atx: &'a AtxHandle,
    atx_replies: Sender<AtxReply>,
    /// Told of client activity, which keeps the login session alive.
    auth: &'a SessionGuard,
    h264: bool,
}

/// Reads client messages until the session ends. Returns only when the connection is gone;
/// a close goes to the writer, which ends the session after sending what was queued before.
async fn read<R>(
    ws: &mut WebSocketStream<R>,
    id: ViewerId,
    encoder: &Sender<EncoderMsg>,
    clock: Clock,
    control: &Sender<Control>,
    queues: Queues,
    input: ReaderLinks<'_>,
) -> Ending
where
    R: AsyncRead + AsyncWrite + Unpin,
{
    let mut core = SessionCore::new().with_h264(input.h264);
    let mut actions = Vec::new();
    let mut queues = Some(queues);
    let hello_deadline = std::time::Instant::now() + HELLO_TIMEOUT;
    // One timer for the whole session, re-armed per message.
    let mut silence = smol::Timer::never();
    let ending = 'session: loop {
        let greeted = core.greeted();
        if greeted {
            silence.set_after(IDLE_TIMEOUT);
        } else {
            silence.set_at(hello_deadline);
        }
        let received = future::or(async { Some(ws.next().await) }, async {
            (&mut silence).await;
            None
        })
        .await;
        let Some(received) = received else {
            let reason = if greeted {
                format!("nothing received for {} s", IDLE_TIMEOUT.as_secs())
            } else {
                format!("no Hello within {} s", HELLO_TIMEOUT.as_secs())
            };
            log::info!("session {id}: {reason}, closing");
            break Ending::Close(close::POLICY, reason);
        };
        let now = clock.now_us();
        // Anything from the client, pongs included, shows the console is in use.
        input.auth.activity(now);
        match received {
            Some(Ok(Message::Binary(b))) => core.inbound(now, Inbound::Binary(&b), &mut actions),
            Some(Ok(Message::Text(_))) => core.inbound(now, Inbound::Text, &mut actions),
            Some(Ok(Message::Ping(payload))) => {
                // A lost pong costs nothing: the client pings again.
                let _ = control.try_send(Control::Pong(payload));
            }
            // A pong only proves the client is alive, which receiving it already did.
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                // tungstenite turns a code not allowed on the wire into 1002.
                break Ending::Echo(frame.map_or(close::NORMAL, |f| f.code.into()));
            }
            Some(Err(WsError::Capacity(_))) => core.inbound(now, Inbound::TooLarge, &mut actions),
            Some(Err(WsError::Utf8(_))) => core.inbound(now, Inbound::InvalidUtf8, &mut actions),
            None | Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                return Ending::Gone
            }
            Some(Err(WsError::Protocol(e))) => {
                core.inbound(now, Inbound::ProtocolError(&e.to_string()), &mut actions)
            }
            Some(Err(e)) => {
                log::debug!("session {id}: {e}");
                return Ending::Gone;
            }
        }
        for action in actions.drain(..) {
            let msg = match action {
                SessionAction::Reply(bytes) => {
                    // Replies (pongs, errors) must not stall input behind a slow downlink.
                    let _ = control.try_send(Control::Reply(bytes.into()));
                    continue;
                }
                SessionAction::Close(code, reason) => {
                    log::info!("session {id} closed: {reason}");
                    break 'session Ending::Close(code, reason);
                }
                SessionAction::Request(Request::Atx(action)) => {
                    let request = AtxRequest {
                        action,
                        reply: input.atx_replies.clone(),
                    };
                    if input.atx.requests.try_send(request).is_err() {
                        let reply = AtxReply::Finished {
                            kind: action.kind(),
                            ok: false,
                            message: "the front panel is not taking requests right now".into(),
                        };
                        let _ = input.atx_replies.try_send(reply);
                    }
                    continue;
                }
                SessionAction::Hid(hid_input) => {
                    // `now` is when the message was decoded: the latency figure starts here.
                    let msg = HidMsg::Input {
                        client: id,
                        at: now,
                        input: hid_input,
                    };
                    if input.hid.send(msg).await.is_err() {
                        return Ending::Gone;
                    }
                    continue;
                }
                SessionAction::Paste(text, layout) => {
                    let msg = HidMsg::Paste {
                        text,
                        layout,
                        reply: input.paste.clone(),
                    };
                    if input.hid.send(msg).await.is_err() {
                        return Ending::Gone;
                    }
                    continue;
                }
                SessionAction::Request(request) => match encoder_msg(id, request, &mut queues) {
                    Some(msg) => msg,
                    None => continue,
                },
            };
            if encoder.send(msg).await.is_err() {
                return Ending::Gone;
            }
        }
    };
    // Closes are not lost: this waits for room in the writer's queue.
    let _ = control.send(Control::End(ending)).await;
    future::pending().await
}

fn encoder_msg(id: ViewerId, request: Request, queues: &mut Option<Queues>) -> Option<EncoderMsg> {
    Some(match request {
        Request::Join { visible } => {
            let Queues { frames, events } = queues.take()?;
            EncoderMsg::Join {
                id,
                codec: Codec::H264,
                frames,
                events: Some(events),
                visible,
            }
        }
        Request::Visibility(visible) => EncoderMsg::Visibility { id, visible },
        Request::Keyframe(reason) => EncoderMsg::KeyframeRequest { id, reason },
        Request::Settings(settings) => EncoderMsg::ChangeSettings { id, settings },
        Request::Atx(_) => return None,
    })
}

/// Writes to the client until the session ends: at shutdown, on a failed write (the peer is
/// gone or took nothing for the write deadline) or when the reader hands over a close.
///
/// Every wait lives across loop turns and is made anew only once it has completed: an
/// `async-channel` receive allocates when it starts waiting, so waits rebuilt per frame would
/// cost allocations per frame per viewer. Frames come from the hub's [`FrameReceiver`], which
/// never allocates.
async fn write<W>(
    out: &mut WsWriter<W>,
    id: ViewerId,
    inbox: WriterInbox,
    shutdown: &Receiver<()>,
    devices: DeviceFeeds,
    revoked: impl Future<Output = ()>,
    metrics: &Metrics,
) -> Ending
where
    W: AsyncWrite + Unpin,
{
    let WriterInbox {
        frames,
        events,
        control,
        pastes,
        atx,
    } = inbox;
    enum Next {
        Frame(EncodedFrame),
        Event(ViewerEvent),
        Device(Vec<u8>),
        Atx(AtxReply),
        Paste(PasteOutcome),
        Control(Control),
        Ping,
        Shutdown,
        Revoked,
    }
    // Device state is the client's business only once it has said Hello (after `Welcome`):
    // until then the feeds wait here, and no future watches them.
    let mut idle_feeds = Some(devices);
    let device_change = |mut feeds: DeviceFeeds| async move {
        let message = feeds.changed().await;
        (message, feeds)
    };
    let mut device_next = pin!(no_future_of(device_change));
    let mut shutdown_next = pin!(shutdown.recv());
    let mut revoked = pin!(revoked);
    let mut control_next = pin!(recv_or_pending(&control));
    let mut event_next = pin!(recv_or_pending(&events));
    let mut atx_next = pin!(recv_or_pending(&atx));
    let mut paste_next = pin!(recv_or_pending(&pastes));
    let mut ping_timer = smol::Timer::interval(PING_INTERVAL);
    let mut messages = Vec::new();
    loop {
        // Control first (shutdown, replies, closes), then events, then pings, then frames; the
        // ping before frames, so a client that never drains its queue still gets pinged.
        let next = future::poll_fn(|cx| {
            // Shutdown and revocation end the loop: their futures are never polled again.
            if shutdown_next.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Next::Shutdown);
            }
            if revoked.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Next::Revoked);
            }
            if let Poll::Ready(c) = control_next.as_mut().poll(cx) {
                control_next.set(recv_or_pending(&control));
                return Poll::Ready(Next::Control(c));
            }
            if let Poll::Ready(e) = event_next.as_mut().poll(cx) {
                event_next.set(recv_or_pending(&events));
                return Poll::Ready(Next::Event(e));
            }
            if let Some(change) = device_next.as_mut().as_pin_mut() {
                if let Poll::Ready((message, feeds)) = change.poll(cx) {
                    device_next.set(Some(device_change(feeds)));
                    return Poll::Ready(Next::Device(message));
                }
            }
            if let Poll::Ready(a) = atx_next.as_mut().poll(cx) {
                atx_next.set(recv_or_pending(&atx));
                return Poll::Ready(Next::Atx(a));
            }
            if let Poll::Ready(p) = paste_next.as_mut().poll(cx) {
                paste_next.set(recv_or_pending(&pastes));
                return Poll::Ready(Next::Paste(p));
            }
            if Pin::new(&mut ping_timer).poll_next(cx).is_ready() {
                return Poll::Ready(Next::Ping);
            }
            match frames.poll_recv(cx) {
                Poll::Ready(Some(frame)) => Poll::Ready(Next::Frame(frame)),
                // The hub let go of this viewer: no more frames, the rest goes on.
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let sent = match next {
            Next::Frame(frame) => {
                let sent = out.binary(frame.wire()).await;
                log::debug!(target: "frame", "{} delivered to session {id}: {sent:?}", frame.grab_seq);
                if let (Some(ready), Codec::H264) = (frame.ready_at, frame.header.codec) {
                    let ns = ready.elapsed().as_nanos() as u64;
                    metrics.server_path.written(frame.header.seq, ns);
                }
                sent
            }
            Next::Ping => out.ping().await,
            Next::Event(event) => {
                super::event(&event, &mut messages);
                if matches!(event, ViewerEvent::Welcome { .. }) {
                    if let Some(mut feeds) = idle_feeds.take() {
                        feeds.snapshot(&mut messages);
                        device_next.set(Some(device_change(feeds)));
                    }
                }
                send_all(out, &mut messages).await
            }
            Next::Device(message) => out.binary(&Bytes::from(message)).await,
            Next::Atx(reply) => match super::atx_reply(&reply) {
                Some(message) => out.binary(&Bytes::from(message)).await,
                None => Ok(()),
            },
            Next::Paste(outcome) => out.binary(&Bytes::from(super::paste_reply(&outcome))).await,
            Next::Control(Control::Reply(bytes)) => out.binary(&bytes).await,
            Next::Control(Control::Pong(payload)) => out.pong(&payload).await,
            Next::Control(Control::End(ending)) => return ending,
            Next::Shutdown => {
                return Ending::Close(close::GOING_AWAY, "server shutting down".into())
            }
            Next::Revoked => {
                log::info!("session {id}: its login session or token was revoked or expired");
                return Ending::Close(
                    close::SESSION_REVOKED,
                    "session revoked or expired: log in again".into(),
                );
            }
        };
        if let Err(e) = sent {
            log::debug!("session {id}: write failed: {e}");
            return Ending::Gone;
        }
    }
}

/// `None`, of the type of the futures `make` makes: an empty slot for them.
fn no_future_of<A, F: Future>(_make: impl FnOnce(A) -> F) -> Option<F> {
    None
}

async fn recv_or_pending<T>(rx: &Receiver<T>) -> T {
    match rx.recv().await {
        Ok(v) => v,
        Err(_) => future::pending().await,
    }
}

async fn send_all<W: AsyncWrite + Unpin>(
    out: &mut WsWriter<W>,
    messages: &mut Vec<Vec<u8>>,
) -> std::io::Result<()> {
    for m in messages.drain(..) {
        out.binary(&Bytes::from(m)).await?;
    }
    Ok(())
}

/// The close handshake (RFC 6455 §7): answer the client's close, or send ours and wait for its
/// answer. Dropping a socket with unread input makes the kernel reset the connection, and the
/// client may then lose the close frame, so what the client still sends is read first.
async fn finish<R, W>(ws: &mut WebSocketStream<R>, out: &mut WsWriter<W>, id: ViewerId, e: Ending)
where
    R: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    match e {
        Ending::Gone => {}
        Ending::Echo(code) => {
            if let Err(e) = out.close(code, "").await {
                log::debug!("session {id}: answering the close failed: {e}");
            }
        }
        Ending::Close(code, reason) => match out.close(code, &reason).await {
            Ok(()) => {
                let _ = timeout(CLOSE_DRAIN, drain(ws)).await;
            }
            Err(e) => log::debug!("session {id}: sending the close failed: {e}"),
        },
    }
    let _ = timeout(CLOSE_DRAIN, out.shutdown()).await;
}

/// Reads until the client's close frame or the end of the stream. After an error tungstenite
/// reads no more (the framing may be lost, e.g. in the rest of an oversized message): the
/// remaining bytes are read raw and discarded.
async fn drain<R: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<R>) {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(_) = m {
            return;
        }
    }
    let mut buf = [0u8; 4096];
    while let Ok(1..) = ws.get_mut().read(&mut buf).await {}
}

/// Runs `fut` for at most `d`.
async fn timeout<T>(d: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests;
