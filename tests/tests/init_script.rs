//! The init script (`rootfs/etc/init.d/S95nanokvmd`) run against a scratch directory laid out
//! like the device's `/`, with small shell scripts standing in for `nanokvmd` and the vendor's
//! `kvm_system`: it starts both, refuses a second start, stops them with SIGTERM (SIGKILL for
//! one that does not listen) and reports a daemon that dies at start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nanokvm_e2e::{workspace_dir, TempDir};

const DAEMON: &str = "usr/bin/nanokvmd";
const PID_FILE: &str = "var/run/nanokvmd.pid";
const KVM_SYSTEM_PID_FILE: &str = "var/run/kvm_system.pid";

/// How the stand-in daemon behaves.
enum Fake {
    /// Records its arguments, says hello on stdout, ends on SIGTERM (recording that).
    Polite,
    /// Ignores SIGTERM.
    Stubborn,
    /// Exits at once with a complaint, as nanokvmd does on a bad configuration.
    Broken,
}

/// A scratch root with the stand-ins installed; kills whatever they left running on drop.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new(tag: &str, fake: Fake) -> Root {
        let dir = TempDir::new(tag);
        let root = dir.path();
        let marker = |name: &str| root.join(name).display().to_string();
        let body = match fake {
            Fake::Polite => format!(
                "echo \"$@\" > '{}'\necho 'nanokvmd listening'\n\
                 trap 'echo TERM > \"{}\"; exit 0' TERM\n\
                 while :; do sleep 1 & wait $!; done\n",
                marker("daemon.args"),
                marker("daemon.terminated")
            ),
            Fake::Stubborn => "trap '' TERM\nwhile :; do sleep 1; done\n".to_string(),
            Fake::Broken => "echo 'config.toml:3: unknown key `colour`' >&2\nexit 1\n".into(),
        };
        install(root, DAEMON, &body);
        install(
            root,
            "kvmapp/kvm_system/kvm_system",
            &format!(
                "trap 'echo TERM > \"{}\"; exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n",
                marker("kvm_system.terminated")
            ),
        );
        std::fs::create_dir_all(root.join("etc/nanokvmd")).expect("mkdir etc");
        std::fs::write(root.join("etc/nanokvmd/nanokvmd.toml"), "").expect("config");
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, arg: &str) -> Output {
        let script = workspace_dir().join("rootfs/etc/init.d/S95nanokvmd");
        Command::new("sh")
            .arg(&script)
            .arg(arg)
            .env("NANOKVM_ROOT", self.path())
            .env("NANOKVMD_STOP_TIMEOUT", "2")
            .output()
            .expect("run sh")
    }

    fn run_ok(&self, arg: &str) -> String {
        let out = self.run(arg);
        assert!(
            out.status.success(),
            "S95nanokvmd {arg}: {}",
            describe(&out)
        );
        describe(&out)
    }

    fn pid(&self, file: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.path().join(file)).ok()?;
        Some(
            text.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{file}: {text:?}: {e}")),
        )
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for file in [PID_FILE, KVM_SYSTEM_PID_FILE] {
            if let Some(pid) = self.pid(file) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .output();
            }
        }
    }
}

fn install(root: &Path, rel: &str, body: &str) {
    let path: PathBuf = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A live process, not a zombie left for a parent that does not reap.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The stand-ins record a signal from their trap; give them a moment to have written it.
fn wait_for_file(path: &Path, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    path.exists()
}

#[test]
fn start_runs_both_refuses_a_second_start_and_stop_ends_both_with_sigterm() {
    let root = Root::new("init-start", Fake::Polite);
    let said = root.run_ok("start");
    assert!(said.contains("nanokvmd started"), "{said}");

    let pid = root.pid(PID_FILE).expect("nanokvmd pid file");
    assert!(alive(pid), "nanokvmd (pid {pid}) is not running");
    let config = root.path().join("etc/nanokvmd/nanokvmd.toml");
    assert_eq!(
        root.read("daemon.args").trim(),
        format!("--config {}", config.display())
    );
    assert!(
        root.read("var/log/nanokvmd.log")
            .contains("nanokvmd listening"),
        "the daemon's output goes to the log"
    );
    // kvm_system runs from its copy in /tmp, as with the stock script.
    let kvm_system = root.pid(KVM_SYSTEM_PID_FILE).expect("kvm_system pid file");
    assert!(
        alive(kvm_system),
        "kvm_system (pid {kvm_system}) is not running"
    );
    let exe = std::fs::read_to_string(format!("/proc/{kvm_system}/cmdline")).expect("cmdline");
    assert!(
        exe.contains(&format!(
            "{}/tmp/kvm_system/kvm_system",
            root.path().display()
        )),
        "kvm_system runs as {exe:?}"
    );
    let status = root.run_ok("status");
    assert!(status.contains(&format!("pid {pid}")), "{status}");

    let again = root.run("start");
    assert!(
        !again.status.success(),
        "a second start was not refused: {}",
        describe(&again)
    );
    assert!(
        describe(&again).contains("already runs"),
        "{}",
        describe(&again)
    );
    assert_eq!(root.pid(PID_FILE), Some(pid), "the pid file was rewritten");

    let said = root.run_ok("stop");
    assert!(said.contains("nanokvmd stopped"), "{said}");
    assert!(
        wait_for_file(
            &root.path().join("daemon.terminated"),
            Duration::from_secs(2)
        ),
        "nanokvmd did not get SIGTERM"
    );
    assert!(
        !said.contains("SIGKILL"),
        "a polite daemon was killed: {said}"
    );
    assert!(!alive(pid), "nanokvmd still runs after stop");
    assert!(root.pid(PID_FILE).is_none(), "the pid file is left");
    assert!(
        wait_for_file(
            &root.path().join("kvm_system.terminated"),
            Duration::from_secs(2)
        ),
        "kvm_system did not get SIGTERM"
    );
    assert!(!alive(kvm_system), "kvm_system still runs after stop");

    // Stopping what is stopped is fine; status says it is not running.
    root.run_ok("stop");
    let status = root.run("status");
    assert_eq!(status.status.code(), Some(3), "{}", describe(&status));
}

#[test]
fn restart_replaces_the_daemon() {
    let root = Root::new("init-restart", Fake::Polite);
    root.run_ok("start");
    let first = root.pid(PID_FILE).expect("pid");
    root.run_ok("restart");
    let second = root.pid(PID_FILE).expect("pid after restart");
    assert_ne!(first, second);
    assert!(!alive(first), "the old daemon still runs");
    assert!(alive(second), "the new daemon does not run");
    root.run_ok("stop");
}

#[test]
fn a_daemon_that_ignores_sigterm_is_killed_after_the_timeout() {
    let root = Root::new("init-stubborn", Fake::Stubborn);
    root.run_ok("start");
    let pid = root.pid(PID_FILE).expect("pid");
    let said = root.run_ok("stop");
    assert!(said.contains("SIGKILL"), "{said}");
    assert!(!alive(pid), "the stubborn daemon survived SIGKILL");
    assert!(root.pid(PID_FILE).is_none(), "the pid file is left");
}

#[test]
fn a_daemon_that_dies_at_start_is_reported_with_its_log() {
    let root = Root::new("init-broken", Fake::Broken);
    let out = root.run("start");
    assert!(
        !out.status.success(),
        "start did not fail: {}",
        describe(&out)
    );
    let said = describe(&out);
    assert!(said.contains("exited at start"), "{said}");
    assert!(
        said.contains("unknown key `colour`"),
        "the log is not shown: {said}"
    );
    assert!(root.pid(PID_FILE).is_none(), "a pid file for a dead daemon");
    root.run_ok("stop");
}
