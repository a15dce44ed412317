//! Runs of the binary that end by themselves: account commands (`user add`, `token new`), and
//! start-ups that must fail (bad flags, bad config, a missing library).

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::daemon_bin;

/// Starts the binary with `args`, its stdout and stderr piped.
pub(crate) fn spawn_piped(args: &[&str], stdin: Stdio) -> Child {
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
