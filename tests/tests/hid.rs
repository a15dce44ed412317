//! Keyboard and mouse end to end: WebSocket input and `POST /api/hid/paste` against the real
//! daemon, checked on the simulated target that decodes the HID reports from its FIFOs.

use std::time::Duration;

use nanokvm_e2e::proto::{ClientMsg, HidLink, HidStatus, KeyboardLayout};
use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, http, target, Daemon};

const WAIT: Duration = Duration::from_secs(10);
const SHIFT: u8 = 0xE1;

/// Types `text` with key-down/key-up messages, as a browser would.
async fn type_text(ws: &mut WsClient, text: &str) {
    for ch in text.chars() {
        let (shift, usage) = target::us_key(ch).unwrap_or_else(|| panic!("no US key for {ch:?}"));
        if shift {
            ws.send(&ClientMsg::KeyDown { usage: SHIFT }).await;
        }
        ws.send(&ClientMsg::KeyDown { usage }).await;
        ws.send(&ClientMsg::KeyUp { usage }).await;
        if shift {
            ws.send(&ClientMsg::KeyUp { usage: SHIFT }).await;
        }
    }
    // The session handles messages in order: once the Pong is here, every key has reached
    // the hid actor. Without it a test that drops the socket at once may lose the tail (a
    // close with unread data resets the connection, and the server's receive queue goes).
    ws.send(&ClientMsg::Ping { client_time_us: 1 }).await;
    ws.recv_until(WAIT, "the Pong after the keys", |m| {
        matches!(
            m,
            Msg::Pong {
                client_time_us: 1,
                ..
            }
        )
    })
    .await;
}

async fn hid_status(
    ws: &mut WsClient,
    what: &str,
    accept: impl Fn(&HidStatus) -> bool,
) -> HidStatus {
    match ws
        .recv_until(WAIT, what, |m| matches!(m, Msg::HidStatus(s) if accept(s)))
        .await
    {
        Msg::HidStatus(s) => s,
        _ => unreachable!(),
    }
}

const PHRASE: &str = "Hello, World! 123 @#";

#[test]
fn websocket_key_events_type_text_on_the_target() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        let status = hid_status(&mut ws, "a ready keyboard", |s| {
            s.keyboard == HidLink::Ready
        })
        .await;
        assert_eq!(status.mouse, HidLink::Ready);
        assert_eq!(status.absolute, HidLink::Ready);
        type_text(&mut ws, PHRASE).await;
    });
    let s = target::wait_state(d.addr(), WAIT, "the typed phrase", |s| {
        target::text(s).ends_with(PHRASE)
    });
    assert!(
        target::text(&s).ends_with(&format!("login: {PHRASE}")),
        "exactly the phrase, after the prompt: {s:#}"
    );
    assert_eq!(s["keys_held"], serde_json::json!([]));
}

#[test]
fn paste_over_http_types_exactly_the_text() {
    let d = Daemon::start(&[]);
    let body = serde_json::json!({ "text": PHRASE, "layout": "us" }).to_string();
    let r = http::post_json(d.addr(), "/api/hid/paste", &body);
    assert_eq!(r.status, 200, "{}", r.summary());
    let answer: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON answer");
    assert_eq!(answer, serde_json::json!({ "typed": 20, "unknown": "" }));
    // The answer comes once the text is typed: no waiting needed.
    let s = target::state(d.addr());
    assert!(
        target::text(&s).ends_with(&format!("login: {PHRASE}")),
        "{s:#}"
    );

    let r = http::post_json(d.addr(), "/api/hid/paste", r#"{"text": "a✓b"}"#);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        r#"{"typed":2,"unknown":"✓"}"#
    );

    let big = serde_json::json!({ "text": "x".repeat(64 * 1024 + 1) }).to_string();
    let r = http::post_json(d.addr(), "/api/hid/paste", &big);
    assert_eq!(r.status, 413, "{}", r.summary());
    let r = http::post_json(
        d.addr(),
        "/api/hid/paste",
        r#"{"text": "x", "layout": "klingon"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.summary());
}

#[test]
fn a_second_paste_is_refused_while_one_runs() {
    let d = Daemon::start(&[]);
    let addr = d.addr();
    // About 2 s of typing.
    let long = std::thread::spawn(move || {
        let body = serde_json::json!({ "text": "a".repeat(200) }).to_string();
        http::post_json(addr, "/api/hid/paste", &body)
    });
    target::wait_state(addr, WAIT, "the first paste under way", |s| {
        target::text(s).ends_with("aaaa")
    });
    let r = http::post_json(addr, "/api/hid/paste", r#"{"text": "b"}"#);
    assert_eq!(r.status, 409, "{}", r.summary());
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(addr, false).await;
        ws.send(&ClientMsg::Paste {
            text: "b".into(),
            layout: KeyboardLayout::Us,
        })
        .await;
        let m = ws
            .recv_until(WAIT, "an error", |m| matches!(m, Msg::Error { .. }))
            .await;
        assert!(
            matches!(
                m,
                Msg::Error {
                    code: nanokvm_e2e::proto::ErrorCode::Busy,
                    ..
                }
            ),
            "{m:?}"
        );
    });
    let first = long.join().expect("paste thread");
    assert_eq!(first.status, 200, "{}", first.summary());
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        r#"{"typed":200,"unknown":""}"#
    );
    // Free again: a paste over the WebSocket is answered with PasteDone.
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(addr, false).await;
        ws.send(&ClientMsg::Paste {
            text: "Grüße".into(),
            layout: KeyboardLayout::Us,
        })
        .await;
        let m = ws
            .recv_until(WAIT, "PasteDone", |m| matches!(m, Msg::PasteDone { .. }))
            .await;
        assert!(
            matches!(&m, Msg::PasteDone { typed: 3, unknown } if unknown == "üß"),
            "{m:?}"
        );
    });
}

#[test]
fn the_absolute_pointer_lands_where_sent_and_clicks() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        hid_status(&mut ws, "a ready pointer", |s| s.absolute == HidLink::Ready).await;
        ws.send(&ClientMsg::PointerAbs {
            x: 12345,
            y: 23456,
            buttons: 1,
            wheel: 0,
        })
        .await;
        let s = target::wait_state(d.addr(), WAIT, "the pointer at 12345,23456 clicking", |s| {
            s["pointer"]["x"] == 12345 && s["pointer"]["y"] == 23456 && s["pointer"]["buttons"] == 1
        });
        assert_eq!(s["pointer"]["wheel"], 0);
        ws.send(&ClientMsg::PointerAbs {
            x: 40000,
            y: 0,
            buttons: 0,
            wheel: -2,
        })
        .await;
        target::wait_state(
            d.addr(),
            WAIT,
            "the pointer clamped to the right edge",
            |s| {
                s["pointer"]["x"] == 32767
                    && s["pointer"]["buttons"] == 0
                    && s["pointer"]["wheel"] == -2
            },
        );
        // Relative moves go through the mouse device.
        ws.send(&ClientMsg::PointerRel {
            dx: -1920,
            dy: 540,
            buttons: 2,
            wheel: 0,
        })
        .await;
        target::wait_state(d.addr(), WAIT, "the pointer moved left by a screen", |s| {
            s["pointer"]["x"].as_u64() == Some(0)
                && s["pointer"]["y"]
                    .as_u64()
                    .is_some_and(|y| (16000..=16500).contains(&y))
                && s["pointer"]["buttons"] == 2
        });
    });
}

#[test]
fn a_client_that_goes_silent_has_its_keys_released() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        ws.send(&ClientMsg::KeyDown { usage: SHIFT }).await;
        target::wait_state(d.addr(), WAIT, "Shift held", |s| {
            s["keys_held"] == serde_json::json!([SHIFT])
        });
        // Keep-alives hold it...
        for _ in 0..6 {
            smol::Timer::after(Duration::from_millis(250)).await;
            ws.send(&ClientMsg::KeepAlive).await;
        }
        assert_eq!(
            target::state(d.addr())["keys_held"],
            serde_json::json!([SHIFT])
        );
        // ...silence does not.
        let t0 = std::time::Instant::now();
        target::wait_state(d.addr(), Duration::from_secs(3), "Shift released", |s| {
            s["keys_held"] == serde_json::json!([])
        });
        assert!(
            t0.elapsed() >= Duration::from_millis(700),
            "released too early: {:?}",
            t0.elapsed()
        );
        // A client that disconnects has its keys released at once.
        ws.send(&ClientMsg::KeyDown { usage: 0x04 }).await;
        target::wait_state(d.addr(), WAIT, "A held", |s| {
            s["keys_held"] == serde_json::json!([0x04])
        });
        drop(ws);
        target::wait_state(
            d.addr(),
            Duration::from_millis(900),
            "A released on disconnect",
            |s| s["keys_held"] == serde_json::json!([]),
        );
    });
}

#[test]
fn the_device_vanishing_and_returning_loses_no_session_and_leaves_no_key_held() {
    let d = Daemon::start(&[]);
    let set_connected = |connected: bool| {
        let body = serde_json::json!({ "connected": connected }).to_string();
        let r = http::post_json(d.addr(), "/api/sim/hid", &body);
        assert_eq!(r.status, 204, "{}", r.summary());
    };
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        hid_status(&mut ws, "a ready keyboard", |s| {
            s.keyboard == HidLink::Ready
        })
        .await;
        ws.send(&ClientMsg::KeyDown { usage: SHIFT }).await;
        ws.send(&ClientMsg::KeyDown { usage: 0x04 }).await;
        target::wait_state(d.addr(), WAIT, "Shift+A held", |s| {
            s["keys_held"] == serde_json::json!([SHIFT, 0x04])
        });

        set_connected(false);
        // The key-up cannot reach the host: the write fails and the keyboard is absent.
        ws.send(&ClientMsg::KeyUp { usage: 0x04 }).await;
        hid_status(&mut ws, "an absent keyboard", |s| {
            s.keyboard == HidLink::Absent
        })
        .await;
        ws.send(&ClientMsg::KeepAlive).await;

        set_connected(true);
        hid_status(&mut ws, "the keyboard back", |s| {
            s.keyboard == HidLink::Ready
        })
        .await;
        let s = target::wait_state(d.addr(), WAIT, "nothing held after the return", |s| {
            s["keys_held"] == serde_json::json!([])
        });
        assert_eq!(s["hid_connected"], true);
        // The same session types on.
        type_text(&mut ws, " again").await;
        target::wait_state(d.addr(), WAIT, "text typed after the return", |s| {
            target::text(s).ends_with("login: A again")
        });
    });
}

#[test]
fn ctrl_alt_f2_switches_console_and_caps_lock_lights_its_led() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        hid_status(&mut ws, "LEDs known", |s| s.leds.is_some()).await;
        for usage in [0xE0, 0xE2, 0x3B] {
            ws.send(&ClientMsg::KeyDown { usage }).await;
        }
        ws.send(&ClientMsg::ReleaseAll).await;
        let s = target::wait_state(d.addr(), WAIT, "console 2", |s| s["console"] == 2);
        assert!(target::text(&s).contains("tty2"), "{s:#}");

        ws.send(&ClientMsg::KeyDown { usage: 0x39 }).await;
        ws.send(&ClientMsg::KeyUp { usage: 0x39 }).await;
        let status = hid_status(&mut ws, "Caps Lock on", |s| {
            s.leds.is_some_and(|l| l.caps_lock)
        })
        .await;
        assert!(!status.leds.unwrap().num_lock);
        type_text(&mut ws, "abc").await;
        target::wait_state(d.addr(), WAIT, "upper case with Caps Lock", |s| {
            target::text(s).ends_with("login: ABC") && s["leds"]["caps_lock"] == true
        });

        for usage in [0xE4, 0xE6, 0x3A] {
            ws.send(&ClientMsg::KeyDown { usage }).await;
        }
        ws.send(&ClientMsg::ReleaseAll).await;
        target::wait_state(d.addr(), WAIT, "console 1", |s| s["console"] == 1);
    });
}

#[test]
fn input_latency_is_reported_in_metrics() {
    let d = Daemon::start(&[]);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        hid_status(&mut ws, "a ready keyboard", |s| {
            s.keyboard == HidLink::Ready
        })
        .await;
        type_text(&mut ws, "hi").await;
    });
    target::wait_state(d.addr(), WAIT, "hi typed", |s| {
        target::text(s).ends_with("hi")
    });
    let m = d.metrics();
    assert!(
        m.get("nanokvmd_hid_input_to_report_us_count")
            .unwrap_or(0.0)
            >= 4.0,
        "{}",
        m.text
    );
    let p99 = m
        .get(r#"nanokvmd_hid_input_to_report_us{quantile="0.99"}"#)
        .expect("p99");
    let max = m
        .get(r#"nanokvmd_hid_input_to_report_us{quantile="1"}"#)
        .expect("max");
    assert!(p99.is_finite() && p99 <= max, "{}", m.text);
}
