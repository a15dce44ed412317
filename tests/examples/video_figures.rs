//! Video figures of the daemon, measured against the real binary on loopback: time to first
//! frame, frame rate and bitrate for three kinds of screen activity, the daemon's CPU time and
//! memory, and capture→arrival latency. A measurement program, not a test: it prints a table
//! (each figure with how it was measured) and notes, and never fails on a figure.
//!
//!     cargo build --release -p nanokvmd
//!     NANOKVMD_BIN=target/release/nanokvmd \
//!         cargo run --release -p nanokvm-e2e --example video_figures
//!
//! Without `NANOKVMD_BIN` it uses `target/release/nanokvmd` when that exists. The random join
//! moments come from a seed that is printed; `VIDEO_FIGURES_SEED=N` repeats a run's moments.
//! The whole run takes about a minute and is bounded to two.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use futures_lite::future;
use nanokvm_e2e::bench::probe::{metrics, post_console};
use nanokvm_e2e::proto::{ClientMsg, Codec, PROTOCOL_VERSION};
use nanokvm_e2e::ws::{Event, Frame, Msg, WsClient};
use nanokvm_e2e::{block_on, h264, timeout, Daemon, Metrics};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Joins while another viewer keeps capture running.
const ANCHORED_JOINS: usize = 30;
/// Joins as the only viewer (capture idle before each).
const IDLE_JOINS: usize = 10;
/// Length of each frame-rate window.
const WINDOW: Duration = Duration::from_secs(10);
/// After a window: how long to keep reading for frames captured inside it that are still on
/// their way.
const GRACE: Duration = Duration::from_millis(500);
/// Ping/Pong probes per clock-offset estimate.
const PINGS: usize = 10;
/// The whole run stops starting new parts after this.
const RUN_BUDGET: Duration = Duration::from_secs(100);
/// Caps on the parts (they normally take about 9, 10 and 13 s each).
const IDLE_JOINS_CAP: Duration = Duration::from_secs(20);
const ANCHORED_JOINS_CAP: Duration = Duration::from_secs(30);
const SCENARIO_CAP: Duration = Duration::from_secs(18);

fn main() {
    nanokvm_e2e::kill_daemons_on_panic("video_figures");
    if let Some(bin) = std::env::var_os("NANOKVMD_BIN") {
        if !std::path::Path::new(&bin).exists() {
            eprintln!("NANOKVMD_BIN={} does not exist", bin.to_string_lossy());
            std::process::exit(2);
        }
    } else {
        let release = nanokvm_e2e::workspace_dir().join("target/release/nanokvmd");
        if !release.exists() {
            eprintln!(
                "set NANOKVMD_BIN to the daemon binary, or build {} first \
                 (cargo build --release -p nanokvmd)",
                release.display()
            );
            std::process::exit(2);
        }
        // Nothing else runs yet: no other thread reads the environment.
        std::env::set_var("NANOKVMD_BIN", &release);
    }
    let bin = nanokvm_e2e::daemon_bin();
    let seed = std::env::var("VIDEO_FIGURES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let run_start = Instant::now();
    let daemon = Daemon::start(&["--fps", "30", "--resolution", "720p"]);
    let mut fig = Figures::new(daemon.addr(), daemon.pid(), seed, run_start);
    block_on(fig.run());
    drop(daemon);
    println!(
        "video_figures: {} (pid {}), {} CPUs ({}), seed {seed}, run took {:.1} s",
        bin.display(),
        fig.pid,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        run_start.elapsed().as_secs_f64()
    );
    println!("daemon flags: --backend sim --fps 30 --resolution 720p (h264 2000 kbit/s, gop 60: defaults)\n");
    fig.print();
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// xorshift64*: enough randomness for join moments, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range_ms(&mut self, lo: u64, hi: u64) -> Duration {
        MS(lo + self.next() % (hi - lo + 1))
    }
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    median: f64,
    p95: f64,
    max: f64,
}

/// Nearest-rank percentiles.
fn stats(values: &[f64]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Stats {
        n: v.len(),
        median: rank(0.5),
        p95: rank(0.95),
        max: v[v.len() - 1],
    })
}

fn fmt_stats(s: Option<Stats>, unit: &str) -> String {
    match s {
        Some(s) => format!(
            "median {:.1} {unit}, p95 {:.1} {unit}, max {:.1} {unit} (n={})",
            s.median, s.p95, s.max, s.n
        ),
        None => "no samples".into(),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Microseconds on the client's monotonic clock since `epoch`.
fn us_since(epoch: Instant, t: Instant) -> i64 {
    t.saturating_duration_since(epoch).as_micros() as i64
}

async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

async fn send(c: &mut WsClient, m: &ClientMsg) -> Result<(), String> {
    c.try_send_raw(Message::binary(m.encode()))
        .await
        .map_err(|e| format!("send {m:?}: {e}"))
}

async fn hello(c: &mut WsClient) -> Result<(), String> {
    send(
        c,
        &ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            visible: true,
        },
    )
    .await
}

/// The next server message within `d` (`Ok(None)` when none came); anything that is not a
/// server message is an error.
async fn next_msg(c: &mut WsClient, d: Duration) -> Result<Option<Msg>, String> {
    match c.next_event(d).await {
        None => Ok(None),
        Some(Event::Msg(m)) => Ok(Some(m)),
        Some(other) => Err(format!("the connection gave {other:?}")),
    }
}

async fn first_video(c: &mut WsClient, d: Duration) -> Result<Frame, String> {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_msg(c, left).await? {
            Some(Msg::Video(f)) => return Ok(f),
            Some(Msg::Error { code, message }) => {
                return Err(format!("server Error {code:?}: {message}"))
            }
            Some(_) => {}
            None => return Err(format!("no Video within {d:?}")),
        }
    }
}

async fn close(mut c: WsClient) {
    let _ = c.try_send_raw(Message::Close(None)).await;
    // Let the server's close frame come back so the session ends cleanly.
    let _ = timeout(MS(200), async {
        while let Some(Event::Msg(_)) = c.next_event(MS(200)).await {}
    })
    .await;
}

/// Reads and discards messages for `d`.
async fn drain(c: &mut WsClient, d: Duration) -> Result<(), String> {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        next_msg(c, left).await?;
    }
}

/// Server clock minus client clock (µs) from the probe with the smallest round trip, and that
/// round trip (µs). `Video` messages that arrive meanwhile are skipped.
async fn clock_offset(c: &mut WsClient, epoch: Instant) -> Result<(i64, i64), String> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..PINGS {
        let sent = us_since(epoch, Instant::now());
        send(
            c,
            &ClientMsg::Ping {
                client_time_us: sent as u64,
            },
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match next_msg(c, left).await? {
                Some(Msg::Pong {
                    client_time_us,
                    server_time_us,
                }) if client_time_us == sent as u64 => {
                    let recv = us_since(epoch, Instant::now());
                    let rtt = recv - sent;
                    let offset = server_time_us as i64 - (sent + recv) / 2;
                    if best.is_none_or(|(r, _)| rtt < r) {
                        best = Some((rtt, offset));
                    }
                    break;
                }
                Some(_) => {}
                None => return Err("no Pong within 2 s".into()),
            }
        }
        sleep(MS(20)).await;
    }
    best.map(|(rtt, offset)| (offset, rtt))
        .ok_or_else(|| "no Pong".into())
}

// ---------------------------------------------------------------------------------------------
// The daemon from outside: /metrics, /proc, the sim console switch
// ---------------------------------------------------------------------------------------------

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime (clock ticks) from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[derive(Debug, Clone)]
struct CpuSnap {
    at: Instant,
    ticks: u64,
    /// (tid, name) → ticks.
    threads: HashMap<(u32, String), u64>,
}

fn cpu_snap(pid: u32) -> Result<CpuSnap, String> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let ticks = stat_ticks(&stat).ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))?;
    let mut threads = HashMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let name = std::fs::read_to_string(e.path().join("comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            if let Some(t) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(stat_ticks)
            {
                threads.insert((tid, name), t);
            }
        }
    }
    Ok(CpuSnap { at, ticks, threads })
}

/// CPU ms per wall second between two snapshots, in total and per thread name.
fn cpu_rate(a: &CpuSnap, b: &CpuSnap, tck: f64) -> (f64, Vec<(String, f64)>) {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let per = |ticks: u64| ticks as f64 / tck * 1000.0 / wall;
    let mut by_name: HashMap<String, u64> = HashMap::new();
    for (k, t1) in &b.threads {
        let t0 = a.threads.get(k).copied().unwrap_or(0);
        *by_name.entry(k.1.clone()).or_default() += t1.saturating_sub(t0);
    }
    let mut threads: Vec<(String, f64)> = by_name.into_iter().map(|(n, t)| (n, per(t))).collect();
    threads.sort_by(|x, y| y.1.total_cmp(&x.1));
    (per(b.ticks.saturating_sub(a.ticks)), threads)
}

fn proc_status(pid: u32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// A thread that switches the sim console between 3 and 1 every `period` until stopped
/// (also when dropped, e.g. by a timeout).
struct Switcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<SwitchLog>>,
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct SwitchLog {
    /// POST round trips, ms.
    posts_ms: Vec<f64>,
    errors: Vec<String>,
    /// How late each switch was sent against its schedule, ms.
    late_ms: Vec<f64>,
    /// When each POST was sent.
    sent_at: Vec<Instant>,
}

impl Switcher {
    fn start(addr: SocketAddr, period: Duration) -> Switcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut log = SwitchLog::default();
            let start = Instant::now();
            for k in 0u32.. {
                let due = start + period * k;
                loop {
                    if flag.load(Ordering::Relaxed) {
                        return log;
                    }
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    std::thread::sleep((due - now).min(MS(20)));
                }
                let t = Instant::now();
                log.sent_at.push(t);
                log.late_ms
                    .push(t.duration_since(due).as_secs_f64() * 1000.0);
                match post_console(addr, if k % 2 == 0 { 3 } else { 1 }) {
                    Ok(()) => log.posts_ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        if log.errors.len() < 5 {
                            log.errors.push(e);
                        }
                    }
                }
            }
            log
        });
        Switcher {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> SwitchLog {
        self.stop.store(true, Ordering::Relaxed);
        let joined = self.handle.take().map(JoinHandle::join);
        match joined {
            Some(Ok(log)) => log,
            _ => SwitchLog {
                errors: vec!["the switcher thread panicked".into()],
                ..SwitchLog::default()
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------------------------

/// One join: client times (µs since the epoch) of sending Hello, of the server's Hello and of
/// the first Video, and that Video's header values.
#[derive(Debug, Clone)]
struct Join {
    hello_sent: i64,
    hello_back: Option<i64>,
    arrived: i64,
    capture_us: u64,
    keyframe: bool,
    bytes: usize,
}

impl Join {
    fn ttff_ms(&self) -> f64 {
        (self.arrived - self.hello_sent) as f64 / 1000.0
    }
}

#[derive(Debug, Clone)]
struct Rec {
    seq: u32,
    keyframe: bool,
    bytes: usize,
    arrived: i64,
    capture_us: u64,
}

struct Scenario {
    key: &'static str,
    what: &'static str,
    period: Option<Duration>,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        key: "a",
        what: "idle console (clock + cursor only)",
        period: None,
    },
    Scenario {
        key: "b",
        what: "full-screen change every 1 s",
        period: Some(Duration::from_secs(1)),
    },
    Scenario {
        key: "c",
        what: "full-screen change every 100 ms",
        period: Some(Duration::from_millis(100)),
    },
];

#[derive(Debug, Default)]
struct ScenarioResult {
    /// Frames whose capture time (client clock) falls inside the window.
    frames: Vec<Rec>,
    window: Duration,
    offset_us: i64,
    rtt_us: i64,
    cpu: Option<(f64, Vec<(String, f64)>)>,
    metrics: Option<(Metrics, Metrics)>,
    switches: SwitchLog,
    /// When each console switch was sent, client µs.
    switch_us: Vec<i64>,
    /// Frames that arrived in the window but were captured before it, or after the grace.
    outside: usize,
}

impl ScenarioResult {
    fn latencies_ms(&self, filter: impl Fn(&Rec) -> bool) -> Vec<f64> {
        self.frames
            .iter()
            .filter(|r| filter(r))
            .map(|r| (r.arrived - (r.capture_us as i64 - self.offset_us)) as f64 / 1000.0)
            .collect()
    }

    fn secs(&self) -> f64 {
        self.window.as_secs_f64()
    }

    fn fps(&self) -> f64 {
        self.frames.len() as f64 / self.secs()
    }

    fn kbps(&self) -> f64 {
        self.frames.iter().map(|r| r.bytes).sum::<usize>() as f64 * 8.0 / 1000.0 / self.secs()
    }

    fn keyframes(&self) -> usize {
        self.frames.iter().filter(|r| r.keyframe).count()
    }

    fn seq_gaps(&self) -> u32 {
        self.frames
            .windows(2)
            .map(|w| w[1].seq.wrapping_sub(w[0].seq).saturating_sub(1))
            .sum()
    }

    fn max_interval_ms(&self) -> f64 {
        self.frames
            .windows(2)
            .map(|w| w[1].capture_us.saturating_sub(w[0].capture_us) as f64 / 1000.0)
            .fold(0.0, f64::max)
    }

    fn captured_client(&self, r: &Rec) -> i64 {
        r.capture_us as i64 - self.offset_us
    }

    /// Splits the frames after the first by how many console switches were sent between the
    /// previous frame's capture and this one's (a grab ticked before the switch command is
    /// ahead of it in the media thread's queue): (frames, of them keyframes) for 0, 1 and 2+
    /// switches.
    fn by_switches(&self) -> [(usize, usize); 3] {
        let mut out = [(0, 0); 3];
        for w in self.frames.windows(2) {
            let (prev, cur) = (self.captured_client(&w[0]), self.captured_client(&w[1]));
            let n = self
                .switch_us
                .iter()
                .filter(|&&s| prev <= s && s < cur)
                .count()
                .min(2);
            out[n].0 += 1;
            out[n].1 += usize::from(w[1].keyframe);
        }
        out
    }

    fn metric_delta(&self, series: &str) -> Option<f64> {
        let (a, b) = self.metrics.as_ref()?;
        Some(b.get(series)? - a.get(series)?)
    }
}

struct Figures {
    addr: SocketAddr,
    pid: u32,
    rng: Rng,
    seed: u64,
    epoch: Instant,
    run_start: Instant,
    tck: f64,
    cold: Option<Join>,
    idle_joins: Vec<Join>,
    anchored_joins: Vec<Join>,
    /// Clock offset and round trip from the anchor viewer (µs).
    anchor_offset: Option<(i64, i64)>,
    anchor_frames: u64,
    scenarios: Vec<(usize, Result<ScenarioResult, String>)>,
    memory: Option<(String, String)>,
    /// VmRSS before the first viewer, and RssAnon / RssFile at the end.
    memory_extra: (Option<String>, Option<String>, Option<String>),
    errors: Vec<String>,
    notes: Vec<String>,
}

impl Figures {
    fn new(addr: SocketAddr, pid: u32, seed: u64, run_start: Instant) -> Self {
        Self {
            addr,
            pid,
            rng: Rng(seed | 1),
            seed,
            epoch: Instant::now(),
            run_start,
            tck: clk_tck(),
            cold: None,
            idle_joins: Vec::new(),
            anchored_joins: Vec::new(),
            anchor_offset: None,
            anchor_frames: 0,
            scenarios: Vec::new(),
            memory: None,
            memory_extra: (None, None, None),
            errors: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn over_budget(&mut self, part: &str) -> bool {
        let over = self.run_start.elapsed() > RUN_BUDGET;
        if over {
            self.errors.push(format!(
                "{part}: skipped, the run is over its {RUN_BUDGET:?} budget"
            ));
        }
        over
    }

    async fn run(&mut self) {
        self.memory_extra.0 = proc_status(self.pid, "VmRSS");
        // The very first join also builds the encoder: measured, but kept apart.
        match self.join_once().await {
            Ok(j) => self.cold = Some(j),
            Err(e) => self.errors.push(format!("cold join: {e}")),
        }
        if !self.over_budget("idle joins") {
            match timeout(IDLE_JOINS_CAP, self.idle_joins()).await {
                Some(Ok(())) => {}
                Some(Err(e)) => self.errors.push(format!("idle joins: {e}")),
                None => self
                    .errors
                    .push(format!("idle joins: stopped after {IDLE_JOINS_CAP:?}")),
            }
        }
        if !self.over_budget("anchored joins") {
            match timeout(ANCHORED_JOINS_CAP, self.anchored_joins()).await {
                Some(Ok(())) => {}
                Some(Err(e)) => self.errors.push(format!("anchored joins: {e}")),
                None => self.errors.push(format!(
                    "anchored joins: stopped after {ANCHORED_JOINS_CAP:?}"
                )),
            }
        }
        for (i, sc) in SCENARIOS.iter().enumerate() {
            if self.over_budget(&format!("scenario ({})", sc.key)) {
                break;
            }
            let r = match timeout(SCENARIO_CAP, self.scenario(sc)).await {
                Some(r) => r,
                None => Err(format!("stopped after {SCENARIO_CAP:?}")),
            };
            self.scenarios.push((i, r));
        }
        self.memory_extra.1 = proc_status(self.pid, "RssAnon");
        self.memory_extra.2 = proc_status(self.pid, "RssFile");
        self.memory = match (
            proc_status(self.pid, "VmRSS"),
            proc_status(self.pid, "VmHWM"),
        ) {
            (Some(rss), Some(hwm)) => Some((rss, hwm)),
            _ => {
                self.errors
                    .push(format!("cannot read /proc/{}/status", self.pid));
                None
            }
        };
    }

    /// Connects (handshake not timed), sends Hello and times the first Video.
    async fn join_once(&mut self) -> Result<Join, String> {
        let mut c = WsClient::connect(self.addr).await;
        let sent = Instant::now();
        hello(&mut c).await?;
        let mut hello_back = None;
        let deadline = sent + Duration::from_secs(3);
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match next_msg(&mut c, left).await {
                Err(e) => break Err(e),
                Ok(None) => break Err("no Video within 3 s of Hello".into()),
                Ok(Some(Msg::Hello { .. })) => {
                    hello_back = Some(us_since(self.epoch, Instant::now()))
                }
                Ok(Some(Msg::Video(f))) => {
                    let j = Join {
                        hello_sent: us_since(self.epoch, sent),
                        hello_back,
                        arrived: us_since(self.epoch, f.at),
                        capture_us: f.header.capture_us,
                        keyframe: f.header.keyframe,
                        bytes: f.data.len(),
                    };
                    break if !f.header.keyframe || f.header.codec != Codec::H264 {
                        Err(format!(
                            "the first Video is not an H.264 keyframe: {}",
                            f.describe()
                        ))
                    } else if let Err(e) = h264::check_keyframe_au(&f.data) {
                        Err(format!("first Video {}: {e}", f.describe()))
                    } else {
                        Ok(j)
                    };
                }
                Ok(Some(_)) => {}
            }
        };
        close(c).await;
        result
    }

    /// True once no viewer is connected and capture has stopped ticking.
    async fn wait_capture_idle(&mut self) -> Result<bool, String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let a = metrics(self.addr)?;
            sleep(MS(150)).await;
            let b = metrics(self.addr)?;
            let s = "nanokvmd_frames_captured_total";
            if b.sum("nanokvmd_viewers") == 0.0 && a.get(s).is_some() && a.get(s) == b.get(s) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn idle_joins(&mut self) -> Result<(), String> {
        let mut not_idle = 0;
        for i in 0..IDLE_JOINS {
            let gap = self.rng.range_ms(300, 700);
            sleep(gap).await;
            if !self.wait_capture_idle().await? {
                not_idle += 1;
            }
            match self.join_once().await {
                Ok(j) => self.idle_joins.push(j),
                Err(e) => self.errors.push(format!("idle join {i}: {e}")),
            }
        }
        if not_idle > 0 {
            self.notes.push(format!(
                "{not_idle} of the idle joins started while capture was still ticking"
            ));
        }
        Ok(())
    }

    async fn anchored_joins(&mut self) -> Result<(), String> {
        let addr = self.addr;
        let epoch = self.epoch;
        let mut anchor = WsClient::connect(addr).await;
        hello(&mut anchor).await?;
        first_video(&mut anchor, Duration::from_secs(3)).await?;
        self.anchor_offset = Some(clock_offset(&mut anchor, epoch).await?);
        drain(&mut anchor, MS(300)).await?;

        let mut anchor_frames = 0u64;
        let mut anchor_error = None;
        let drain_anchor = async {
            loop {
                match anchor.next_event(Duration::from_secs(5)).await {
                    Some(Event::Msg(Msg::Video(_))) => anchor_frames += 1,
                    Some(Event::Msg(_)) | None => {}
                    Some(other) => {
                        anchor_error = Some(format!("the anchor viewer's connection: {other:?}"));
                        return None;
                    }
                }
            }
        };
        let joins = async {
            for i in 0..ANCHORED_JOINS {
                let gap = self.rng.range_ms(50, 400);
                sleep(gap).await;
                match self.join_once().await {
                    Ok(j) => self.anchored_joins.push(j),
                    Err(e) => self.errors.push(format!("anchored join {i}: {e}")),
                }
            }
            Some(())
        };
        future::or(joins, drain_anchor).await;
        self.anchor_frames = anchor_frames;
        close(anchor).await;
        match anchor_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn scenario(&mut self, sc: &Scenario) -> Result<ScenarioResult, String> {
        let addr = self.addr;
        // Every scenario starts on console 1 with capture idle.
        post_console(addr, 1)?;
        self.wait_capture_idle().await?;
        let mut c = WsClient::connect(addr).await;
        hello(&mut c).await?;
        let first = first_video(&mut c, Duration::from_secs(3)).await?;
        if !first.header.keyframe {
            return Err(format!("first Video not a keyframe: {}", first.describe()));
        }
        let (offset_us, rtt_us) = clock_offset(&mut c, self.epoch).await?;
        // The new-viewer IDR and anything queued behind it are past before the window opens.
        drain(&mut c, MS(700)).await?;

        let m0 = metrics(addr);
        let cpu0 = cpu_snap(self.pid);
        let start = Instant::now();
        let end = start + WINDOW;
        let switcher = sc.period.map(|p| Switcher::start(addr, p));
        let mut frames = Vec::new();
        let mut error = None;
        let mut cpu1 = None;
        let mut m1 = None;
        loop {
            let now = Instant::now();
            if cpu1.is_none() && now >= end {
                cpu1 = Some(cpu_snap(self.pid));
                m1 = Some(metrics(addr));
            }
            if now >= end + GRACE {
                break;
            }
            let until = if now < end { end } else { end + GRACE };
            match next_msg(&mut c, until.saturating_duration_since(now)).await {
                Ok(Some(Msg::Video(f))) => frames.push(Rec {
                    seq: f.header.seq,
                    keyframe: f.header.keyframe,
                    bytes: f.data.len(),
                    arrived: us_since(self.epoch, f.at),
                    capture_us: f.header.capture_us,
                }),
                Ok(_) => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let switches = switcher.map(Switcher::finish).unwrap_or_default();
        close(c).await;
        if let Some(e) = error {
            return Err(e);
        }
        let (w0, w1) = (us_since(self.epoch, start), us_since(self.epoch, end));
        let total = frames.len();
        frames.retain(|r| {
            let captured = r.capture_us as i64 - offset_us;
            (w0..w1).contains(&captured)
        });
        let cpu = match (cpu0, cpu1) {
            (Ok(a), Some(Ok(b))) => Some(cpu_rate(&a, &b, self.tck)),
            (Err(e), _) | (_, Some(Err(e))) => {
                self.errors.push(format!("({}) CPU: {e}", sc.key));
                None
            }
            _ => None,
        };
        let metrics = match (m0, m1) {
            (Ok(a), Some(Ok(b))) => Some((a, b)),
            (Err(e), _) | (_, Some(Err(e))) => {
                self.errors.push(format!("({}) /metrics: {e}", sc.key));
                None
            }
            _ => None,
        };
        Ok(ScenarioResult {
            switch_us: switches
                .sent_at
                .iter()
                .map(|&t| us_since(self.epoch, t))
                .collect(),
            outside: total - frames.len(),
            frames,
            window: WINDOW,
            offset_us,
            rtt_us,
            cpu,
            metrics,
            switches,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Output
    // -----------------------------------------------------------------------------------------

    fn print(&self) {
        let mut rows: Vec<(String, String, String)> = Vec::new();
        let ttff = |v: &[Join]| stats(&v.iter().map(Join::ttff_ms).collect::<Vec<_>>());
        rows.push((
            "1a. time to first frame, joining while another viewer watches".into(),
            fmt_stats(ttff(&self.anchored_joins), "ms"),
            format!(
                "Hello sent (after TCP+WS handshake) -> first Video received, all keyframes checked \
                 (SPS,PPS,IDR); {ANCHORED_JOINS} joins, random 50-400 ms gaps, 1 other viewer connected"
            ),
        ));
        rows.push((
            "1b. time to first frame, first viewer (capture idle)".into(),
            fmt_stats(ttff(&self.idle_joins), "ms"),
            format!(
                "same, {IDLE_JOINS} joins as the only viewer, 300-700 ms apart; /metrics showed 0 viewers \
                 and frames_captured_total still for 150 ms before each"
            ),
        ));
        for (i, r) in &self.scenarios {
            let sc = &SCENARIOS[*i];
            let value = match r {
                Ok(r) => format!(
                    "{:.1} fps, {:.0} kbit/s, {} keyframes ({} frames, {} KiB)",
                    r.fps(),
                    r.kbps(),
                    r.keyframes(),
                    r.frames.len(),
                    r.frames.iter().map(|f| f.bytes).sum::<usize>() / 1024
                ),
                Err(e) => format!("error: {e}"),
            };
            let how = match sc.period {
                None => "1 viewer, 720p30, console 1 untouched".to_string(),
                Some(p) => format!(
                    "1 viewer, 720p30, POST /api/sim/console 3,1,3,... every {} ms from a separate thread",
                    p.as_millis()
                ),
            };
            rows.push((
                format!("2{}. fps / bitrate, {}", sc.key, sc.what),
                value,
                format!(
                    "{how}; Video messages whose capture_us (on the client clock) is inside a 10 s window; \
                     kbit/s = payload (Annex-B) bytes x 8 / 10 s"
                ),
            ));
        }
        for (i, r) in &self.scenarios {
            let sc = &SCENARIOS[*i];
            let value = match r {
                Ok(ScenarioResult {
                    cpu: Some((total, threads)),
                    ..
                }) => {
                    let per: Vec<String> = threads
                        .iter()
                        .filter(|(_, v)| *v >= 0.05)
                        .map(|(n, v)| format!("{n} {v:.0}"))
                        .collect();
                    format!(
                        "{total:.0} ms/s ({:.1}% of one core; {})",
                        total / 10.0,
                        if per.is_empty() {
                            "no thread above 0".into()
                        } else {
                            per.join(", ")
                        }
                    )
                }
                Ok(_) => "not measured (see errors)".into(),
                Err(e) => format!("error: {e}"),
            };
            rows.push((
                format!("3{}. daemon CPU during ({})", sc.key, sc.key),
                value,
                format!(
                    "utime+stime of /proc/PID/stat (and per thread from /proc/PID/task/*/stat) at the start \
                     and end of the 10 s window, / wall time; CLK_TCK {}",
                    self.tck
                ),
            ));
        }
        rows.push((
            "3m. daemon memory at the end".into(),
            match &self.memory {
                Some((rss, hwm)) => {
                    let (start, anon, file) = &self.memory_extra;
                    let na = || "?".to_string();
                    format!(
                        "VmRSS {rss}, VmHWM {hwm} (RssAnon {}, RssFile {}; VmRSS {} before the first viewer)",
                        anon.clone().unwrap_or_else(na),
                        file.clone().unwrap_or_else(na),
                        start.clone().unwrap_or_else(na)
                    )
                }
                None => "not measured (see errors)".into(),
            },
            "/proc/PID/status after all of the above (the last viewer has left)".into(),
        ));
        for (i, r) in &self.scenarios {
            let sc = &SCENARIOS[*i];
            let (value, how) = match r {
                Ok(r) => (
                    fmt_stats(stats(&r.latencies_ms(|_| true)), "ms"),
                    format!(
                        "arrival (client clock) - (capture_us - offset); offset = server_time_us - (t_sent+t_recv)/2 \
                         from the Pong with the smallest round trip of {PINGS} on the same socket (rtt {} us)",
                        r.rtt_us
                    ),
                ),
                Err(e) => (format!("error: {e}"), String::new()),
            };
            let required = if sc.key == "c" { "" } else { " (extra)" };
            rows.push((
                format!(
                    "4{}. capture -> arrival latency during ({}){required}",
                    sc.key, sc.key
                ),
                value,
                how,
            ));
        }

        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        println!("{:<w0$} | {:<w1$} | how it was measured", "figure", "value");
        println!(
            "{}-+-{}-+-{}",
            "-".repeat(w0),
            "-".repeat(w1),
            "-".repeat(40)
        );
        for (a, b, c) in &rows {
            println!("{a:<w0$} | {b:<w1$} | {c}");
        }

        println!("\nnotes:");
        for n in self.details() {
            println!("- {n}");
        }
        if !self.errors.is_empty() {
            println!("\nerrors:");
            for e in &self.errors {
                println!("- {e}");
            }
        }
    }

    /// Secondary numbers that help read the table.
    fn details(&self) -> Vec<String> {
        let mut out = self.notes.clone();
        let ms = |v: f64| format!("{v:.1} ms");
        if let Some(j) = &self.cold {
            out.push(format!(
                "cold join (the first after start-up; builds the H.264 encoder, not in 1b): {}, IDR {} bytes",
                ms(j.ttff_ms()),
                j.bytes
            ));
        }
        let breakdown = |name: &str, joins: &[Join]| -> Option<String> {
            let (offset, _) = self.anchor_offset?;
            let hello: Vec<f64> = joins
                .iter()
                .filter_map(|j| Some((j.hello_back? - j.hello_sent) as f64 / 1000.0))
                .collect();
            // Capture time on the client clock minus the Hello: waiting for the next grab (can
            // be negative: a grab already in flight when the join arrived carries the IDR).
            let wait: Vec<f64> = joins
                .iter()
                .map(|j| ((j.capture_us as i64 - offset) - j.hello_sent) as f64 / 1000.0)
                .collect();
            let c2a: Vec<f64> = joins
                .iter()
                .map(|j| (j.arrived - (j.capture_us as i64 - offset)) as f64 / 1000.0)
                .collect();
            let bytes: Vec<f64> = joins.iter().map(|j| j.bytes as f64 / 1024.0).collect();
            let keys = joins.iter().filter(|j| j.keyframe).count();
            Some(format!(
                "{name}: Hello -> server Hello {}; Hello -> capture of the first frame {}; \
                 its capture -> arrival {}; IDR size {}; {keys}/{} first frames were keyframes",
                fmt_stats(stats(&hello), "ms"),
                fmt_stats(stats(&wait), "ms"),
                fmt_stats(stats(&c2a), "ms"),
                fmt_stats(stats(&bytes), "KiB"),
                joins.len()
            ))
        };
        out.extend(breakdown("1a breakdown", &self.anchored_joins));
        out.extend(breakdown("1b breakdown", &self.idle_joins));
        if let Some((offset, rtt)) = self.anchor_offset {
            out.push(format!(
                "clock offset from the anchor viewer: {offset} us (rtt {rtt} us); the anchor received {} frames \
                 during the 30 joins",
                self.anchor_frames
            ));
        }
        for (i, r) in &self.scenarios {
            let sc = &SCENARIOS[*i];
            let Ok(r) = r else { continue };
            let mut s = format!(
                "({}) offset {} us, seq gaps {}, longest capture interval between received frames {}, \
                 {} frames outside the window ignored",
                sc.key,
                r.offset_us,
                r.seq_gaps(),
                ms(r.max_interval_ms()),
                r.outside
            );
            let key_lat = stats(&r.latencies_ms(|f| f.keyframe));
            let delta_lat = stats(&r.latencies_ms(|f| !f.keyframe));
            let _ = write!(
                s,
                "; latency keyframes {}, delta frames {}",
                fmt_stats(key_lat, "ms"),
                fmt_stats(delta_lat, "ms")
            );
            let key_kib: Vec<f64> = r
                .frames
                .iter()
                .filter(|f| f.keyframe)
                .map(|f| f.bytes as f64 / 1024.0)
                .collect();
            let delta_kib: Vec<f64> = r
                .frames
                .iter()
                .filter(|f| !f.keyframe)
                .map(|f| f.bytes as f64 / 1024.0)
                .collect();
            let _ = write!(
                s,
                "; size keyframes {}, delta {}",
                fmt_stats(stats(&key_kib), "KiB"),
                fmt_stats(stats(&delta_kib), "KiB")
            );
            out.push(s);
            if r.metrics.is_some() {
                let d = |k: &str| r.metric_delta(k).unwrap_or(f64::NAN);
                let encoded = d("nanokvmd_frames_encoded_total{codec=\"h264\"}");
                let enc_s = d("nanokvmd_encode_seconds_sum{codec=\"h264\"}");
                let reasons: Vec<String> = [
                    "new_viewer",
                    "client_request",
                    "scene_change",
                    "resume",
                    "overflow",
                    "settings",
                    "resolution",
                    "gop",
                ]
                .iter()
                .filter_map(|reason| {
                    let v = d(&format!("nanokvmd_idr_total{{reason=\"{reason}\"}}"));
                    (v > 0.0).then(|| format!("{reason} {v}"))
                })
                .collect();
                out.push(format!(
                    "({}) daemon /metrics over the window: captured {}, unchanged {}, encoded {}, \
                     mean encode {:.1} ms, dropped {}, IDRs by reason: {}",
                    sc.key,
                    d("nanokvmd_frames_captured_total"),
                    d("nanokvmd_frames_unchanged_total"),
                    encoded,
                    if encoded > 0.0 {
                        enc_s * 1000.0 / encoded
                    } else {
                        0.0
                    },
                    d("nanokvmd_frames_dropped_total"),
                    if reasons.is_empty() {
                        "none".into()
                    } else {
                        reasons.join(", ")
                    }
                ));
            }
            if sc.period.is_some() {
                let [none, one, more] = r.by_switches();
                out.push(format!(
                    "({}) frames by console switches since the previous frame: 0 switches {} frames \
                     ({} keyframes), 1 switch {} ({} keyframes), 2+ switches {} ({} keyframes)",
                    sc.key, none.0, none.1, one.0, one.1, more.0, more.1
                ));
                let sw = &r.switches;
                out.push(format!(
                    "({}) console switches: {} sent, POST round trip {}, sent late by {}{}",
                    sc.key,
                    sw.late_ms.len(),
                    fmt_stats(stats(&sw.posts_ms), "ms"),
                    fmt_stats(stats(&sw.late_ms), "ms"),
                    if sw.errors.is_empty() {
                        String::new()
                    } else {
                        format!("; errors: {}", sw.errors.join("; "))
                    }
                ));
            }
        }
        out.push(format!(
            "seed {}: VIDEO_FIGURES_SEED={} repeats the join gaps",
            self.seed, self.seed
        ));
        out
    }
}
