//! The riscv64 build, run under `qemu-riscv64`: a static build of the simulated target (no
//! software H.264: OpenH264 does not build for riscv64) serves its console. The account is
//! made with the daemon's own CLI, under qemu too; a user logs in over HTTP, loads the console
//! page and gets a picture; a client asking for H.264 is told why there is none; SIGTERM ends
//! it cleanly.
//!
//! Ignored by default: `cargo xtask dist` cross-builds the binary and runs this test with
//! `NANOKVMD_RISCV64_BIN` naming it (and `QEMU_RISCV64` the emulator, default
//! `qemu-riscv64` on `PATH`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use nanokvm_e2e::http::{self, BodyStream, Chunk};
use nanokvm_e2e::proto::{ClientMsg, ErrorCode, PROTOCOL_VERSION};
use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, jpeg_size, take_parts, Auth, Daemon, TempDir, E2E_PASSWORD, E2E_USER};

/// Emulation makes everything slower; these bound the waits, not the expectations.
const SLOW: Duration = Duration::from_secs(30);

#[test]
#[ignore = "needs the riscv64 build and qemu-riscv64: run by `cargo xtask dist`"]
fn the_riscv64_build_serves_its_console_under_qemu() {
    let binary = PathBuf::from(std::env::var_os("NANOKVMD_RISCV64_BIN").expect(
        "NANOKVMD_RISCV64_BIN names the static riscv64 build of the simulated target \
         (cargo xtask dist builds it and runs this test)",
    ));
    assert!(binary.is_file(), "{} does not exist", binary.display());
    let qemu = std::env::var("QEMU_RISCV64").unwrap_or_else(|_| "qemu-riscv64".into());
    // The harness runs NANOKVMD_BIN for the daemon and for its CLI: a wrapper that execs
    // qemu, so the harness's pid and signals are qemu's, which passes signals on.
    let wrapper_dir = TempDir::new("riscv64-wrapper");
    let wrapper = wrapper_dir.write(
        "nanokvmd",
        &format!(
            "#!/bin/sh\nexec {qemu} {} \"$@\"\n",
            shell_quote(&binary.to_string_lossy())
        ),
    );
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("chmod wrapper");
    // Set before any daemon runs; this file holds the only test, so no thread reads it yet.
    std::env::set_var("NANOKVMD_BIN", &wrapper);

    // `user add NAME --password-stdin` and `token new` run under qemu inside `start`.
    let mut d = Daemon::start(&["--resolution", "720p"]);
    let exe = std::fs::read_link(format!("/proc/{}/exe", d.pid())).expect("/proc/PID/exe");
    assert!(
        exe.to_string_lossy().contains("qemu-riscv64"),
        "the daemon runs as {}, not under qemu-riscv64",
        exe.display()
    );

    let cookie = http::login(d.addr(), E2E_USER, E2E_PASSWORD)
        .unwrap_or_else(|r| panic!("login refused: {}", r.summary()));
    let as_user = Auth::Cookie(cookie);
    let page = http::request_as(d.addr(), &as_user, "GET", "/", &[], b"", SLOW)
        .unwrap_or_else(|e| panic!("GET /: {e}"));
    assert_eq!(page.status, 200, "GET /: {}", page.summary());
    assert!(
        page.text().contains("app.js"),
        "GET / is not the console page: {}",
        page.summary()
    );

    // A picture: one JPEG of the simulated target's console at 720p.
    let deadline = std::time::Instant::now() + SLOW;
    let mut mjpeg = BodyStream::open_as(
        d.addr(),
        &as_user,
        "GET",
        "/api/stream/mjpeg",
        &[],
        b"",
        deadline,
    )
    .unwrap_or_else(|e| panic!("GET /api/stream/mjpeg: {e}"));
    assert_eq!(mjpeg.status, 200, "MJPEG headers {:?}", mjpeg.headers);
    let mut buf = Vec::new();
    let part = loop {
        match mjpeg.read_some(deadline).expect("read the MJPEG stream") {
            Chunk::Data(data) => buf.extend_from_slice(&data),
            Chunk::Eof => panic!("the MJPEG stream ended before its first part"),
            Chunk::Timeout => panic!("no MJPEG part within {SLOW:?}"),
        }
        let parts = take_parts(&mut buf, "frame").unwrap_or_else(|e| panic!("multipart: {e}"));
        if let Some(p) = parts.into_iter().next() {
            break p;
        }
    };
    assert_eq!(
        jpeg_size(&part.body).unwrap_or_else(|e| panic!("the first part is no JPEG: {e}")),
        (1280, 720)
    );
    drop(mjpeg);

    // No H.264 in this build: said over HTTP and over the WebSocket.
    let h264 = http::request_as(
        d.addr(),
        &as_user,
        "GET",
        "/api/stream/h264",
        &[],
        b"",
        SLOW,
    )
    .unwrap_or_else(|e| panic!("GET /api/stream/h264: {e}"));
    assert_eq!(h264.status, 503, "GET /api/stream/h264: {}", h264.summary());
    assert!(
        h264.text().contains("soft-h264") && h264.text().contains("/api/stream/mjpeg"),
        "the refusal does not say why and what instead: {}",
        h264.summary()
    );
    block_on(async {
        let mut ws = WsClient::connect(d.addr()).await;
        ws.send(&ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            visible: true,
        })
        .await;
        let refusal = ws
            .recv_until(SLOW, "Error { CodecUnavailable }", |m| {
                matches!(m, Msg::Error { .. })
            })
            .await;
        let Msg::Error { code, message } = refusal else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::CodecUnavailable, "{message}");
        assert!(message.contains("MJPEG"), "{message}");
    });

    let (status, took) = d.stop_within(SLOW);
    assert!(
        status.success(),
        "nanokvmd under qemu exited with {status} after SIGTERM ({took:?}). Its output:\n{}",
        d.output()
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
