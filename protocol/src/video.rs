//! The video message prefix, built once per frame so the payload is never copied per viewer.

use serde::{Deserialize, Serialize};

use crate::Codec;

/// What a client needs to place and decode a frame, sent in front of every payload.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    pub codec: Codec,
    /// An H.264 IDR (with SPS and PPS in front); every JPEG is a keyframe.
    pub keyframe: bool,
    /// Increments by one per encoded frame of this codec; a jump tells the client it missed one.
    pub seq: u32,
    /// When the picture was captured, in µs on the server's monotonic clock (see `Pong`).
    pub capture_us: u64,
    pub width: u16,
    pub height: u16,
}

/// Upper bound of [`VideoPrefix`]'s length: variant tag, header varints and the length varint.
pub const VIDEO_PREFIX_MAX: usize = 40;

/// The bytes that precede `data` in an encoded `ServerMsg::Video`: `prefix ++ data` is exactly
/// `ServerMsg::Video { header, data }.encode()`. Writing the prefix in front of a payload that is
/// already in place is how a frame's wire bytes are built without copying the payload.
#[derive(Debug, Clone, Copy)]
pub struct VideoPrefix {
    buf: [u8; VIDEO_PREFIX_MAX],
    len: usize,
}

/// Postcard encodes an enum as a varint variant index followed by its fields; `Video` is
/// variant 1 of `ServerMsg`, and a byte slice is a varint length followed by the bytes.
const VIDEO_VARIANT: u32 = 1;

#[derive(Serialize)]
struct PrefixRepr<'a> {
    variant: u32,
    header: &'a VideoHeader,
    data_len: usize,
}

impl VideoPrefix {
    pub fn new(header: &VideoHeader, payload_len: usize) -> Self {
        let mut buf = [0u8; VIDEO_PREFIX_MAX];
        let repr = PrefixRepr {
            variant: VIDEO_VARIANT,
            header,
            data_len: payload_len,
        };
        // The worst case of every varint together is below VIDEO_PREFIX_MAX, so this cannot fail.
        let len = postcard::to_slice(&repr, &mut buf)
            .map(|s| s.len())
            .unwrap_or(0);
        Self { buf, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
