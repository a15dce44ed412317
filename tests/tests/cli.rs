//! Command line, config file and shutdown.

use std::time::{Duration, Instant};

use nanokvm_e2e::ws::WsClient;
use nanokvm_e2e::{block_on, http, run_daemon, Daemon, TempDir};

const RUN: Duration = Duration::from_secs(10);

#[test]
fn help_lists_the_flags() {
    let out = run_daemon(&["--help"], RUN);
    assert_eq!(out.code(), Some(0), "{out:?}");
    for flag in [
        "--listen",
        "--backend",
        "--source",
        "--config",
        "--fps",
        "--resolution",
        "--version",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help does not mention {flag}:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("nanokvmd"), "--help:\n{}", out.stdout);
}

#[test]
fn version_prints_name_and_version() {
    let out = run_daemon(&["--version"], RUN);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("nanokvmd {}", env!("CARGO_PKG_VERSION")),
        "{out:?}"
    );
}

fn run_with_config(contents: &str) -> (String, nanokvm_e2e::RunOutput) {
    let dir = TempDir::new("config");
    let path = dir.write("nanokvmd.toml", contents);
    let p = path.display().to_string();
    let out = run_daemon(
        &[
            "--config",
            &p,
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "sim",
        ],
        RUN,
    );
    (p, out)
}

#[test]
fn unknown_config_key_exits_2_naming_file_line_and_key() {
    let (path, out) = run_with_config(
        "# nanokvmd test config\nbackend = \"sim\"\n\n[video]\nfps = 30\nfrobnicate = 1\n",
    );
    eprintln!("stderr: {}", out.stderr);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains(&format!("{path}:6")),
        "stderr does not name {path}:6:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("frobnicate"),
        "stderr does not name the key:\n{}",
        out.stderr
    );
}

/// True when `text` has "5" shortly before "60" (as in `5..=60`, `5-60`, `5 and 60`).
fn names_fps_range(text: &str) -> bool {
    text.match_indices("60").any(|(i, _)| {
        let before = &text[i.saturating_sub(10)..i];
        before.contains('5')
    })
}

#[test]
fn out_of_range_fps_exits_2_naming_fps_and_the_range() {
    let (path, out) = run_with_config("[video]\nfps = 99\n");
    eprintln!("stderr: {}", out.stderr);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains(&format!("{path}:2")),
        "stderr does not name {path}:2:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("fps"),
        "stderr does not name fps:\n{}",
        out.stderr
    );
    assert!(
        names_fps_range(&out.stderr),
        "stderr does not give the range 5..=60:\n{}",
        out.stderr
    );
}

#[test]
fn empty_config_file_is_fine() {
    let dir = TempDir::new("empty-config");
    let path = dir.write("empty.toml", "");
    let mut d = Daemon::start(&["--config", &path.display().to_string()]);
    let r = http::get(d.addr(), "/metrics");
    assert_eq!(r.status, 200, "{}", r.summary());
    d.assert_running();
}

#[test]
fn sigterm_closes_websockets_with_1001_and_exits_0_quickly() {
    let mut d = Daemon::start(&[]);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        c.recv_video(Duration::from_secs(3)).await;
        let t0 = Instant::now();
        d.signal("TERM");
        let (code, reason, _) = c.expect_close(Duration::from_secs(2)).await;
        eprintln!("close {code} {reason:?} after {:?}", t0.elapsed());
        assert_eq!(code, 1001, "close code on shutdown (reason {reason:?})");
        let st = d
            .wait_exit(Duration::from_secs(2).saturating_sub(t0.elapsed()))
            .unwrap_or_else(|| panic!("still running 2 s after SIGTERM"));
        eprintln!("exited {st} after {:?}", t0.elapsed());
        assert!(st.success(), "exit status after SIGTERM: {st}");
    });
}
