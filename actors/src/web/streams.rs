//! Plain-HTTP streams for tools: raw Annex-B H.264 (ffplay, mpv, ffmpeg) and multipart MJPEG.

use std::rc::Rc;

use bytes::Bytes;
use std::pin::Pin;

use futures_lite::{future, stream, Stream, StreamExt};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::StatusCode;
use nanokvm_protocol::Codec;

use super::{boxed, respond, App, Body, TEXT};
use crate::auth::SessionGuard;
use crate::encoder::{EncoderMsg, Membership};
use crate::media::EncodedFrame;
use crate::metrics::ViewerKind;

/// Frames queued per HTTP viewer before it is dropped to the next IDR.
const STREAM_QUEUE: usize = 8;

fn subscribe(
    app: &Rc<App>,
    codec: Codec,
    kind: ViewerKind,
) -> Option<(Membership, async_channel::Receiver<EncodedFrame>)> {
    let (tx, rx) = async_channel::bounded(STREAM_QUEUE);
    let id = app.viewer_id();
    let join = EncoderMsg::Join {
        id,
        codec,
        frames: tx,
        events: None,
        visible: true,
    };
    app.encoder.try_send(join).ok()?;
    // Dropped with the response body: client gone or daemon stopping.
    let membership = Membership::new(id, kind, app.encoder.clone(), app.metrics.clone());
    Some((membership, rx))
}

/// Ends the body when the daemon shuts down, so connections close promptly, and when the
/// credential the stream was opened with is revoked or expires.
fn until_shutdown<T: 'static>(
    app: &App,
    auth: Option<SessionGuard>,
    s: impl Stream<Item = T> + 'static,
) -> Pin<Box<dyn Stream<Item = T>>> {
    let shutdown = app.shutdown.clone();
    Box::pin(stream::unfold(
        (Box::pin(s), shutdown, auth),
        |(mut s, shutdown, auth)| async move {
            let stopped = async {
                let _ = shutdown.recv().await;
                None
            };
            let revoked = async {
                match &auth {
                    Some(guard) => guard.revoked().await,
                    None => future::pending().await,
                }
                None
            };
            let item = future::or(s.next(), future::or(stopped, revoked)).await?;
            Some((item, (s, shutdown, auth)))
        },
    ))
}

pub fn h264(app: &Rc<App>, auth: Option<SessionGuard>) -> hyper::Response<Body> {
    if !app.h264_available {
        let message = format!("{}\n", crate::session::NO_H264);
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, message);
    }
    let Some((sub, frames)) = subscribe(app, Codec::H264, ViewerKind::H264Http) else {
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "encoder busy\n");
    };
    let body = until_shutdown(
        app,
        auth,
        frames.map(move |f| {
            let _keep = &sub;
            Ok(Frame::data(f.payload()))
        }),
    );
    let mut res = hyper::Response::new(boxed(StreamBody::new(body)));
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
    let Some((sub, frames)) = subscribe(app, Codec::Jpeg, ViewerKind::MjpegHttp) else {
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "encoder busy\n");
    };
    let first_boundary = stream::once(Bytes::from_static(FIRST_BOUNDARY));
    let body = until_shutdown(
        app,
        auth,
        first_boundary
            .chain(
                frames
                    .map(move |f| {
                        let _keep = &sub;
                        let jpeg = f.payload();
                        let head = format!(
                            "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            jpeg.len()
                        );
                        // The shared JPEG bytes between the part header and the next boundary. The
                        // boundary goes out right after the image: a browser shows a part only once
                        // it sees the boundary that ends it, and on a still screen the next part may
                        // be minutes away.
                        stream::iter([Bytes::from(head), jpeg, Bytes::from_static(PART_END)])
                    })
                    .flatten(),
            )
            .map(|b| Ok(Frame::data(b))),
    );
    let mut res = hyper::Response::new(boxed(StreamBody::new(body)));
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
        "multipart/x-mixed-replace; boundary={BOUNDARY}"
    )) {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    res
}
