//! Harness for the end-to-end tests: runs the real `nanokvmd` binary and talks to it the way a
//! browser or a tool would, over HTTP/1.1 and the `/api/ws` WebSocket, authenticated with the
//! daemon's API token unless told otherwise (`credentials.rs`), over TLS when
//! `NANOKVM_E2E_TLS=1` (`transport.rs`).
//!
//! Every wait here is bounded, so a daemon that hangs makes a test fail with a message that
//! says what was awaited, instead of making the suite hang. The daemon's stderr is kept and
//! printed when a test panics while the daemon is alive.
//!
//! The binary is `$NANOKVMD_BIN`, else `<workspace>/target/debug/nanokvmd`
//! (`$CARGO_TARGET_DIR/debug/nanokvmd` when that is set); build it first with
//! `cargo build -p nanokvmd`.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use nanokvm_protocol as proto;

mod credentials;
mod transport;
pub use credentials::{e2e_tls, Auth, Credentials, E2E_PASSWORD, E2E_TOKEN_NAME, E2E_USER};
pub use transport::{connect_async, AsyncConn, SyncConn};
pub mod bench;

/// Upper bound for the daemon to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

/// Runs `fut` for at most `d`; `None` when the time ran out first.
pub async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(d).await;
        None
    })
    .await
}

/// Runs `fut` for at most `d` and panics, naming `what`, when it takes longer.
pub async fn within<T>(d: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match timeout(d, fut).await {
        Some(v) => v,
        None => panic!("timed out after {d:?} waiting for {what}"),
    }
}

/// Runs an async test body on the current thread.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    smol::block_on(fut)
}

// ---------------------------------------------------------------------------------------------
// Paths and temp dirs
// ---------------------------------------------------------------------------------------------

pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Set by [`use_daemon_bin`]: a binary that replaces `NANOKVMD_BIN` for a while.
static DAEMON_BIN_OVERRIDE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Daemons (and CLI runs) started from now on use `bin` (`None`: back to the usual one). The
/// bench runs its replay rows with the daemon built as for the device.
pub fn use_daemon_bin(bin: Option<PathBuf>) {
    *DAEMON_BIN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = bin;
}

/// The daemon binary under test.
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = DAEMON_BIN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return p;
    }
    if let Some(p) = std::env::var_os("NANOKVMD_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "NANOKVMD_BIN={} does not exist", p.display());
        return p;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace_dir().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_dir().join("target"));
    let p = target.join("debug").join("nanokvmd");
    if !p.exists() {
        panic!(
            "{} does not exist: build it first: cargo build -p nanokvmd (or set NANOKVMD_BIN)",
            p.display()
        );
    }
    p
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("nanokvm-e2e-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the dir and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon process
// ---------------------------------------------------------------------------------------------

/// Keeps the last `LOG_CAP` bytes of the daemon's output.
const LOG_CAP: usize = 128 * 1024;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<String>>);

impl Log {
    fn push(&self, line: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str(line);
        s.push('\n');
        if s.len() > LOG_CAP {
            let mut cut = s.len() - LOG_CAP;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn spawn_line_reader(
    pipe: impl Read + Send + 'static,
    log: Log,
    prefix: &'static str,
    first_listen: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut tx = first_listen;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(t) = &tx {
                if line.starts_with("nanokvmd listening on ") {
                    let _ = t.send(line.clone());
                    tx = None;
                }
            }
            log.push(&format!("{prefix}{line}"));
        }
    })
}

/// A running `nanokvmd --listen 127.0.0.1:0 --backend sim ...`; killed on drop.
pub struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: Log,
    exited: Option<ExitStatus>,
    /// The daemon's data directory (accounts, certificate), when the harness made it.
    data: Option<TempDir>,
}

/// The pids of the daemons alive now, for [`kill_daemons_on_panic`].
static LIVE_DAEMONS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn live_daemons() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE_DAEMONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// For the measurement programs, built in release where a panic aborts and so skips
/// `Daemon`'s drop: on a panic, say `program: internal error: …` and kill every daemon still
/// running, as the drop would have.
pub fn kill_daemons_on_panic(program: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("{program}: internal error: {info}");
        for pid in live_daemons().iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }));
}

/// Starts the binary with `args`, its stdout and stderr piped.
fn spawn_piped(args: &[&str], stdin: Stdio) -> Child {
    Command::new(daemon_bin())
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", daemon_bin().display()))
}

/// Runs a `nanokvmd` account command (`user add ...`, `token new ...`) with `stdin`; panics
/// with its output when it fails. Returns its stdout.
pub fn run_cli(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = spawn_piped(args, Stdio::piped());
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for nanokvmd");
    assert!(
        out.status.success(),
        "nanokvmd {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Daemon {
    /// Starts the daemon with the sim backend on a free port plus `args`, and waits (bounded)
    /// for its listening line. Its data directory is fresh and holds the user [`E2E_USER`] and
    /// an API token that every request helper and `WsClient` sends by default. With
    /// `NANOKVM_E2E_TLS=1` it serves HTTPS.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with_data("sim", args, true)
    }

    /// Like [`start`](Self::start) with another `--backend` (`device`, pointed at the mock
    /// vendor library by `args`).
    pub fn start_backend(backend: &str, args: &[&str]) -> Daemon {
        Self::start_with_data(backend, args, true)
    }

    /// Like [`start`](Self::start) but without any account: the daemon waits for setup.
    pub fn start_unprovisioned(args: &[&str]) -> Daemon {
        Self::start_with_data("sim", args, false)
    }

    fn start_with_data(backend: &str, args: &[&str], provision: bool) -> Daemon {
        let data = TempDir::new("data");
        let dir = data.path().display().to_string();
        let (mut user, mut token) = (None, None);
        if provision {
            run_cli(
                &[
                    "user",
                    "add",
                    E2E_USER,
                    "--password-stdin",
                    "--data-dir",
                    &dir,
                ],
                &format!("{E2E_PASSWORD}\n"),
            );
            let out = run_cli(&["token", "new", E2E_TOKEN_NAME, "--data-dir", &dir], "");
            user = Some((E2E_USER.to_string(), E2E_PASSWORD.to_string()));
            token = Some(out.trim().to_string());
        }
        let mut full = vec![
            "--listen",
            "127.0.0.1:0",
            "--backend",
            backend,
            "--data-dir",
            &dir,
        ];
        let tls_asked = args.windows(2).any(|w| w == ["--tls", "on"]);
        if e2e_tls() && !tls_asked {
            full.extend_from_slice(&["--tls", "on"]);
        }
        full.extend_from_slice(args);
        let mut d = Self::start_raw(&full);
        let tls = (e2e_tls() || tls_asked)
            .then(|| credentials::trust_only(&data.path().join("tls-cert.pem")));
        credentials::register(
            d.addr,
            Credentials {
                data_dir: data.path().to_path_buf(),
                user,
                token,
                tls,
            },
        );
        d.data = Some(data);
        d
    }

    /// What the harness provisioned for this daemon.
    pub fn credentials(&self) -> Credentials {
        credentials::for_addr(self.addr).expect("a daemon started with Daemon::start")
    }

    /// The daemon's data directory (only for daemons the harness provisioned).
    pub fn data_dir(&self) -> &Path {
        self.data
            .as_ref()
            .expect("a daemon started with Daemon::start")
            .path()
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn origin(&self) -> String {
        let scheme = if credentials::tls_for(self.addr).is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Starts the daemon with exactly `args`.
    pub fn start_raw(args: &[&str]) -> Daemon {
        let mut cmd = Command::new(daemon_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", daemon_bin().display()));
        let log = Log::default();
        let (tx, rx) = mpsc::channel();
        let out = spawn_line_reader(
            child.stdout.take().expect("stdout"),
            log.clone(),
            "[stdout] ",
            Some(tx),
        );
        let err = spawn_line_reader(child.stderr.take().expect("stderr"), log.clone(), "", None);
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let _ = out.join();
                let _ = err.join();
                panic!(
                    "nanokvmd {args:?} did not print `nanokvmd listening on http://ADDR/` \
                     ({}; exit status {status:?}). Its output:\n{}",
                    match e {
                        mpsc::RecvTimeoutError::Timeout => format!("waited {START_TIMEOUT:?}"),
                        mpsc::RecvTimeoutError::Disconnected => "stdout closed".to_string(),
                    },
                    log.get()
                );
            }
        };
        let addr = parse_listen_line(&line).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("cannot parse the listening line {line:?}")
        });
        live_daemons().push(child.id());
        Daemon {
            child,
            addr,
            log,
            exited: None,
            data: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon wrote so far (stderr, and stdout lines prefixed `[stdout] `).
    pub fn output(&self) -> String {
        self.log.get()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                self.exited = Some(st);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Panics (with the daemon's output) unless the process is still running.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!(
                "nanokvmd exited unexpectedly ({:?}). Its output:\n{}",
                self.exited,
                self.output()
            );
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits (polling) for the process to exit; `None` when it is still running after `d`.
    pub fn wait_exit(&mut self, d: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(st) = self.exited {
                return Some(st);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then waits up to `d`; returns the exit status and how long the exit took.
    /// Panics when the daemon is still running after `d`.
    pub fn stop_within(&mut self, d: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        if self.is_running() {
            self.signal("TERM");
        }
        match self.wait_exit(d) {
            Some(st) => (st, t0.elapsed()),
            None => panic!(
                "nanokvmd did not exit within {d:?} of SIGTERM. Its output:\n{}",
                self.output()
            ),
        }
    }

    /// SIGTERM and wait (up to 5 s) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_within(Duration::from_secs(5)).0
    }

    /// Resident set size (`VmRSS`) in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS")
            .expect("VmRSS in /proc/PID/status")
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`, ...).
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// `VmRSS RssAnon RssFile` for log lines.
    pub fn memory_summary(&self) -> String {
        let f = |k| {
            self.proc_status_kib(k)
                .map_or("?".to_string(), |v| format!("{v} KiB"))
        };
        format!(
            "VmRSS {} (anon {}, file {})",
            f("VmRSS"),
            f("RssAnon"),
            f("RssFile")
        )
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        let r = http::get(self.addr, "/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.summary());
        Metrics::parse(&r.text())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- nanokvmd (pid {}) output ----\n{}---- end of nanokvmd output ----",
                self.pid(),
                self.output()
            );
        }
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        credentials::unregister(self.addr);
        let pid = self.pid();
        live_daemons().retain(|&p| p != pid);
    }
}

/// `nanokvmd listening on http(s)://127.0.0.1:PORT/` → the address.
pub fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix("nanokvmd listening on ")?;
    rest.strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))?
        .strip_suffix('/')?
        .parse()
        .ok()
}

/// What a short-lived run of the binary produced.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs the binary with exactly `args` and waits (at most `d`) for it to exit; panics, with its
/// output, when it is still running then (it is killed).
pub fn run_daemon(args: &[&str], d: Duration) -> RunOutput {
    let mut child = spawn_piped(args, Stdio::null());
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + d;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "nanokvmd {args:?} still running after {d:?} (killed).\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    RunOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------------

/// Prometheus text exposition, as `(series, value)` pairs; the series is the name with its
/// label set exactly as written, e.g. `nanokvmd_idr_total{reason="new_viewer"}`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<(String, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, rest) = match line.find('}') {
                Some(i) if line[..i].contains('{') => (&line[..=i], &line[i + 1..]),
                _ => match line.split_once(char::is_whitespace) {
                    Some((s, r)) => (s, r),
                    None => continue,
                },
            };
            let Some(value) = rest.split_whitespace().next() else {
                continue;
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            let series: String = series.chars().filter(|c| !c.is_whitespace()).collect();
            samples.push((series, value));
        }
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// The value of one series, e.g. `nanokvmd_frames_sent_total{codec="h264"}`.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
    }

    /// True when some sample has the metric name `name` (any labels).
    pub fn has(&self, name: &str) -> bool {
        self.samples
            .iter()
            .any(|(s, _)| s.split('{').next() == Some(name))
    }

    /// The sum over every label set of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(s, _)| s.split('{').next() == Some(name))
            .map(|(_, v)| *v)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

pub mod http {
    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use crate::{Auth, SyncConn};

    /// Default bound for whole requests.
    pub const TIMEOUT: Duration = Duration::from_secs(10);

    #[derive(Debug, Clone)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            find_header(&self.headers, name)
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// Status, headers and the start of the body, for assertion messages.
        pub fn summary(&self) -> String {
            let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
            format!(
                "status {} headers {:?} body {body:?}",
                self.status, self.headers
            )
        }
    }

    fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get(addr: SocketAddr, path: &str) -> Response {
        request(addr, "GET", path, &[], b"", TIMEOUT).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
        request(
            addr,
            "POST",
            path,
            &[("Content-Type", content_type)],
            body,
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn post_json(addr: SocketAddr, path: &str, json: &str) -> Response {
        post(addr, path, "application/json", json.as_bytes())
    }

    /// One request on a fresh connection (`Connection: close`); reads the whole body.
    pub fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        d: Duration,
    ) -> io::Result<Response> {
        request_as(addr, &Auth::Default, method, path, headers, body, d)
    }

    /// Like [`request`] with the given authentication.
    pub fn request_as(
        addr: SocketAddr,
        auth: &Auth,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        d: Duration,
    ) -> io::Result<Response> {
        let deadline = Instant::now() + d;
        let mut s = BodyStream::open_as(addr, auth, method, path, headers, body, deadline)?;
        let mut out = Vec::new();
        loop {
            match s.read_some(deadline)? {
                Chunk::Data(d) => out.extend_from_slice(&d),
                Chunk::Eof => break,
                Chunk::Timeout => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "body not complete after {d:?} (status {}, got {} bytes)",
                            s.status,
                            out.len()
                        ),
                    ))
                }
            }
        }
        Ok(Response {
            status: s.status,
            headers: s.headers,
            body: out,
        })
    }

    /// What [`BodyStream::read_some`] got.
    #[derive(Debug)]
    pub enum Chunk {
        Data(Vec<u8>),
        Eof,
        Timeout,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Framing {
        Chunked(ChunkState),
        Length(usize),
        Close,
        Done,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum ChunkState {
        Size,
        Data(usize),
        DataEnd,
    }

    /// A response whose body is read incrementally (for endless streams).
    pub struct BodyStream {
        stream: SyncConn,
        raw: Vec<u8>,
        framing: Framing,
        sock_eof: bool,
        pub status: u16,
        pub headers: Vec<(String, String)>,
    }

    impl BodyStream {
        /// Sends a GET and reads the status line and headers (bounded by [`TIMEOUT`]).
        pub fn get(addr: SocketAddr, path: &str) -> io::Result<Self> {
            Self::open_with(addr, "GET", path, &[], b"", Instant::now() + TIMEOUT)
        }

        pub fn open_with(
            addr: SocketAddr,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &[u8],
            deadline: Instant,
        ) -> io::Result<Self> {
            Self::open_as(addr, &Auth::Default, method, path, headers, body, deadline)
        }

        /// Sends a request with the given authentication (added unless `headers` already
        /// carry an `Authorization` or `Cookie`) and reads the response head.
        pub fn open_as(
            addr: SocketAddr,
            auth: &Auth,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &[u8],
            deadline: Instant,
        ) -> io::Result<Self> {
            let mut stream = SyncConn::connect(addr, Duration::from_secs(5))?;
            let mut req =
                format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
            let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
            if !has("authorization") && !has("cookie") {
                if let Some((k, v)) = auth.header(addr) {
                    req.push_str(&format!("{k}: {v}\r\n"));
                }
            }
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            if !body.is_empty() || method == "POST" || method == "PUT" {
                req.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            req.push_str("\r\n");
            stream
                .tcp()
                .set_write_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(req.as_bytes())?;
            stream.write_all(body)?;
            stream.flush()?;
            let mut s = BodyStream {
                stream,
                raw: Vec::new(),
                framing: Framing::Close,
                sock_eof: false,
                status: 0,
                headers: Vec::new(),
            };
            let head_end = loop {
                if let Some(i) = find(&s.raw, b"\r\n\r\n") {
                    break i;
                }
                if s.sock_eof {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before the response head ({} bytes)",
                            s.raw.len()
                        ),
                    ));
                }
                if !s.fill(deadline)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no response head in time",
                    ));
                }
            };
            let head = String::from_utf8_lossy(&s.raw[..head_end]).into_owned();
            s.raw.drain(..head_end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or_default();
            if !version.starts_with("HTTP/1.") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                ));
            }
            s.status = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    s.headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let chunked = find_header(&s.headers, "transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            let length =
                find_header(&s.headers, "content-length").and_then(|v| v.parse::<usize>().ok());
            s.framing = if method == "HEAD" || s.status == 204 || s.status == 304 {
                Framing::Done
            } else if chunked {
                Framing::Chunked(ChunkState::Size)
            } else if let Some(n) = length {
                if n == 0 {
                    Framing::Done
                } else {
                    Framing::Length(n)
                }
            } else {
                Framing::Close
            };
            Ok(s)
        }

        pub fn header(&self, name: &str) -> Option<&str> {
            find_header(&self.headers, name)
        }

        /// Reads more raw bytes; false when the deadline passed without any.
        fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
            if self.sock_eof {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream.tcp().set_read_timeout(Some(left))?;
            let mut buf = [0u8; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.sock_eof = true;
                    Ok(true)
                }
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    Ok(true)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
                Err(e) => Err(e),
            }
        }

        /// Returns the body bytes that are available (de-chunked), waiting until `deadline` for
        /// at least one.
        pub fn read_some(&mut self, deadline: Instant) -> io::Result<Chunk> {
            loop {
                let mut out = Vec::new();
                self.decode(&mut out)?;
                if !out.is_empty() {
                    return Ok(Chunk::Data(out));
                }
                if self.framing == Framing::Done {
                    return Ok(Chunk::Eof);
                }
                if self.sock_eof {
                    return match self.framing {
                        Framing::Close => Ok(Chunk::Eof),
                        _ => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("connection closed inside the body ({:?})", self.framing),
                        )),
                    };
                }
                if !self.fill(deadline)? {
                    return Ok(Chunk::Timeout);
                }
            }
        }

        /// Reads body bytes for `d` (or until the body ends); returns them and whether it ended.
        pub fn read_for(&mut self, d: Duration) -> io::Result<(Vec<u8>, bool)> {
            let deadline = Instant::now() + d;
            let mut out = Vec::new();
            loop {
                match self.read_some(deadline)? {
                    Chunk::Data(b) => out.extend_from_slice(&b),
                    Chunk::Eof => return Ok((out, true)),
                    Chunk::Timeout => return Ok((out, false)),
                }
            }
        }

        fn decode(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
            loop {
                match self.framing {
                    Framing::Done => return Ok(()),
                    Framing::Close => {
                        out.append(&mut self.raw);
                        return Ok(());
                    }
                    Framing::Length(n) => {
                        let k = n.min(self.raw.len());
                        out.extend(self.raw.drain(..k));
                        self.framing = if n == k {
                            Framing::Done
                        } else {
                            Framing::Length(n - k)
                        };
                        return Ok(());
                    }
                    Framing::Chunked(ChunkState::Size) => {
                        let Some(i) = find(&self.raw, b"\r\n") else {
                            return Ok(());
                        };
                        let line = String::from_utf8_lossy(&self.raw[..i]).into_owned();
                        let hex = line.split(';').next().unwrap_or_default().trim();
                        let n = usize::from_str_radix(hex, 16).map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("bad chunk size line {line:?}"),
                            )
                        })?;
                        self.raw.drain(..i + 2);
                        if n == 0 {
                            // Trailers are not used; the body is over.
                            self.framing = Framing::Done;
                            return Ok(());
                        }
                        self.framing = Framing::Chunked(ChunkState::Data(n));
                    }
                    Framing::Chunked(ChunkState::Data(n)) => {
                        if self.raw.is_empty() {
                            return Ok(());
                        }
                        let k = n.min(self.raw.len());
                        out.extend(self.raw.drain(..k));
                        self.framing = Framing::Chunked(if n == k {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(n - k)
                        });
                    }
                    Framing::Chunked(ChunkState::DataEnd) => {
                        if self.raw.len() < 2 {
                            return Ok(());
                        }
                        if &self.raw[..2] != b"\r\n" {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "chunk not followed by CRLF",
                            ));
                        }
                        self.raw.drain(..2);
                        self.framing = Framing::Chunked(ChunkState::Size);
                    }
                }
            }
        }
    }

    pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// Opens a connection, sends `GET path` (authenticated) and never reads: a stalled
    /// viewer. Returns the TCP socket (under TLS, what it would read is encrypted).
    pub fn stalled_get(addr: SocketAddr, path: &str) -> TcpStream {
        let mut s = SyncConn::connect(addr, Duration::from_secs(5)).expect("connect");
        s.tcp()
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let auth = Auth::Default
            .header(addr)
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").expect("send request");
        s.flush().expect("send request");
        s.into_tcp()
    }

    /// Logs in through `POST /api/auth/login`; the `Cookie` value (`nanokvm_session=...`)
    /// on success, the response otherwise.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Result<String, Response> {
        let body = format!(
            "{{\"username\":{},\"password\":{}}}",
            serde_json::Value::from(user),
            serde_json::Value::from(password)
        );
        let r = request_as(
            addr,
            &Auth::None,
            "POST",
            "/api/auth/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST /api/auth/login: {e}"));
        if r.status != 200 {
            return Err(r);
        }
        r.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
            .ok_or(r)
    }
}

// ---------------------------------------------------------------------------------------------
// Multipart (MJPEG)
// ---------------------------------------------------------------------------------------------

/// One `--frame` part of `multipart/x-mixed-replace`.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Takes complete parts (`--BOUNDARY\r\nheaders\r\n\r\n<Content-Length bytes>\r\n`) from the
/// front of `buf`. Errors when the bytes do not follow that shape.
pub fn take_parts(buf: &mut Vec<u8>, boundary: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let delim = format!("--{boundary}\r\n");
    loop {
        // Tolerate a CRLF left before the delimiter.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if buf.len() < delim.len() {
            return Ok(parts);
        }
        if !buf.starts_with(delim.as_bytes()) {
            return Err(format!(
                "expected {delim:?}, found {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(60)])
            ));
        }
        let Some(head_end) = http::find(buf, b"\r\n\r\n") else {
            return Ok(parts);
        };
        let head = String::from_utf8_lossy(&buf[delim.len()..head_end]).into_owned();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .ok_or_else(|| format!("part without Content-Length: {head:?}"))?;
        let start = head_end + 4;
        if buf.len() < start + len + 2 {
            return Ok(parts);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(format!("part of {len} bytes not followed by CRLF"));
        }
        let body = buf[start..start + len].to_vec();
        buf.drain(..start + len + 2);
        parts.push(Part { headers, body });
    }
}

/// Decodes a JPEG and returns its size.
pub fn jpeg_size(data: &[u8]) -> Result<(u16, u16), String> {
    let mut d = jpeg_decoder::Decoder::new(data);
    d.decode().map_err(|e| format!("JPEG decode: {e}"))?;
    let info = d.info().ok_or("JPEG without info")?;
    Ok((info.width, info.height))
}

// ---------------------------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------------------------

pub mod ws {
    use super::proto::{self, ClientMsg, ServerMsg, StreamSettings, VideoHeader, VideoStatus};
    use super::{timeout, within};
    use async_tungstenite::tungstenite::protocol::WebSocketConfig;
    use async_tungstenite::tungstenite::Message;
    use async_tungstenite::WebSocketStream;
    use futures_util::StreamExt;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// One received video frame.
    #[derive(Debug, Clone)]
    pub struct Frame {
        pub header: VideoHeader,
        pub data: Vec<u8>,
        pub at: Instant,
    }

    impl Frame {
        pub fn describe(&self) -> String {
            format!(
                "Video(seq {}, {}, {:?}, {}x{}, {} bytes)",
                self.header.seq,
                if self.header.keyframe { "key" } else { "delta" },
                self.header.codec,
                self.header.width,
                self.header.height,
                self.data.len()
            )
        }
    }

    /// An owned [`ServerMsg`].
    #[derive(Debug, Clone)]
    pub enum Msg {
        Hello {
            version: u16,
            settings: StreamSettings,
        },
        Video(Frame),
        Pong {
            client_time_us: u64,
            server_time_us: u64,
        },
        VideoStatus(VideoStatus),
        Settings(StreamSettings),
        Error {
            code: proto::ErrorCode,
            message: String,
        },
        HidStatus(proto::HidStatus),
        PasteDone {
            typed: u32,
            unknown: String,
        },
        Atx(proto::AtxState),
        AtxDone {
            action: proto::AtxKind,
            ok: bool,
            message: String,
        },
    }

    impl Msg {
        fn from_wire(m: ServerMsg<'_>, at: Instant) -> Msg {
            match m {
                ServerMsg::Hello { version, settings } => Msg::Hello { version, settings },
                ServerMsg::Video { header, data } => Msg::Video(Frame {
                    header,
                    data: data.to_vec(),
                    at,
                }),
                ServerMsg::Pong {
                    client_time_us,
                    server_time_us,
                } => Msg::Pong {
                    client_time_us,
                    server_time_us,
                },
                ServerMsg::VideoStatus(s) => Msg::VideoStatus(s),
                ServerMsg::Settings(s) => Msg::Settings(s),
                ServerMsg::Error { code, message } => Msg::Error {
                    code,
                    message: message.to_string(),
                },
                ServerMsg::HidStatus(s) => Msg::HidStatus(s),
                ServerMsg::PasteDone { typed, unknown } => Msg::PasteDone {
                    typed,
                    unknown: unknown.to_string(),
                },
                ServerMsg::Atx(s) => Msg::Atx(s),
                ServerMsg::AtxDone {
                    action,
                    ok,
                    message,
                } => Msg::AtxDone {
                    action,
                    ok,
                    message: message.to_string(),
                },
            }
        }

        pub fn describe(&self) -> String {
            match self {
                Msg::Video(f) => f.describe(),
                other => format!("{other:?}"),
            }
        }
    }

    /// Anything that can come out of the socket.
    #[derive(Debug)]
    pub enum Event {
        Msg(Msg),
        /// A close frame: code and reason (`None` for a close frame without a payload).
        Closed(Option<(u16, String)>),
        /// The connection ended without a close frame, or a WebSocket protocol error.
        Ended(String),
        Text(String),
        /// A binary message that is not a valid `ServerMsg`.
        Undecodable(String),
    }

    pub struct WsClient {
        ws: WebSocketStream<crate::AsyncConn>,
        /// Every message skipped by the `recv_*` helpers, for failure messages.
        skipped: Vec<String>,
    }

    impl WsClient {
        /// Opens `/api/ws` (handshake only; no Hello sent), authenticated with the daemon's
        /// token.
        pub async fn connect(addr: SocketAddr) -> WsClient {
            match Self::connect_as(addr, &crate::Auth::Default, None).await {
                Ok(c) => c,
                Err(e) => panic!("WebSocket handshake with {addr}/api/ws: {e}"),
            }
        }

        /// Opens `/api/ws` with the given authentication and `Origin` header; the error says
        /// why the handshake failed (e.g. `HTTP error: 401 Unauthorized`).
        pub async fn connect_as(
            addr: SocketAddr,
            auth: &crate::Auth,
            origin: Option<&str>,
        ) -> Result<WsClient, String> {
            use async_tungstenite::tungstenite::client::IntoClientRequest;
            use async_tungstenite::tungstenite::http::HeaderValue;
            within(CONNECT_TIMEOUT, "the WebSocket handshake", async {
                let conn = crate::connect_async(addr)
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                let scheme = if matches!(conn, futures_util::future::Either::Right(_)) {
                    "wss"
                } else {
                    "ws"
                };
                let mut req = format!("{scheme}://{addr}/api/ws")
                    .into_client_request()
                    .map_err(|e| e.to_string())?;
                let headers = req.headers_mut();
                if let Some((k, v)) = auth.header(addr) {
                    headers.insert(k, HeaderValue::from_str(&v).map_err(|e| e.to_string())?);
                }
                if let Some(o) = origin {
                    headers.insert(
                        "origin",
                        HeaderValue::from_str(o).map_err(|e| e.to_string())?,
                    );
                }
                let mut cfg = WebSocketConfig::default();
                cfg.max_message_size = Some(64 << 20);
                cfg.max_frame_size = Some(64 << 20);
                let (ws, _resp) = async_tungstenite::client_async_with_config(req, conn, Some(cfg))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(WsClient {
                    ws,
                    skipped: Vec::new(),
                })
            })
            .await
        }

        /// Connects, sends `Hello { version: 1, visible }` and waits for the server's Hello,
        /// which must be the first message. Returns the client, the settings and when the Hello
        /// arrived.
        pub async fn connect_hello(
            addr: SocketAddr,
            visible: bool,
        ) -> (WsClient, StreamSettings, Instant) {
            let mut c = Self::connect(addr).await;
            c.send(&ClientMsg::Hello {
                version: proto::PROTOCOL_VERSION,
                visible,
            })
            .await;
            match c.recv(Duration::from_secs(5)).await {
                Msg::Hello { version, settings } => {
                    assert_eq!(version, proto::PROTOCOL_VERSION, "server Hello version");
                    (c, settings, Instant::now())
                }
                other => panic!(
                    "the first server message is not Hello: {}",
                    other.describe()
                ),
            }
        }

        pub async fn send(&mut self, msg: &ClientMsg) {
            self.send_raw(Message::binary(msg.encode())).await;
        }

        /// Sends any WebSocket message (bounded by 5 s).
        pub async fn send_raw(&mut self, m: Message) {
            within(
                Duration::from_secs(5),
                "sending a WebSocket message",
                self.ws.send(m),
            )
            .await
            .unwrap_or_else(|e| panic!("WebSocket send: {e}"));
        }

        /// Like [`send_raw`](Self::send_raw) but returns the error (the server may already
        /// have closed).
        pub async fn try_send_raw(&mut self, m: Message) -> Result<(), String> {
            match timeout(Duration::from_secs(5), self.ws.send(m)).await {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err("send timed out".into()),
            }
        }

        /// The next event, or `None` after `d`.
        pub async fn next_event(&mut self, d: Duration) -> Option<Event> {
            timeout(d, self.next_event_unbounded()).await
        }

        async fn next_event_unbounded(&mut self) -> Event {
            loop {
                let item = self.ws.next().await;
                let at = Instant::now();
                return match item {
                    None => Event::Ended("the connection ended without a close frame".into()),
                    Some(Err(e)) => Event::Ended(format!("WebSocket error: {e}")),
                    Some(Ok(Message::Binary(b))) => match ServerMsg::decode(&b) {
                        Ok(m) => Event::Msg(Msg::from_wire(m, at)),
                        Err(e) => Event::Undecodable(format!(
                            "{e} ({} bytes: {:02x?})",
                            b.len(),
                            &b[..b.len().min(16)]
                        )),
                    },
                    Some(Ok(Message::Text(t))) => Event::Text(t.to_string()),
                    Some(Ok(Message::Close(f))) => {
                        Event::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Some(Ok(_)) => continue,
                };
            }
        }

        /// The next server message; panics on timeout, close or anything that is not a valid
        /// binary `ServerMsg`.
        pub async fn recv(&mut self, d: Duration) -> Msg {
            match self.next_event(d).await {
                Some(Event::Msg(m)) => m,
                Some(other) => panic!("expected a server message, got {other:?}"),
                None => panic!("no server message within {d:?}"),
            }
        }

        /// Skips messages until one matches `pred`; panics (listing what was skipped) when
        /// none does within `d`.
        pub async fn recv_until(
            &mut self,
            d: Duration,
            what: &str,
            mut pred: impl FnMut(&Msg) -> bool,
        ) -> Msg {
            let deadline = Instant::now() + d;
            let mut seen = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.next_event(left).await {
                    Some(Event::Msg(m)) if pred(&m) => {
                        self.skipped.append(&mut seen);
                        return m;
                    }
                    Some(Event::Msg(m)) => seen.push(m.describe()),
                    Some(other) => panic!("waiting for {what}: got {other:?} (after {seen:?})"),
                    None => panic!("no {what} within {d:?}; received meanwhile: {seen:?}"),
                }
            }
        }

        /// The next Video, skipping other messages.
        pub async fn recv_video(&mut self, d: Duration) -> Frame {
            match self
                .recv_until(d, "a Video message", |m| matches!(m, Msg::Video(_)))
                .await
            {
                Msg::Video(f) => f,
                _ => unreachable!(),
            }
        }

        /// The next Video within `d`, or `None`; other messages are skipped. Panics on close.
        pub async fn try_recv_video(&mut self, d: Duration) -> Option<Frame> {
            let deadline = Instant::now() + d;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.next_event(left).await {
                    Some(Event::Msg(Msg::Video(f))) => return Some(f),
                    Some(Event::Msg(m)) => self.skipped.push(m.describe()),
                    Some(other) => panic!("waiting for video: got {other:?}"),
                    None => return None,
                }
            }
        }

        /// Every Video received during `d` (other messages are skipped).
        pub async fn collect_video(&mut self, d: Duration) -> Vec<Frame> {
            let deadline = Instant::now() + d;
            let mut frames = Vec::new();
            while let Some(f) = self
                .try_recv_video(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                frames.push(f);
            }
            frames
        }

        /// Reads until a close frame; returns its code and reason and the messages before it.
        /// Panics when the connection ends without one or nothing comes within `d`.
        pub async fn expect_close(&mut self, d: Duration) -> (u16, String, Vec<Msg>) {
            let deadline = Instant::now() + d;
            let mut before = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.next_event(left).await {
                    Some(Event::Closed(Some((code, reason)))) => return (code, reason, before),
                    Some(Event::Closed(None)) => panic!(
                        "close frame without a status code (messages before: {:?})",
                        before.iter().map(Msg::describe).collect::<Vec<_>>()
                    ),
                    Some(Event::Msg(m)) => before.push(m),
                    Some(other) => panic!(
                        "expected a close frame, got {other:?} (messages before: {:?})",
                        before.iter().map(Msg::describe).collect::<Vec<_>>()
                    ),
                    None => panic!(
                        "no close frame within {d:?} (messages before: {:?})",
                        before.iter().map(Msg::describe).collect::<Vec<_>>()
                    ),
                }
            }
        }

        /// Messages skipped so far by the `recv_*` helpers.
        pub fn skipped(&self) -> &[String] {
            &self.skipped
        }
    }
}

// ---------------------------------------------------------------------------------------------
// H.264
// ---------------------------------------------------------------------------------------------

pub mod h264 {
    use openh264::encoder::{
        BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
        UsageType,
    };
    use openh264::formats::{YUVBuffer, YUVSource};
    use openh264::OpenH264API;
    use std::path::{Path, PathBuf};

    pub const NAL_SLICE: u8 = 1;
    pub const NAL_IDR: u8 = 5;
    pub const NAL_SEI: u8 = 6;
    pub const NAL_SPS: u8 = 7;
    pub const NAL_PPS: u8 = 8;
    pub const NAL_AUD: u8 = 9;

    /// A NAL unit inside an Annex-B buffer: where its start code begins and its payload range.
    #[derive(Debug, Clone, Copy)]
    pub struct Nal {
        pub start: usize,
        pub payload: (usize, usize),
        pub kind: u8,
    }

    /// Splits Annex-B into NAL units (3- and 4-byte start codes).
    pub fn nals(data: &[u8]) -> Vec<Nal> {
        let mut codes = Vec::new(); // (start code begin, payload begin)
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let begin = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
                codes.push((begin, i + 3));
                i += 3;
            } else {
                i += 1;
            }
        }
        let mut out = Vec::with_capacity(codes.len());
        for (k, &(begin, p)) in codes.iter().enumerate() {
            let mut end = codes.get(k + 1).map_or(data.len(), |c| c.0);
            while end > p && data[end - 1] == 0 {
                end -= 1;
            }
            let kind = data.get(p).map_or(0, |b| b & 0x1f);
            out.push(Nal {
                start: begin,
                payload: (p, end),
                kind,
            });
        }
        out
    }

    /// The NAL unit types in order.
    pub fn nal_types(data: &[u8]) -> Vec<u8> {
        nals(data).iter().map(|n| n.kind).collect()
    }

    /// The NAL unit payloads (without start codes).
    pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
        nals(data)
            .iter()
            .map(|n| &data[n.payload.0..n.payload.1])
            .collect()
    }

    /// Ok when `au` starts with SPS, PPS and contains an IDR slice.
    pub fn check_keyframe_au(au: &[u8]) -> Result<(), String> {
        if !(au.starts_with(&[0, 0, 0, 1]) || au.starts_with(&[0, 0, 1])) {
            return Err(format!(
                "does not start with an Annex-B start code: {:02x?}",
                &au[..au.len().min(8)]
            ));
        }
        let t = nal_types(au);
        if t.len() < 3 || t[0] != NAL_SPS || t[1] != NAL_PPS || !t.contains(&NAL_IDR) {
            return Err(format!(
                "NAL types {t:?}, expected SPS(7), PPS(8), then IDR(5)"
            ));
        }
        Ok(())
    }

    fn is_vcl(kind: u8) -> bool {
        (1..=5).contains(&kind)
    }

    /// Splits an Annex-B byte stream into access units. Returns the complete ones (each one
    /// is followed by the start of another) and the offset where the incomplete rest begins.
    pub fn split_access_units(data: &[u8]) -> (Vec<&[u8]>, usize) {
        let ns = nals(data);
        let mut starts = Vec::new();
        let mut prev_vcl = false;
        let mut have_vcl_in_au = false;
        for n in &ns {
            let first_mb_zero = data.get(n.payload.0 + 1).is_some_and(|b| b & 0x80 != 0);
            let new_au = match n.kind {
                NAL_AUD => true,
                NAL_SEI | NAL_SPS | NAL_PPS => prev_vcl,
                k if is_vcl(k) => have_vcl_in_au && first_mb_zero,
                _ => false,
            };
            if new_au || starts.is_empty() {
                starts.push(n.start);
                have_vcl_in_au = false;
            }
            if is_vcl(n.kind) {
                have_vcl_in_au = true;
            }
            prev_vcl = is_vcl(n.kind);
        }
        if starts.len() < 2 {
            return (Vec::new(), starts.first().copied().unwrap_or(0));
        }
        let aus = starts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        (aus, *starts.last().unwrap_or(&0))
    }

    /// OpenH264 decoder that reports picture sizes.
    pub struct Decoder {
        inner: openh264::decoder::Decoder,
    }

    impl Default for Decoder {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Decoder {
        pub fn new() -> Self {
            Self {
                inner: openh264::decoder::Decoder::new().expect("OpenH264 decoder"),
            }
        }

        /// Decodes one access unit; the picture size when it produced a picture.
        pub fn decode(&mut self, au: &[u8]) -> Result<Option<(usize, usize)>, String> {
            match self.inner.decode(au) {
                Ok(Some(pic)) => Ok(Some(pic.dimensions())),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("OpenH264: {e}")),
            }
        }

        /// Decodes one access unit that must produce a picture.
        pub fn decode_picture(&mut self, au: &[u8]) -> Result<(usize, usize), String> {
            self.decode(au)?.ok_or_else(|| {
                format!(
                    "no picture from an access unit with NAL types {:?}",
                    nal_types(au)
                )
            })
        }
    }

    /// Decodes a lone keyframe access unit in a fresh decoder.
    pub fn keyframe_size(au: &[u8]) -> Result<(usize, usize), String> {
        check_keyframe_au(au)?;
        Decoder::new().decode_picture(au)
    }

    /// Encodes `frames` frames of a moving synthetic pattern into an Annex-B file: a scrolling
    /// gradient, a moving box and a band of fresh noise (so every frame is large, like a busy
    /// desktop on the hardware encoder). IDR (with SPS and PPS) every 30 frames.
    pub fn make_replay_file(path: &Path, frames: usize, width: usize, height: usize) {
        make_replay_file_at(path, frames, (width, height), 16_000_000, height / 3);
    }

    /// [`make_replay_file`] with the encoder's rate control aimed at `bps` bits per second and
    /// a band of `noise_rows` rows of fresh noise (which no rate control can squeeze: it sets
    /// how far above `bps` the stream ends up).
    pub fn make_replay_file_at(
        path: &Path,
        frames: usize,
        (width, height): (usize, usize),
        bps: u32,
        noise_rows: usize,
    ) {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(30.0))
            .skip_frames(false)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(30))
            .num_threads(1);
        let mut enc =
            Encoder::with_api_config(OpenH264API::from_source(), config).expect("OpenH264 encoder");
        let mut out = Vec::new();
        let mut rng: u32 = 0x2545_f491;
        let (cw, ch) = (width / 2, height / 2);
        let mut yuv = vec![0u8; width * height * 3 / 2];
        for f in 0..frames {
            let (y, uv) = yuv.split_at_mut(width * height);
            for (r, row) in y.chunks_exact_mut(width).enumerate() {
                for (c, px) in row.iter_mut().enumerate() {
                    *px = ((c + r / 2 + f * 8) & 0xff) as u8;
                }
            }
            // A box moving across.
            let bx = (f * 17) % (width - 160);
            let by = (f * 7) % (height - 160);
            for r in by..by + 160 {
                y[r * width + bx..r * width + bx + 160].fill(235);
            }
            // A band of fresh noise.
            let band = height / 3;
            for px in &mut y[band * width..(band + noise_rows.min(height - band)) * width] {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                *px = (rng >> 24) as u8;
            }
            let (u, v) = uv.split_at_mut(cw * ch);
            for r in 0..ch {
                for c in 0..cw {
                    u[r * cw + c] = ((c + f * 3) & 0xff) as u8;
                    v[r * cw + c] = ((r + f * 5) & 0xff) as u8;
                }
            }
            let buf = YUVBuffer::from_vec(yuv.clone(), width, height);
            if f % 30 == 0 {
                enc.force_intra_frame();
            }
            let bs = enc.encode(&buf).expect("encode");
            let au = bs.to_vec();
            if f % 30 == 0 {
                check_keyframe_au(&au).unwrap_or_else(|e| panic!("replay frame {f}: {e}"));
            }
            out.extend_from_slice(&au);
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &out).expect("write replay file");
        std::fs::rename(&tmp, path).expect("rename replay file");
    }

    /// A 1280x720, 60-frame replay file, made once and shared by every test process (kept in
    /// the temp dir).
    pub fn replay_file() -> PathBuf {
        static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        ONCE.get_or_init(|| {
            let p = std::env::temp_dir().join("nanokvm-e2e-replay-v1-1280x720-60.h264");
            if !p.exists() {
                let t0 = std::time::Instant::now();
                make_replay_file(&p, 60, 1280, 720);
                eprintln!(
                    "made {} ({} bytes) in {:?}",
                    p.display(),
                    std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0),
                    t0.elapsed()
                );
            }
            p
        })
        .clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Keyboard and the simulated target
// ---------------------------------------------------------------------------------------------

pub mod target {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use super::http;

    /// `GET /api/sim/state` as JSON.
    pub fn state(addr: SocketAddr) -> serde_json::Value {
        let r = http::get(addr, "/api/sim/state");
        assert_eq!(r.status, 200, "GET /api/sim/state: {}", r.summary());
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("/api/sim/state is not JSON ({e}): {}", r.summary()))
    }

    /// Polls the simulated target's state until `accept` takes it; panics after `d` with the
    /// last state seen.
    pub fn wait_state(
        addr: SocketAddr,
        d: Duration,
        what: &str,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + d;
        loop {
            let s = state(addr);
            if accept(&s) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!("{what}: not within {d:?}; the target's state: {s:#}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The active console's text, from a state.
    pub fn text(state: &serde_json::Value) -> &str {
        state["text"].as_str().unwrap_or("")
    }

    /// HID usage and whether Shift is needed, for a character on a US keyboard (the tests'
    /// own table, independent of the daemon's paste layouts).
    pub fn us_key(ch: char) -> Option<(bool, u8)> {
        const SHIFTED_DIGITS: &str = "!@#$%^&*()";
        const PUNCT: [(char, char, u8); 11] = [
            ('-', '_', 0x2D),
            ('=', '+', 0x2E),
            ('[', '{', 0x2F),
            (']', '}', 0x30),
            ('\\', '|', 0x31),
            (';', ':', 0x33),
            ('\'', '"', 0x34),
            ('`', '~', 0x35),
            (',', '<', 0x36),
            ('.', '>', 0x37),
            ('/', '?', 0x38),
        ];
        Some(match ch {
            'a'..='z' => (false, 0x04 + (ch as u8 - b'a')),
            'A'..='Z' => (true, 0x04 + (ch as u8 - b'A')),
            '1'..='9' => (false, 0x1E + (ch as u8 - b'1')),
            '0' => (false, 0x27),
            '\n' => (false, 0x28),
            ' ' => (false, 0x2C),
            c if SHIFTED_DIGITS.contains(c) => {
                let i = SHIFTED_DIGITS.find(c)?;
                (true, 0x1E + i as u8)
            }
            c => PUNCT.iter().find_map(|&(plain, shifted, u)| {
                (c == plain)
                    .then_some((false, u))
                    .or((c == shifted).then_some((true, u)))
            })?,
        })
    }
}
