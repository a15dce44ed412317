//! The device build itself under `qemu-riscv64`: the dynamically linked riscv64 binary, loaded
//! by a riscv64 musl (`-L` sysroot, built from source by `cargo xtask dist`), runs
//! `--backend device` against the riscv64 build of the vendor library mock, which it opens
//! with dlopen as it would the real `libkvm.so`. Its H.264 stream is fetched over HTTP and
//! decoded here with OpenH264; SIGTERM ends it cleanly, with every mock buffer given back.
//!
//! Ignored by default: `cargo xtask dist` runs it with `NANOKVMD_RISCV64_DEVICE_BIN` (the
//! device binary), `NANOKVM_RISCV64_SYSROOT` (the musl sysroot) and `NANOKVM_MOCK_CC` (the
//! riscv64 C compiler that `nanokvm_ffi::mock` then builds the mock with); `QEMU_RISCV64`
//! names the emulator (default `qemu-riscv64` on `PATH`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nanokvm_e2e::http::{BodyStream, Chunk};
use nanokvm_e2e::{h264, Daemon, TempDir};
use nanokvm_ffi::mock::{self, Venc};

/// Emulation makes everything slower; these bound the waits, not the expectations.
const SLOW: Duration = Duration::from_secs(60);
/// Access units to decode: enough to span P-frames after the first IDR.
const FRAMES: usize = 10;
const EM_RISCV: u16 = 243;

fn env_path(name: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set (cargo xtask dist sets it and runs this test)")
    }));
    assert!(p.exists(), "{name}={} does not exist", p.display());
    p
}

fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "{} is no ELF file",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The device's files under `scratch`, as `tests/tests/device.rs` lays them out, with the
/// riscv64 mock in `dl_lib/`; returns the config file.
fn lay_out_device(scratch: &TempDir) -> PathBuf {
    let dir = scratch.path();
    let lib = dir.join("dl_lib");
    mock::install(&lib, Venc::WithRequestIdr);
    for so in ["libkvm.so", "libvenc.so"] {
        assert_eq!(
            elf_machine(&lib.join(so)),
            EM_RISCV,
            "{so} was not built for riscv64 (NANOKVM_MOCK_CC)"
        );
    }
    std::fs::copy(h264::replay_file(), lib.join("mock_stream.h264")).expect("recording");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/kvm")).expect("root/etc/kvm");
    std::fs::create_dir_all(root.join("tmp")).expect("root/tmp");
    for gpio in [503, 504, 505] {
        let d = dir.join(format!("gpio/sys/class/gpio/gpio{gpio}"));
        std::fs::create_dir_all(&d).expect("gpio dir");
        std::fs::write(d.join("value"), "0").expect("gpio value");
    }
    std::fs::create_dir_all(dir.join("dev")).expect("dev");
    let p = |rel: &str| dir.join(rel).display().to_string();
    scratch.write(
        "nanokvmd.toml",
        &format!(
            "[device]\nlibrary_dir = {:?}\nroot = {:?}\n\
             [atx]\nvariant = \"beta\"\ngpio_root = {:?}\n\
             [hid]\nkeyboard = {:?}\nmouse = {:?}\nabsolute = {:?}\nleds = {:?}\n",
            p("dl_lib"),
            p("root"),
            p("gpio"),
            p("dev/hidg0"),
            p("dev/hidg1"),
            p("dev/hidg2"),
            p("dev/hidg0"),
        ),
    )
}

/// Reads the raw H.264 stream until it holds `n` complete access units.
fn read_access_units(stream: &mut BodyStream, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + SLOW;
    let mut buf = Vec::new();
    loop {
        let (aus, _) = h264::split_access_units(&buf);
        if aus.len() >= n {
            return aus.into_iter().map(<[u8]>::to_vec).collect();
        }
        match stream.read_some(deadline).expect("read the H.264 stream") {
            Chunk::Data(data) => buf.extend_from_slice(&data),
            Chunk::Eof => panic!("the H.264 stream ended after {} bytes", buf.len()),
            Chunk::Timeout => panic!(
                "{} access units in {SLOW:?}, wanted {n} ({} bytes)",
                aus.len(),
                buf.len()
            ),
        }
    }
}

#[test]
#[ignore = "needs the riscv64 device build, its musl sysroot and qemu-riscv64: run by `cargo xtask dist`"]
fn the_riscv64_device_build_streams_h264_from_the_riscv64_mock_under_qemu() {
    let binary = env_path("NANOKVMD_RISCV64_DEVICE_BIN");
    let sysroot = env_path("NANOKVM_RISCV64_SYSROOT");
    assert!(
        std::env::var_os("NANOKVM_MOCK_CC").is_some(),
        "NANOKVM_MOCK_CC must name a riscv64 musl C compiler for the mock"
    );
    assert_eq!(elf_machine(&binary), EM_RISCV, "{}", binary.display());
    let qemu = std::env::var("QEMU_RISCV64").unwrap_or_else(|_| "qemu-riscv64".into());
    // The harness runs NANOKVMD_BIN for the daemon and its CLI: a wrapper that execs qemu
    // with the musl sysroot, so the harness's pid and signals are qemu's.
    let wrapper_dir = TempDir::new("riscv64-device-wrapper");
    let wrapper = wrapper_dir.write(
        "nanokvmd",
        &format!(
            "#!/bin/sh\nexec {qemu} -L {} {} \"$@\"\n",
            shell_quote(&sysroot.to_string_lossy()),
            shell_quote(&binary.to_string_lossy())
        ),
    );
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("chmod wrapper");
    // Set before any daemon runs; this file holds the only test, so no thread reads it yet.
    std::env::set_var("NANOKVMD_BIN", &wrapper);

    let scratch = TempDir::new("riscv64-device");
    let config = lay_out_device(&scratch);
    // The account and token are made by the riscv64 binary's own CLI, under qemu too.
    let mut d = Daemon::start_backend("device", &["--config", &config.display().to_string()]);
    let exe = std::fs::read_link(format!("/proc/{}/exe", d.pid())).expect("/proc/PID/exe");
    assert!(
        exe.to_string_lossy().contains("qemu-riscv64"),
        "the daemon runs as {}, not under qemu-riscv64",
        exe.display()
    );
    assert!(
        d.output().contains("vendor video library loaded from"),
        "{}",
        d.output()
    );

    let mut stream = BodyStream::open_with(
        d.addr(),
        "GET",
        "/api/stream/h264",
        &[],
        b"",
        Instant::now() + SLOW,
    )
    .unwrap_or_else(|e| panic!("GET /api/stream/h264: {e}"));
    assert_eq!(stream.status, 200, "H.264 headers {:?}", stream.headers);
    let aus = read_access_units(&mut stream, FRAMES);
    drop(stream);
    h264::check_keyframe_au(&aus[0]).unwrap_or_else(|e| panic!("the first access unit: {e}"));
    let mut dec = h264::Decoder::new();
    for (i, au) in aus.iter().enumerate() {
        let size = dec
            .decode_picture(au)
            .unwrap_or_else(|e| panic!("access unit {i}: {e}"));
        assert_eq!(size, (1280, 720), "access unit {i}");
    }
    eprintln!(
        "riscv64 device: {} access units decoded at 1280x720 ({} bytes)",
        aus.len(),
        aus.iter().map(Vec::len).sum::<usize>()
    );

    let (status, took) = d.stop_within(SLOW);
    assert!(
        status.success(),
        "nanokvmd under qemu exited with {status} after SIGTERM ({took:?}). Its output:\n{}",
        d.output()
    );
    let stats = mock::stats_file(&scratch.path().join("dl_lib"))
        .unwrap_or_else(|| panic!("no mock_stats.txt: kvmv_deinit never ran\n{}", d.output()));
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert!(get("buffers").unwrap_or(0) >= FRAMES as i64, "{stats:?}");
    assert_eq!(
        get("buffers"),
        get("frees"),
        "every buffer freed: {stats:?}"
    );
    assert_eq!(
        (get("held"), get("bad_frees"), get("deinits")),
        (Some(0), Some(0), Some(1)),
        "{stats:?}"
    );
}
