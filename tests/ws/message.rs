//! What comes out of the `/api/ws` socket, owned: video frames, the other server messages, and
//! the ways a connection ends.

use std::time::Instant;

use crate::proto::{self, ServerMsg, StreamSettings, VideoHeader, VideoStatus};

/// One received video frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub header: VideoHeader,
    pub data: Vec<u8>,
    pub at: Instant,
}

impl Frame {
    pub fn describe(&self) -> String {
        format!(
            "Video(seq {}, {}, {:?}, {}x{}, {} bytes)",
            self.header.seq,
            if self.header.keyframe { "key" } else { "delta" },
            self.header.codec,
            self.header.width,
            self.header.height,
            self.data.len()
        )
    }
}

/// An owned [`ServerMsg`].
#[derive(Debug, Clone)]
pub enum Msg {
    Hello {
        version: u16,
        settings: StreamSettings,
    },
    Video(Frame),
    Pong {
        client_time_us: u64,
        server_time_us: u64,
    },
    VideoStatus(VideoStatus),
    Settings(StreamSettings),
    Error {
        code: proto::ErrorCode,
        message: String,
    },
    HidStatus(proto::HidStatus),
    PasteDone {
        typed: u32,
        unknown: String,
    },
    Atx(proto::AtxState),
    AtxDone {
        action: proto::AtxKind,
        ok: bool,
        message: String,
    },
}

impl Msg {
    pub(crate) fn from_wire(m: ServerMsg<'_>, at: Instant) -> Msg {
        match m {
            ServerMsg::Hello { version, settings } => Msg::Hello { version, settings },
            ServerMsg::Video { header, data } => Msg::Video(Frame {
                header,
                data: data.to_vec(),
                at,
            }),
            ServerMsg::Pong {
                client_time_us,
                server_time_us,
            } => Msg::Pong {
                client_time_us,
                server_time_us,
            },
            ServerMsg::VideoStatus(s) => Msg::VideoStatus(s),
            ServerMsg::Settings(s) => Msg::Settings(s),
            ServerMsg::Error { code, message } => Msg::Error {
                code,
                message: message.to_string(),
            },
            ServerMsg::HidStatus(s) => Msg::HidStatus(s),
            ServerMsg::PasteDone { typed, unknown } => Msg::PasteDone {
                typed,
                unknown: unknown.to_string(),
            },
            ServerMsg::Atx(s) => Msg::Atx(s),
            ServerMsg::AtxDone {
                action,
                ok,
                message,
            } => Msg::AtxDone {
                action,
                ok,
                message: message.to_string(),
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Msg::Video(f) => f.describe(),
            other => format!("{other:?}"),
        }
    }
}

/// Anything that can come out of the socket.
#[derive(Debug)]
pub enum Event {
    Msg(Msg),
    /// A close frame: code and reason (`None` for a close frame without a payload).
    Closed(Option<(u16, String)>),
    /// The connection ended without a close frame, or a WebSocket protocol error.
    Ended(String),
    Text(String),
    /// A binary message that is not a valid `ServerMsg`.
    Undecodable(String),
}
