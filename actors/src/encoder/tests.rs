use super::*;
use crate::idr_policy::FrameChange;
use crate::media::GrabInfo;
use nanokvm_protocol::{Resolution, VideoHeader};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, Default)]
struct Queue(Rc<RefCell<Vec<EncodedFrame>>>);

impl FrameSink for Queue {
    fn try_push(&self, frame: &EncodedFrame) -> Result<(), crate::hub::PushError> {
        self.0.borrow_mut().push(frame.clone());
        Ok(())
    }
}

fn core() -> EncoderCore<Queue> {
    EncoderCore::new(StreamSettings::default(), Arc::new(Metrics::default()))
}

fn grab(seq: u64, change: FrameChange, size: (u16, u16)) -> GrabReport {
    GrabReport {
        grab_seq: seq,
        capture_us: seq * 33_000,
        info: GrabInfo {
            change,
            source_size: (1920, 1080),
            output_size: size,
        },
    }
}

fn h264_frame(keyframe: bool) -> EncodedFrame {
    let header = VideoHeader {
        codec: Codec::H264,
        keyframe,
        seq: 0,
        capture_us: 0,
        width: 1280,
        height: 720,
    };
    EncodedFrame::seal(header, EncodedFrame::payload_buffer(0))
}

fn encode_job(actions: &[Action]) -> Option<&MediaCmdKind> {
    actions.iter().find_map(|a| match a {
        Action::Media(k @ MediaCmdKind::Encode { .. }) => Some(k),
        _ => None,
    })
}

const CHANGED: FrameChange = FrameChange::Changed { fraction: 0.01 };

#[test]
fn first_viewer_starts_capture_and_gets_an_idr_even_on_a_still_screen() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, Queue::default(), true, &mut out);
    assert!(matches!(
        &out[0],
        Action::Tell(1, ViewerEvent::Welcome { .. })
    ));
    assert!(out.contains(&Action::Capture(CaptureMsg::Configure {
        active: true,
        fps: 30
    })));
    out.clear();
    c.captured(0, grab(1, FrameChange::Unchanged, (1280, 720)), &mut out);
    assert_eq!(
        encode_job(&out),
        Some(&MediaCmdKind::Encode {
            grab_seq: 1,
            h264: Some(H264Job {
                force_idr: true,
                quality_boost: false
            }),
            jpeg: false
        })
    );
}

#[test]
fn unchanged_frames_with_nobody_waiting_are_not_encoded() {
    let mut c = core();
    let mut out = Vec::new();
    let q = Queue::default();
    c.join(1, Codec::H264, q.clone(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(
        EncodeReport {
            h264: Some(h264_frame(true)),
            jpeg: None,
        },
        &mut out,
    );
    assert_eq!(q.0.borrow().len(), 1);
    out.clear();
    c.captured(
        33_000,
        grab(2, FrameChange::Unchanged, (1280, 720)),
        &mut out,
    );
    assert_eq!(encode_job(&out), None);
    assert_eq!(c.metrics.frames_unchanged.load(Relaxed), 1);
}

#[test]
fn nothing_is_encoded_without_viewers_and_capture_stops_when_the_last_leaves() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, Queue::default(), true, &mut out);
    out.clear();
    c.leave(1, &mut out);
    assert_eq!(
        out,
        vec![Action::Capture(CaptureMsg::Configure {
            active: false,
            fps: 30
        })]
    );
    out.clear();
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    assert_eq!(encode_job(&out), None);
}

#[test]
fn a_jpeg_viewer_gets_a_picture_of_a_still_screen() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::Jpeg, Queue::default(), true, &mut out);
    c.captured(0, grab(1, FrameChange::Unchanged, (1280, 720)), &mut out);
    assert_eq!(
        encode_job(&out),
        Some(&MediaCmdKind::Encode {
            grab_seq: 1,
            h264: None,
            jpeg: true
        })
    );
}

#[test]
fn resolution_change_is_announced_and_forces_an_idr() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, Queue::default(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(
        EncodeReport {
            h264: Some(h264_frame(true)),
            jpeg: None,
        },
        &mut out,
    );
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    out.clear();
    c.captured(
        66_000,
        grab(3, FrameChange::Changed { fraction: 0.1 }, (960, 720)),
        &mut out,
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Broadcast(ViewerEvent::VideoStatus(s)) if s.width == 960)));
    assert!(matches!(
        encode_job(&out),
        Some(MediaCmdKind::Encode {
            h264: Some(H264Job {
                force_idr: true,
                ..
            }),
            ..
        })
    ));
}

#[test]
fn invalid_settings_are_refused_to_the_sender_only() {
    let mut c = core();
    let mut out = Vec::new();
    let bad = StreamSettings {
        fps: 99,
        ..Default::default()
    };
    c.change_settings(7, bad, &mut out);
    assert!(
        matches!(&out[..], [Action::Tell(7, ViewerEvent::SettingsRejected(m))] if m.contains("fps"))
    );
    out.clear();
    let good = StreamSettings {
        resolution: Resolution::Native,
        fps: 15,
        ..Default::default()
    };
    c.change_settings(7, good, &mut out);
    assert!(out.contains(&Action::Media(MediaCmdKind::Configure(good))));
    assert!(out.contains(&Action::Broadcast(ViewerEvent::Settings(good))));
    assert!(out.contains(&Action::Capture(CaptureMsg::Configure {
        active: false,
        fps: 15
    })));
}

#[test]
fn idrs_are_counted_by_reason() {
    let mut c = core();
    let mut out = Vec::new();
    c.join(1, Codec::H264, Queue::default(), true, &mut out);
    c.captured(0, grab(1, CHANGED, (1280, 720)), &mut out);
    c.encoded(
        EncodeReport {
            h264: Some(h264_frame(true)),
            jpeg: None,
        },
        &mut out,
    );
    c.captured(33_000, grab(2, CHANGED, (1280, 720)), &mut out);
    c.encoded(
        EncodeReport {
            h264: Some(h264_frame(true)),
            jpeg: None,
        },
        &mut out,
    );
    let text = c.metrics.render();
    assert!(
        text.contains("nanokvmd_idr_total{reason=\"new_viewer\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("nanokvmd_idr_total{reason=\"gop\"} 1\n"));
}
