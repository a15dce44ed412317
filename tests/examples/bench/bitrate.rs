//! Rows 7 and 8 on the simulated target at 720p30 (real OpenH264 encoder, default 2 Mbit/s
//! rate control), one viewer, for an idle console, typing, and full-screen changes every second
//! and every 100 ms: the H.264 bitrate, with the frame rate and the daemon's CPU alongside
//! (row 7), and capture → arrival latency on the viewer's socket (row 8).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nanokvm_e2e::bench::procfs::{memory_kib, CpuSnap};
use nanokvm_e2e::bench::report::{Row, Verdict};
use nanokvm_e2e::bench::summary::Summary;
use nanokvm_e2e::proto::ClientMsg;
use nanokvm_e2e::ws::{Event, Msg, WsClient};
use serde_json::json;

use crate::clock;
use crate::viewers::{close, hello, metrics, post_console, send, Switcher, MS};
use crate::{Plan, Run};

#[derive(Clone, Copy, PartialEq)]
enum Activity {
    Idle,
    Typing,
    SceneEvery(Duration),
}

struct Rate {
    kbps: f64,
    frames: u64,
    keyframes: u64,
    cpu_ms_per_s: f64,
    /// Capture → arrival of each frame, ms.
    latency_ms: Vec<f64>,
    rtt_us: i64,
}

/// One viewer on console 1; payload bytes received during `window`, after 1 s for the join's
/// IDR to pass (and the clock offset to be measured).
async fn measure(
    (addr, pid): (SocketAddr, u32),
    activity: Activity,
    window: Duration,
) -> Result<Rate, String> {
    post_console(addr, 1)?;
    let mut c = WsClient::connect(addr).await;
    hello(&mut c).await?;
    let settle = Instant::now() + Duration::from_secs(1);
    let offset = clock::offset(&mut c, Instant::now()).await?;
    while Instant::now() < settle {
        if let Some(Event::Ended(e)) = c.next_event(MS(50)).await {
            return Err(e);
        }
    }
    let switcher = match activity {
        Activity::SceneEvery(period) => Some(Switcher::start(addr, period)),
        _ => None,
    };
    let cpu0 = CpuSnap::take(pid)?;
    let (start, mut next_key) = (Instant::now(), Instant::now());
    let end = start + window;
    let (mut bytes, mut frames, mut keyframes, mut key) = (0u64, 0u64, 0u64, 0usize);
    let mut latency_ms = Vec::new();
    while Instant::now() < end {
        if activity == Activity::Typing && Instant::now() >= next_key {
            // About 6 characters a second, a brisk typist.
            let usage = 4 + (key % 26) as u8;
            send(&mut c, &ClientMsg::KeyDown { usage }).await?;
            send(&mut c, &ClientMsg::KeyUp { usage }).await?;
            key += 1;
            next_key += MS(160);
        }
        match c.next_event(MS(20)).await {
            Some(Event::Msg(Msg::Video(f))) => {
                bytes += f.data.len() as u64;
                frames += 1;
                keyframes += u64::from(f.header.keyframe);
                latency_ms.push(offset.latency_ms(f.header.capture_us, f.at));
            }
            Some(Event::Msg(_)) | None => {}
            Some(other) => return Err(format!("the viewer got {other:?}")),
        }
    }
    let cpu1 = CpuSnap::take(pid)?;
    let errors = switcher.map(Switcher::finish).unwrap_or_default();
    close(c).await;
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(Rate {
        kbps: bytes as f64 * 8.0 / 1000.0 / window.as_secs_f64(),
        frames,
        keyframes,
        cpu_ms_per_s: cpu0.ms_per_s(&cpu1),
        latency_ms,
        rtt_us: offset.rtt_us,
    })
}

pub fn run(run: &mut Run, plan: &Plan) {
    let daemon = run.daemon(&["--fps", "30", "--resolution", "720p"]);
    let target = (daemon.addr(), daemon.pid());
    let has_hid =
        metrics(daemon.addr()).map(|m| m.get("nanokvmd_hid_input_to_report_us_count").is_some());
    let cases = [
        (
            "a",
            "idle console (clock and cursor only)",
            Activity::Idle,
            2000.0,
        ),
        (
            "b",
            "typing (~6 keys/s over /api/ws)",
            Activity::Typing,
            2000.0,
        ),
        (
            "c",
            "full-screen change every second",
            Activity::SceneEvery(Duration::from_secs(1)),
            8000.0,
        ),
        (
            "d",
            "full-screen change every 100 ms",
            Activity::SceneEvery(MS(100)),
            8000.0,
        ),
    ];
    let source = "sim, 720p30, H.264 2000 kbit/s (default), 1 WebSocket viewer";
    for (key, what, activity, target_kbps) in cases {
        let row = Row::new(&format!("7{key}"), &format!("bitrate, {what}")).source(source);
        let latency_row = Row::new(
            &format!("8{key}"),
            &format!("capture -> arrival on the viewer's socket, {what}"),
        )
        .source(source);
        if activity == Activity::Typing && !matches!(has_hid, Ok(true)) {
            run.report
                .rows
                .push(row.not_measured("this build has no HID"));
            run.report
                .rows
                .push(latency_row.not_measured("this build has no HID"));
            continue;
        }
        let r = match smol::block_on(measure(target, activity, plan.bitrate_window)) {
            Ok(r) => r,
            Err(e) => {
                run.report.rows.push(row.not_measured(e.clone()));
                run.report.rows.push(latency_row.not_measured(e));
                continue;
            }
        };
        let secs = plan.bitrate_window.as_secs_f64();
        let fps = r.frames as f64 / secs;
        run.report.rows.push(
            row.value(format!(
                "{:.0} kbit/s; {fps:.1} fps ({} frames, {} keyframes in {secs:.0} s); daemon CPU {:.0} ms/s",
                r.kbps, r.frames, r.keyframes, r.cpu_ms_per_s
            ))
            .target(
                format!("<= {:.0} Mbit/s", target_kbps / 1000.0),
                Verdict::check(r.kbps <= target_kbps),
            )
            .data(json!({
                "kbps": r.kbps, "frames": r.frames, "keyframes": r.keyframes, "fps": fps,
                "cpu_ms_per_s": r.cpu_ms_per_s,
            })),
        );
        let latency_row = match Summary::of(&r.latency_ms) {
            Some(s) => latency_row
                .value(format!(
                    "median {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={}; clock offset from Ping/Pong, rtt {} us)",
                    s.median, s.p95, s.max, s.n, r.rtt_us
                ))
                .data(json!({ "ms": s.to_json(), "rtt_us": r.rtt_us })),
            None => latency_row.not_measured("no frame arrived"),
        };
        run.report.rows.push(latency_row);
    }
    match memory_kib(daemon.pid()) {
        Ok((rss, hwm)) => run.note(format!(
            "sim build after rows 7 and 8 (software encoders): VmRSS {rss} KiB, VmHWM {hwm} KiB"
        )),
        Err(e) => run.note(format!("sim build memory after rows 7 and 8: {e}")),
    }
    run.forget(daemon);
}
