//! Row 1: time to first decodable frame for a new H.264 viewer, with the IDR policy on and
//! off while another viewer watches, and as the only viewer (capture idle before the join);
//! and row 5: input latency under full video (all on a sim daemon with `--sim-stamp`, whose
//! picture changes every frame).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nanokvm_e2e::bench::report::{Row, Verdict};
use nanokvm_e2e::bench::summary::Summary;
use nanokvm_e2e::proto::{ClientMsg, Codec, PROTOCOL_VERSION};
use nanokvm_e2e::ws::{Event, Msg, WsClient};
use nanokvm_e2e::{h264, Daemon};
use serde_json::json;

use crate::viewers::{close, delta, hello, metrics, send, Rng, Viewers, MS};
use crate::{Plan, Run};

const SIM_STAMP: &str = "sim, --sim-stamp (every frame changes), 720p30, 1 other viewer watching";

/// Starts the sim daemon with the stamp and the given IDR policy.
fn stamp_daemon(run: &Run, policy: &str) -> Daemon {
    run.daemon(&[
        "--fps",
        "30",
        "--resolution",
        "720p",
        "--sim-stamp",
        "--idr-policy",
        policy,
    ])
}

/// Hello sent (after the WebSocket handshake) → the first Video, which must be a complete
/// H.264 keyframe (SPS, PPS, IDR); in ms.
async fn join_once(addr: SocketAddr, limit: Duration) -> Result<f64, String> {
    let mut c = WsClient::connect(addr).await;
    let sent = Instant::now();
    hello(&mut c).await?;
    let result = loop {
        let left = limit.saturating_sub(sent.elapsed());
        match c.next_event(left).await {
            None => break Err(format!("no Video within {limit:?} of Hello")),
            Some(Event::Msg(Msg::Video(f))) => {
                let ms = f.at.duration_since(sent).as_secs_f64() * 1000.0;
                break if !f.header.keyframe || f.header.codec != Codec::H264 {
                    Err(format!(
                        "the first Video is not an H.264 keyframe: {}",
                        f.describe()
                    ))
                } else {
                    h264::check_keyframe_au(&f.data).map(|()| ms)
                };
            }
            Some(Event::Msg(_)) => {}
            Some(other) => break Err(format!("the connection gave {other:?}")),
        }
    };
    close(c).await;
    result
}

struct Joins {
    ms: Vec<f64>,
    errors: Vec<String>,
    encode_ms: Option<f64>,
}

/// `n` joins at random moments while another viewer keeps the stream going.
fn joins(addr: SocketAddr, n: usize, rng: &mut Rng, limit: Duration) -> Result<Joins, String> {
    let anchor = Viewers::start(addr, 1);
    anchor.wait_frames(10, Duration::from_secs(10))?;
    let m0 = metrics(addr)?;
    let mut out = Joins {
        ms: Vec::new(),
        errors: Vec::new(),
        encode_ms: None,
    };
    for i in 0..n {
        std::thread::sleep(rng.range_ms(100, 700));
        match smol::block_on(join_once(addr, limit)) {
            Ok(ms) => out.ms.push(ms),
            Err(e) => out.errors.push(format!("join {i}: {e}")),
        }
    }
    let m1 = metrics(addr)?;
    anchor.stop()?;
    let secs = delta(&m0, &m1, "nanokvmd_encode_seconds_sum{codec=\"h264\"}");
    let count = delta(&m0, &m1, "nanokvmd_encode_seconds_count{codec=\"h264\"}");
    if let (Some(s), Some(c)) = (secs, count) {
        out.encode_ms = (c > 0.0).then(|| s * 1000.0 / c);
    }
    Ok(out)
}

/// True once no viewer is connected and capture has stopped ticking (the frame counter stood
/// still for 150 ms); false when that did not happen within 2 s.
fn wait_capture_idle(addr: SocketAddr) -> Result<bool, String> {
    const CAPTURED: &str = "nanokvmd_frames_captured_total";
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let a = metrics(addr)?;
        std::thread::sleep(MS(150));
        let b = metrics(addr)?;
        if b.sum("nanokvmd_viewers") == 0.0
            && a.get(CAPTURED).is_some()
            && a.get(CAPTURED) == b.get(CAPTURED)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `n` joins as the only viewer, each once capture has gone idle after the one before: the
/// join starts capture and the encoder's IDR.
fn idle_joins(addr: SocketAddr, n: usize, rng: &mut Rng, limit: Duration) -> Result<Joins, String> {
    let mut out = Joins {
        ms: Vec::new(),
        errors: Vec::new(),
        encode_ms: None,
    };
    for i in 0..n {
        std::thread::sleep(rng.range_ms(300, 700));
        if !wait_capture_idle(addr)? {
            out.errors.push(format!(
                "idle join {i}: capture was still ticking when it started"
            ));
        }
        match smol::block_on(join_once(addr, limit)) {
            Ok(ms) => out.ms.push(ms),
            Err(e) => out.errors.push(format!("idle join {i}: {e}")),
        }
    }
    Ok(out)
}

fn fmt_ms(s: &Summary) -> String {
    format!("median {:.1} ms, p95 {:.1} ms (n={})", s.median, s.p95, s.n)
}

pub fn run(run: &mut Run, plan: &Plan) {
    let mut rng = Rng(run.seed | 1);
    // Policy on: the IDR comes with the next captured frame.
    let (idle, on) = {
        let daemon = stamp_daemon(run, "on");
        // The first join after start-up also creates the encoder: apart from the others.
        match smol::block_on(join_once(daemon.addr(), Duration::from_secs(3))) {
            Ok(ms) => run.note(format!(
                "time to first frame of the first join after start-up (creates the H.264 encoder; not in 1a or 1d): {ms:.1} ms"
            )),
            Err(e) => run.note(format!("the first join after start-up: {e}")),
        }
        let idle = idle_joins(
            daemon.addr(),
            plan.idle_joins,
            &mut rng,
            Duration::from_secs(3),
        );
        let r = joins(daemon.addr(), plan.joins, &mut rng, Duration::from_secs(3));
        if r.is_ok() {
            input_latency(run, daemon.addr(), plan);
        }
        run.forget(daemon);
        (idle, r)
    };
    // Policy off: the viewer waits for the encoder's own IDR (GOP 60 at 30 fps).
    let off = {
        let daemon = stamp_daemon(run, "off");
        let r = joins(daemon.addr(), plan.joins, &mut rng, Duration::from_secs(5));
        run.forget(daemon);
        r
    };
    let row_on =
        Row::new("1a", "time to first frame, new H.264 viewer, IDR policy on").source(SIM_STAMP);
    let row_off = Row::new(
        "1b",
        "time to first frame, IDR policy off (waits for the GOP's IDR, as the stock server)",
    )
    .source(format!("{SIM_STAMP}; --idr-policy off, GOP 60"));
    let row_idle = Row::new(
        "1d",
        "time to first frame, the only viewer (capture idle before the join), IDR policy on",
    )
    .source("sim, --sim-stamp, 720p30, no other viewer; each join once capture had stopped");
    // The target: one frame interval plus the mean encode time measured during 1a.
    let encode_ms = on
        .as_ref()
        .ok()
        .and_then(|j| j.encode_ms)
        .unwrap_or(f64::NAN);
    let target_ms = 1000.0 / 30.0 + encode_ms;
    let target = || {
        format!("p95 <= {target_ms:.1} ms (33.3 ms frame interval + {encode_ms:.1} ms mean encode)")
    };
    match idle.map(|j| (Summary::of(&j.ms), j)) {
        Ok((Some(s), j)) => {
            for e in &j.errors {
                run.note(format!("time to first frame: {e}"));
            }
            run.report.rows.push(
                row_idle
                    .value(fmt_ms(&s))
                    .target(target(), Verdict::check(s.p95 <= target_ms))
                    .data(json!({ "ms": s.to_json(), "samples": j.ms, "target_ms": target_ms })),
            );
        }
        Ok((None, j)) => run
            .report
            .rows
            .push(row_idle.not_measured(format!("no join succeeded: {}", j.errors.join("; ")))),
        Err(e) => run.report.rows.push(row_idle.not_measured(e)),
    }
    let (on, off) = match (on, off) {
        (Ok(on), Ok(off)) => (on, off),
        (on, off) => {
            let why = |r: &Result<Joins, String>| r.as_ref().err().cloned().unwrap_or_default();
            run.report.rows.push(row_on.not_measured(why(&on)));
            run.report.rows.push(row_off.not_measured(why(&off)));
            return;
        }
    };
    for e in on.errors.iter().chain(&off.errors) {
        run.note(format!("time to first frame: {e}"));
    }
    let (s_on, s_off) = (Summary::of(&on.ms), Summary::of(&off.ms));

    match s_on {
        Some(s) => run.report.rows.push(
            row_on
                .value(fmt_ms(&s))
                .target(target(), Verdict::check(s.p95 <= target_ms))
                .data(json!({ "ms": s.to_json(), "samples": on.ms, "target_ms": target_ms, "mean_encode_ms": encode_ms })),
        ),
        None => run.report.rows.push(row_on.not_measured("no join succeeded")),
    }
    match s_off {
        Some(s) => run.report.rows.push(
            row_off
                .value(fmt_ms(&s))
                .data(json!({ "ms": s.to_json(), "samples": off.ms })),
        ),
        None => run
            .report
            .rows
            .push(row_off.not_measured("no join succeeded")),
    }
    if let (Some(a), Some(b)) = (s_on, s_off) {
        run.report.rows.push(
            Row::new(
                "1c",
                "headline: policy off / on, median time to first frame",
            )
            .value(format!(
                "{:.1}x faster ({:.0} ms -> {:.0} ms); p95 {:.1}x",
                b.median / a.median,
                b.median,
                a.median,
                b.p95 / a.p95
            ))
            .source("1a and 1b")
            .data(json!({ "median_ratio": b.median / a.median, "p95_ratio": b.p95 / a.p95 })),
        );
    }
}

/// Row 5: key events over a WebSocket while 4 viewers watch a changing screen; the daemon's
/// own quantiles of event received → HID report written. Without HID in this build the metric
/// is absent and the row says so.
fn input_latency(run: &mut Run, addr: SocketAddr, plan: &Plan) {
    let row = Row::new(
        "5",
        "input latency: key event received -> HID report written",
    )
    .source("sim, --sim-stamp, 720p30, 4 viewers watching; KeyDown/KeyUp over /api/ws");
    const COUNT: &str = "nanokvmd_hid_input_to_report_us_count";
    let has_hid = metrics(addr).map(|m| m.get(COUNT).is_some());
    match has_hid {
        Ok(true) => {}
        Ok(false) => {
            run.report.rows.push(row.not_measured(
                "this build has no HID (no nanokvmd_hid_input_to_report_us in /metrics)",
            ));
            return;
        }
        Err(e) => {
            run.report.rows.push(row.not_measured(e));
            return;
        }
    }
    let viewers = Viewers::start(addr, 4);
    let typed = viewers
        .wait_frames(10, Duration::from_secs(10))
        .and_then(|()| smol::block_on(type_keys(addr, plan.key_presses)));
    let stopped = viewers.stop();
    let after = metrics(addr);
    let m = match (typed, stopped, after) {
        (Ok(()), Ok(_), Ok(m)) => m,
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            run.report.rows.push(row.not_measured(e));
            return;
        }
    };
    let q = |p: &str| {
        m.get(&format!(
            "nanokvmd_hid_input_to_report_us{{quantile=\"{p}\"}}"
        ))
    };
    match (q("0.5"), q("0.99"), q("1"), m.get(COUNT)) {
        (Some(p50), Some(p99), max, Some(n)) => run.report.rows.push(
            row.value(format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {} (n={n})",
                p50 / 1000.0,
                p99 / 1000.0,
                max.map_or("?".into(), |v| format!("{:.2} ms", v / 1000.0))
            ))
            .target("p99 <= 2 ms", Verdict::check(p99 <= 2000.0))
            .data(json!({ "p50_us": p50, "p99_us": p99, "max_us": max, "count": n })),
        ),
        _ => run
            .report
            .rows
            .push(row.not_measured("the HID quantiles are missing from /metrics")),
    }
}

/// `n` presses of the letter keys a..z (HID usages 4..29), 20 ms apart, from a client that
/// takes no video (`visible: false`).
async fn type_keys(addr: SocketAddr, n: usize) -> Result<(), String> {
    let mut c = WsClient::connect(addr).await;
    send(
        &mut c,
        &ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            visible: false,
        },
    )
    .await?;
    for i in 0..n {
        let usage = 4 + (i % 26) as u8;
        send(&mut c, &ClientMsg::KeyDown { usage }).await?;
        smol::Timer::after(MS(10)).await;
        send(&mut c, &ClientMsg::KeyUp { usage }).await?;
        smol::Timer::after(MS(10)).await;
        // Read what the server said meanwhile (HID status, errors), so nothing piles up.
        while let Some(ev) = c.next_event(Duration::ZERO).await {
            if let Event::Ended(e) | Event::Closed(Some((_, e))) = ev {
                return Err(format!("the typing connection ended: {e}"));
            }
        }
    }
    close(c).await;
    Ok(())
}
