//! The doctor against a scratch root laid out like a NanoKVM, with the C mock as the library.

use std::path::{Path, PathBuf};

use nanokvm_ffi::mock::{self, Venc};

use super::*;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn put(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A Cube (beta board) with the gadget bound, the GPIO lines exported, the stock server
/// stopped, and the library of `venc`.
fn cube(tag: &str, venc: Venc) -> (Scratch, Config, Paths) {
    let root = std::env::temp_dir().join(format!("nanokvmd-doctor-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    mock::install(&root.join("kvmapp/server/dl_lib"), venc);
    put(&root, "etc/kvm/hw", "beta\n");
    for gpio in [503, 504, 505] {
        put(&root, &format!("sys/class/gpio/gpio{gpio}/value"), "0\n");
    }
    put(
        &root,
        "sys/kernel/config/usb_gadget/g0/UDC",
        "4340000.usb\n",
    );
    for f in ["hid.GS0", "hid.GS1", "hid.GS2"] {
        std::fs::create_dir_all(
            root.join("sys/kernel/config/usb_gadget/g0/functions")
                .join(f),
        )
        .unwrap();
    }
    for n in 0..3 {
        put(&root, &format!("dev/hidg{n}"), "");
    }
    put(&root, "kvmapp/kvm/state", "1\n");
    put(&root, "kvmapp/kvm/width", "1280\n");
    put(&root, "kvmapp/kvm/height", "1024\n");
    put(&root, "proc/77/comm", "kvm_system\n");
    put(&root, "etc/init.d/S95nanokvmd", "#!/bin/sh\n");
    let mut cfg = Config::default();
    cfg.device.root = root.clone();
    cfg.device.library_dir = root.join("kvmapp/server/dl_lib");
    let paths = Paths::from_config(&cfg, &root.join("etc/nanokvm"));
    (Scratch(root), cfg, paths)
}

fn texts(r: &Report, level: Level) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.level == level)
        .map(|f| format!("{} {}", f.area, f.text))
        .collect()
}

#[test]
fn a_ready_cube_passes_and_the_report_says_what_it_found() {
    let (_s, cfg, paths) = cube("ready", Venc::WithRequestIdr);
    let r = examine(&cfg, None, &paths);
    assert!(!r.failed(), "{}", r.render());
    let all = r.render();
    for needle in [
        "kvmv_read_img",
        "no kvmv_hdmi_signal_active: no signal flag",
        "looks like release 2.2.3 .. 2.5.0",
        "CVI_VENC_RequestIDR (instant IDRs)",
        "signal: yes",
        "input size 1280x1024",
        "720p 896x716",
        "gadget g0 bound to 4340000.usb",
        "board beta",
        "reset button: gpio505 = 0",
        "the stock NanoKVM-Server is not running",
        "kvm_system (OLED, watchdog) is running (pid [77])",
        "on the device: 2000 kbit/s, GOP 60",
        "ready: 0 missing",
    ] {
        assert!(all.contains(needle), "{needle:?} not in\n{all}");
    }
    assert!(
        paths.hid[0].starts_with(&paths.root),
        "HID devices under the root"
    );
}

#[test]
fn what_the_daemon_needs_is_a_failure_and_the_stock_server_a_warning() {
    let (s, cfg, paths) = cube("missing", Venc::Absent);
    let root = &s.0;
    std::fs::remove_file(root.join("sys/class/gpio/gpio505/value")).unwrap();
    std::fs::write(root.join("sys/kernel/config/usb_gadget/g0/UDC"), "\n").unwrap();
    std::fs::remove_file(root.join("dev/hidg2")).unwrap();
    put(root, "proc/1234/comm", "NanoKVM-Server\n");
    put(root, "etc/init.d/S95nanokvm", "#!/bin/sh\n");
    let r = examine(&cfg, None, &paths);
    assert!(r.failed());
    let fails = texts(&r, Level::Fail);
    assert_eq!(fails.len(), 3, "{fails:#?}");
    assert!(fails.iter().any(|f| f.contains("gpio505")), "{fails:#?}");
    assert!(fails.iter().any(|f| f.contains("not bound")), "{fails:#?}");
    assert!(fails.iter().any(|f| f.contains("hidg2")), "{fails:#?}");
    let warns = texts(&r, Level::Warn);
    assert!(
        warns
            .iter()
            .any(|w| w.contains("NanoKVM-Server is running (pid [1234])")),
        "{warns:#?}"
    );
    assert!(
        warns.iter().any(|w| w.contains("S95nanokvm ")),
        "{warns:#?}"
    );
    assert!(warns.iter().any(|w| w.contains("libvenc.so")), "{warns:#?}");
    assert!(r.render().contains("not ready: 3 missing"));
}

#[test]
fn a_missing_or_foreign_library_is_a_failure() {
    let (s, cfg, paths) = cube("nolib", Venc::WithRequestIdr);
    let lib = s.0.join("kvmapp/server/dl_lib/libkvm.so");
    std::fs::write(&lib, b"not a library").unwrap();
    let r = examine(&cfg, None, &paths);
    assert!(
        texts(&r, Level::Fail)
            .iter()
            .any(|f| f.contains("not an ELF file")),
        "{}",
        r.render()
    );
    std::fs::remove_file(&lib).unwrap();
    let r = examine(&cfg, None, &paths);
    assert!(
        texts(&r, Level::Fail)
            .iter()
            .any(|f| f.contains("libkvm.so")),
        "{}",
        r.render()
    );
}

#[test]
fn settings_the_device_cannot_honour_are_warned_about() {
    let (_s, mut cfg, paths) = cube("settings", Venc::WithRequestIdr);
    cfg.stream.h264_bitrate_kbps = 8000;
    cfg.stream.gop = 300;
    let r = examine(&cfg, None, &paths);
    let warns = texts(&r, Level::Warn);
    assert!(
        warns.iter().any(|w| w.contains("5000 kbit/s, GOP 100")),
        "{warns:#?}"
    );
}

#[test]
fn the_mock_librarys_symbols_are_read_from_its_elf_table() {
    let (s, _cfg, _paths) = cube("elf", Venc::WithRequestIdr);
    let file = std::fs::read(s.0.join("kvmapp/server/dl_lib/libkvm.so")).unwrap();
    let names = elf::exported_functions(&file).unwrap();
    for required in REQUIRED {
        assert!(names.iter().any(|n| n == required), "{required}: {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "malloc"),
        "imports are not exports: {names:?}"
    );
}
