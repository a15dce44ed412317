//! Rows 2, 3 and 4 on the replay source (a pre-encoded stream played at 30 fps: no encoder cost
//! to drown the figures, as with the device's hardware encoder): server time and heap
//! allocations per frame, the daemon's CPU for 1, 4 and 8 viewers, and its memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nanokvm_e2e::bench::procfs::{memory_kib, CpuSnap};
use nanokvm_e2e::bench::report::{Row, Verdict};
use nanokvm_e2e::{h264, Metrics};
use serde_json::json;

use crate::viewers::{delta, metrics, Viewers};
use crate::{Plan, Run};

/// Bitrate of the replayed stream: a busy desktop from a hardware encoder (the design's busy
/// range is 2-8 Mbit/s). The sim's own text console encodes to far less, which would flatter
/// every figure here.
const REPLAY_BPS: u32 = 4_000_000;
const REPLAY_FRAMES: usize = 90;
/// Rows of fresh noise per frame: a small moving detail; more would push the stream far
/// above `REPLAY_BPS`.
const REPLAY_NOISE_ROWS: usize = 16;

/// Makes the replayed stream: 720p, 3 s looped, an IDR (with SPS and PPS) every 30 frames,
/// every frame different (a scrolling gradient, a moving box and a band of noise), encoded by
/// OpenH264 in this process.
fn make_file(run: &mut Run) -> Result<PathBuf, String> {
    let path = std::env::temp_dir().join(format!("nanokvm-bench-{}.h264", std::process::id()));
    let t0 = Instant::now();
    h264::make_replay_file_at(
        &path,
        REPLAY_FRAMES,
        (1280, 720),
        REPLAY_BPS,
        REPLAY_NOISE_ROWS,
    );
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    run.note(format!(
        "replay file: {REPLAY_FRAMES} frames of a synthetic busy 1280x720 picture (IDR every 30), \
         {} KiB = {:.1} Mbit/s at 30 fps, made in {:.1} s",
        bytes / 1024,
        bytes as f64 * 8.0 * 30.0 / REPLAY_FRAMES as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    ));
    Ok(path)
}

const HEAP_ALLOCS: &str = "nanokvmd_heap_allocations_total";
const FRAMES: &str = "nanokvmd_frames_encoded_total{codec=\"h264\"}";

pub fn run(run: &mut Run, plan: &Plan) {
    let path = match make_file(run) {
        Ok(p) => p,
        Err(e) => {
            for (id, what) in [
                ("2a", "server time per frame"),
                ("2b", "heap allocations per frame"),
                ("3", "fan-out CPU"),
                ("4a", "resident memory"),
            ] {
                run.report
                    .rows
                    .push(Row::new(id, what).not_measured(format!("making the replay file: {e}")));
            }
            return;
        }
    };
    // The replay source stands in for the device's hardware encoder, so these rows run the
    // daemon built as for the device (no simulated target, no software encoders and their
    // C++ runtime) when the bench was given one.
    let device_build = std::env::var_os("NANOKVMD_DEVICE_BIN").map(PathBuf::from);
    let build = match &device_build {
        Some(bin) => {
            run.note(format!(
                "rows 2, 3 and 4: the daemon built with the device's features (--no-default-features --features alloc-count): {}",
                bin.display()
            ));
            "device build"
        }
        None => "sim build",
    };
    nanokvm_e2e::use_daemon_bin(device_build);
    measure(run, plan, &path, build);
    nanokvm_e2e::use_daemon_bin(None);
    let _ = std::fs::remove_file(&path);
}

struct Window {
    m0: Metrics,
    m1: Metrics,
    cpu_ms_per_s: f64,
    frames_received: u64,
    secs: f64,
}

/// `/metrics` and CPU over `d` while `viewers` watch.
fn window(
    (addr, pid): (std::net::SocketAddr, u32),
    viewers: &Viewers,
    d: Duration,
) -> Result<Window, String> {
    let m0 = metrics(addr)?;
    let c0 = CpuSnap::take(pid)?;
    let r0 = viewers.frames();
    std::thread::sleep(d);
    let c1 = CpuSnap::take(pid)?;
    let r1 = viewers.frames();
    let m1 = metrics(addr)?;
    Ok(Window {
        m0,
        m1,
        cpu_ms_per_s: c0.ms_per_s(&c1),
        frames_received: r1 - r0,
        secs: c1.at.duration_since(c0.at).as_secs_f64(),
    })
}

fn measure(run: &mut Run, plan: &Plan, file: &Path, build: &str) {
    let spec = format!("replay:{}", file.display());
    let daemon = run.daemon(&["--source", &spec, "--fps", "30"]);
    let addr = daemon.addr();
    let target = (addr, daemon.pid());
    let source = |n: usize| {
        format!("replay (synthetic busy stream, 4 Mbit/s), 720p30, {n} WebSocket viewers, {build}")
    };
    let result = (|| -> Result<(), String> {
        // What one /metrics scrape allocates, measured with nothing else going on; the
        // steady-state window below contains about one scrape's worth.
        let a = metrics(addr)?;
        let b = metrics(addr)?;
        let c = metrics(addr)?;
        let scrape_allocs = match (delta(&a, &b, HEAP_ALLOCS), delta(&b, &c, HEAP_ALLOCS)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        };

        let started = Instant::now();
        let four = Viewers::start(addr, 4);
        four.wait_frames(10, Duration::from_secs(10))?;
        std::thread::sleep(plan.warm_up);
        let w4 = window(target, &four, plan.window)?;
        let remaining = plan.memory_after.saturating_sub(started.elapsed());
        std::thread::sleep(remaining);
        let (rss, hwm) = memory_kib(target.1)?;
        let heap = metrics(addr)?;
        four.stop()?;

        // Row 2a: server time per frame.
        let sum = delta(&w4.m0, &w4.m1, "nanokvmd_server_frame_seconds_sum");
        let count = delta(&w4.m0, &w4.m1, "nanokvmd_server_frame_seconds_count");
        let row = Row::new("2a", "server time per frame, excluding encode (frame ready -> written to the last viewer's socket)")
            .source(source(4));
        run.report.rows.push(match (sum, count) {
            (Some(s), Some(n)) if n > 0.0 => {
                let mean_ms = s * 1000.0 / n;
                let max_ms = w4.m1.get("nanokvmd_server_frame_seconds_max").unwrap_or(f64::NAN) * 1000.0;
                row.value(format!("mean {mean_ms:.3} ms over {n} frames (max since start {max_ms:.2} ms)"))
                    .target("mean <= 0.2 ms", Verdict::check(mean_ms <= 0.2))
                    .data(json!({ "mean_ms": mean_ms, "frames": n, "max_ms": max_ms,
                        "late_writes": delta(&w4.m0, &w4.m1, "nanokvmd_server_frame_late_writes_total") }))
            }
            _ => row.not_measured("no nanokvmd_server_frame_seconds in /metrics"),
        });

        // Row 2b: heap allocations per frame.
        let allocs = delta(&w4.m0, &w4.m1, HEAP_ALLOCS);
        let frames = delta(&w4.m0, &w4.m1, FRAMES).unwrap_or(0.0);
        let row = Row::new("2b", "heap allocations per frame, steady state").source(source(4));
        run.report.rows.push(match (allocs, scrape_allocs) {
            (Some(total), Some(scrape)) if frames > 0.0 => {
                let per_frame = (total - scrape).max(0.0) / frames;
                row.value(format!(
                    "{per_frame:.2} per frame ({total} allocations in {frames} frames, less {scrape} for one /metrics scrape)"
                ))
                .target("0", Verdict::check(per_frame < 0.5))
                .data(json!({ "per_frame": per_frame, "allocations": total, "frames": frames, "scrape_allocations": scrape }))
            }
            (None, _) | (_, None) => row.not_measured("the daemon was built without the alloc-count feature"),
            _ => row.not_measured("no frames in the window"),
        });

        // Row 4: memory.
        let live = heap.get("nanokvmd_heap_live_bytes");
        let peak = heap.get("nanokvmd_heap_peak_bytes");
        let mib = |kib: u64| kib as f64 / 1024.0;
        let after = plan.memory_after.as_secs();
        run.report.rows.push(
            Row::new("4a", &format!("resident memory (VmRSS) after {after} s"))
                .value(format!("{:.2} MiB", mib(rss)))
                .target("<= 6 MB", Verdict::check(rss * 1024 <= 6_000_000))
                .source(source(4))
                .data(json!({ "vmrss_kib": rss })),
        );
        run.report.rows.push(
            Row::new("4b", "peak resident memory (VmHWM)")
                .value(format!("{:.2} MiB", mib(hwm)))
                .target("<= 6 MB", Verdict::check(hwm * 1024 <= 6_000_000))
                .source(source(4))
                .data(json!({ "vmhwm_kib": hwm })),
        );
        let row = Row::new("4c", "heap: peak live bytes since start (live now)").source(source(4));
        run.report.rows.push(match (peak, live) {
            (Some(p), Some(l)) => row
                .value(format!(
                    "{:.2} MiB ({:.2} MiB)",
                    p / 1048576.0,
                    l / 1048576.0
                ))
                .data(json!({ "peak_bytes": p, "live_bytes": l })),
            _ => row.not_measured("the daemon was built without the alloc-count feature"),
        });

        // Row 3: fan-out CPU.
        let mut cpu = vec![(
            4usize,
            w4.cpu_ms_per_s,
            w4.frames_received as f64 / w4.secs / 4.0,
        )];
        // Allocations per frame by number of viewers: what the fan-out itself allocates shows
        // as a difference between them.
        let per_frame = |w: &Window| {
            let frames = delta(&w.m0, &w.m1, FRAMES).filter(|f| *f > 0.0)?;
            Some(delta(&w.m0, &w.m1, HEAP_ALLOCS)? / frames)
        };
        let mut allocs = vec![(4usize, per_frame(&w4))];
        for n in [1usize, 8] {
            let viewers = Viewers::start(addr, n);
            viewers.wait_frames(10, Duration::from_secs(10))?;
            std::thread::sleep(Duration::from_secs(2));
            let w = window(target, &viewers, plan.cpu_window)?;
            viewers.stop()?;
            cpu.push((
                n,
                w.cpu_ms_per_s,
                w.frames_received as f64 / w.secs / n as f64,
            ));
            allocs.push((n, per_frame(&w)));
        }
        allocs.sort_by_key(|a| a.0);
        let row = Row::new(
            "2c",
            "heap allocations per frame for 1 / 4 / 8 viewers (scrapes included)",
        )
        .source(format!(
            "replay (synthetic busy stream, 4 Mbit/s), 720p30, WebSocket viewers, {build}"
        ));
        run.report.rows.push(match allocs.iter().map(|a| a.1).collect::<Option<Vec<f64>>>() {
            Some(v) => row
                .value(format!("{:.2} / {:.2} / {:.2}", v[0], v[1], v[2]))
                .data(json!({ "per_frame": allocs.iter().map(|a| json!({"viewers": a.0, "per_frame": a.1})).collect::<Vec<_>>() })),
            None => row.not_measured("the daemon was built without the alloc-count feature"),
        });
        cpu.sort_by_key(|c| c.0);
        let at = |n: usize| cpu.iter().find(|c| c.0 == n).map_or(f64::NAN, |c| c.1);
        let ratio = at(8) / at(1);
        run.report.rows.push(
            Row::new("3", "fan-out: daemon CPU for 1 / 4 / 8 viewers (ratio 8:1)")
                .value(format!(
                    "{:.1} / {:.1} / {:.1} ms per s; 8:1 = {ratio:.2}x",
                    at(1),
                    at(4),
                    at(8)
                ))
                .target("8:1 <= 1.2x", Verdict::check(ratio <= 1.2))
                .source(format!("replay (synthetic busy stream, 4 Mbit/s), 720p30, WebSocket viewers, {build}; time on CPU of all daemon threads (/proc/PID/task/*/schedstat)"))
                .data(json!({
                    "ms_per_s": cpu.iter().map(|c| json!({"viewers": c.0, "cpu_ms_per_s": c.1, "fps_per_viewer": c.2})).collect::<Vec<_>>(),
                    "ratio_8_1": ratio,
                })),
        );
        Ok(())
    })();
    if let Err(e) = result {
        run.note(format!("replay part stopped: {e}"));
        for (id, what) in [
            ("2a", "server time per frame"),
            ("3", "fan-out CPU"),
            ("4a", "resident memory"),
        ] {
            if !run.report.rows.iter().any(|r| r.id == id) {
                run.report
                    .rows
                    .push(Row::new(id, what).not_measured(e.clone()));
            }
        }
    }
    run.forget(daemon);
}
