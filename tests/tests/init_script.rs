//! The init script (`rootfs/etc/init.d/S95nanokvmd`) run against a scratch directory laid out
//! like the device's `/`, with small shell scripts standing in for `nanokvmd` and the vendor's
//! programs: it starts both, refuses a second start, stops them with SIGTERM (SIGKILL for one
//! that does not listen) and reports a daemon that dies at start.
//!
//! The stock software stands in too, as sipeed/NanoKVM has it: `S95nanokvm` (whose `restart`
//! does nothing while `/tmp/.nanokvm_migrating` exists), `S03usbdev`, `NanoKVM-Server` under
//! `/tmp/server`, and a `kvm_system` that, when `/kvmapp/kvm_new_app` exists, does what its
//! first start after an update does (`support/sg2002/kvm_system/main/lib/system_init/
//! system_init.cpp`): copies the stock scripts into `/etc/init.d`, removes the flag, runs
//! `S95nanokvm restart` and starts the stock server. `S95nanokvmd start` must take over from
//! all of it. The install, update and rollback commands of `rootfs/INSTALL.md` are run as
//! written there.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use nanokvm_e2e::{workspace_dir, TempDir};

const DAEMON: &str = "usr/bin/nanokvmd";
const PID_FILE: &str = "var/run/nanokvmd.pid";
const LOG_FILE: &str = "var/log/nanokvmd.log";
const KVM_SYSTEM_PID_FILE: &str = "var/run/kvm_system.pid";
const STOCK_SERVER: &str = "NanoKVM-Server";
/// Written by the stand-in stock server once its traps are set.
const STOCK_SERVER_READY: &str = "stock_server.ready";
const STOCK_SCRIPT_TEXT: &str = "#!/bin/sh\n# nanokvm Rev3.1 (stand-in)\n";
const STOCK_GADGET_TEXT: &str = "#!/bin/sh\n# kvmhwd Rev2.2 (stand-in)\n";

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
    /// Stand-ins the test started itself (a stock server or kvm_system already running).
    spawned: RefCell<Vec<Child>>,
}

impl Root {
    /// A root with `kvm_system` in `/kvmapp` and the usual directories, without nanokvmd.
    fn bare(tag: &str) -> Root {
        let root = Root {
            dir: TempDir::new(tag),
            spawned: RefCell::new(Vec::new()),
        };
        for dir in ["etc/init.d", "usr/bin", "tmp", "var/run", "var/log"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
        }
        let r = root.path().display().to_string();
        root.install(
            "kvmapp/kvm_system/kvm_system",
            &format!(
                "R='{r}'\n\
                 if [ -f \"$R/kvmapp/kvm_new_app\" ]; then\n\
                 \tmkdir -p \"$R/etc/init.d\"\n\
                 \tcp -f \"$R/kvmapp/system/init.d/S03usbdev\" \"$R/etc/init.d/\"\n\
                 \tcp -f \"$R/kvmapp/system/init.d/S95nanokvm\" \"$R/etc/init.d/\"\n\
                 \trm -f \"$R/kvmapp/kvm_new_app\"\n\
                 \t\"$R/etc/init.d/S95nanokvm\" restart\n\
                 \trm -rf \"$R/tmp/server\"\n\
                 \tcp -r \"$R/kvmapp/server\" \"$R/tmp/\"\n\
                 \t\"$R/tmp/server/{STOCK_SERVER}\" &\n\
                 fi\n\
                 trap 'echo TERM > \"$R/kvm_system.terminated\"; exit 0' TERM\n\
                 while :; do sleep 1 & wait $!; done\n"
            ),
        );
        root
    }

    /// A bare root with the stand-in nanokvmd installed and an empty configuration.
    fn new(tag: &str, fake: Fake) -> Root {
        let root = Root::bare(tag);
        root.install(DAEMON, &daemon_body(root.path(), fake, ""));
        root.write("etc/nanokvmd/nanokvmd.toml", "");
        root
    }

    /// Adds the stock software: the scripts in `/etc/init.d` and in `/kvmapp/system/init.d`,
    /// and the stock server in `/kvmapp/server`.
    fn with_stock(self) -> Root {
        let r = self.path().display().to_string();
        let stock_script = format!(
            "{STOCK_SCRIPT_TEXT}R='{r}'\n\
             case \"$1\" in\n\
             \trestart) if [ -f \"$R/tmp/.nanokvm_migrating\" ]; then exit 0; fi ;;\n\
             esac\n\
             echo \"$1\" >> \"$R/stock_script.calls\"\n"
        );
        for dir in ["etc/init.d", "kvmapp/system/init.d"] {
            self.install_exact(&format!("{dir}/S95nanokvm"), &stock_script);
            self.install_exact(&format!("{dir}/S03usbdev"), STOCK_GADGET_TEXT);
        }
        self.install(
            &format!("kvmapp/server/{STOCK_SERVER}"),
            &stock_server_body(self.path(), true),
        );
        self.write("kvmapp/server/web/index.html", "stock web");
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// An executable shell script at `rel`: `#!/bin/sh` and `body`.
    fn install(&self, rel: &str, body: &str) {
        self.install_exact(rel, &format!("#!/bin/sh\n{body}"));
    }

    /// An executable file at `rel` with exactly `text`.
    fn install_exact(&self, rel: &str, text: &str) {
        self.write(rel, text);
        std::fs::set_permissions(self.at(rel), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.at(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }

    fn exists(&self, rel: &str) -> bool {
        self.at(rel).exists()
    }

    /// Starts the stand-in stock server at `rel` and waits until it has set its traps.
    fn spawn_stock_server(&self, rel: &str) -> u32 {
        let _ = std::fs::remove_file(self.at(STOCK_SERVER_READY));
        let pid = self.spawn(rel);
        assert!(
            wait_for_file(&self.at(STOCK_SERVER_READY), Duration::from_secs(10)),
            "the stand-in stock server did not get ready"
        );
        pid
    }

    /// Starts the stand-in at `rel` as an already running process would be.
    fn spawn(&self, rel: &str) -> u32 {
        let child = Command::new(self.at(rel))
            .spawn()
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let pid = child.id();
        self.spawned.borrow_mut().push(child);
        // Until the shell has set its traps, a signal would end it the default way.
        std::thread::sleep(Duration::from_millis(200));
        pid
    }

    /// Runs the workspace's `S95nanokvmd`.
    fn run(&self, arg: &str) -> Output {
        self.run_script(&workspace_dir().join("rootfs/etc/init.d/S95nanokvmd"), arg)
    }

    fn run_script(&self, script: &Path, arg: &str) -> Output {
        Command::new("sh")
            .arg(script)
            .arg(arg)
            .envs(self.env())
            .output()
            .expect("run sh")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NANOKVM_ROOT", self.path().display().to_string()),
            ("NANOKVMD_STOP_TIMEOUT", "2".into()),
            ("NANOKVMD_STOCK_INT_TIMEOUT", "1".into()),
            ("NANOKVMD_MIGRATION_TIMEOUT", "10".into()),
        ]
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
        let text = std::fs::read_to_string(self.at(file)).ok()?;
        Some(
            text.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{file}: {text:?}: {e}")),
        )
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.at(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// Live processes with the command name `name` started from somewhere under this root.
    fn processes_named(&self, name: &str) -> Vec<u32> {
        let root = self.path().display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim_end() == name)
                    && std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&root))
                    && alive(*pid)
            })
            .collect()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for file in [PID_FILE, KVM_SYSTEM_PID_FILE] {
            if let Some(pid) = self.pid(file) {
                kill(pid);
            }
        }
        for name in [STOCK_SERVER, "kvm_system", "nanokvmd"] {
            for pid in self.processes_named(name) {
                kill(pid);
            }
        }
        for child in self.spawned.borrow_mut().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .output();
}

/// The stand-in nanokvmd; `tag` ends up in its text, so that a replaced binary can be told
/// from the old one.
fn daemon_body(root: &Path, fake: Fake, tag: &str) -> String {
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
    format!("# stand-in nanokvmd {tag}\n{body}")
}

/// The stand-in stock server: records the signal that ends it in `stock_server.signals`;
/// `hears_sigint: false` makes it ignore SIGINT.
fn stock_server_body(root: &Path, hears_sigint: bool) -> String {
    let signals = root.join("stock_server.signals").display().to_string();
    let int = if hears_sigint {
        format!("trap 'echo INT >> \"{signals}\"; exit 0' INT\n")
    } else {
        "trap '' INT\n".to_string()
    };
    let ready = root.join(STOCK_SERVER_READY).display().to_string();
    format!(
        "{int}trap 'echo TERM >> \"{signals}\"; exit 0' TERM\n\
         : > \"{ready}\"\n\
         while :; do sleep 1 & wait $!; done\n"
    )
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

/// Where `what` first appears in `text`, for ordering assertions.
fn position(text: &str, what: &str) -> usize {
    text.find(what)
        .unwrap_or_else(|| panic!("{what:?} is not in:\n{text}"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 == 0o111)
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

#[test]
fn on_a_plain_root_start_takes_nothing_over() {
    let root = Root::new("init-plain", Fake::Polite);
    let said = root.run_ok("start");
    let log = root.read(LOG_FILE);
    assert!(!said.contains("stock"), "{said}");
    assert!(!log.contains("S95nanokvmd:"), "{log}");
    assert!(
        !root.exists("etc/nanokvmd/stock"),
        "a stock directory appeared"
    );
    assert!(
        !root.exists("etc/init.d/S03usbdev"),
        "a gadget script appeared"
    );
    assert!(
        !root.exists("mnt/data/sensor_cfg.ini"),
        "a sensor file appeared"
    );
    root.run_ok("stop");
}

#[test]
fn stock_scripts_put_back_by_an_update_are_moved_aside_and_ours_restored_once() {
    let root = Root::new("init-scripts", Fake::Polite).with_stock();
    let ours = workspace_dir().join("rootfs/etc/init.d/S03usbdev");
    std::fs::create_dir_all(root.at("usr/share/nanokvmd")).expect("mkdir");
    std::fs::copy(&ours, root.at("usr/share/nanokvmd/S03usbdev")).expect("copy");
    let ours = std::fs::read_to_string(&ours).expect("our S03usbdev");

    let said = root.run_ok("start");
    assert!(!root.exists("etc/init.d/S95nanokvm"), "{said}");
    assert!(root
        .read("etc/nanokvmd/stock/S95nanokvm")
        .starts_with(STOCK_SCRIPT_TEXT));
    assert_eq!(root.read("etc/nanokvmd/stock/S03usbdev"), STOCK_GADGET_TEXT);
    assert_eq!(root.read("etc/init.d/S03usbdev"), ours);
    assert!(is_executable(&root.at("etc/init.d/S03usbdev")));
    let log = root.read(LOG_FILE);
    for what in [
        "moved the stock",
        "S95nanokvm (put back by a stock update)",
        "S03usbdev (put back by a stock update)",
        "installed nanokvmd's",
    ] {
        assert!(said.contains(what), "not said: {what}: {said}");
        assert!(log.contains(what), "not logged: {what}: {log}");
    }
    assert!(
        position(&log, "moved the stock") < position(&log, "nanokvmd listening"),
        "{log}"
    );
    let pid = root.pid(PID_FILE).expect("pid");
    let kvm_system = root.pid(KVM_SYSTEM_PID_FILE).expect("kvm_system pid");

    // A second start is refused and finds nothing left to do.
    let again = root.run("start");
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(!describe(&again).contains("moved"), "{}", describe(&again));
    assert!(
        !describe(&again).contains("installed"),
        "{}",
        describe(&again)
    );
    assert_eq!(root.read("etc/init.d/S03usbdev"), ours);
    assert_eq!(root.read("etc/nanokvmd/stock/S03usbdev"), STOCK_GADGET_TEXT);
    assert_eq!(root.pid(PID_FILE), Some(pid));
    assert_eq!(root.pid(KVM_SYSTEM_PID_FILE), Some(kvm_system));
    assert!(alive(pid) && alive(kvm_system));
    root.run_ok("stop");
}

#[test]
fn without_our_copy_a_stock_gadget_script_is_left_alone() {
    let root = Root::new("init-nocopy", Fake::Polite).with_stock();
    let said = root.run_ok("start");
    assert_eq!(root.read("etc/init.d/S03usbdev"), STOCK_GADGET_TEXT);
    assert!(!root.exists("etc/nanokvmd/stock/S03usbdev"));
    assert!(said.contains("left as it is"), "{said}");
    root.run_ok("stop");
}

#[test]
fn a_running_stock_server_is_stopped_before_nanokvmd_starts_and_its_kvm_system_kept() {
    let root = Root::new("init-server", Fake::Polite);
    root.install(
        &format!("tmp/server/{STOCK_SERVER}"),
        &stock_server_body(root.path(), true),
    );
    root.write("tmp/server/web/index.html", "stock web");
    root.install(
        "tmp/kvm_system/kvm_system",
        &format!(
            "trap 'echo TERM > \"{}\"; exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n",
            root.at("kvm_system.terminated").display()
        ),
    );
    let server = root.spawn_stock_server(&format!("tmp/server/{STOCK_SERVER}"));
    let stock_kvm_system = root.spawn("tmp/kvm_system/kvm_system");
    assert_eq!(root.processes_named(STOCK_SERVER), vec![server]);

    let said = root.run_ok("start");
    assert!(!alive(server), "the stock server still runs: {said}");
    // SIGINT first, as the stock script does; this one listens to it.
    assert_eq!(root.read("stock_server.signals").trim(), "INT");
    assert!(!root.exists("tmp/server"), "/tmp/server is left");
    let log = root.read(LOG_FILE);
    assert!(
        position(&log, "NanoKVM-Server runs (pid") < position(&log, "NanoKVM-Server stopped"),
        "{log}"
    );
    assert!(
        position(&log, "NanoKVM-Server stopped") < position(&log, "nanokvmd listening"),
        "the stock server was not stopped before nanokvmd started: {log}"
    );
    assert!(!log.contains("SIGTERM ended it"), "{log}");
    // The stock script's kvm_system is kept, not joined by a second one.
    assert_eq!(root.pid(KVM_SYSTEM_PID_FILE), Some(stock_kvm_system));
    assert!(alive(stock_kvm_system));
    assert_eq!(root.processes_named("kvm_system"), vec![stock_kvm_system]);
    assert!(log.contains("kvm_system already runs"), "{log}");
    let pid = root.pid(PID_FILE).expect("pid");

    // A stock server started again while nanokvmd runs goes at the next start, which is
    // refused as usual.
    std::fs::remove_file(root.at("stock_server.signals")).expect("rm");
    root.install(
        &format!("tmp/server/{STOCK_SERVER}"),
        &stock_server_body(root.path(), true),
    );
    let second = root.spawn_stock_server(&format!("tmp/server/{STOCK_SERVER}"));
    let again = root.run("start");
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(!alive(second), "{}", describe(&again));
    assert_eq!(root.read("stock_server.signals").trim(), "INT");
    assert_eq!(root.pid(PID_FILE), Some(pid));
    assert!(alive(pid), "nanokvmd went with the stock server");
    assert!(
        root.read(LOG_FILE).contains(&format!("pid {second}")),
        "not logged in the running daemon's log"
    );

    root.run_ok("stop");
    assert!(
        wait_for_file(&root.at("kvm_system.terminated"), Duration::from_secs(2)),
        "the kept kvm_system was not stopped"
    );
}

#[test]
fn a_stock_server_deaf_to_sigint_gets_sigterm() {
    let root = Root::new("init-deaf", Fake::Polite);
    root.install(
        &format!("tmp/server/{STOCK_SERVER}"),
        &stock_server_body(root.path(), false),
    );
    let server = root.spawn_stock_server(&format!("tmp/server/{STOCK_SERVER}"));
    let said = root.run_ok("start");
    assert!(!alive(server), "{said}");
    assert_eq!(root.read("stock_server.signals").trim(), "TERM");
    assert!(said.contains("ignored SIGINT"), "{said}");
    root.run_ok("stop");
}

#[test]
fn after_a_stock_update_kvm_system_sets_it_up_then_nanokvmd_takes_over() {
    let root = Root::new("init-update", Fake::Polite).with_stock();
    std::fs::create_dir_all(root.at("usr/share/nanokvmd")).expect("mkdir");
    let ours = workspace_dir().join("rootfs/etc/init.d/S03usbdev");
    std::fs::copy(&ours, root.at("usr/share/nanokvmd/S03usbdev")).expect("copy");
    // Installed as INSTALL.md says, then a stock update replaced /kvmapp.
    std::fs::create_dir_all(root.at("etc/nanokvmd/stock")).expect("mkdir");
    std::fs::rename(
        root.at("etc/init.d/S95nanokvm"),
        root.at("etc/nanokvmd/stock/S95nanokvm"),
    )
    .expect("mv");
    std::fs::copy(&ours, root.at("etc/init.d/S03usbdev")).expect("copy");
    root.write("kvmapp/kvm_new_app", "");

    let said = root.run_ok("start");
    assert!(
        !root.exists("kvmapp/kvm_new_app"),
        "kvm_system's setup did not run"
    );
    assert!(
        !root.exists("stock_script.calls"),
        "the stock script's restart was not kept from doing anything: {}",
        root.read("stock_script.calls")
    );
    assert!(!root.exists("tmp/.nanokvm_migrating"), "the flag is left");
    assert!(!root.exists("etc/init.d/S95nanokvm"), "{said}");
    assert_eq!(
        root.read("etc/init.d/S03usbdev"),
        std::fs::read_to_string(&ours).expect("ours")
    );
    assert_eq!(root.read("etc/nanokvmd/stock/S03usbdev"), STOCK_GADGET_TEXT);
    assert!(
        root.processes_named(STOCK_SERVER).is_empty(),
        "the stock server runs beside nanokvmd: {said}"
    );
    assert!(!root.exists("tmp/server"));
    let kvm_system = root.pid(KVM_SYSTEM_PID_FILE).expect("kvm_system pid");
    assert_eq!(root.processes_named("kvm_system"), vec![kvm_system]);
    let pid = root.pid(PID_FILE).expect("pid");
    assert!(alive(pid));
    let log = root.read(LOG_FILE);
    let order = [
        "kvm_new_app exists",
        "S95nanokvm (put back by a stock update)",
        "NanoKVM-Server stopped",
        "nanokvmd listening",
    ];
    for pair in order.windows(2) {
        assert!(
            position(&log, pair[0]) < position(&log, pair[1]),
            "{:?} is not before {:?}:\n{log}",
            pair[0],
            pair[1]
        );
    }
    root.run_ok("stop");
}

#[test]
fn a_kvm_system_from_before_the_update_is_started_afresh_to_run_its_setup() {
    let root = Root::new("init-update-running", Fake::Polite).with_stock();
    std::fs::remove_file(root.at("etc/init.d/S95nanokvm")).expect("rm");
    std::fs::create_dir_all(root.at("tmp")).expect("mkdir");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(root.at("kvmapp/kvm_system"))
        .arg(root.at("tmp/"))
        .output()
        .expect("cp");
    assert!(copy.status.success(), "{}", describe(&copy));
    // Started before the update: it saw no kvm_new_app and will not look again.
    let old = root.spawn("tmp/kvm_system/kvm_system");
    root.write("kvmapp/kvm_new_app", "");

    let said = root.run_ok("start");
    assert!(
        !alive(old),
        "the kvm_system from before the update still runs: {said}"
    );
    assert!(
        !root.exists("kvmapp/kvm_new_app"),
        "the setup did not run: {said}"
    );
    assert!(!root.exists("etc/init.d/S95nanokvm"), "{said}");
    assert!(root.processes_named(STOCK_SERVER).is_empty(), "{said}");
    let kvm_system = root.pid(KVM_SYSTEM_PID_FILE).expect("kvm_system pid");
    assert_ne!(kvm_system, old);
    assert_eq!(root.processes_named("kvm_system"), vec![kvm_system]);
    root.run_ok("stop");
}

#[test]
fn the_sensor_configuration_is_copied_when_and_only_when_stock_would() {
    const INI: &str = "mnt/data/sensor_cfg.ini";
    const LT: &str = "mnt/data/sensor_cfg.ini.LT";

    // With the .LT file: copied over whatever is there, at every start.
    let root = Root::new("init-sensor-lt", Fake::Polite);
    root.write(LT, "[source]\nname = LT6911\n");
    root.write(INI, "edited\n");
    root.run_ok("start");
    assert_eq!(root.read(INI), "[source]\nname = LT6911\n");
    root.run_ok("stop");
    root.write(INI, "edited again\n");
    root.run_ok("start");
    assert_eq!(root.read(INI), "[source]\nname = LT6911\n");
    root.run_ok("stop");

    // Without it: the configuration is left as it is, or absent.
    let root = Root::new("init-sensor-own", Fake::Polite);
    root.write(INI, "own\n");
    root.run_ok("start");
    assert_eq!(root.read(INI), "own\n");
    root.run_ok("stop");
    let root = Root::new("init-sensor-none", Fake::Polite);
    std::fs::create_dir_all(root.at("mnt/data")).expect("mkdir");
    root.run_ok("start");
    assert!(!root.exists(INI));
    root.run_ok("stop");
}

// ---------------------------------------------------------------------------------------------
// INSTALL.md's commands
// ---------------------------------------------------------------------------------------------

/// The `sh` blocks under the `## heading` of INSTALL.md, as one script whose absolute paths
/// are under the scratch root (`"$R"/etc/...`) and whose `reboot` only counts.
fn install_md_commands(heading: &str) -> String {
    let text =
        std::fs::read_to_string(workspace_dir().join("rootfs/INSTALL.md")).expect("INSTALL.md");
    let mut in_section = false;
    let mut in_block = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title == heading;
            continue;
        }
        if !in_section {
            continue;
        }
        if in_block {
            if line == "```" {
                in_block = false;
            } else {
                let command = line.split("  #").next().unwrap_or(line).trim_end();
                lines.push(command.replace(" /", " \"$R\"/"));
            }
        } else if line == "```sh" {
            in_block = true;
        }
    }
    assert!(!lines.is_empty(), "no sh block under ## {heading}");
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| {
            if l.starts_with('/') {
                format!("\"$R\"{l}")
            } else {
                l
            }
        })
        .collect();
    format!(
        "set -eu\nreboot() {{ echo reboot >> \"$R/rebooted\"; }}\n{}\n",
        lines.join("\n")
    )
}

/// Runs the commands under `## heading` in INSTALL.md against the root.
fn run_install_md(root: &Root, heading: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(install_md_commands(heading))
        .env("R", root.path())
        .envs(root.env())
        .current_dir(root.path())
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "INSTALL.md, {heading}: {}",
        describe(&out)
    );
    describe(&out)
}

/// The bundle `cargo xtask dist` makes, with a stand-in binary tagged `tag`, as
/// `/tmp/nanokvmd-riscv64.tar.gz`.
fn put_bundle(root: &Root, tag: &str) {
    let stage = root.at("stage");
    let bundle = stage.join("nanokvmd-riscv64");
    let workspace = workspace_dir();
    for rel in [
        "rootfs/etc/init.d/S95nanokvmd",
        "rootfs/etc/init.d/S03usbdev",
        "rootfs/etc/nanokvmd/nanokvmd.toml",
    ] {
        let to = bundle.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(workspace.join(rel), &to).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
    std::fs::copy(
        workspace.join("rootfs/INSTALL.md"),
        bundle.join("INSTALL.md"),
    )
    .expect("INSTALL.md");
    let binary = bundle.join("nanokvmd");
    std::fs::write(
        &binary,
        format!("#!/bin/sh\n{}", daemon_body(root.path(), Fake::Polite, tag)),
    )
    .expect("binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = Command::new("tar")
        .arg("czf")
        .arg(root.at("tmp/nanokvmd-riscv64.tar.gz"))
        .arg("-C")
        .arg(&stage)
        .arg("nanokvmd-riscv64")
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {}", describe(&out));
    std::fs::remove_dir_all(&stage).expect("rm stage");
}

/// Every file under `etc`, `usr` and `kvmapp` with its contents and permission bits.
fn snapshot(root: &Root) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    fn walk(
        dir: &Path,
        base: &Path,
        into: &mut std::collections::BTreeMap<String, (Vec<u8>, u32)>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, into);
            } else {
                let rel = path.strip_prefix(base).expect("under root");
                let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
                let bytes = std::fs::read(&path).expect("read");
                into.insert(rel.display().to_string(), (bytes, mode));
            }
        }
    }
    let mut files = std::collections::BTreeMap::new();
    for top in ["etc", "usr", "kvmapp"] {
        walk(&root.at(top), root.path(), &mut files);
    }
    files
}

#[test]
fn install_update_and_rollback_as_install_md_says_them() {
    let root = Root::bare("init-install").with_stock();
    let before = snapshot(&root);
    let workspace = workspace_dir();
    let shipped = |rel: &str| std::fs::read_to_string(workspace.join(rel)).expect(rel);

    put_bundle(&root, "v1");
    run_install_md(&root, "Install");
    assert_eq!(root.read("rebooted"), "reboot\n");
    assert_eq!(
        root.read("stock_script.calls"),
        "stop\n",
        "the stock server was not stopped"
    );
    assert!(!root.exists("etc/init.d/S95nanokvm"));
    for script in ["S95nanokvm", "S03usbdev"] {
        assert_eq!(
            std::fs::read(root.at(&format!("etc/nanokvmd/stock/{script}"))).expect(script),
            before[&format!("etc/init.d/{script}")].0,
            "the stock {script} is not kept as it was"
        );
    }
    assert_eq!(
        root.read("etc/init.d/S95nanokvmd"),
        shipped("rootfs/etc/init.d/S95nanokvmd")
    );
    for at in ["etc/init.d/S03usbdev", "usr/share/nanokvmd/S03usbdev"] {
        assert_eq!(
            root.read(at),
            shipped("rootfs/etc/init.d/S03usbdev"),
            "{at}"
        );
    }
    assert_eq!(
        root.read("etc/nanokvmd/nanokvmd.toml"),
        shipped("rootfs/etc/nanokvmd/nanokvmd.toml")
    );
    for at in [DAEMON, "etc/init.d/S95nanokvmd", "etc/init.d/S03usbdev"] {
        assert!(is_executable(&root.at(at)), "{at} is not executable");
    }
    assert!(root.read(DAEMON).contains("stand-in nanokvmd v1"));

    // The boot, with the installed script: nothing of the stock software to take over.
    let installed = root.at("etc/init.d/S95nanokvmd");
    let out = root.run_script(&installed, "start");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !root.read(LOG_FILE).contains("S95nanokvmd:"),
        "{}",
        root.read(LOG_FILE)
    );
    let first = root.pid(PID_FILE).expect("pid");

    root.write("etc/nanokvmd/nanokvmd.toml", "# edited\n");
    put_bundle(&root, "v2");
    run_install_md(&root, "Updating nanokvmd");
    assert!(root.read(DAEMON).contains("stand-in nanokvmd v2"));
    let second = root.pid(PID_FILE).expect("pid after the update");
    assert_ne!(first, second);
    assert!(!alive(first), "the old nanokvmd still runs");
    assert!(alive(second), "the new nanokvmd does not run");
    assert_eq!(root.read("etc/nanokvmd/nanokvmd.toml"), "# edited\n");
    assert_eq!(
        std::fs::read(root.at("etc/nanokvmd/stock/S03usbdev")).expect("stock"),
        before["etc/init.d/S03usbdev"].0
    );

    run_install_md(&root, "Back to the stock server");
    assert!(!alive(second), "nanokvmd still runs after the rollback");
    assert_eq!(root.read("rebooted"), "reboot\nreboot\n");
    assert!(!root.exists(LOG_FILE));
    let after = snapshot(&root);
    let differ: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "the rollback did not restore the stock files exactly: {differ:?}"
    );
}
