//! The nanokvmd wire protocol: every message that crosses the `/api/ws` WebSocket.
//!
//! Each WebSocket binary message is exactly one postcard-encoded [`ClientMsg`] or
//! [`ServerMsg`]. Only this crate defines the wire format; `webroot/protocol.js` mirrors it
//! and is checked against the golden vectors in `protocol/golden.json`.
//!
//! Compatibility rule: variants and fields are only ever appended. A change that reorders or
//! removes anything bumps [`PROTOCOL_VERSION`].

// Pure data and logic: no reason for `unsafe` here, ever (cargo cannot override the
// workspace's `deny` with `forbid` in `Cargo.toml`, so it is said here).
#![forbid(unsafe_code)]

mod device;
pub mod hid;
mod settings;
mod video;

pub use device::{AtxAction, AtxKind, AtxState, HidLink, HidStatus, KeyboardLayout, KeyboardLeds};
pub use settings::{Resolution, SettingsError, StreamSettings};
pub use video::{VideoHeader, VideoPrefix, VIDEO_PREFIX_MAX};

use serde::{Deserialize, Serialize};

/// Version both sides announce in their `Hello`. A server refuses other versions.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest client message the server accepts; anything longer closes the session.
pub const MAX_CLIENT_MSG: usize = 64 * 1024;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Jpeg,
}

/// Why a client asks for a keyframe; counted separately in `/metrics`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeReason {
    /// The decoder reported an error and was reset.
    DecoderError,
    /// A sequence number was skipped, so references are missing.
    Gap,
}

/// Client → server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// Must be the first message. `visible = false` (a hidden tab) subscribes without video.
    Hello {
        version: u16,
        visible: bool,
    },
    /// Clock-offset probe, answered at once with [`ServerMsg::Pong`].
    Ping {
        client_time_us: u64,
    },
    RequestKeyframe {
        reason: KeyframeReason,
    },
    /// Page Visibility: a hidden tab receives no video and gets an IDR when visible again.
    Visibility {
        visible: bool,
    },
    /// Change the (shared) stream settings; every client is told the result.
    SetStreamSettings(StreamSettings),
    /// A key went down: its HID usage (page 7), modifiers included (0xE0..=0xE7).
    KeyDown {
        usage: u8,
    },
    KeyUp {
        usage: u8,
    },
    /// Release every key and button this client holds (the page lost focus).
    ReleaseAll,
    /// The absolute pointer: `x`, `y` in 0..=32767 across the picture, buttons bit 0 left,
    /// 1 right, 2 middle, 3 back, 4 forward; `wheel` in detents, positive = away from the user.
    PointerAbs {
        x: u16,
        y: u16,
        buttons: u8,
        wheel: i8,
    },
    /// A relative move (pointer lock); the server splits large moves into reports.
    PointerRel {
        dx: i16,
        dy: i16,
        buttons: u8,
        wheel: i8,
    },
    /// Type this text on the target, for its keyboard layout; answered with `PasteDone`.
    Paste {
        text: String,
        layout: KeyboardLayout,
    },
    /// Sent while keys or buttons are held: a client silent for 1 s has them released.
    KeepAlive,
    /// Press a front-panel button; answered with `AtxDone`.
    Atx(AtxAction),
}

/// Server → client.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ServerMsg<'a> {
    Hello {
        version: u16,
        settings: StreamSettings,
    },
    /// One encoded frame. `data` is a whole H.264 access unit in Annex-B form (an IDR carries
    /// SPS and PPS in front) or one JPEG image.
    Video {
        header: VideoHeader,
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// Answer to [`ClientMsg::Ping`]; `server_time_us` is on the same clock as `capture_us`.
    Pong {
        client_time_us: u64,
        server_time_us: u64,
    },
    VideoStatus(VideoStatus),
    /// The stream settings now in force (after a change by any client).
    Settings(StreamSettings),
    /// Something the client asked for was refused; the session goes on unless it is closed.
    Error {
        code: ErrorCode,
        message: &'a str,
    },
    /// After `Hello` and whenever it changes.
    HidStatus(HidStatus),
    /// A paste finished: how many characters were typed, and the ones the layout cannot type
    /// (each listed once), which were skipped.
    PasteDone {
        typed: u32,
        unknown: &'a str,
    },
    /// After `Hello` and whenever the LEDs or the press in progress change.
    Atx(AtxState),
    /// A press finished (`ok`), or was refused or failed (`message` says why).
    AtxDone {
        action: AtxKind,
        ok: bool,
        message: &'a str,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStatus {
    /// False when the target shows no picture (powered off, cable out).
    pub signal: bool,
    /// Size of the captured source picture.
    pub source_width: u16,
    pub source_height: u16,
    /// Size of the encoded stream.
    pub width: u16,
    pub height: u16,
    pub fps: u8,
    /// The H.264 bitrate (kbit/s) and GOP (frames) the stream is really encoded with: the
    /// settings, or what the device's encoder can do of them (it clamps both).
    pub bitrate_kbps: u32,
    pub gop: u16,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadMessage,
    UnsupportedVersion,
    InvalidSettings,
    TooLarge,
    Unavailable,
    /// Refused because something else is in progress (a button press, a paste).
    Busy,
    /// The WebSocket's video codec (H.264) cannot be served by this daemon: the client gets no
    /// video there and should use MJPEG (`/api/stream/mjpeg`). Sent after `Hello` and after
    /// each `Visibility { visible: true }`.
    CodecUnavailable,
}

#[derive(Debug, PartialEq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl ClientMsg {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a plain enum into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes one message; trailing bytes are an error (they mean the peer speaks another
    /// version or the message was corrupted).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_CLIENT_MSG {
            return Err(DecodeError(format!(
                "{} bytes, the limit is {MAX_CLIENT_MSG}",
                bytes.len()
            )));
        }
        decode_exact(bytes)
    }
}

impl<'a> ServerMsg<'a> {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes)
    }
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(bytes) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(DecodeError(format!("{} trailing bytes", rest.len()))),
        Err(e) => Err(DecodeError(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
