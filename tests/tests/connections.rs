//! Connection handling: the WebSocket close handshake, the Origin check on the upgrade, and
//! the write deadline that disconnects a client that stops reading.

use std::io::Read;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use nanokvm_e2e::ws::{Event, WsClient};
use nanokvm_e2e::{block_on, h264, http, Daemon};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Polls `/metrics` until `series` has the value `want`; panics after `d`.
fn wait_for_metric(d: &Daemon, series: &str, want: f64, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let v = d.metrics().get(series);
        if v == Some(want) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "{series} is {v:?}, not {want}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn client_close_is_answered_with_a_close_and_the_connection_ends() {
    let mut d = Daemon::start(&[]);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        c.recv_video(SECS(3)).await;
        c.send_raw(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await;
        let (code, reason, _) = c.expect_close(SECS(3)).await;
        eprintln!("the server answered the close with {code} {reason:?}");
        assert_eq!(code, 1000, "close code of the answer (reason {reason:?})");
        // Then the server closes the TCP connection cleanly (not a reset).
        match c.next_event(SECS(2)).await {
            Some(Event::Ended(how)) => assert!(
                how.starts_with("the connection ended"),
                "the connection ended with {how}"
            ),
            other => panic!("after the close handshake: {other:?}"),
        }
    });
    wait_for_metric(&d, "nanokvmd_viewers{kind=\"ws\"}", 0.0, SECS(3));
    d.assert_running();
}

fn upgrade_headers(origin: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    if let Some(o) = origin {
        h.push(("Origin", o));
    }
    h
}

#[test]
fn cross_origin_websocket_upgrade_is_refused() {
    let mut d = Daemon::start(&[]);
    let r = http::request(
        d.addr(),
        "GET",
        "/api/ws",
        &upgrade_headers(Some("http://evil.example")),
        b"",
        http::TIMEOUT,
    )
    .expect("request");
    assert_eq!(r.status, 403, "{}", r.summary());
    assert!(
        r.text().contains("Origin"),
        "no reason in the 403: {}",
        r.summary()
    );
    assert!(
        r.header("sec-websocket-accept").is_none(),
        "{}",
        r.summary()
    );

    // The console's own origin, and a tool that sends none, are let in.
    let own = format!("http://{}", d.addr());
    for origin in [Some(own.as_str()), None] {
        let deadline = Instant::now() + http::TIMEOUT;
        let s = http::BodyStream::open_with(
            d.addr(),
            "GET",
            "/api/ws",
            &upgrade_headers(origin),
            b"",
            deadline,
        )
        .expect("upgrade request");
        assert_eq!(s.status, 101, "Origin {origin:?}: headers {:?}", s.headers);
    }
    d.assert_running();
}

#[test]
fn a_raw_h264_client_that_stops_reading_is_disconnected() {
    // Big frames at 60 fps fill the socket buffers quickly.
    let file = h264::replay_file();
    let source = format!("replay:{}", file.display());
    let mut d = Daemon::start(&["--source", &source, "--fps", "60"]);
    let t0 = Instant::now();
    let mut stalled = http::stalled_get(d.addr(), "/api/stream/h264");
    wait_for_metric(&d, "nanokvmd_viewers{kind=\"h264\"}", 1.0, SECS(3));
    // The write deadline is 10 s from when the socket stopped taking bytes.
    let waited = wait_for_metric(&d, "nanokvmd_viewers{kind=\"h264\"}", 0.0, SECS(14));
    eprintln!(
        "the stalled client was dropped {:?} after it connected",
        t0.elapsed()
    );
    assert!(
        waited >= SECS(9),
        "dropped after {waited:?}, before the deadline could have passed"
    );
    // What was in flight can still be read, and then the stream ends.
    stalled
        .set_read_timeout(Some(SECS(1)))
        .expect("read timeout");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {total} bytes: {e} (the server did not close)"),
        }
    }
    eprintln!("{total} bytes were in flight");
    d.assert_running();
}

/// Reads until the server answers or closes; true when it sent an HTTP response.
fn answered(mut s: std::net::TcpStream) -> bool {
    use std::io::Write;
    s.set_read_timeout(Some(SECS(5))).expect("read timeout");
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1"))
}

#[test]
fn connections_beyond_the_limit_are_refused_and_the_daemon_recovers() {
    const LIMIT: usize = 64;
    let mut d = Daemon::start(&[]);
    let idle: Vec<std::net::TcpStream> = (0..LIMIT)
        .map(|_| std::net::TcpStream::connect(d.addr()).expect("connect"))
        .collect();
    // Let the daemon accept all of them before the one over the limit.
    std::thread::sleep(Duration::from_millis(300));
    let over = std::net::TcpStream::connect(d.addr()).expect("connect");
    assert!(!answered(over), "connection {} was served", LIMIT + 1);
    drop(idle);
    let t0 = Instant::now();
    while !answered(std::net::TcpStream::connect(d.addr()).expect("connect")) {
        assert!(
            t0.elapsed() < SECS(5),
            "no connection served after the idle ones closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.assert_running();
}
