use super::*;
use crate::hub::tests::TestSink;
use crate::media::GrabInfo;
use nanokvm_protocol::{Resolution, VideoHeader};

fn core() -> EncoderCore<TestSink> {
    EncoderCore::new(
        StreamSettings::default(),
        PolicyConfig::default(),
        Arc::new(Metrics::default()),
    )
}

fn grab(seq: u64, change: FrameChange, size: (u16, u16)) -> GrabReport {
    GrabReport {
        grab_seq: seq,
        capture_us: seq * 33_000,
        settings: StreamSettings::default(),
        info: GrabInfo {
            change,
            signal: true,
            source_size: (1920, 1080),
            output_size: size,
            encoder: None,
        },
    }
}

fn frame(codec: Codec, keyframe: bool) -> EncodedFrame {
    let header = VideoHeader {
        codec,
        keyframe,
        seq: 0,
        capture_us: 0,
        width: 1280,
        height: 720,
    };
    EncodedFrame::seal(header, EncodedFrame::payload_buffer(0))
}

fn report(seq: u64, h264: Option<bool>) -> EncodeReport {
    EncodeReport {
        grab_seq: seq,
        h264: h264.map(|key| frame(Codec::H264, key)),
        jpeg: None,
    }
}

fn job(actions: &[Action]) -> Option<&EncodeJob> {
    actions.iter().find_map(|a| match a {
        Action::Encode(j) => Some(j),
        _ => None,
    })
}

fn forced(actions: &[Action]) -> bool {
    job(actions).is_some_and(|j| j.h264.is_some_and(|h| h.force_idr))
}

const CHANGED: FrameChange = FrameChange::Changed { fraction: 0.01 };
const STILL: FrameChange = FrameChange::Unchanged;

/// Feeds `n` changed frames at 30 fps, each encoded at once (as an IDR when forced), calling
/// `after` after each; returns how many were forced IDRs.
fn changing_frames(
    c: &mut EncoderCore<TestSink>,
    n: u64,
    mut after: impl FnMut(&mut EncoderCore<TestSink>),
) -> usize {
    let mut out = Vec::new();
    let mut forced_count = 0;
    for seq in 1..=n {
        out.clear();
        let now = seq * 33_000;
        c.captured(now, grab(seq, CHANGED, (1280, 720)), &mut out);
        let key = forced(&out);
        forced_count += usize::from(key);
        if job(&out).is_some() {
            c.encoded(now + 1, report(seq, Some(key)));
        }
        after(c);
    }
    forced_count
}

#[test]
fn first_viewer_starts_capture_at_once_and_gets_an_idr_of_a_still_screen() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(4);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    assert!(matches!(
        &sink.events.borrow()[0],
        ViewerEvent::Welcome { status: None, .. }
    ));
    assert!(matches!(
        out[..],
        [Action::Capture(CaptureMsg::Configure {
            active: true,
            grab_now: true,
            ..
        })]
    ));
    out.clear();
    c.captured(0, grab(1, STILL, (1280, 720)), &mut out);
    assert!(forced(&out));
    assert!(
        matches!(sink.events.borrow().last(), Some(ViewerEvent::VideoStatus(s)) if s.width == 1280)
    );
}

#[test]
fn unchanged_frames_with_nobody_waiting_are_not_encoded() {
    let mut c = core();
    let mut out = Vec::new();
    let q = TestSink::new(4);
    c.join(1, Codec::H264, q.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(10_000, report(1, Some(true)));
    assert_eq!(q.queue.borrow().len(), 1);
    out.clear();
    c.captured(33_000, grab(2, STILL, (1280, 720)), &mut out);
    assert_eq!(job(&out), None);
    assert_eq!(c.metrics.frames_unchanged.load(Relaxed), 1);
}

#[test]
fn capture_stops_when_nobody_watches_including_hidden_viewers() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, TestSink::new(4), true, &mut out);
    out.clear();
    c.visibility(1, false, &mut out);
    assert!(matches!(
        out[..],
        [Action::Capture(CaptureMsg::Configure { active: false, .. })]
    ));
    out.clear();
    c.visibility(1, true, &mut out);
    assert!(matches!(
        out[..],
        [Action::Capture(CaptureMsg::Configure {
            active: true,
            grab_now: true,
            ..
        })]
    ));
    out.clear();
    c.leave(1, &mut out);
    assert!(matches!(
        out[..],
        [Action::Capture(CaptureMsg::Configure { active: false, .. })]
    ));
    out.clear();
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    assert_eq!(job(&out), None);
}

#[test]
fn a_lost_idr_is_asked_for_again_and_a_skipped_change_is_encoded_later() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(4);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    assert!(forced(&out));
    // A newer grab replaced the picture before it was encoded.
    c.encoded(5_000, EncodeReport::skipped(1));
    out.clear();
    c.captured(33_000, grab(2, STILL, (1280, 720)), &mut out);
    assert!(
        forced(&out),
        "the viewer still waits: ask again even on a still screen"
    );
    c.encoded(40_000, report(2, Some(true)));
    assert_eq!(sink.queue.borrow().len(), 1);
}

#[test]
fn a_waiting_viewer_is_not_served_twice_while_its_idr_is_in_flight() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, TestSink::new(4), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    out.clear();
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    assert!(!forced(&out), "IDR for grab 1 not answered yet");
}

#[test]
fn a_jpeg_viewer_gets_a_picture_of_a_still_screen_once() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::Jpeg, TestSink::new(4), true, &mut out);
    out.clear();
    c.captured(0, grab(1, STILL, (1280, 720)), &mut out);
    assert_eq!(job(&out).map(|j| (j.h264, j.jpeg)), Some((None, true)));
    c.encoded(
        1_000,
        EncodeReport {
            grab_seq: 1,
            h264: None,
            jpeg: Some(frame(Codec::Jpeg, true)),
        },
    );
    out.clear();
    c.captured(33_000, grab(2, STILL, (1280, 720)), &mut out);
    assert_eq!(job(&out), None);
}

#[test]
fn a_stalled_viewer_causes_no_idr_storm() {
    let mut c = core();
    let mut out = Vec::new();
    let stalled = TestSink::new(1);
    c.join(1, Codec::H264, stalled.clone(), true, &mut out);
    c.join(2, Codec::H264, TestSink::new(100), true, &mut out);
    let forced_count = changing_frames(&mut c, 60, |_| {});
    assert_eq!(forced_count, 1, "only the joiners' first IDR");
    assert_eq!(stalled.queue.borrow().len(), 1);
}

#[test]
fn a_signal_of_unknown_size_is_not_announced_as_no_signal() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(8);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (0, 0)), &mut out);
    assert!(
        !sink
            .events
            .borrow()
            .iter()
            .any(|e| matches!(e, ViewerEvent::VideoStatus(_))),
        "nothing known yet"
    );
    assert!(job(&out).is_some(), "the frame is read all the same");
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    assert!(matches!(
        sink.events.borrow().last(),
        Some(ViewerEvent::VideoStatus(s)) if s.signal && s.width == 1280
    ));
}

#[test]
fn resolution_change_is_announced_and_forces_an_idr() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(8);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(1_000, report(1, Some(true)));
    c.captured(300_000, grab(2, CHANGED, (1280, 720)), &mut out);
    c.encoded(301_000, report(2, Some(false)));
    out.clear();
    c.captured(600_000, grab(3, CHANGED, (960, 720)), &mut out);
    assert!(
        matches!(sink.events.borrow().last(), Some(ViewerEvent::VideoStatus(s)) if s.width == 960)
    );
    assert!(forced(&out));
}

#[test]
fn settings_are_validated_applied_once_and_carried_with_each_job() {
    let mut c = core();
    let mut out = Vec::new();
    let (a, b) = (TestSink::new(4), TestSink::new(4));
    c.join(7, Codec::H264, a.clone(), true, &mut out);
    c.join(8, Codec::H264, b.clone(), true, &mut out);
    let bad = StreamSettings {
        fps: 99,
        ..Default::default()
    };
    c.change_settings(0, 7, bad, &mut out);
    assert!(
        matches!(a.events.borrow().last(), Some(ViewerEvent::SettingsRejected(m)) if m.contains("fps"))
    );
    assert_eq!(
        b.events.borrow().len(),
        1,
        "only the sender hears of a refusal"
    );
    out.clear();
    let good = StreamSettings {
        resolution: Resolution::Native,
        fps: 15,
        ..Default::default()
    };
    c.change_settings(0, 7, good, &mut out);
    assert!(matches!(b.events.borrow().last(), Some(ViewerEvent::Settings(s)) if *s == good));
    assert!(
        matches!(out[..], [Action::Capture(CaptureMsg::Configure { settings, .. })] if settings == good)
    );
    out.clear();
    c.change_settings(10_000, 8, good, &mut out);
    assert!(out.is_empty(), "the same settings again change nothing");
    c.captured(0, grab(1, CHANGED, (1920, 1080)), &mut out);
    assert_eq!(job(&out).map(|j| j.settings), Some(good));
}

#[test]
fn idrs_are_counted_by_reason() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, TestSink::new(8), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(1_000, report(1, Some(true)));
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    c.encoded(34_000, report(2, Some(true)));
    let text = c.metrics.render();
    assert!(
        text.contains("nanokvmd_idr_total{reason=\"new_viewer\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("nanokvmd_idr_total{reason=\"gop\"} 1\n"));
}

#[test]
fn a_client_asking_for_keyframes_is_rate_limited_like_everyone() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, TestSink::new(8), true, &mut out);
    // A decoder that fails on every frame.
    let forced_count = changing_frames(&mut c, 30, |c| c.keyframe_request(1));
    // One for joining, then at most one per 250 ms over a second.
    assert!(forced_count <= 5, "{forced_count} IDRs in 1 s");
}

#[test]
fn an_encode_that_was_never_sent_is_redone_and_its_idr_asked_again() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(8);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    c.not_sent(2);
    // The answer for the job that was sent is still matched.
    c.encoded(34_000, report(1, Some(true)));
    assert_eq!(sink.queue.borrow().len(), 1);
    out.clear();
    c.captured(66_000, grab(3, STILL, (1280, 720)), &mut out);
    assert!(job(&out).is_some(), "the unsent picture is encoded now");
}

#[test]
fn repeating_visible_does_not_grab_again() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, TestSink::new(8), true, &mut out);
    out.clear();
    for _ in 0..10 {
        c.visibility(1, true, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn settings_changed_too_soon_wait_and_the_latest_wins() {
    let mut c = core();
    let mut out = Vec::new();
    let sink = TestSink::new(8);
    c.join(1, Codec::H264, sink.clone(), true, &mut out);
    let a = StreamSettings {
        fps: 20,
        ..Default::default()
    };
    let b = StreamSettings {
        fps: 25,
        ..Default::default()
    };
    let latest = StreamSettings {
        fps: 15,
        ..Default::default()
    };
    c.change_settings(0, 1, a, &mut out);
    c.change_settings(100_000, 1, b, &mut out);
    c.change_settings(200_000, 1, latest, &mut out);
    c.captured(300_000, grab(1, CHANGED, (1280, 720)), &mut out);
    assert_eq!(job(&out).map(|j| j.settings.fps), Some(20), "not yet");
    out.clear();
    c.captured(500_000, grab(2, CHANGED, (1280, 720)), &mut out);
    assert_eq!(job(&out).map(|j| j.settings.fps), Some(15));
    let settings_told: Vec<u8> = sink
        .events
        .borrow()
        .iter()
        .filter_map(|e| match e {
            ViewerEvent::Settings(s) => Some(s.fps),
            _ => None,
        })
        .collect();
    assert_eq!(settings_told, vec![20, 15], "b was never applied");
}
