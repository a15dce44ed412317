//! Row 7: H.264 bitrate at 720p30 on the simulated target (real OpenH264 encoder, default
//! 2 Mbit/s rate control): an idle console, typing, and a full-screen change every second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nanokvm_e2e::bench::report::{Row, Verdict};
use nanokvm_e2e::proto::ClientMsg;
use nanokvm_e2e::ws::{Event, Msg, WsClient};
use serde_json::json;

use crate::viewers::{close, hello, metrics, post_console, send, Switcher, MS};
use crate::{Plan, Run};

#[derive(Clone, Copy, PartialEq)]
enum Activity {
    Idle,
    Typing,
    SceneEverySecond,
}

struct Rate {
    kbps: f64,
    frames: u64,
    keyframes: u64,
}

/// One viewer on console 1; payload bytes received during `window` (after 1 s for the
/// join's IDR to pass).
async fn measure(addr: SocketAddr, activity: Activity, window: Duration) -> Result<Rate, String> {
    post_console(addr, 1)?;
    let mut c = WsClient::connect(addr).await;
    hello(&mut c).await?;
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        if let Some(Event::Ended(e)) = c.next_event(MS(50)).await {
            return Err(e);
        }
    }
    let switcher = (activity == Activity::SceneEverySecond)
        .then(|| Switcher::start(addr, Duration::from_secs(1)));
    let (start, mut next_key) = (Instant::now(), Instant::now());
    let end = start + window;
    let (mut bytes, mut frames, mut keyframes, mut key) = (0u64, 0u64, 0u64, 0usize);
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
            }
            Some(Event::Msg(_)) | None => {}
            Some(other) => return Err(format!("the viewer got {other:?}")),
        }
    }
    let errors = switcher.map(Switcher::finish).unwrap_or_default();
    close(c).await;
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(Rate {
        kbps: bytes as f64 * 8.0 / 1000.0 / window.as_secs_f64(),
        frames,
        keyframes,
    })
}

pub fn run(run: &mut Run, plan: &Plan) {
    let daemon = run.daemon(&["--fps", "30", "--resolution", "720p"]);
    let addr = daemon.addr();
    let has_hid = metrics(addr).map(|m| m.get("nanokvmd_hid_input_to_report_us_count").is_some());
    let cases = [
        (
            "7a",
            "bitrate, idle console (clock and cursor only)",
            Activity::Idle,
            2000.0,
        ),
        (
            "7b",
            "bitrate, typing (~6 keys/s over /api/ws)",
            Activity::Typing,
            2000.0,
        ),
        (
            "7c",
            "bitrate, full-screen change every second",
            Activity::SceneEverySecond,
            8000.0,
        ),
    ];
    for (id, what, activity, target) in cases {
        let row = Row::new(id, what)
            .source("sim, 720p30, H.264 2000 kbit/s (default), 1 WebSocket viewer");
        if activity == Activity::Typing && !matches!(has_hid, Ok(true)) {
            run.report
                .rows
                .push(row.not_measured("this build has no HID"));
            continue;
        }
        let row = match smol::block_on(measure(addr, activity, plan.bitrate_window)) {
            Ok(r) => row
                .value(format!(
                    "{:.0} kbit/s ({} frames, {} keyframes in {} s)",
                    r.kbps,
                    r.frames,
                    r.keyframes,
                    plan.bitrate_window.as_secs()
                ))
                .target(
                    format!("<= {:.0} Mbit/s", target / 1000.0),
                    Verdict::check(r.kbps <= target),
                )
                .data(json!({ "kbps": r.kbps, "frames": r.frames, "keyframes": r.keyframes })),
            Err(e) => row.not_measured(e),
        };
        run.report.rows.push(row);
    }
    run.forget(daemon);
}
