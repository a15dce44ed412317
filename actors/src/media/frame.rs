//! An encoded frame as every consumer sees it: its wire bytes are built once, on the media
//! thread, and shared by reference count with every viewer — never copied per viewer.

use bytes::Bytes;
use nanokvm_protocol::{VideoHeader, VideoPrefix, VIDEO_PREFIX_MAX};

#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub header: VideoHeader,
    /// `ServerMsg::Video` exactly as it goes out on the WebSocket.
    wire: Bytes,
    payload_offset: usize,
}

impl EncodedFrame {
    /// A buffer for an encoder to append its payload to, with room for the prefix in front.
    pub fn payload_buffer(capacity: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(VIDEO_PREFIX_MAX + capacity);
        buf.resize(VIDEO_PREFIX_MAX, 0);
        buf
    }

    /// Completes a buffer from [`Self::payload_buffer`]: writes the prefix right in front of
    /// the payload so prefix and payload are contiguous without moving the payload.
    pub fn seal(header: VideoHeader, mut buf: Vec<u8>) -> Self {
        let payload_len = buf.len().saturating_sub(VIDEO_PREFIX_MAX);
        let prefix = VideoPrefix::new(&header, payload_len);
        let start = VIDEO_PREFIX_MAX - prefix.as_bytes().len();
        buf[start..VIDEO_PREFIX_MAX].copy_from_slice(prefix.as_bytes());
        let wire = Bytes::from(buf).slice(start..);
        Self {
            header,
            payload_offset: VIDEO_PREFIX_MAX - start,
            wire,
        }
    }

    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The bare H.264 access unit or JPEG image, sharing the same allocation.
    pub fn payload(&self) -> Bytes {
        self.wire.slice(self.payload_offset..)
    }

    pub fn keyframe(&self) -> bool {
        self.header.keyframe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanokvm_protocol::{Codec, ServerMsg};

    #[test]
    fn sealed_frame_is_the_video_message_and_payload_is_shared() {
        let header = VideoHeader {
            codec: Codec::H264,
            keyframe: true,
            seq: 300,
            capture_us: 123_456_789,
            width: 1280,
            height: 720,
        };
        let payload: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut buf = EncodedFrame::payload_buffer(payload.len());
        buf.extend_from_slice(&payload);
        let frame = EncodedFrame::seal(header, buf);
        let expected = ServerMsg::Video {
            header,
            data: &payload,
        }
        .encode();
        assert_eq!(frame.wire().as_ref(), expected.as_slice());
        assert_eq!(frame.payload().as_ref(), payload.as_slice());
        let wire_end = frame.wire().as_ptr() as usize + frame.wire().len();
        let payload_end = frame.payload().as_ptr() as usize + frame.payload().len();
        assert_eq!(
            wire_end, payload_end,
            "payload is a view into the wire bytes"
        );
    }
}
