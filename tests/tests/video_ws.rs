//! The WebSocket video path against the sim backend: first frame, late viewers, sequence
//! numbers, resolution changes, visibility, settings validation and /metrics.

use std::time::{Duration, Instant};

use nanokvm_e2e::proto::{ClientMsg, Codec, ErrorCode, Resolution, StreamSettings, VideoStatus};
use nanokvm_e2e::ws::{Frame, Msg, WsClient};
use nanokvm_e2e::{block_on, h264, http, Daemon};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// Design target: a new viewer gets a decodable frame within one frame interval plus encode
/// time; 250 ms leaves room for a loaded 2-core CI machine.
const FIRST_FRAME_BOUND: Duration = Duration::from_millis(250);

fn assert_keyframe(f: &Frame, w: u16, h: u16) {
    assert_eq!(f.header.codec, Codec::H264, "{}", f.describe());
    assert!(
        f.header.keyframe,
        "expected a keyframe, got {}",
        f.describe()
    );
    assert_eq!(
        (f.header.width, f.header.height),
        (w, h),
        "header size of {}",
        f.describe()
    );
    h264::check_keyframe_au(&f.data).unwrap_or_else(|e| panic!("{}: {e}", f.describe()));
    let size = h264::keyframe_size(&f.data).unwrap_or_else(|e| panic!("{}: {e}", f.describe()));
    assert_eq!(
        size,
        (w as usize, h as usize),
        "decoded size of {}",
        f.describe()
    );
}

fn assert_contiguous(who: &str, frames: &[Frame]) {
    for w in frames.windows(2) {
        assert_eq!(
            w[1].header.seq,
            w[0].header.seq.wrapping_add(1),
            "{who}: seq must increase by one between consecutive frames: {} then {}",
            w[0].describe(),
            w[1].describe()
        );
    }
}

/// Decodes `frames` in order with one decoder; every one must give a `w`x`h` picture.
fn assert_decodes(who: &str, frames: &[Frame], w: usize, h: usize) {
    let mut dec = h264::Decoder::new();
    for f in frames {
        let size = dec
            .decode_picture(&f.data)
            .unwrap_or_else(|e| panic!("{who}: {}: {e}", f.describe()));
        assert_eq!(size, (w, h), "{who}: decoded size of {}", f.describe());
    }
}

/// The video status that follows `Hello`; only the device state (HID, front panel), which is
/// also sent on joining, may come first.
async fn expect_status(c: &mut WsClient) -> VideoStatus {
    loop {
        match c.recv(SECS(2)).await {
            Msg::VideoStatus(s) => return s,
            Msg::HidStatus(_) | Msg::Atx(_) => {}
            other => panic!(
                "expected VideoStatus right after Hello, got {}",
                other.describe()
            ),
        }
    }
}

#[test]
fn first_frame_is_a_fast_decodable_keyframe() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, settings, hello_at) = WsClient::connect_hello(d.addr(), true).await;
        assert_eq!(settings.resolution, Resolution::P720, "default resolution");
        assert_eq!(settings.fps, 30, "default fps");
        let st = expect_status(&mut c).await;
        assert!(st.signal, "{st:?}");
        assert_eq!((st.width, st.height), (1280, 720), "{st:?}");
        assert_eq!((st.source_width, st.source_height), (1920, 1080), "{st:?}");
        assert_eq!(st.fps, 30, "{st:?}");
        let f = c.recv_video(SECS(3)).await;
        let latency = f.at.saturating_duration_since(hello_at);
        eprintln!(
            "first video {} arrived {:.1} ms after the server Hello",
            f.describe(),
            latency.as_secs_f64() * 1e3
        );
        assert_keyframe(&f, 1280, 720);
        assert!(
            latency <= FIRST_FRAME_BOUND,
            "first frame took {latency:?} after Hello (bound {FIRST_FRAME_BOUND:?})"
        );
    });
}

#[test]
fn late_viewer_gets_a_keyframe_first_and_seq_is_contiguous() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut a, _, _) = WsClient::connect_hello(d.addr(), true).await;
        let mut frames_a = vec![a.recv_video(SECS(3)).await];
        assert_keyframe(&frames_a[0], 1280, 720);
        // Let A get past its keyframe so the encoder is in the middle of a GOP.
        while frames_a.last().is_some_and(|f| f.header.keyframe) {
            assert!(
                frames_a.len() < 10,
                "viewer A only got keyframes: {:?}",
                frames_a.iter().map(Frame::describe).collect::<Vec<_>>()
            );
            frames_a.push(a.recv_video(SECS(3)).await);
        }

        let (mut b, _, hello_b) = WsClient::connect_hello(d.addr(), true).await;
        // B's first frame, while A keeps reading.
        let (fb, more_a) =
            futures_lite::future::zip(b.recv_video(SECS(3)), a.collect_video(MS(300))).await;
        frames_a.extend(more_a);
        let latency = fb.at.saturating_duration_since(hello_b);
        eprintln!(
            "late viewer: first video {} {:.1} ms after its Hello",
            fb.describe(),
            latency.as_secs_f64() * 1e3
        );
        assert_keyframe(&fb, 1280, 720);
        assert!(
            latency <= FIRST_FRAME_BOUND,
            "late viewer's first frame took {latency:?}"
        );

        let (more_a, more_b) =
            futures_lite::future::zip(a.collect_video(SECS(2)), b.collect_video(SECS(2))).await;
        frames_a.extend(more_a);
        let mut frames_b = vec![fb];
        frames_b.extend(more_b);
        eprintln!(
            "viewer A got {} frames, viewer B {} frames (seq {}..={})",
            frames_a.len(),
            frames_b.len(),
            frames_b[0].header.seq,
            frames_b.last().map_or(0, |f| f.header.seq)
        );
        assert!(
            frames_b.len() >= 3,
            "viewer B got only {} frames in 2 s",
            frames_b.len()
        );
        assert_contiguous("viewer A", &frames_a);
        assert_contiguous("viewer B", &frames_b);
        assert_decodes("viewer A", &frames_a, 1280, 720);
        assert_decodes("viewer B", &frames_b, 1280, 720);
    });
}

/// After a size change: `VideoStatus` with the new size (and `Settings` when `settings` is
/// given) arrive, and the first Video after that status is a keyframe at the new size.
async fn expect_resize(
    c: &mut WsClient,
    w: u16,
    h: u16,
    settings: Option<StreamSettings>,
) -> (VideoStatus, Frame) {
    let deadline = Instant::now() + SECS(5);
    let mut got_settings = settings.is_none();
    let mut status = None;
    let mut first_new: Option<Frame> = None;
    let mut log = Vec::new();
    while !(got_settings && first_new.is_some()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = match c.next_event(left).await {
            Some(nanokvm_e2e::ws::Event::Msg(m)) => m,
            Some(other) => panic!("waiting for the switch to {w}x{h}: {other:?} (after {log:?})"),
            None => panic!(
                "no complete switch to {w}x{h} within 5 s (Settings {}, VideoStatus {status:?}); received: {log:?}",
                if got_settings { "seen" } else { "missing" }
            ),
        };
        log.push(m.describe());
        match m {
            Msg::Settings(s) => {
                if let Some(want) = settings {
                    assert_eq!(s, want, "Settings broadcast after SetStreamSettings");
                }
                got_settings = true;
            }
            Msg::VideoStatus(st) if (st.width, st.height) == (w, h) => status = Some(st),
            Msg::Video(f) if status.is_none() => {
                assert_ne!(
                    (f.header.width, f.header.height),
                    (w, h),
                    "a {w}x{h} frame arrived before VideoStatus announced the size: {log:?}"
                );
            }
            Msg::Video(f) if first_new.is_none() => {
                assert!(
                    f.header.keyframe,
                    "the first Video after VideoStatus {w}x{h} is not a keyframe: {log:?}"
                );
                first_new = Some(f);
            }
            _ => {}
        }
    }
    let f = first_new.unwrap_or_else(|| unreachable!());
    assert_keyframe(&f, w, h);
    (status.unwrap_or_else(|| unreachable!()), f)
}

#[test]
fn native_resolution_setting_switches_to_1080p() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, settings, _) = WsClient::connect_hello(d.addr(), true).await;
        expect_status(&mut c).await;
        assert_keyframe(&c.recv_video(SECS(3)).await, 1280, 720);
        let native = StreamSettings {
            resolution: Resolution::Native,
            ..settings
        };
        let t0 = Instant::now();
        c.send(&ClientMsg::SetStreamSettings(native)).await;
        let (st, f) = expect_resize(&mut c, 1920, 1080, Some(native)).await;
        eprintln!(
            "1080p keyframe {:.1} ms after SetStreamSettings",
            (f.at - t0).as_secs_f64() * 1e3
        );
        assert_eq!((st.source_width, st.source_height), (1920, 1080), "{st:?}");
        // The stream goes on at the new size.
        let next = c.recv_video(SECS(3)).await;
        assert_eq!(
            (next.header.width, next.header.height),
            (1920, 1080),
            "{}",
            next.describe()
        );
        assert_decodes("after the switch", &[f, next], 1920, 1080);
    });
}

#[test]
fn console_switch_changes_the_stream_size() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        expect_status(&mut c).await;
        assert_keyframe(&c.recv_video(SECS(3)).await, 1280, 720);

        let r = http::post_json(d.addr(), "/api/sim/console", r#"{"console":2}"#);
        assert_eq!(r.status, 204, "POST /api/sim/console 2: {}", r.summary());
        let (st, _) = expect_resize(&mut c, 960, 720, None).await;
        assert_eq!((st.source_width, st.source_height), (1024, 768), "{st:?}");

        let r = http::post_json(d.addr(), "/api/sim/console", r#"{"console":1}"#);
        assert_eq!(r.status, 204, "POST /api/sim/console 1: {}", r.summary());
        let (st, _) = expect_resize(&mut c, 1280, 720, None).await;
        assert_eq!((st.source_width, st.source_height), (1920, 1080), "{st:?}");

        let r = http::post_json(d.addr(), "/api/sim/console", r#"{"console":9}"#);
        assert_eq!(r.status, 400, "POST /api/sim/console 9: {}", r.summary());
        assert!(!r.text().trim().is_empty(), "400 without a reason");
    });
}

#[test]
fn invalid_settings_are_refused_and_the_session_goes_on() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, settings, _) = WsClient::connect_hello(d.addr(), true).await;
        let before = c.recv_video(SECS(3)).await;
        let bad = StreamSettings {
            fps: 99,
            ..settings
        };
        c.send(&ClientMsg::SetStreamSettings(bad)).await;
        let m = c
            .recv_until(SECS(3), "Error{InvalidSettings}", |m| {
                assert!(
                    !matches!(m, Msg::Settings(_)),
                    "invalid settings were broadcast: {}",
                    m.describe()
                );
                matches!(m, Msg::Error { .. })
            })
            .await;
        match m {
            Msg::Error { code, message } => {
                eprintln!("InvalidSettings message: {message:?}");
                assert_eq!(code, ErrorCode::InvalidSettings, "{message}");
                assert!(!message.is_empty(), "Error without a message");
            }
            _ => unreachable!(),
        }
        c.send(&ClientMsg::Ping {
            client_time_us: 424242,
        })
        .await;
        match c
            .recv_until(SECS(2), "Pong", |m| matches!(m, Msg::Pong { .. }))
            .await
        {
            Msg::Pong {
                client_time_us,
                server_time_us,
            } => {
                assert_eq!(client_time_us, 424242, "Pong echoes client_time_us");
                assert!(
                    server_time_us >= before.header.capture_us,
                    "Pong server_time_us {server_time_us} is before an earlier frame's capture_us {}",
                    before.header.capture_us
                );
                assert!(
                    server_time_us - before.header.capture_us < 10_000_000,
                    "Pong server_time_us {server_time_us} is not on the capture clock ({})",
                    before.header.capture_us
                );
            }
            _ => unreachable!(),
        }
        let f = c.recv_video(SECS(3)).await;
        assert_eq!(
            (f.header.width, f.header.height),
            (1280, 720),
            "{}",
            f.describe()
        );
    });
}

#[test]
fn hidden_viewer_gets_no_video_and_a_keyframe_when_visible_again() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        c.recv_video(SECS(3)).await;
        c.send(&ClientMsg::Visibility { visible: false }).await;
        let t0 = Instant::now();
        let in_flight = c.collect_video(MS(1300)).await;
        let late: Vec<String> = in_flight
            .iter()
            .filter(|f| f.at.saturating_duration_since(t0) > MS(300))
            .map(|f| format!("{} at +{:?}", f.describe(), f.at - t0))
            .collect();
        assert!(
            in_flight.len() <= 2 && late.is_empty(),
            "hidden viewer still got video: {} frames, after 300 ms: {late:?}",
            in_flight.len()
        );

        c.send(&ClientMsg::Visibility { visible: true }).await;
        let t1 = Instant::now();
        let f = c.recv_video(SECS(2)).await;
        let latency = f.at - t1;
        eprintln!(
            "visible again: {} after {:.1} ms",
            f.describe(),
            latency.as_secs_f64() * 1e3
        );
        assert_keyframe(&f, 1280, 720);
        assert!(
            latency <= MS(500),
            "keyframe took {latency:?} after visible:true"
        );
    });
}

#[test]
fn metrics_count_viewing() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        for _ in 0..3 {
            c.recv_video(SECS(3)).await;
        }
        let r = http::get(d.addr(), "/metrics");
        assert_eq!(r.status, 200, "{}", r.summary());
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("text/plain"), "/metrics Content-Type {ct:?}");
        let m = nanokvm_e2e::Metrics::parse(&r.text());
        let missing: Vec<&str> = [
            "nanokvmd_frames_captured_total",
            "nanokvmd_frames_unchanged_total",
            "nanokvmd_frames_encoded_total",
            "nanokvmd_frames_sent_total",
            "nanokvmd_bytes_sent_total",
            "nanokvmd_frames_dropped_total",
            "nanokvmd_idr_total",
            "nanokvmd_viewers",
            "nanokvmd_encode_seconds_sum",
            "nanokvmd_encode_seconds_count",
        ]
        .into_iter()
        .filter(|n| !m.has(n))
        .collect();
        assert!(
            missing.is_empty(),
            "missing metrics {missing:?} in:\n{}",
            m.text
        );
        let get = |s: &str| {
            m.get(s)
                .unwrap_or_else(|| panic!("no series {s} in:\n{}", m.text))
        };
        assert!(
            get("nanokvmd_idr_total{reason=\"new_viewer\"}") >= 1.0,
            "{}",
            m.text
        );
        assert!(
            get("nanokvmd_frames_sent_total{codec=\"h264\"}") >= 3.0,
            "{}",
            m.text
        );
        assert!(
            get("nanokvmd_bytes_sent_total{codec=\"h264\"}") > 0.0,
            "{}",
            m.text
        );
        assert!(
            get("nanokvmd_frames_encoded_total{codec=\"h264\"}") >= 3.0,
            "{}",
            m.text
        );
        assert!(get("nanokvmd_frames_captured_total") >= 3.0, "{}", m.text);
        assert!(
            get("nanokvmd_encode_seconds_count{codec=\"h264\"}") >= 3.0,
            "{}",
            m.text
        );
        assert!(
            get("nanokvmd_encode_seconds_sum{codec=\"h264\"}") > 0.0,
            "{}",
            m.text
        );
        assert_eq!(
            get("nanokvmd_viewers{kind=\"ws\"}"),
            1.0,
            "one WebSocket viewer: {}",
            m.text
        );
    });
}
