//! A viewer that never reads must not slow the others, and the daemon's memory stays bounded.

use std::time::{Duration, Instant};

use nanokvm_e2e::proto::{ClientMsg, PROTOCOL_VERSION};
use nanokvm_e2e::ws::WsClient;
use nanokvm_e2e::{block_on, h264, http, Daemon};

const FPS: usize = 30;
/// How much the daemon's resident memory may grow while two clients stall.
const RSS_GROWTH_LIMIT_KIB: u64 = 6 * 1024;

#[test]
fn stalled_viewers_do_not_slow_others_and_memory_stays_bounded() {
    let file = h264::replay_file();
    let source = format!("replay:{}", file.display());
    let d = Daemon::start(&["--source", &source, "--fps", &FPS.to_string()]);
    block_on(async {
        let (mut good, _, _) = WsClient::connect_hello(d.addr(), true).await;
        good.recv_video(Duration::from_secs(3)).await;
        // Play the whole (60-frame) file once first, so that a daemon that maps or caches the
        // file has it resident before the baseline is taken.
        for _ in 0..62 {
            good.recv_video(Duration::from_secs(2)).await;
        }

        let rss0 = d.rss_kib();
        eprintln!("before the stall: {}", d.memory_summary());
        let mut stalled_ws = WsClient::connect(d.addr()).await;
        stalled_ws
            .send(&ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                visible: true,
            })
            .await;
        let stalled_h264 = http::stalled_get(d.addr(), "/api/stream/h264");
        let t0 = Instant::now();

        // 0..2 s: the stalled clients' socket buffers fill up. 2..5 s: measure the good one.
        let mut last_seq = None;
        let mut gaps = 0;
        let mut counted = 0;
        let window = (t0 + Duration::from_secs(2), t0 + Duration::from_secs(5));
        while let Some(f) = good
            .try_recv_video(window.1.saturating_duration_since(Instant::now()))
            .await
        {
            if let Some(s) = last_seq {
                if f.header.seq != u32::wrapping_add(s, 1) {
                    gaps += 1;
                }
            }
            last_seq = Some(f.header.seq);
            if f.at >= window.0 && f.at < window.1 {
                counted += 1;
            }
        }
        let rss1 = d.rss_kib();
        eprintln!("after 5 s of stall: {}", d.memory_summary());
        let fps = counted as f64 / 3.0;
        eprintln!(
            "good viewer: {counted} frames in 3 s ({fps:.1} fps), {gaps} seq gaps; \
             VmRSS {rss0} KiB -> {rss1} KiB ({:+} KiB)",
            rss1 as i64 - rss0 as i64
        );

        // Drops must show in /metrics; keep the good viewer reading while polling for them.
        let mut dropped = 0.0;
        for _ in 0..6 {
            dropped = d
                .metrics()
                .get("nanokvmd_frames_dropped_total")
                .unwrap_or(0.0);
            if dropped > 0.0 {
                break;
            }
            good.collect_video(Duration::from_millis(500)).await;
        }
        eprintln!("nanokvmd_frames_dropped_total = {dropped}");

        assert!(
            counted * 10 >= FPS * 3 * 8,
            "the good viewer got {counted} frames in 3 s ({fps:.1} fps), want >= 80% of {FPS} fps"
        );
        assert!(
            rss1 <= rss0 + RSS_GROWTH_LIMIT_KIB,
            "VmRSS grew from {rss0} KiB to {rss1} KiB while two clients stalled"
        );
        assert!(
            dropped > 0.0,
            "nanokvmd_frames_dropped_total is {dropped} with two stalled clients"
        );
        drop(stalled_ws);
        drop(stalled_h264);
    });
}
