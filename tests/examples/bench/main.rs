//! `cargo xtask bench`: measures the figures of the design's "Numbers to design for" against
//! the real daemon and writes `report.json` and `report.md` (each figure with its target and
//! verdict, and the source and load it was measured with), printing the table.
//!
//!     cargo xtask bench                 # builds everything, runs this, ≤ 10 min on 2 cores
//!     NANOKVMD_BIN=.../release/nanokvmd cargo run --release -p nanokvm-e2e --example bench -- \
//!         --out DIR [--quick] [--no-browser] [--seed N]
//!
//! The daemon should be a release build with the `alloc-count` feature (the heap rows need
//! it); `NANOKVMD_DEVICE_BIN`, if set, is the same built with the device's features
//! (`--no-default-features --features alloc-count`), which rows 2 to 4 (replay source) use. `--quick` shortens every interval for development; the figures are then rougher.
//! A measurement program: it never fails on a figure, only when it cannot run at all.

mod bitrate;
mod clock;
mod glass;
mod joins;
mod replay;
mod viewers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nanokvm_e2e::bench::report::{Report, Verdict};
use nanokvm_e2e::Daemon;

/// How long each part runs.
pub struct Plan {
    pub joins: usize,
    /// Joins as the only viewer (each waits for capture to stop first).
    pub idle_joins: usize,
    pub key_presses: usize,
    pub warm_up: Duration,
    pub window: Duration,
    pub memory_after: Duration,
    pub cpu_window: Duration,
    pub bitrate_window: Duration,
    pub glass_window: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            joins: 25,
            idle_joins: 10,
            key_presses: 300,
            warm_up: Duration::from_secs(10),
            window: Duration::from_secs(20),
            memory_after: Duration::from_secs(60),
            cpu_window: Duration::from_secs(15),
            bitrate_window: Duration::from_secs(10),
            glass_window: Duration::from_secs(20),
        }
    }

    fn quick() -> Plan {
        Plan {
            joins: 8,
            idle_joins: 3,
            key_presses: 50,
            warm_up: Duration::from_secs(2),
            window: Duration::from_secs(5),
            memory_after: Duration::from_secs(15),
            cpu_window: Duration::from_secs(4),
            bitrate_window: Duration::from_secs(4),
            glass_window: Duration::from_secs(5),
        }
    }
}

/// The run's state: the report being built and the daemons it started.
pub struct Run {
    pub report: Report,
    pub seed: u64,
}

impl Run {
    /// Starts a sim daemon with `args` (on a free loopback port).
    pub fn daemon(&self, args: &[&str]) -> Daemon {
        Daemon::start(args)
    }

    /// Stops a daemon from [`Run::daemon`].
    pub fn forget(&self, mut daemon: Daemon) {
        if daemon.is_running() {
            let _ = daemon.stop_within(Duration::from_secs(5));
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.report.notes.push(note.into());
    }

    pub fn context(&mut self, key: &str, value: impl Into<String>) {
        self.report.context.push((key.into(), value.into()));
    }
}

struct Args {
    out: PathBuf,
    quick: bool,
    browser: bool,
    seed: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: nanokvm_e2e::workspace_dir().join("target/bench"),
        quick: false,
        browser: true,
        seed: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => args.out = it.next().ok_or("--out needs a directory")?.into(),
            "--quick" => args.quick = true,
            "--no-browser" => args.browser = false,
            "--seed" => {
                args.seed = Some(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .ok_or("--seed needs a number")?,
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    nanokvm_e2e::kill_daemons_on_panic("bench");
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("NANOKVMD_BIN").is_none() {
        eprintln!(
            "bench: set NANOKVMD_BIN to a release nanokvmd built with --features alloc-count"
        );
        std::process::exit(2);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let started = Instant::now();
    let mut run = Run {
        report: Report::default(),
        seed,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = first_line_of("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    run.context(
        "machine",
        format!("{cores} cores, {cpu}, Linux {}", kernel.trim()),
    );
    run.context("daemon", nanokvm_e2e::daemon_bin().display().to_string());
    let command = std::env::var("BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    run.context("command", command);
    run.context(
        "plan",
        if args.quick {
            "quick (short intervals)"
        } else {
            "full"
        },
    );
    run.context("seed", seed.to_string());
    let load_before = loadavg();

    eprintln!("bench: time to first frame (policy on and off) and input latency ...");
    joins::run(&mut run, &plan);
    eprintln!("bench: replay source: server time, allocations, memory, fan-out ...");
    replay::run(&mut run, &plan);
    eprintln!("bench: bitrate, frame rate, CPU and latency of the sim's encoder ...");
    bitrate::run(&mut run, &plan);
    if args.browser {
        eprintln!("bench: glass-to-glass in Chromium ...");
        glass::run(&mut run, &plan);
    } else {
        run.report.rows.push(
            nanokvm_e2e::bench::report::Row::new("6a", "glass-to-glass latency")
                .not_measured("--no-browser"),
        );
    }

    run.report.rows.sort_by(|a, b| a.id.cmp(&b.id));
    run.context(
        "load average (1, 5, 15 min) before / after",
        format!("{load_before} / {}", loadavg()),
    );
    run.context(
        "run took",
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    );
    let failed = run
        .report
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .count();
    if let Err(e) = write(&run.report, &args.out) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
    for (k, v) in &run.report.context {
        println!("{k}: {v}");
    }
    println!();
    print!("{}", run.report.table());
    if !run.report.notes.is_empty() {
        println!("\nnotes:");
        for n in &run.report.notes {
            println!("- {n}");
        }
    }
    println!(
        "\n{failed} figure(s) miss their target; written to {}/report.{{json,md}}",
        args.out.display()
    );
}

fn write(report: &Report, dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
    for (name, text) in [("report.json", json), ("report.md", report.markdown())] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}
