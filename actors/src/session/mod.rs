//! The session actor: one per WebSocket client. Its core turns client messages into replies,
//! requests to the encoder actor, or a close with a reason; its loop moves bytes. Frames come
//! from the hub through a short bounded queue and are written as the shared wire bytes.

mod run;
mod ws_out;

pub use run::{run, SessionLinks};
pub use ws_out::{DiscardWrites, WsWriter};

use futures_lite::future;
use nanokvm_protocol::{
    AtxAction, AtxState, ClientMsg, ErrorCode, HidStatus, ServerMsg, StreamSettings,
    PROTOCOL_VERSION,
};

use crate::atx::AtxReply;
use crate::clock::Micros;
use crate::hid::{Input, PasteOutcome};
use crate::hub::ViewerEvent;
use crate::watch::WatchReceiver;

/// The device state every client is shown, as published by the hid and atx actors.
#[derive(Clone)]
pub struct DeviceFeeds {
    pub hid: WatchReceiver<HidStatus>,
    pub atx: WatchReceiver<AtxState>,
}

impl DeviceFeeds {
    /// The current state of everything, as messages (sent right after the server's `Hello`).
    pub fn snapshot(&mut self, out: &mut Vec<Vec<u8>>) {
        out.push(ServerMsg::HidStatus(self.hid.current()).encode());
        out.push(ServerMsg::Atx(self.atx.current()).encode());
    }

    /// The next change of any of them, as a message.
    pub async fn changed(&mut self) -> Vec<u8> {
        let (hid, atx) = (&mut self.hid, &mut self.atx);
        future::or(
            async { ServerMsg::HidStatus(hid.changed().await).encode() },
            async { ServerMsg::Atx(atx.changed().await).encode() },
        )
        .await
    }
}

/// WebSocket close codes (RFC 6455 §7.4.1) this server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    /// The login session or token this WebSocket was opened with was revoked (logout,
    /// password change, `token revoke`) or expired: log in again.
    pub const SESSION_REVOKED: u16 = 4401;
}

/// What arrived on the socket, as the core needs to know it.
#[derive(Debug)]
pub enum Inbound<'a> {
    Binary(&'a [u8]),
    Text,
    /// A text message that is not even UTF-8.
    InvalidUtf8,
    TooLarge,
    /// The WebSocket framing itself is broken (what tungstenite says is wrong).
    ProtocolError(&'a str),
}

/// Requests for the encoder actor (the loop adds the viewer id and its queues).
#[derive(Debug, PartialEq)]
pub enum Request {
    Join {
        visible: bool,
    },
    Visibility(bool),
    Keyframe(nanokvm_protocol::KeyframeReason),
    Settings(StreamSettings),
    /// For the atx actor: press a button.
    Atx(AtxAction),
}

#[derive(Debug, PartialEq)]
pub enum SessionAction {
    Reply(Vec<u8>),
    Request(Request),
    /// Keyboard and mouse input for the hid actor.
    Hid(crate::hid::Input),
    /// Text to type, for the hid actor; answered with `PasteDone` or an error.
    Paste(String, nanokvm_protocol::KeyboardLayout),
    /// Send this close frame and end the session.
    Close(u16, String),
}

#[derive(Debug)]
pub struct SessionCore {
    greeted: bool,
    /// The daemon can serve H.264, the WebSocket's codec. Without it the client is told so
    /// (`CodecUnavailable`) and joins as a hidden viewer: status and settings, no video.
    h264: bool,
}

/// What a client that wants video is told when there is no H.264 to give it.
pub const NO_H264: &str = "this nanokvmd cannot serve H.264 for its video source (built without \
     the software encoder, feature `soft-h264`); use MJPEG: /api/stream/mjpeg";

impl Default for SessionCore {
    fn default() -> Self {
        Self {
            greeted: false,
            h264: true,
        }
    }
}

impl SessionCore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this daemon can serve H.264 (see the `h264` field).
    pub fn with_h264(mut self, available: bool) -> Self {
        self.h264 = available;
        self
    }

    /// A visible client wants video: refused with a reason when there is no H.264.
    fn wants_video(&self, visible: bool, out: &mut Vec<SessionAction>) -> bool {
        if visible && !self.h264 {
            out.push(SessionAction::Reply(
                ServerMsg::Error {
                    code: ErrorCode::CodecUnavailable,
                    message: NO_H264,
                }
                .encode(),
            ));
        }
        visible && self.h264
    }

    pub fn greeted(&self) -> bool {
        self.greeted
    }

    pub fn inbound(&mut self, now: Micros, msg: Inbound<'_>, out: &mut Vec<SessionAction>) {
        let bytes = match msg {
            Inbound::Binary(b) => b,
            Inbound::Text => {
                return fail(
                    out,
                    ErrorCode::BadMessage,
                    close::UNSUPPORTED_DATA,
                    "text messages are not part of the protocol; send binary postcard messages"
                        .into(),
                )
            }
            Inbound::InvalidUtf8 => {
                return fail(
                    out,
                    ErrorCode::BadMessage,
                    close::INVALID_PAYLOAD,
                    "text message that is not valid UTF-8".into(),
                )
            }
            Inbound::ProtocolError(e) => {
                return fail(
                    out,
                    ErrorCode::BadMessage,
                    close::PROTOCOL_ERROR,
                    format!("WebSocket protocol error: {e}"),
                )
            }
            Inbound::TooLarge => {
                return fail(
                    out,
                    ErrorCode::TooLarge,
                    close::TOO_BIG,
                    format!(
                        "message larger than {} bytes",
                        nanokvm_protocol::MAX_CLIENT_MSG
                    ),
                )
            }
        };
        let msg = match ClientMsg::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                return fail(
                    out,
                    ErrorCode::BadMessage,
                    close::INVALID_PAYLOAD,
                    e.to_string(),
                )
            }
        };
        match (self.greeted, msg) {
            (false, ClientMsg::Hello { version, visible }) => {
                if version != PROTOCOL_VERSION {
                    return fail(out, ErrorCode::UnsupportedVersion, close::POLICY, format!("protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"));
                }
                self.greeted = true;
                let visible = self.wants_video(visible, out);
                out.push(SessionAction::Request(Request::Join { visible }));
            }
            (false, _) => fail(
                out,
                ErrorCode::BadMessage,
                close::POLICY,
                "the first message must be Hello".into(),
            ),
            (true, ClientMsg::Hello { .. }) => fail(
                out,
                ErrorCode::BadMessage,
                close::POLICY,
                "Hello sent twice".into(),
            ),
            (true, ClientMsg::Ping { client_time_us }) => out.push(SessionAction::Reply(
                ServerMsg::Pong {
                    client_time_us,
                    server_time_us: now,
                }
                .encode(),
            )),
            (true, ClientMsg::RequestKeyframe { reason }) => {
                if self.h264 {
                    out.push(SessionAction::Request(Request::Keyframe(reason)))
                }
            }
            (true, ClientMsg::Visibility { visible }) => {
                let visible = self.wants_video(visible, out);
                out.push(SessionAction::Request(Request::Visibility(visible)))
            }
            (true, ClientMsg::SetStreamSettings(s)) => {
                out.push(SessionAction::Request(Request::Settings(s)))
            }
            (true, ClientMsg::Atx(action)) => {
                out.push(SessionAction::Request(Request::Atx(action)))
            }
            (true, ClientMsg::KeyDown { usage }) => {
                out.push(SessionAction::Hid(Input::KeyDown(usage)))
            }
            (true, ClientMsg::KeyUp { usage }) => out.push(SessionAction::Hid(Input::KeyUp(usage))),
            (true, ClientMsg::ReleaseAll) => out.push(SessionAction::Hid(Input::ReleaseAll)),
            (true, ClientMsg::KeepAlive) => out.push(SessionAction::Hid(Input::KeepAlive)),
            (
                true,
                ClientMsg::PointerAbs {
                    x,
                    y,
                    buttons,
                    wheel,
                },
            ) => out.push(SessionAction::Hid(Input::PointerAbs {
                x,
                y,
                buttons,
                wheel,
            })),
            (
                true,
                ClientMsg::PointerRel {
                    dx,
                    dy,
                    buttons,
                    wheel,
                },
            ) => out.push(SessionAction::Hid(Input::PointerRel {
                dx,
                dy,
                buttons,
                wheel,
            })),
            (true, ClientMsg::Paste { text, layout }) => {
                out.push(SessionAction::Paste(text, layout))
            }
        }
    }
}

/// Encodes what the encoder actor announced for this client into server messages.
pub fn event(event: &ViewerEvent, out: &mut Vec<Vec<u8>>) {
    match event {
        ViewerEvent::Welcome { settings, status } => {
            out.push(
                ServerMsg::Hello {
                    version: PROTOCOL_VERSION,
                    settings: *settings,
                }
                .encode(),
            );
            if let Some(status) = status {
                out.push(ServerMsg::VideoStatus(*status).encode());
            }
        }
        ViewerEvent::Settings(s) => out.push(ServerMsg::Settings(*s).encode()),
        ViewerEvent::VideoStatus(s) => out.push(ServerMsg::VideoStatus(*s).encode()),
        ViewerEvent::SettingsRejected(m) => out.push(
            ServerMsg::Error {
                code: ErrorCode::InvalidSettings,
                message: m,
            }
            .encode(),
        ),
    }
}

/// What the atx actor answered this client, as a server message: `AtxDone` when a press
/// ended or was refused; nothing for a press that started (`Atx.busy` shows it).
pub fn atx_reply(reply: &AtxReply) -> Option<Vec<u8>> {
    let (action, ok, message) = match reply {
        AtxReply::Started { .. } => return None,
        AtxReply::Refused { kind, reason } => (*kind, false, reason.to_string()),
        AtxReply::Unavailable { kind, error } => (
            *kind,
            false,
            format!("the button cannot be pressed: {error}"),
        ),
        AtxReply::Finished { kind, ok, message } => (*kind, *ok, message.clone()),
    };
    Some(
        ServerMsg::AtxDone {
            action,
            ok,
            message: &message,
        }
        .encode(),
    )
}

/// The answer to a client's paste.
pub fn paste_reply(outcome: &PasteOutcome) -> Vec<u8> {
    match outcome {
        PasteOutcome::Done { typed, unknown } => ServerMsg::PasteDone {
            typed: *typed,
            unknown,
        }
        .encode(),
        PasteOutcome::Busy => ServerMsg::Error {
            code: ErrorCode::Busy,
            message: "another paste is still being typed",
        }
        .encode(),
        PasteOutcome::Unavailable => ServerMsg::Error {
            code: ErrorCode::Unavailable,
            message: "the keyboard is not connected to the target",
        }
        .encode(),
    }
}

/// Tells the client why (when the socket still works) and closes with a reason.
fn fail(out: &mut Vec<SessionAction>, code: ErrorCode, close_code: u16, reason: String) {
    out.push(SessionAction::Reply(
        ServerMsg::Error {
            code,
            message: &reason,
        }
        .encode(),
    ));
    // The writer cuts the reason to what a close frame holds.
    out.push(SessionAction::Close(close_code, reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanokvm_protocol::{KeyframeReason, VideoStatus};

    fn run(core: &mut SessionCore, msg: Inbound<'_>) -> Vec<SessionAction> {
        let mut out = Vec::new();
        core.inbound(42, msg, &mut out);
        out
    }

    fn hello(version: u16) -> Vec<u8> {
        ClientMsg::Hello {
            version,
            visible: true,
        }
        .encode()
    }

    fn close_code(actions: &[SessionAction]) -> Option<u16> {
        actions.iter().find_map(|a| match a {
            SessionAction::Close(c, reason) => {
                assert!(!reason.is_empty());
                Some(*c)
            }
            _ => None,
        })
    }

    #[test]
    fn hello_joins_and_ping_is_answered_with_the_server_time() {
        let mut s = SessionCore::new();
        assert_eq!(
            run(&mut s, Inbound::Binary(&hello(1))),
            vec![SessionAction::Request(Request::Join { visible: true })]
        );
        let ping = ClientMsg::Ping { client_time_us: 7 }.encode();
        let out = run(&mut s, Inbound::Binary(&ping));
        let SessionAction::Reply(bytes) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            ServerMsg::decode(bytes),
            Ok(ServerMsg::Pong {
                client_time_us: 7,
                server_time_us: 42
            })
        );
    }

    #[test]
    fn requests_are_forwarded_after_hello() {
        let mut s = SessionCore::new();
        run(&mut s, Inbound::Binary(&hello(1)));
        let kf = ClientMsg::RequestKeyframe {
            reason: KeyframeReason::Gap,
        }
        .encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&kf)),
            vec![SessionAction::Request(Request::Keyframe(
                KeyframeReason::Gap
            ))]
        );
        let vis = ClientMsg::Visibility { visible: false }.encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&vis)),
            vec![SessionAction::Request(Request::Visibility(false))]
        );
    }

    #[test]
    fn without_h264_a_client_that_wants_video_is_told_and_joins_hidden() {
        let codec_unavailable = |action: &SessionAction| {
            let SessionAction::Reply(bytes) = action else {
                panic!("{action:?}")
            };
            assert_eq!(
                ServerMsg::decode(bytes),
                Ok(ServerMsg::Error {
                    code: ErrorCode::CodecUnavailable,
                    message: NO_H264,
                })
            );
        };
        let mut s = SessionCore::new().with_h264(false);
        let out = run(&mut s, Inbound::Binary(&hello(1)));
        assert_eq!(out.len(), 2, "{out:?}");
        codec_unavailable(&out[0]);
        assert_eq!(
            out[1],
            SessionAction::Request(Request::Join { visible: false })
        );
        // Showing the page again asks for video again: the same answer.
        let vis = |visible| ClientMsg::Visibility { visible }.encode();
        let out = run(&mut s, Inbound::Binary(&vis(true)));
        codec_unavailable(&out[0]);
        assert_eq!(out[1], SessionAction::Request(Request::Visibility(false)));
        // A hidden page (or one showing MJPEG) is not told anything.
        assert_eq!(
            run(&mut s, Inbound::Binary(&vis(false))),
            vec![SessionAction::Request(Request::Visibility(false))]
        );
        // Keyframes of a stream it does not get are not asked for.
        let kf = ClientMsg::RequestKeyframe {
            reason: KeyframeReason::Gap,
        }
        .encode();
        assert_eq!(run(&mut s, Inbound::Binary(&kf)), vec![]);
        // A page that never wanted video (MJPEG mode) hears nothing about H.264.
        let mut s = SessionCore::new().with_h264(false);
        let hidden = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            visible: false,
        }
        .encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&hidden)),
            vec![SessionAction::Request(Request::Join { visible: false })]
        );
    }

    #[test]
    fn input_goes_to_the_hid_actor_after_hello_only() {
        let key = ClientMsg::KeyDown { usage: 4 }.encode();
        assert_eq!(
            close_code(&run(&mut SessionCore::new(), Inbound::Binary(&key))),
            Some(close::POLICY)
        );
        let mut s = SessionCore::new();
        run(&mut s, Inbound::Binary(&hello(1)));
        assert_eq!(
            run(&mut s, Inbound::Binary(&key)),
            vec![SessionAction::Hid(Input::KeyDown(4))]
        );
        let abs = ClientMsg::PointerAbs {
            x: 1,
            y: 2,
            buttons: 1,
            wheel: -1,
        }
        .encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&abs)),
            vec![SessionAction::Hid(Input::PointerAbs {
                x: 1,
                y: 2,
                buttons: 1,
                wheel: -1
            })]
        );
        let paste = ClientMsg::Paste {
            text: "hi".into(),
            layout: nanokvm_protocol::KeyboardLayout::De,
        }
        .encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&paste)),
            vec![SessionAction::Paste(
                "hi".into(),
                nanokvm_protocol::KeyboardLayout::De
            )]
        );
        let busy = paste_reply(&PasteOutcome::Busy);
        assert!(matches!(
            ServerMsg::decode(&busy),
            Ok(ServerMsg::Error {
                code: ErrorCode::Busy,
                ..
            })
        ));
    }

    #[test]
    fn bad_input_closes_with_the_matching_code() {
        let cases: [(&[u8], Option<u16>); 4] = [
            (&[0xde, 0xad, 0xbe, 0xef], Some(close::INVALID_PAYLOAD)),
            (
                &ClientMsg::Ping { client_time_us: 1 }.encode(),
                Some(close::POLICY),
            ),
            (&hello(99), Some(close::POLICY)),
            (&hello(1)[..1], Some(close::INVALID_PAYLOAD)),
        ];
        for (bytes, code) in cases {
            let mut s = SessionCore::new();
            assert_eq!(
                close_code(&run(&mut s, Inbound::Binary(bytes))),
                code,
                "{bytes:?}"
            );
        }
        assert_eq!(
            close_code(&run(&mut SessionCore::new(), Inbound::Text)),
            Some(close::UNSUPPORTED_DATA)
        );
        assert_eq!(
            close_code(&run(&mut SessionCore::new(), Inbound::TooLarge)),
            Some(close::TOO_BIG)
        );
        let mut s = SessionCore::new();
        run(&mut s, Inbound::Binary(&hello(1)));
        assert_eq!(
            close_code(&run(&mut s, Inbound::Binary(&hello(1)))),
            Some(close::POLICY)
        );
    }

    #[test]
    fn websocket_level_errors_close_with_their_codes() {
        assert_eq!(
            close_code(&run(&mut SessionCore::new(), Inbound::InvalidUtf8)),
            Some(close::INVALID_PAYLOAD)
        );
        let out = run(
            &mut SessionCore::new(),
            Inbound::ProtocolError("unmasked frame from client"),
        );
        assert_eq!(close_code(&out), Some(close::PROTOCOL_ERROR));
        assert!(matches!(
            &out[1],
            SessionAction::Close(_, reason) if reason.contains("unmasked frame from client")
        ));
    }

    #[test]
    fn welcome_is_hello_then_the_status_when_there_is_one() {
        let status = VideoStatus {
            signal: true,
            source_width: 1024,
            source_height: 768,
            width: 1024,
            height: 768,
            fps: 30,
            bitrate_kbps: 2000,
            gop: 60,
        };
        for (status, want) in [(None, 1), (Some(status), 2)] {
            let mut out = Vec::new();
            let settings = StreamSettings::default();
            event(&ViewerEvent::Welcome { settings, status }, &mut out);
            assert_eq!(out.len(), want);
            assert_eq!(
                ServerMsg::decode(&out[0]),
                Ok(ServerMsg::Hello {
                    version: PROTOCOL_VERSION,
                    settings
                })
            );
            if let Some(status) = status {
                assert_eq!(
                    ServerMsg::decode(&out[1]),
                    Ok(ServerMsg::VideoStatus(status))
                );
            }
        }
    }

    #[test]
    fn atx_messages_go_to_the_atx_actor_and_its_answers_back() {
        let mut s = SessionCore::new();
        run(&mut s, Inbound::Binary(&hello(1)));
        let msg = ClientMsg::Atx(AtxAction::PowerLong { ms: 5000 }).encode();
        assert_eq!(
            run(&mut s, Inbound::Binary(&msg)),
            vec![SessionAction::Request(Request::Atx(AtxAction::PowerLong {
                ms: 5000
            }))]
        );
        use nanokvm_protocol::AtxKind;
        assert_eq!(
            atx_reply(&AtxReply::Started {
                kind: AtxKind::Power,
                ms: 800
            }),
            None
        );
        let refused = atx_reply(&AtxReply::Refused {
            kind: AtxKind::Reset,
            reason: crate::atx::Refusal::Busy(AtxKind::Power),
        })
        .unwrap();
        assert!(matches!(
            ServerMsg::decode(&refused),
            Ok(ServerMsg::AtxDone { action: AtxKind::Reset, ok: false, message })
                if message.contains("power press is in progress")
        ));
    }

    #[test]
    fn rejected_settings_become_an_error_message() {
        let mut out = Vec::new();
        event(
            &ViewerEvent::SettingsRejected("fps = 99 is out of range".into()),
            &mut out,
        );
        assert!(matches!(
            ServerMsg::decode(&out[0]),
            Ok(ServerMsg::Error {
                code: ErrorCode::InvalidSettings,
                ..
            })
        ));
    }
}
