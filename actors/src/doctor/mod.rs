//! `nanokvmd doctor`: what a NanoKVM offers the daemon, checked without starting it — the
//! vendor library and its symbols, what the running firmware says about the HDMI signal, the
//! USB gadget, the ATX GPIO lines, the stock server, and our own configuration.
//!
//! It only reads. It never loads the vendor library (its initialisers build the camera and
//! I2C objects, and `kvmv_init` restarts capture): the symbols come from the file's ELF table,
//! and the signal from what the library of a running server publishes (`/kvmapp/kvm/state`)
//! and from the video input driver's counters (`/proc/cvitek/vi_dbg`, as `kvm_system` reads
//! them). So it is safe to run next to the stock server or a running nanokvmd.
//!
//! Every path is under `--device-root` (`/` on the device), so the tests run it against a
//! scratch directory. Exit code 1 when something the daemon needs is missing.

pub mod elf;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nanokvm_protocol::Resolution;

use crate::atx::{hw_file, value_path, Variant};
use crate::config::Config;
use crate::device::limits::{self, EncoderParams};

/// `libkvm.so`'s symbols the daemon cannot run without; the rest are optional. Kept in step
/// with what `nanokvm_ffi` loads as required (the set of every release since 2.1.6,
/// `/work/shared/reference/vendor-library.md`).
const REQUIRED: [&str; 5] = [
    "kvmv_init",
    "kvmv_deinit",
    "kvmv_read_img",
    "free_kvmv_data",
    "set_h264_gop",
];

/// Optional symbols and what their absence costs.
const OPTIONAL: [(&str, &str); 5] = [
    (
        "kvmv_hdmi_signal_active",
        "no signal flag: 'no signal' is judged from reads (a 2 s run of -1)",
    ),
    (
        "kvmv_hdmi_control",
        "capture cannot be switched on and off (nor the PCIe board's HDMI chip reset)",
    ),
    (
        "set_frame_detact",
        "no MJPEG frame detector (unused: H.264 only)",
    ),
    ("free_all_kvmv_data", "unused by nanokvmd"),
    ("set_venc_auto_recyc", "unused by nanokvmd"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Info,
    Warn,
    /// Something the daemon needs is missing.
    Fail,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Ok => "ok  ",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub area: &'static str,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, level: Level, area: &'static str, text: impl Into<String>) {
        self.findings.push(Finding {
            level,
            area,
            text: text.into(),
        });
    }

    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Fail)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(out, "[{}] {:<8} {}", f.level.tag(), f.area, f.text);
        }
        let (fails, warns) = self
            .findings
            .iter()
            .fold((0, 0), |(f, w), x| match x.level {
                Level::Fail => (f + 1, w),
                Level::Warn => (f, w + 1),
                _ => (f, w),
            });
        let _ = writeln!(
            out,
            "{}: {fails} missing, {warns} warnings",
            if fails == 0 { "ready" } else { "not ready" }
        );
        out
    }
}

/// Where the doctor looks.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/` on the device.
    pub root: PathBuf,
    pub library_dir: PathBuf,
    pub gpio_root: PathBuf,
    pub hid: [PathBuf; 3],
    pub data_dir: PathBuf,
    /// This process, left out when looking for other servers.
    pub own_pid: u32,
}

impl Paths {
    pub fn from_config(cfg: &Config, data_dir: &Path) -> Self {
        let root = cfg.device.root.clone();
        // The device's own paths (the defaults) are under the root; paths the config names
        // are taken as they are.
        let under_root = |p: &Path, default: &Path| -> PathBuf {
            if p == default {
                root.join(p.strip_prefix("/").unwrap_or(p))
            } else {
                p.to_path_buf()
            }
        };
        let defaults = crate::hid::HidPaths::default();
        Self {
            library_dir: cfg.device.library_dir.clone(),
            gpio_root: cfg.atx.gpio_root.clone().unwrap_or_else(|| root.clone()),
            hid: [
                under_root(&cfg.hid.keyboard, &defaults.keyboard),
                under_root(&cfg.hid.mouse, &defaults.mouse),
                under_root(&cfg.hid.absolute, &defaults.absolute),
            ],
            data_dir: data_dir.to_path_buf(),
            root,
            own_pid: std::process::id(),
        }
    }
}

/// Runs every check and prints the report; the exit code says whether the daemon can run.
pub fn run(cfg: &Config, config_file: Option<&Path>, data_dir: &Path) -> std::process::ExitCode {
    let report = examine(cfg, config_file, &Paths::from_config(cfg, data_dir));
    print!("{}", report.render());
    if report.failed() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

pub fn examine(cfg: &Config, config_file: Option<&Path>, paths: &Paths) -> Report {
    let mut r = Report::default();
    check_library(&mut r, &paths.library_dir);
    check_video(&mut r, &paths.root);
    check_gadget(&mut r, &paths.root, &paths.hid);
    check_gpio(&mut r, &paths.gpio_root, cfg.atx.variant);
    check_servers(&mut r, &paths.root, paths.own_pid);
    check_config(&mut r, cfg, config_file, &paths.data_dir);
    r
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_library(r: &mut Report, dir: &Path) {
    const AREA: &str = "library";
    let kvm = dir.join("libkvm.so");
    let file = match std::fs::read(&kvm) {
        Ok(f) => f,
        Err(e) => {
            r.add(Level::Fail, AREA, format!("{}: {e}", kvm.display()));
            return;
        }
    };
    let names = match elf::exported_functions(&file) {
        Ok(n) => n,
        Err(e) => {
            r.add(Level::Fail, AREA, format!("{}: {e}", kvm.display()));
            return;
        }
    };
    let has = |s: &str| names.iter().any(|n| n == s);
    let missing: Vec<_> = REQUIRED.iter().filter(|s| !has(s)).copied().collect();
    if missing.is_empty() {
        r.add(
            Level::Ok,
            AREA,
            format!("{}: {}", kvm.display(), REQUIRED.join(", ")),
        );
    } else {
        r.add(
            Level::Fail,
            AREA,
            format!("{}: missing {}", kvm.display(), missing.join(", ")),
        );
    }
    for (name, cost) in OPTIONAL {
        if has(name) {
            r.add(Level::Info, AREA, format!("has {name}"));
        } else {
            r.add(Level::Info, AREA, format!("no {name}: {cost}"));
        }
    }
    // Which release, from what the releases export (vendor-library.md's table).
    let generation = if has("kvmv_hdmi_signal_active") {
        "newer than release 2.5.0 (capture starts off until kvmv_hdmi_control(1))"
    } else if has("set_frame_detact") {
        "release 2.2.3 .. 2.5.0"
    } else if has("kvmv_hdmi_control") {
        "release 2.1.6 .. 2.2.2"
    } else {
        "older than 2.1.6"
    };
    r.add(Level::Info, AREA, format!("looks like {generation}"));
    let venc = dir.join("libvenc.so");
    match std::fs::read(&venc).map(|f| elf::exported_functions(&f)) {
        Ok(Ok(names)) if names.iter().any(|n| n == "CVI_VENC_RequestIDR") => r.add(
            Level::Ok,
            AREA,
            format!("{}: CVI_VENC_RequestIDR (instant IDRs)", venc.display()),
        ),
        Ok(Ok(_)) => r.add(
            Level::Warn,
            AREA,
            format!(
                "{}: no CVI_VENC_RequestIDR: IDRs recreate the encoder (slower)",
                venc.display()
            ),
        ),
        Ok(Err(e)) => r.add(Level::Warn, AREA, format!("{}: {e}", venc.display())),
        Err(e) => r.add(
            Level::Warn,
            AREA,
            format!(
                "{}: {e}: IDRs recreate the encoder (slower)",
                venc.display()
            ),
        ),
    }
}

fn check_video(r: &mut Report, root: &Path) {
    const AREA: &str = "hdmi";
    let kvm = root.join("kvmapp/kvm");
    match read_trimmed(&kvm.join("state")).as_deref() {
        Some("1") => r.add(
            Level::Info,
            AREA,
            "signal: yes, says the running video library (kvmapp/kvm/state)",
        ),
        Some("0") => r.add(
            Level::Warn,
            AREA,
            "signal: no, says the running video library (kvmapp/kvm/state): cable, target off?",
        ),
        _ => r.add(
            Level::Info,
            AREA,
            "signal: unknown (no kvmapp/kvm/state: no server has run the library since boot)",
        ),
    }
    if let (Some(w), Some(h)) = (
        read_trimmed(&kvm.join("width")),
        read_trimmed(&kvm.join("height")),
    ) {
        let note = match (w.parse::<u16>(), h.parse::<u16>()) {
            (Ok(w), Ok(h)) => {
                let sizes: Vec<String> = [Resolution::P720, Resolution::P1080, Resolution::Native]
                    .iter()
                    .map(|&res| {
                        let (ow, oh) = limits::output_size(res, (w, h)).unwrap_or((w, h));
                        format!("{} {ow}x{oh}", res.name())
                    })
                    .collect();
                format!(" (streams: {})", sizes.join(", "))
            }
            _ => String::new(),
        };
        r.add(
            Level::Info,
            AREA,
            format!("input size {w}x{h}, as the library last detected it{note}"),
        );
    }
    if let Some(vi) = read_trimmed(&root.join("proc/cvitek/vi_dbg")) {
        if let Some(line) = vi.lines().find(|l| l.contains("VIFPS")) {
            r.add(
                Level::Info,
                AREA,
                format!(
                    "video input driver: {}",
                    line.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            );
        }
    }
    if root.join("etc/kvm/hdmi_disable").exists() {
        r.add(
            Level::Warn,
            AREA,
            "etc/kvm/hdmi_disable exists: the stock start order leaves capture off",
        );
    }
    if let Some(mode) = read_trimmed(&root.join("etc/kvm/hdmi_mode")) {
        let meaning = match mode.as_str() {
            "0" => "input size from the HDMI chip",
            "1" => "the library tries its list of sizes",
            "2" => "manual: the library captures kvmapp/kvm/width x height",
            _ => "unknown mode (the library resets it to 0)",
        };
        r.add(Level::Info, AREA, format!("hdmi_mode {mode}: {meaning}"));
    }
}

fn check_gadget(r: &mut Report, root: &Path, hid: &[PathBuf; 3]) {
    const AREA: &str = "usb";
    let gadget = root.join("sys/kernel/config/usb_gadget/g0");
    if !gadget.is_dir() {
        r.add(
            Level::Fail,
            AREA,
            format!(
                "{}: no USB gadget (is S03usbdev installed and configfs mounted?)",
                gadget.display()
            ),
        );
    } else {
        match read_trimmed(&gadget.join("UDC")) {
            Some(udc) if !udc.is_empty() => {
                r.add(Level::Ok, AREA, format!("gadget g0 bound to {udc}"))
            }
            _ => r.add(
                Level::Fail,
                AREA,
                "gadget g0 is not bound to a USB controller (UDC empty): the target sees no keyboard",
            ),
        }
        let functions: Vec<_> = ["hid.GS0", "hid.GS1", "hid.GS2"]
            .into_iter()
            .filter(|f| !gadget.join("functions").join(f).exists())
            .collect();
        if !functions.is_empty() {
            r.add(
                Level::Warn,
                AREA,
                format!("gadget g0 lacks {}", functions.join(", ")),
            );
        }
    }
    for (path, what) in hid.iter().zip(["keyboard", "mouse", "absolute pointer"]) {
        if path.exists() {
            r.add(Level::Ok, AREA, format!("{what}: {}", path.display()));
        } else {
            r.add(
                Level::Fail,
                AREA,
                format!("{what}: {} missing", path.display()),
            );
        }
    }
}

fn check_gpio(r: &mut Report, gpio_root: &Path, configured: Option<Variant>) {
    const AREA: &str = "atx";
    let hw = hw_file(gpio_root);
    let variant = match configured {
        Some(v) => {
            r.add(
                Level::Info,
                AREA,
                format!("board {} (configured)", v.name()),
            );
            v
        }
        None => {
            let contents = read_trimmed(&hw);
            let v = Variant::from_hw_file(contents.as_deref());
            let why = match contents {
                Some(c) => format!("{} says {c:?}", hw.display()),
                None => format!(
                    "{} missing: alpha, as the stock firmware assumes",
                    hw.display()
                ),
            };
            r.add(Level::Info, AREA, format!("board {} ({why})", v.name()));
            v
        }
    };
    let lines = variant.lines();
    let mut check = |what: &str, gpio: u16| {
        let path = value_path(gpio_root, gpio);
        match read_trimmed(&path) {
            Some(v) => r.add(Level::Ok, AREA, format!("{what}: gpio{gpio} = {v}")),
            None => r.add(
                Level::Fail,
                AREA,
                format!(
                    "{what}: {} missing (exported by S15kvmhwd at boot)",
                    path.display()
                ),
            ),
        }
    };
    check("power button", lines.power);
    check("reset button", lines.reset);
    check("power LED", lines.power_led);
    if let Some(hdd) = lines.hdd_led {
        check("HDD LED", hdd);
    }
}

/// Running processes by name (`/proc/PID/comm`), other than `own_pid`.
fn processes(root: &Path, own_pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own_pid)
        .filter_map(|pid| Some((pid, read_trimmed(&root.join(format!("proc/{pid}/comm")))?)))
        .collect();
    found.sort();
    found
}

fn check_servers(r: &mut Report, root: &Path, own_pid: u32) {
    const AREA: &str = "servers";
    let running = processes(root, own_pid);
    let pids = |name: &str| -> Vec<u32> {
        running
            .iter()
            .filter(|(_, comm)| comm == name)
            .map(|(pid, _)| *pid)
            .collect()
    };
    let stock = pids("NanoKVM-Server");
    if stock.is_empty() {
        r.add(Level::Ok, AREA, "the stock NanoKVM-Server is not running");
    } else {
        r.add(
            Level::Warn,
            AREA,
            format!(
                "the stock NanoKVM-Server is running (pid {stock:?}): it holds the video \
                 pipeline; stop it (/etc/init.d/S95nanokvm stop) before starting nanokvmd"
            ),
        );
    }
    let ours = pids("nanokvmd");
    if !ours.is_empty() {
        r.add(
            Level::Info,
            AREA,
            format!("nanokvmd is running (pid {ours:?})"),
        );
    }
    let kvm_system = pids("kvm_system");
    if kvm_system.is_empty() {
        r.add(
            Level::Info,
            AREA,
            "kvm_system (OLED, watchdog) is not running",
        );
    } else {
        r.add(
            Level::Info,
            AREA,
            format!("kvm_system (OLED, watchdog) is running (pid {kvm_system:?})"),
        );
    }
    let init = root.join("etc/init.d");
    if init.join("S95nanokvm").exists() {
        r.add(
            Level::Warn,
            AREA,
            "etc/init.d/S95nanokvm is in place: the stock server starts at boot",
        );
    }
    if init.join("S95nanokvmd").exists() {
        r.add(Level::Ok, AREA, "etc/init.d/S95nanokvmd is in place");
    } else {
        r.add(
            Level::Info,
            AREA,
            "etc/init.d/S95nanokvmd is not installed: nanokvmd does not start at boot",
        );
    }
    if root.join("etc/kvm/watchdog").exists() || root.join("tmp/watchdog").exists() {
        r.add(
            Level::Info,
            AREA,
            "watchdog armed: kvm_system reboots the board 10 s after tmp/nanokvm_wd stops being touched",
        );
    }
}

fn check_config(r: &mut Report, cfg: &Config, config_file: Option<&Path>, data_dir: &Path) {
    const AREA: &str = "config";
    match config_file {
        Some(f) => r.add(Level::Info, AREA, format!("file {}", f.display())),
        None => r.add(Level::Info, AREA, "no --config: defaults and flags"),
    }
    let s = &cfg.stream;
    let p = EncoderParams::for_settings(s);
    r.add(
        Level::Info,
        AREA,
        format!(
            "stream {} at {} fps, {} kbit/s, GOP {}",
            s.resolution.name(),
            s.fps,
            s.h264_bitrate_kbps,
            s.gop
        ),
    );
    let level = if (p.effective_kbps, p.effective_gop) == (s.h264_bitrate_kbps, s.gop) {
        Level::Info
    } else {
        Level::Warn
    };
    r.add(
        level,
        AREA,
        format!(
            "on the device: {} kbit/s, GOP {} (the library is asked for {} kbit/s: its rate \
             control counts 60 fps; its limits are 500..10000 kbit/s and GOP 1..100)",
            p.effective_kbps, p.effective_gop, p.library_kbps
        ),
    );
    let accounts = data_dir.join(crate::auth::store::ACCOUNTS_FILE);
    if accounts.exists() {
        r.add(
            Level::Ok,
            AREA,
            format!("accounts in {}", accounts.display()),
        );
    } else {
        r.add(
            Level::Info,
            AREA,
            format!(
                "no {}: the daemon prints a one-time setup code at start",
                accounts.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests;
