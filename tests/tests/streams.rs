//! The plain-HTTP streams for tools: raw Annex-B H.264 and multipart MJPEG.

use std::time::{Duration, Instant};

use nanokvm_e2e::http::{BodyStream, Chunk};
use nanokvm_e2e::{h264, jpeg_size, take_parts, Daemon};

#[test]
fn h264_stream_starts_with_a_keyframe_and_decodes() {
    let d = Daemon::start(&[]);
    let mut s = BodyStream::get(d.addr(), "/api/stream/h264").expect("GET /api/stream/h264");
    assert_eq!(s.status, 200, "headers {:?}", s.headers);
    assert_eq!(
        s.header("content-type"),
        Some("video/h264"),
        "headers {:?}",
        s.headers
    );
    assert!(
        s.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        "the stream is not chunked: {:?}",
        s.headers
    );
    // At least 1.2 s of stream and at least two complete access units.
    let t0 = Instant::now();
    let hard = t0 + Duration::from_secs(6);
    let mut buf = Vec::new();
    loop {
        let (aus, _) = h264::split_access_units(&buf);
        if t0.elapsed() >= Duration::from_millis(1200) && aus.len() >= 2 {
            break;
        }
        match s.read_some(hard).expect("read the stream") {
            Chunk::Data(b) => buf.extend_from_slice(&b),
            Chunk::Eof => panic!("the H.264 stream ended after {} bytes", buf.len()),
            Chunk::Timeout => panic!(
                "only {} access units in 6 s ({} bytes)",
                aus.len(),
                buf.len()
            ),
        }
    }
    let first = h264::nals(&buf);
    assert_eq!(
        first.first().map(|n| n.start),
        Some(0),
        "the stream does not start with a start code"
    );
    let (aus, _) = h264::split_access_units(&buf);
    h264::check_keyframe_au(aus[0]).unwrap_or_else(|e| panic!("first access unit: {e}"));
    let mut dec = h264::Decoder::new();
    for (i, au) in aus.iter().enumerate() {
        let size = dec.decode_picture(au).unwrap_or_else(|e| {
            panic!("access unit {i} (NAL types {:?}): {e}", h264::nal_types(au))
        });
        assert_eq!(size, (1280, 720), "access unit {i}");
    }
    eprintln!(
        "h264 stream: {} access units decoded in {:?} ({} bytes)",
        aus.len(),
        t0.elapsed(),
        buf.len()
    );
}

#[test]
fn mjpeg_stream_sends_720p_jpeg_parts() {
    let d = Daemon::start(&[]);
    let mut s = BodyStream::get(d.addr(), "/api/stream/mjpeg").expect("GET /api/stream/mjpeg");
    assert_eq!(s.status, 200, "headers {:?}", s.headers);
    let ct = s.header("content-type").unwrap_or_default().to_string();
    let norm: String = ct.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(
        norm.to_ascii_lowercase(),
        "multipart/x-mixed-replace;boundary=frame",
        "Content-Type {ct:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut buf = Vec::new();
    let mut parts = Vec::new();
    while parts.len() < 2 {
        match s.read_some(deadline).expect("read the stream") {
            Chunk::Data(b) => buf.extend_from_slice(&b),
            Chunk::Eof => panic!("the MJPEG stream ended after {} parts", parts.len()),
            Chunk::Timeout => panic!("only {} parts in 6 s", parts.len()),
        }
        parts.extend(take_parts(&mut buf, "frame").unwrap_or_else(|e| panic!("multipart: {e}")));
    }
    for (i, p) in parts.iter().enumerate() {
        let ct = p
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        assert_eq!(ct, Some("image/jpeg"), "part {i} headers {:?}", p.headers);
        let size = jpeg_size(&p.body).unwrap_or_else(|e| panic!("part {i}: {e}"));
        assert_eq!(size, (1280, 720), "part {i}");
    }
}
