//! Plain-HTTP streams for tools: raw Annex-B H.264 (ffplay, mpv, ffmpeg) and multipart MJPEG.
//!
//! A stream's body is polled by hyper frame by frame and allocates nothing per frame: frames
//! come from the hub's queue, the end-of-stream signals are futures made once per stream, and
//! an MJPEG part header is written into a buffer reused once hyper has sent it.

use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::future;
use hyper::body::Frame;
use hyper::StatusCode;
use nanokvm_protocol::Codec;

use super::{boxed, respond, App, Body, TEXT};
use crate::auth::SessionGuard;
use crate::encoder::Membership;
use crate::hub::{frame_queue, FrameReceiver};
use crate::media::frame::BufferPool;
use crate::metrics::ViewerKind;
use crate::video_msgs::EncoderMsg;

/// Frames queued per HTTP viewer before it is dropped to the next IDR.
const STREAM_QUEUE: usize = 8;

fn subscribe(app: &Rc<App>, codec: Codec, kind: ViewerKind) -> Option<(Membership, FrameReceiver)> {
    let (tx, rx) = frame_queue(STREAM_QUEUE);
    let id = app.viewer_id();
    let join = EncoderMsg::Join {
        id,
        codec,
        frames: tx,
        events: None,
        visible: true,
    };
    app.links.encoder.try_send(join).ok()?;
    // Dropped with the response body: client gone or daemon stopping.
    let membership = Membership::new(
        id,
        kind,
        app.links.encoder.clone(),
        app.links.metrics.clone(),
    );
    Some((membership, rx))
}

/// Completes when the daemon shuts down, so connections close promptly, or when the
/// credential the stream was opened with is revoked or expires.
fn stream_end(app: &App, auth: Option<SessionGuard>) -> Pin<Box<dyn Future<Output = ()>>> {
    let shutdown = app.links.shutdown.clone();
    Box::pin(async move {
        let stopped = async {
            let _ = shutdown.recv().await;
        };
        let revoked = async {
            match &auth {
                Some(guard) => guard.revoked().await,
                None => future::pending().await,
            }
        };
        future::or(stopped, revoked).await
    })
}

/// What goes out for each frame.
enum Format {
    /// The bare access unit.
    H264,
    /// A multipart part per JPEG: its header, the image, and the boundary that ends it.
    Mjpeg {
        /// The opening boundary is still to be sent.
        opening: bool,
        /// The image and the boundary after it, still to be sent, in that order.
        rest: [Option<Bytes>; 2],
        heads: BufferPool,
    },
}

/// The response body of a stream. Queued frames still go out after the end signal; then the
/// body ends.
struct FrameBody {
    frames: FrameReceiver,
    end: Pin<Box<dyn Future<Output = ()>>>,
    format: Format,
    /// The viewer's place in the hub, left when hyper drops the body.
    _membership: Membership,
}

/// Part headers kept for reuse: hyper holds one until it has written it.
const PART_HEADS: usize = 4;
/// Room for a part header: the longest is 62 bytes.
const PART_HEAD_CAPACITY: usize = 64;

impl hyper::body::Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Format::Mjpeg { opening, rest, .. } = &mut this.format {
            if std::mem::take(opening) {
                return data(Bytes::from_static(FIRST_BOUNDARY));
            }
            if let Some(next) = rest.iter_mut().find_map(Option::take) {
                return data(next);
            }
        }
        if let Poll::Ready(Some(frame)) = this.frames.poll_recv(cx) {
            // Handed to hyper, which writes it to the socket before it asks for the next one.
            log::debug!(target: "frame", "{} delivered to an HTTP {:?} stream", frame.grab_seq, frame.header.codec);
            return match &mut this.format {
                Format::H264 => data(frame.payload()),
                Format::Mjpeg { rest, heads, .. } => {
                    let jpeg = frame.payload();
                    let mut head = heads.take(PART_HEAD_CAPACITY);
                    let _ = write!(
                        head,
                        "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        jpeg.len()
                    );
                    // The boundary goes out right after the image: a browser shows a part only
                    // once it sees the boundary that ends it, and on a still screen the next
                    // part may be minutes away.
                    *rest = [Some(jpeg), Some(Bytes::from_static(PART_END))];
                    data(heads.hand_out(head))
                }
            };
        }
        match this.end.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            // The hub let go of the viewer (`Ready(None)` above): the daemon is stopping.
            Poll::Pending => Poll::Pending,
        }
    }
}

fn data(bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
    Poll::Ready(Some(Ok(Frame::data(bytes))))
}

pub fn h264(app: &Rc<App>, auth: Option<SessionGuard>) -> hyper::Response<Body> {
    if !app.h264_available {
        let message = format!("{}\n", crate::session::NO_H264);
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, message);
    }
    let Some((membership, frames)) = subscribe(app, Codec::H264, ViewerKind::H264Http) else {
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "encoder busy\n");
    };
    let body = FrameBody {
        frames,
        end: stream_end(app, auth),
        format: Format::H264,
        _membership: membership,
    };
    let mut res = hyper::Response::new(boxed(body));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("video/h264"),
    );
    res
}

const BOUNDARY: &str = "frame";
const FIRST_BOUNDARY: &[u8] = b"--frame\r\n";
const PART_END: &[u8] = b"\r\n--frame\r\n";

pub fn mjpeg(app: &Rc<App>, auth: Option<SessionGuard>) -> hyper::Response<Body> {
    if !app.jpeg_available {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "this source has no JPEG encoder (replay source)\n",
        );
    }
    let Some((membership, frames)) = subscribe(app, Codec::Jpeg, ViewerKind::MjpegHttp) else {
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "encoder busy\n");
    };
    let body = FrameBody {
        frames,
        end: stream_end(app, auth),
        format: Format::Mjpeg {
            opening: true,
            rest: [None, None],
            heads: BufferPool::new(PART_HEADS),
        },
        _membership: membership,
    };
    let mut res = hyper::Response::new(boxed(body));
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
        "multipart/x-mixed-replace; boundary={BOUNDARY}"
    )) {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Waker;

    use hyper::body::Body as _;
    use nanokvm_protocol::VideoHeader;

    use super::*;
    use crate::alloc_count::thread_allocations;
    use crate::hub::{Hub, ViewerQueues};
    use crate::media::FramePool;
    use crate::metrics::Metrics;

    /// A stream's body, as `h264` and `mjpeg` make it, joined to `hub` as viewer `id`.
    fn body(
        id: u64,
        codec: Codec,
        hub: &mut Hub<ViewerQueues>,
        encoder: &async_channel::Sender<EncoderMsg>,
    ) -> FrameBody {
        let (frames_tx, frames) = frame_queue(STREAM_QUEUE);
        let queues = ViewerQueues {
            frames: frames_tx,
            events: None,
        };
        hub.join(id, codec, queues, true);
        let (kind, format) = match codec {
            Codec::H264 => (ViewerKind::H264Http, Format::H264),
            Codec::Jpeg => (
                ViewerKind::MjpegHttp,
                Format::Mjpeg {
                    opening: true,
                    rest: [None, None],
                    heads: BufferPool::new(PART_HEADS),
                },
            ),
        };
        let metrics = Arc::new(Metrics::default());
        FrameBody {
            frames,
            end: Box::pin(future::pending()),
            format,
            _membership: Membership::new(id, kind, encoder.clone(), metrics),
        }
    }

    /// Everything the body has ready, as hyper would take it (and then drop it, written).
    fn drain(body: &mut FrameBody, out: &mut Vec<u8>, keep: bool) {
        let mut cx = Context::from_waker(Waker::noop());
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut *body).poll_frame(&mut cx) {
            let data = frame.into_data().expect("only data frames");
            if keep {
                out.extend_from_slice(&data);
            }
        }
    }

    #[test]
    fn stream_bodies_send_each_frame_and_allocate_nothing_in_steady_state() {
        const WARM_UP: u32 = 20;
        const MEASURED: u32 = 200;
        let (encoder, _mailbox) = async_channel::bounded(64);
        let mut hub = Hub::new();
        let mut h264 = [0, 1].map(|id| body(id, Codec::H264, &mut hub, &encoder));
        let mut mjpeg = [2, 3].map(|id| body(id, Codec::Jpeg, &mut hub, &encoder));
        let mut pool = FramePool::new(6);
        let mut send = |hub: &mut Hub<ViewerQueues>, codec: Codec, seq: u32| {
            let mut buf = pool.take(1200);
            buf.extend_from_slice(&[seq as u8; 1200]);
            let header = VideoHeader {
                codec,
                keyframe: codec == Codec::Jpeg || seq.is_multiple_of(30),
                seq,
                capture_us: 0,
                width: 64,
                height: 64,
            };
            let delivery = hub.deliver(&pool.seal(header, buf));
            assert_eq!(delivery.sent, 2);
        };
        let mut out = Vec::with_capacity(4096);
        let mut allocations = 0;
        for seq in 0..WARM_UP + MEASURED {
            let before = thread_allocations();
            send(&mut hub, Codec::H264, seq);
            send(&mut hub, Codec::Jpeg, seq);
            // One part is checked byte by byte (while warming up: the check allocates).
            let keep = seq == WARM_UP - 1;
            out.clear();
            for b in h264.iter_mut().chain(&mut mjpeg[1..]) {
                drain(b, &mut out, false);
            }
            drain(&mut mjpeg[0], &mut out, keep);
            if keep {
                let mut part = b"Content-Type: image/jpeg\r\nContent-Length: 1200\r\n\r\n".to_vec();
                part.extend_from_slice(&[seq as u8; 1200]);
                part.extend_from_slice(PART_END);
                assert_eq!(out, part, "one multipart part per frame");
            }
            if seq >= WARM_UP {
                allocations += thread_allocations() - before;
            }
        }
        assert_eq!(
            allocations, 0,
            "{allocations} allocations in {MEASURED} frames"
        );
        // The H.264 stream is the bare access units, back to back.
        let mut out = Vec::new();
        send(&mut hub, Codec::H264, 1000);
        drain(&mut h264[0], &mut out, true);
        assert_eq!(out, [1000u32 as u8; 1200]);
    }

    #[test]
    fn an_mjpeg_stream_opens_with_a_boundary() {
        let (encoder, _mailbox) = async_channel::bounded(64);
        let mut hub = Hub::new();
        let mut b = body(0, Codec::Jpeg, &mut hub, &encoder);
        let mut out = Vec::new();
        drain(&mut b, &mut out, true);
        assert_eq!(out, FIRST_BOUNDARY);
    }
}
