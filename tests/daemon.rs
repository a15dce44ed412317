//! A running daemon: started on a free loopback port with a fresh, provisioned data directory
//! (`credentials.rs`), its output kept (`daemon_output.rs`) and printed when a test panics
//! while it runs, signalled, stopped, killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::credentials::{self, e2e_tls, Credentials, E2E_PASSWORD, E2E_TOKEN_NAME, E2E_USER};
use crate::daemon_output::{spawn_line_reader, Log};
use crate::{daemon_bin, http, run_cli, Metrics, TempDir};

/// Upper bound for the daemon to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

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
static LIVE_DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live_daemons() -> MutexGuard<'static, Vec<u32>> {
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
