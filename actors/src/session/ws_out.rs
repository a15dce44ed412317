//! The outgoing side of a session's WebSocket. Server frames (RFC 6455 §5.2) are written here
//! by hand: a header of at most 10 bytes on the stack and the payload straight from the shared
//! buffer, in one vectored write. There is no per-viewer copy of a frame's bytes.
//!
//! tungstenite reads the incoming side only. It still queues the pongs and close replies the
//! RFC asks for and tries to write them; [`DiscardWrites`] makes those writes vanish, because
//! the session sends its own (through [`WsWriter`], in order with everything else).

use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};

const FIN: u8 = 0x80;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The largest control-frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The largest close reason: a control payload less the two-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// The header of an unmasked, final frame: FIN|opcode, then the length in 7 bits, or 126 and
/// a u16, or 127 and a u64 (big-endian). Returns the buffer and how much of it is used.
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = FIN | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(len) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Writes server→client WebSocket frames to `io`.
pub struct WsWriter<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    pub fn new(io: W) -> Self {
        Self { io }
    }

    /// One binary message; `payload` is written from its own allocation.
    pub async fn binary(&mut self, payload: &Bytes) -> io::Result<()> {
        self.frame(OP_BINARY, payload).await
    }

    pub async fn ping(&mut self) -> io::Result<()> {
        self.frame(OP_PING, &[]).await
    }

    /// Answers a ping with its payload (cut to the 125 bytes a control frame may carry).
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame(OP_PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)])
            .await
    }

    /// A close frame: the code, then the reason cut to 123 bytes at a character boundary.
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let reason = truncate(reason, MAX_CLOSE_REASON);
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.frame(OP_CLOSE, &payload[..2 + reason.len()]).await
    }

    /// Ends the write side after the close handshake: a FIN, and under TLS its close_notify
    /// first, so the client sees a clean end rather than a truncated stream.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.close().await
    }

    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let (head, head_len) = header(opcode, payload.len());
        let mut slices = [IoSlice::new(&head[..head_len]), IoSlice::new(payload)];
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.io.write_vectored(rest).await {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.io.flush().await
    }
}

/// The stream given to tungstenite: reads come from the socket, writes are dropped.
pub struct DiscardWrites<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for DiscardWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read_vectored(cx, bufs)
    }
}

impl<T: Unpin> AsyncWrite for DiscardWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory socket that takes at most `chunk` bytes per call, says `Pending` every
    /// other call, and records where every slice it was given points.
    struct Recorder {
        written: Vec<u8>,
        slices: Vec<(usize, usize)>,
        chunk: usize,
        refuse: bool,
    }

    impl Recorder {
        fn new(chunk: usize) -> Self {
            Self {
                written: Vec::new(),
                slices: Vec::new(),
                chunk,
                refuse: false,
            }
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            // Every other call is refused, as a full socket would.
            let refuse = self.refuse;
            self.refuse = !refuse;
            if refuse {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut left = self.chunk;
            let mut n = 0;
            for b in bufs {
                self.slices.push((b.as_ptr() as usize, b.len()));
                let k = b.len().min(left);
                self.written.extend_from_slice(&b[..k]);
                left -= k;
                n += k;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn send_binary(payload: &Bytes, chunk: usize) -> Recorder {
        let mut w = WsWriter::new(Recorder::new(chunk));
        smol::block_on(w.binary(payload)).expect("write");
        w.io
    }

    #[test]
    fn binary_frames_have_the_right_header_for_each_length_class() {
        let cases: [(usize, &[u8]); 4] = [
            (125, &[0x82, 125]),
            (126, &[0x82, 126, 0, 126]),
            (65535, &[0x82, 126, 0xff, 0xff]),
            (65536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, head) in cases {
            let payload = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>());
            for chunk in [usize::MAX, 7, 1000] {
                let out = send_binary(&payload, chunk);
                assert_eq!(&out.written[..head.len()], head, "len {len}, chunk {chunk}");
                assert_eq!(
                    &out.written[head.len()..],
                    &payload[..],
                    "len {len}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn the_payload_is_written_from_its_own_allocation() {
        let wire = Bytes::from(vec![7u8; 200_000]);
        // A view into a larger buffer, like a frame's payload inside its wire bytes.
        let payload = wire.slice(1000..150_000);
        let (start, end) = (
            payload.as_ptr() as usize,
            payload.as_ptr() as usize + payload.len(),
        );
        for chunk in [usize::MAX, 4096, 3] {
            let out = send_binary(&payload, chunk);
            assert_eq!(out.written.len(), 10 + payload.len());
            // Every slice the socket saw is either the small header or a part of the payload
            // buffer itself, and together the payload parts cover it.
            let mut covered = 0;
            for &(ptr, len) in &out.slices {
                if (start..end).contains(&ptr) {
                    assert!(ptr + len <= end);
                    covered = covered.max(ptr + len - start);
                } else {
                    assert!(len <= 10, "a {len}-byte slice outside the payload buffer");
                }
            }
            assert_eq!(covered, payload.len(), "chunk {chunk}");
        }
    }

    #[test]
    fn control_frames() {
        let run = |f: &dyn Fn(&mut WsWriter<Recorder>) -> io::Result<()>| {
            let mut w = WsWriter::new(Recorder::new(5));
            f(&mut w).expect("write");
            w.io.written
        };
        assert_eq!(run(&|w| smol::block_on(w.ping())), [0x89, 0]);
        assert_eq!(
            run(&|w| smol::block_on(w.pong(b"abc"))),
            [0x8A, 3, b'a', b'b', b'c']
        );
        assert_eq!(
            run(&|w| smol::block_on(w.close(1000, "ok"))),
            [0x88, 4, 0x03, 0xe8, b'o', b'k']
        );
        assert_eq!(
            run(&|w| smol::block_on(w.close(1001, ""))),
            [0x88, 2, 0x03, 0xe9]
        );
        // Reasons are cut to 123 bytes, at a character boundary.
        let long = "é".repeat(100);
        let out = run(&|w| smol::block_on(w.close(1008, &long)));
        assert_eq!(out[..4], [0x88, 124, 0x03, 0xf0]);
        assert_eq!(std::str::from_utf8(&out[4..]), Ok("é".repeat(61).as_str()));
        let big_ping = [1u8; 300];
        let out = run(&|w| smol::block_on(w.pong(&big_ping)));
        assert_eq!(out[..2], [0x8A, 125]);
        assert_eq!(out.len(), 127);
    }

    #[test]
    fn writes_to_discard_vanish_and_reads_pass_through() {
        use futures_lite::AsyncReadExt;
        let mut d = DiscardWrites(&b"hello"[..]);
        smol::block_on(async {
            assert_eq!(d.write(b"pong").await.ok(), Some(4));
            let mut buf = Vec::new();
            d.read_to_end(&mut buf).await.expect("read");
            assert_eq!(buf, b"hello");
        });
    }
}
