//! Bad WebSocket input closes only the offending session, with the right close code; a second,
//! well-behaved session keeps receiving video and the daemon stays up.

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use nanokvm_e2e::proto::{ClientMsg, ErrorCode, MAX_CLIENT_MSG, PROTOCOL_VERSION};
use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, Daemon};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Connects a good viewer, then a bad client that (after a Hello when `hello_first`) sends
/// `bad`; checks the bad one is closed with `want_code` and a reason, and that the good one
/// still gets fresh video.
fn check_bad_input(hello_first: bool, bad: Message, want_code: u16, want_error: Option<ErrorCode>) {
    let mut d = Daemon::start(&[]);
    block_on(async {
        let (mut good, _, _) = WsClient::connect_hello(d.addr(), true).await;
        good.recv_video(SECS(3)).await;

        let mut evil = WsClient::connect(d.addr()).await;
        if hello_first {
            evil.send(&ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                visible: false,
            })
            .await;
            evil.recv_until(SECS(3), "the server Hello", |m| {
                matches!(m, Msg::Hello { .. })
            })
            .await;
        }
        // The server may close before it has read all of a large message.
        if let Err(e) = evil.try_send_raw(bad).await {
            eprintln!("sending the bad message: {e}");
        }
        let (code, reason, before) = evil.expect_close(SECS(3)).await;
        let errors: Vec<String> = before
            .iter()
            .filter(|m| matches!(m, Msg::Error { .. }))
            .map(Msg::describe)
            .collect();
        eprintln!("closed with {code} {reason:?}; Error messages before: {errors:?}");
        assert_eq!(code, want_code, "close code (reason {reason:?})");
        assert!(!reason.trim().is_empty(), "close frame without a reason");
        if let Some(want) = want_error {
            // "sends Error{code,...} when it can": report, but only fail on a wrong code.
            for m in &before {
                if let Msg::Error { code, message } = m {
                    assert_eq!(*code, want, "Error before the close: {message}");
                }
            }
        }

        // The good session is unaffected: it still gets frames captured after the close.
        good.send(&ClientMsg::Ping { client_time_us: 1 }).await;
        let now_us = match good
            .recv_until(SECS(2), "Pong", |m| matches!(m, Msg::Pong { .. }))
            .await
        {
            Msg::Pong { server_time_us, .. } => server_time_us,
            _ => unreachable!(),
        };
        let f = good
            .recv_until(
                SECS(3),
                "a frame captured after the bad session closed",
                |m| matches!(m, Msg::Video(f) if f.header.capture_us > now_us),
            )
            .await;
        eprintln!("good session still receiving: {}", f.describe());
    });
    d.assert_running();
    let m = d.metrics();
    assert!(
        m.has("nanokvmd_frames_sent_total"),
        "metrics after the bad input:\n{}",
        m.text
    );
}

#[test]
fn garbage_bytes_close_1007() {
    let garbage = vec![0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(
        ClientMsg::decode(&garbage).is_err(),
        "the garbage must not decode"
    );
    check_bad_input(
        true,
        Message::binary(garbage),
        1007,
        Some(ErrorCode::BadMessage),
    );
}

#[test]
fn truncated_message_closes_1007() {
    let mut m = ClientMsg::Ping {
        client_time_us: u64::MAX,
    }
    .encode();
    m.pop();
    assert!(
        ClientMsg::decode(&m).is_err(),
        "the truncated message must not decode"
    );
    check_bad_input(true, Message::binary(m), 1007, Some(ErrorCode::BadMessage));
}

#[test]
fn text_message_closes_1003() {
    check_bad_input(
        true,
        Message::text("{\"Hello\":{\"version\":1}}"),
        1003,
        Some(ErrorCode::BadMessage),
    );
}

#[test]
fn oversized_message_closes_1009() {
    let big = vec![0u8; MAX_CLIENT_MSG + 4096];
    check_bad_input(true, Message::binary(big), 1009, Some(ErrorCode::TooLarge));
}

#[test]
fn first_message_not_hello_closes_1008() {
    let ping = ClientMsg::Ping { client_time_us: 7 }.encode();
    check_bad_input(false, Message::binary(ping), 1008, None);
}

#[test]
fn unsupported_version_closes_1008() {
    let hello = ClientMsg::Hello {
        version: 99,
        visible: true,
    }
    .encode();
    check_bad_input(
        false,
        Message::binary(hello),
        1008,
        Some(ErrorCode::UnsupportedVersion),
    );
}

#[test]
fn text_message_with_invalid_utf8_closes_1007() {
    use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use async_tungstenite::tungstenite::protocol::frame::Frame;
    let frame = Frame::message(vec![0x48, 0xff, 0xfe, 0x49], OpCode::Data(Data::Text), true);
    check_bad_input(
        true,
        Message::Frame(frame),
        1007,
        Some(ErrorCode::BadMessage),
    );
}

#[test]
fn websocket_protocol_error_closes_1002() {
    use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use async_tungstenite::tungstenite::protocol::frame::Frame;
    // A reserved bit without an extension that defines it.
    let mut frame = Frame::message(
        ClientMsg::Ping { client_time_us: 1 }.encode(),
        OpCode::Data(Data::Binary),
        true,
    );
    frame.header_mut().rsv1 = true;
    check_bad_input(
        true,
        Message::Frame(frame),
        1002,
        Some(ErrorCode::BadMessage),
    );
}

#[test]
fn a_socket_that_never_says_hello_is_closed() {
    let d = Daemon::start(&[]);
    block_on(async {
        let mut silent = WsClient::connect(d.addr()).await;
        let t0 = std::time::Instant::now();
        let (code, reason, _) = silent.expect_close(SECS(15)).await;
        eprintln!("closed after {:?}: {code} {reason:?}", t0.elapsed());
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("Hello"), "{reason}");
        assert!(t0.elapsed() >= SECS(9), "closed too early");
    });
}
