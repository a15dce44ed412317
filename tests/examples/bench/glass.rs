//! Row 6: glass-to-glass latency in headless Chromium, by `tests/browser/glass_to_glass.mjs`
//! (which runs its own daemon with `--sim-stamp`).

use std::process::Command;

use nanokvm_e2e::bench::report::{Row, Verdict};
use serde_json::Value;

use crate::{Plan, Run};

pub fn run(run: &mut Run, plan: &Plan) {
    let row = |id: &str, what: &str| {
        Row::new(id, what)
            .source("sim, --sim-stamp, 720p30, the console page in headless Chromium (1 viewer)")
    };
    let script = nanokvm_e2e::workspace_dir().join("tests/browser/glass_to_glass.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg("--seconds")
        .arg(plan.glass_window.as_secs().to_string())
        .env("NANOKVMD_BIN", nanokvm_e2e::daemon_bin())
        .output();
    let parsed: Result<Value, String> = match out {
        Err(e) => Err(format!("node {}: {e}", script.display())),
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let last = stdout.lines().last().unwrap_or_default().to_string();
            match serde_json::from_str::<Value>(&last) {
                Ok(v) if v.get("error").is_some() => {
                    Err(format!("glass_to_glass.mjs: {}", v["error"]))
                }
                Ok(v) => Ok(v),
                Err(_) => Err(format!(
                    "glass_to_glass.mjs printed no result ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                )),
            }
        }
    };
    let v = match parsed {
        Ok(v) => v,
        Err(e) => {
            run.report
                .rows
                .push(row("6a", "glass-to-glass latency").not_measured(e));
            return;
        }
    };
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let (median, p95) = (f("median_ms"), f("p95_ms"));
    run.report.rows.push(
        row(
            "6a",
            "glass-to-glass latency, capture -> painted in the console (median)",
        )
        .value(format!("{median:.1} ms"))
        .target("<= 25 ms", Verdict::check(median <= 25.0))
        .data(v.clone()),
    );
    run.report.rows.push(
        row("6b", "glass-to-glass latency (p95)")
            .value(format!("{p95:.1} ms (max {:.1} ms)", f("max_ms")))
            .target("<= 40 ms", Verdict::check(p95 <= 40.0)),
    );
    run.report.rows.push(
        row("6c", "share of frames sent that were painted")
            .value(format!(
                "{:.1}% ({} distinct stamps of {} frames sent in {} s; {} unreadable, {} not matching capture_us)",
                f("arrived_share") * 100.0,
                v["distinct_stamps"],
                v["frames_sent"],
                v["window_s"],
                v["stamps_unreadable"],
                v["stamps_mismatched"]
            )),
    );
    if let Some(chromium) = v["chromium"].as_str() {
        run.context("chromium", chromium);
    }
}
