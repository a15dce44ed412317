use super::*;

/// Messages covering every variant, each field type and multi-byte varints.
pub(crate) fn golden_client() -> Vec<(&'static str, ClientMsg)> {
    vec![
        (
            "client_hello",
            ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                visible: true,
            },
        ),
        (
            "client_hello_hidden",
            ClientMsg::Hello {
                version: 300,
                visible: false,
            },
        ),
        (
            "client_ping",
            ClientMsg::Ping {
                client_time_us: 1_700_000_123_456,
            },
        ),
        (
            "client_keyframe_decoder",
            ClientMsg::RequestKeyframe {
                reason: KeyframeReason::DecoderError,
            },
        ),
        (
            "client_keyframe_gap",
            ClientMsg::RequestKeyframe {
                reason: KeyframeReason::Gap,
            },
        ),
        (
            "client_visibility",
            ClientMsg::Visibility { visible: false },
        ),
        (
            "client_settings",
            ClientMsg::SetStreamSettings(StreamSettings {
                resolution: Resolution::Native,
                fps: 60,
                h264_bitrate_kbps: 8000,
                gop: 300,
                jpeg_quality: 95,
            }),
        ),
        ("client_key_down", ClientMsg::KeyDown { usage: 0xE6 }),
        ("client_key_up", ClientMsg::KeyUp { usage: 0x04 }),
        ("client_release_all", ClientMsg::ReleaseAll),
        (
            "client_pointer_abs",
            ClientMsg::PointerAbs {
                x: 32767,
                y: 200,
                buttons: 0b1_0001,
                wheel: -1,
            },
        ),
        (
            "client_pointer_rel",
            ClientMsg::PointerRel {
                dx: -300,
                dy: 127,
                buttons: 2,
                wheel: 3,
            },
        ),
        (
            "client_paste",
            ClientMsg::Paste {
                text: "Grüße €@\n".into(),
                layout: KeyboardLayout::De,
            },
        ),
        ("client_keep_alive", ClientMsg::KeepAlive),
        ("client_atx_power", ClientMsg::Atx(AtxAction::Power)),
        (
            "client_atx_power_long",
            ClientMsg::Atx(AtxAction::PowerLong { ms: 12_000 }),
        ),
        ("client_atx_reset", ClientMsg::Atx(AtxAction::Reset)),
    ]
}

pub(crate) fn golden_server() -> Vec<(&'static str, ServerMsg<'static>)> {
    vec![
        (
            "server_hello",
            ServerMsg::Hello {
                version: PROTOCOL_VERSION,
                settings: StreamSettings::default(),
            },
        ),
        (
            "server_video_idr",
            ServerMsg::Video {
                header: VideoHeader {
                    codec: Codec::H264,
                    keyframe: true,
                    seq: 70_000,
                    capture_us: 12_345_678_901,
                    width: 1280,
                    height: 720,
                },
                data: &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f],
            },
        ),
        (
            "server_video_jpeg",
            ServerMsg::Video {
                header: VideoHeader {
                    codec: Codec::Jpeg,
                    keyframe: true,
                    seq: 0,
                    capture_us: 0,
                    width: 960,
                    height: 720,
                },
                data: &[0xff, 0xd8, 0xff, 0xd9],
            },
        ),
        (
            "server_pong",
            ServerMsg::Pong {
                client_time_us: 5,
                server_time_us: u32::MAX as u64 + 7,
            },
        ),
        (
            "server_video_status",
            ServerMsg::VideoStatus(VideoStatus {
                signal: true,
                source_width: 1920,
                source_height: 1080,
                width: 1280,
                height: 720,
                fps: 30,
                bitrate_kbps: 5000,
                gop: 100,
            }),
        ),
        (
            "server_settings",
            ServerMsg::Settings(StreamSettings::default()),
        ),
        (
            "server_error",
            ServerMsg::Error {
                code: ErrorCode::InvalidSettings,
                message: "fps = 99 is out of range",
            },
        ),
        (
            "server_hid_status",
            ServerMsg::HidStatus(HidStatus {
                keyboard: HidLink::Ready,
                mouse: HidLink::Retrying,
                absolute: HidLink::Absent,
                leds: Some(KeyboardLeds {
                    num_lock: true,
                    caps_lock: false,
                    scroll_lock: true,
                }),
            }),
        ),
        (
            "server_hid_status_no_leds",
            ServerMsg::HidStatus(HidStatus {
                keyboard: HidLink::Absent,
                mouse: HidLink::Absent,
                absolute: HidLink::Absent,
                leds: None,
            }),
        ),
        (
            "server_paste_done",
            ServerMsg::PasteDone {
                typed: 300,
                unknown: "€✓",
            },
        ),
        (
            "server_atx",
            ServerMsg::Atx(AtxState {
                power_led: true,
                hdd_led: None,
                busy: Some(AtxKind::PowerLong),
            }),
        ),
        (
            "server_atx_idle",
            ServerMsg::Atx(AtxState {
                power_led: false,
                hdd_led: Some(true),
                busy: None,
            }),
        ),
        (
            "server_atx_done",
            ServerMsg::AtxDone {
                action: AtxKind::Reset,
                ok: false,
                message: "a power press is in progress",
            },
        ),
        (
            "server_error_busy",
            ServerMsg::Error {
                code: ErrorCode::Busy,
                message: "busy",
            },
        ),
        (
            "server_error_codec_unavailable",
            ServerMsg::Error {
                code: ErrorCode::CodecUnavailable,
                message: "no H.264",
            },
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn golden_json() -> String {
    let mut rows = Vec::new();
    for (name, msg) in golden_client() {
        rows.push(serde_json::json!({"name": name, "dir": "client", "hex": hex(&msg.encode()), "value": msg}));
    }
    for (name, msg) in golden_server() {
        rows.push(serde_json::json!({"name": name, "dir": "server", "hex": hex(&msg.encode()), "value": msg}));
    }
    let mut out = serde_json::to_string_pretty(&rows).unwrap_or_default();
    out.push('\n');
    out
}

/// `protocol/golden.json` is what the JS codec is tested against; it must match this crate.
/// `UPDATE_GOLDEN=1 cargo test -p nanokvm-protocol` rewrites it after a deliberate change.
#[test]
fn golden_file_matches_the_rust_encoding() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/golden.json");
    let fresh = golden_json();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &fresh).expect("write golden.json");
    }
    let committed = std::fs::read_to_string(path).expect("protocol/golden.json exists");
    assert_eq!(
        committed, fresh,
        "golden.json is stale: run UPDATE_GOLDEN=1 cargo test -p nanokvm-protocol"
    );
}

#[test]
fn every_golden_message_round_trips() {
    for (name, msg) in golden_client() {
        assert_eq!(
            ClientMsg::decode(&msg.encode()).as_ref(),
            Ok(&msg),
            "{name}"
        );
    }
    for (name, msg) in golden_server() {
        let bytes = msg.encode();
        assert_eq!(ServerMsg::decode(&bytes).as_ref(), Ok(&msg), "{name}");
    }
}

#[test]
fn video_prefix_plus_payload_is_the_video_message() {
    for (_, msg) in golden_server() {
        if let ServerMsg::Video { header, data } = msg {
            let mut wire = VideoPrefix::new(&header, data.len()).as_bytes().to_vec();
            wire.extend_from_slice(data);
            assert_eq!(wire, msg.encode());
        }
    }
    let worst = VideoHeader {
        codec: Codec::Jpeg,
        keyframe: true,
        seq: u32::MAX,
        capture_us: u64::MAX,
        width: u16::MAX,
        height: u16::MAX,
    };
    assert!(VideoPrefix::new(&worst, usize::MAX).as_bytes().len() <= VIDEO_PREFIX_MAX);
}

#[test]
fn truncated_trailing_and_garbage_input_is_rejected() {
    let ok = ClientMsg::Ping {
        client_time_us: 1 << 40,
    }
    .encode();
    assert!(ClientMsg::decode(&ok[..ok.len() - 1]).is_err());
    let mut trailing = ok.clone();
    trailing.push(0);
    assert!(ClientMsg::decode(&trailing)
        .unwrap_err()
        .0
        .contains("trailing"));
    assert!(ClientMsg::decode(&[0xff, 0xff, 0xff]).is_err());
    assert!(ClientMsg::decode(&[]).is_err());
    assert!(ClientMsg::decode(&vec![1u8; MAX_CLIENT_MSG + 1])
        .unwrap_err()
        .0
        .contains("limit"));
}

#[test]
fn settings_ranges_are_enforced() {
    assert_eq!(StreamSettings::default().validate(), Ok(()));
    let bad = StreamSettings {
        fps: 61,
        ..Default::default()
    };
    let err = bad.validate().unwrap_err();
    assert_eq!(err.field, "fps");
    assert!(err.to_string().contains("5..=60"));
    assert!(StreamSettings {
        gop: 29,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(StreamSettings {
        h264_bitrate_kbps: 100,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(StreamSettings {
        jpeg_quality: 101,
        ..Default::default()
    }
    .validate()
    .is_err());
}

#[test]
fn output_size_keeps_aspect_and_never_upscales() {
    assert_eq!(Resolution::P720.output_size(1920, 1080), (1280, 720));
    assert_eq!(Resolution::P720.output_size(1024, 768), (960, 720));
    assert_eq!(Resolution::P1080.output_size(1024, 768), (1024, 768));
    assert_eq!(Resolution::Native.output_size(1920, 1080), (1920, 1080));
    assert_eq!(Resolution::P720.output_size(640, 480), (640, 480));
    assert_eq!(Resolution::P720.output_size(1366, 768), (1280, 720));
    assert_eq!(Resolution::P720.output_size(0, 0), (0, 0));
}
