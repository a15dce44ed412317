//! An encoded frame as every consumer sees it: its wire bytes are built once, on the media
//! thread, and shared by reference count with every viewer — never copied per viewer. The
//! buffers come from a [`FramePool`] and go back to it when the last viewer is done with them,
//! so a steady stream allocates nothing per frame.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use nanokvm_protocol::{VideoHeader, VideoPrefix, VIDEO_PREFIX_MAX};

#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub header: VideoHeader,
    /// `ServerMsg::Video` exactly as it goes out on the WebSocket.
    wire: Bytes,
    payload_offset: usize,
    /// When the media thread finished it (for the server-path time in `/metrics`).
    pub ready_at: Option<Instant>,
    /// The capture's number of the picture it shows: the one number the `frame` trace lines
    /// carry from grab to delivery (`header.seq` counts per codec and starts later).
    pub grab_seq: u64,
}

impl EncodedFrame {
    /// A fresh buffer for an encoder to append its payload to, with room for the prefix in
    /// front. The media thread takes its buffers from a [`FramePool`] instead.
    #[cfg(test)]
    pub fn payload_buffer(capacity: usize) -> BytesMut {
        let mut buf = BytesMut::with_capacity(VIDEO_PREFIX_MAX + capacity);
        buf.resize(VIDEO_PREFIX_MAX, 0);
        buf
    }

    /// Completes a buffer from [`Self::payload_buffer`]: writes the prefix right in front of
    /// the payload so prefix and payload are contiguous without moving the payload.
    #[cfg(test)]
    pub fn seal(header: VideoHeader, buf: BytesMut) -> Self {
        Self::seal_shared(header, buf).0
    }

    /// Writes the prefix right in front of the payload (so prefix and payload are contiguous
    /// without moving the payload) and returns the frame and the whole buffer, for the pool.
    fn seal_shared(header: VideoHeader, mut buf: BytesMut) -> (Self, Bytes) {
        let payload_len = buf.len().saturating_sub(VIDEO_PREFIX_MAX);
        let prefix = VideoPrefix::new(&header, payload_len);
        let start = VIDEO_PREFIX_MAX - prefix.as_bytes().len();
        buf[start..VIDEO_PREFIX_MAX].copy_from_slice(prefix.as_bytes());
        let whole = buf.freeze();
        let frame = Self {
            header,
            payload_offset: VIDEO_PREFIX_MAX - start,
            wire: whole.slice(start..),
            ready_at: None,
            grab_seq: 0,
        };
        (frame, whole)
    }

    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The bare H.264 access unit or JPEG image, sharing the same allocation.
    pub fn payload(&self) -> Bytes {
        self.wire.slice(self.payload_offset..)
    }

    pub fn payload_len(&self) -> usize {
        self.wire.len() - self.payload_offset
    }

    pub fn keyframe(&self) -> bool {
        self.header.keyframe
    }
}

/// Recycles shared buffers: it keeps a handle to each buffer it hands out and takes one back
/// once nobody else holds it any more. Bounded: it remembers at most `limit` buffers, so a pile
/// of buffers held by slow viewers is freed by them, not kept here.
pub struct BufferPool {
    handed_out: VecDeque<Bytes>,
    limit: usize,
}

impl BufferPool {
    pub fn new(limit: usize) -> Self {
        Self {
            handed_out: VecDeque::with_capacity(limit),
            limit,
        }
    }

    /// An empty buffer: one nobody holds any more, or a new one of `capacity` bytes.
    pub fn take(&mut self, capacity: usize) -> BytesMut {
        let free = self.handed_out.iter().position(Bytes::is_unique);
        let reused = free
            .and_then(|i| self.handed_out.remove(i))
            .and_then(|b| b.try_into_mut().ok());
        match reused {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => {
                let mut buf = BytesMut::with_capacity(capacity);
                // Splitting makes the buffer reference-counted now, once. A fresh `BytesMut`
                // is a plain vector, and a vector frozen into `Bytes` allocates its reference
                // count at the first clone; a buffer that went back to being a vector on every
                // reuse would cost an allocation per use.
                drop(buf.split_to(0));
                buf
            }
        }
    }

    /// Freezes a buffer from [`Self::take`] and remembers it for reuse.
    pub fn hand_out(&mut self, buf: BytesMut) -> Bytes {
        let whole = buf.freeze();
        self.keep(whole.clone());
        whole
    }

    fn keep(&mut self, whole: Bytes) {
        if self.handed_out.len() == self.limit {
            self.handed_out.pop_front();
        }
        self.handed_out.push_back(whole);
    }
}

/// The media thread's frame buffers, recycled through a [`BufferPool`].
pub struct FramePool(BufferPool);

impl FramePool {
    pub fn new(limit: usize) -> Self {
        Self(BufferPool::new(limit))
    }

    /// An empty buffer with room for the prefix; reused when one is free, new otherwise.
    pub fn take(&mut self, capacity: usize) -> BytesMut {
        let mut buf = self.0.take(VIDEO_PREFIX_MAX + capacity);
        buf.resize(VIDEO_PREFIX_MAX, 0);
        buf
    }

    /// Seals a buffer from [`Self::take`] and remembers it for reuse.
    pub fn seal(&mut self, header: VideoHeader, buf: BytesMut) -> EncodedFrame {
        let (frame, whole) = EncodedFrame::seal_shared(header, buf);
        self.0.keep(whole);
        frame
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

    #[test]
    fn a_buffer_comes_back_only_when_no_viewer_holds_it() {
        let header = VideoHeader {
            codec: Codec::H264,
            keyframe: false,
            seq: 1,
            capture_us: 0,
            width: 16,
            height: 16,
        };
        let mut pool = FramePool::new(4);
        let mut buf = pool.take(1024);
        buf.extend_from_slice(&[7; 100]);
        let first_ptr = buf.as_ptr();
        let frame = pool.seal(header, buf);
        let viewer_copy = frame.clone();
        drop(frame);
        let other = pool.take(1024);
        assert_ne!(other.as_ptr(), first_ptr, "still held by a viewer");
        drop(viewer_copy);
        let reused = pool.take(1024);
        assert_eq!(reused.as_ptr(), first_ptr, "the same allocation again");
        assert_eq!(
            reused.len(),
            VIDEO_PREFIX_MAX,
            "empty but for the prefix room"
        );
    }

    #[test]
    fn the_pool_forgets_the_oldest_buffer_beyond_its_limit() {
        let header = VideoHeader {
            codec: Codec::Jpeg,
            keyframe: true,
            seq: 1,
            capture_us: 0,
            width: 16,
            height: 16,
        };
        let mut pool = FramePool::new(2);
        let held: Vec<EncodedFrame> = (0..3)
            .map(|_| {
                let buf = pool.take(16);
                pool.seal(header, buf)
            })
            .collect();
        assert_eq!(pool.0.handed_out.len(), 2);
        drop(held);
        assert_eq!(
            pool.0.handed_out.iter().filter(|b| b.is_unique()).count(),
            2
        );
    }
}
