//! The daemon's measurement hooks used by `cargo xtask bench`: `--sim-stamp` (every picture
//! changes), `--idr-policy off` (viewers wait for the encoder's own IDR) and the server-path
//! time in `/metrics`.

use std::time::Duration;

use nanokvm_e2e::ws::WsClient;
use nanokvm_e2e::{block_on, h264, Daemon};

const STAMP: [&str; 5] = ["--fps", "30", "--resolution", "720p", "--sim-stamp"];

#[test]
fn with_the_stamp_a_still_console_sends_every_frame_and_the_server_path_is_timed() {
    let d = Daemon::start(&STAMP);
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        c.recv_video(Duration::from_secs(5)).await;
        let frames = c.collect_video(Duration::from_secs(1)).await;
        // 30 fps; a loaded machine may skip some ticks, an unstamped still console sends ~1.
        assert!(frames.len() >= 10, "{} frames in 1 s", frames.len());
    });
    let m = d.metrics();
    let count = m.get("nanokvmd_server_frame_seconds_count").unwrap_or(0.0);
    let sum = m.get("nanokvmd_server_frame_seconds_sum").unwrap_or(0.0);
    assert!(count >= 5.0, "server_frame_seconds_count {count}");
    assert!(sum > 0.0 && sum / count < 1.0, "mean {} s", sum / count);
    assert!(
        !m.has("nanokvmd_heap_allocations_total"),
        "alloc-count is off by default"
    );
}

#[test]
fn with_the_idr_policy_off_a_new_viewer_gets_only_the_gops_idr() {
    let d = Daemon::start(&[&STAMP[..], &["--idr-policy", "off"]].concat());
    block_on(async {
        let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
        // The first viewer starts the encoder, whose first frame is an IDR anyway.
        c.recv_video(Duration::from_secs(5)).await;
        let (mut late, _, _) = WsClient::connect_hello(d.addr(), true).await;
        // GOP 60 at 30 fps: the next natural IDR is at most 2 s away (more on a slow machine).
        let first = late.recv_video(Duration::from_secs(10)).await;
        assert!(first.header.keyframe, "{}", first.describe());
        h264::check_keyframe_au(&first.data).unwrap_or_else(|e| panic!("{e}"));
    });
    let m = d.metrics();
    for reason in ["new_viewer", "client_request", "scene_change", "resume"] {
        let series = format!("nanokvmd_idr_total{{reason=\"{reason}\"}}");
        assert_eq!(m.get(&series), Some(0.0), "{series}");
    }
    assert!(m.get("nanokvmd_idr_total{reason=\"gop\"}").unwrap_or(0.0) >= 1.0);
}
