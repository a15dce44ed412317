//! `cargo xtask dist`: the NanoKVM build and its bundle.
//!
//! 1. The cross tools: zig (PyPI's `ziglang`, installed with pip into the target directory
//!    when `python3 -m ziglang` is not there), cargo-zigbuild, the `rust-src` component (the
//!    `riscv64gc-unknown-linux-musl` std is not downloadable, so it is built: `-Zbuild-std`).
//! 2. The device binary: dynamically linked against musl (`-crt-static`, and `-dynamic` for
//!    zig's linker), so that it can `dlopen` the vendor libraries; without the simulated target.
//! 3. Checks: RISC-V, 64-bit, musl's loader as interpreter, at most [`SIZE_LIMIT`].
//! 4. The bundle: `<target>/dist/nanokvmd-riscv64/` with the binary, `rootfs/etc` and
//!    `INSTALL.md`, and the same as `nanokvmd-riscv64.tar.gz`.
//! 5. Unless `--no-smoke`: a static build of the simulated target (no OpenH264, which does not
//!    build for riscv64), run under `qemu-riscv64` by `tests/tests/riscv64_smoke.rs`, and by
//!    `tests/browser/no_h264.test.mjs` (the console falls back to MJPEG). Then the device
//!    binary itself: a riscv64 musl built from source (`musl.rs`, cached) is its loader and
//!    libc under `qemu-riscv64 -L`, and `tests/tests/riscv64_device.rs` runs it against the
//!    riscv64 build of the vendor library mock and decodes its H.264 on the host.
//!
//! Each variant keeps its own target directory under `<target>/riscv64/`, std included, so a
//! second run rebuilds only what changed (the two differ in RUSTFLAGS, which would otherwise
//! rebuild everything each time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::elf::{self, EM_RISCV};
use crate::musl::{self, Musl};
use crate::{on_path, run, run_with_env, target_dir};

const TARGET: &str = "riscv64gc-unknown-linux-musl";
const MUSL_LOADER: &str = "/lib/ld-musl-riscv64.so.1";
/// The device has 256 MB of RAM, most of it for video; the binary is loaded from the SD card.
const SIZE_LIMIT: u64 = 4_000_000;
/// Versions checked to work together here (toolchain facts: Rust 1.95).
const ZIGLANG: &str = "ziglang==0.17.1";
const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";
const BUNDLE: &str = "nanokvmd-riscv64";

/// One build of the daemon for the device's CPU.
struct Variant {
    name: &'static str,
    features: &'static [&'static str],
    rustflags: &'static str,
}

/// What runs on the NanoKVM: the hardware backend only, loading the vendor libraries.
const DEVICE: Variant = Variant {
    name: "device",
    features: &["--no-default-features"],
    rustflags: "-C target-feature=-crt-static -C link-arg=-dynamic",
};

/// What runs under qemu here: the simulated target, static (no riscv64 musl to load).
const SMOKE: Variant = Variant {
    name: "smoke",
    features: &["--no-default-features", "--features", "sim"],
    rustflags: "",
};

/// How long each step took, printed at the end.
#[derive(Default)]
struct Steps(Vec<(String, Duration)>);

impl Steps {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let t0 = Instant::now();
        let r = f();
        self.0.push((name.to_string(), t0.elapsed()));
        r
    }

    fn print(&self) {
        eprintln!("xtask dist: time per step");
        for (name, d) in &self.0 {
            eprintln!("  {:>7.1} s  {name}", d.as_secs_f64());
        }
    }
}

pub fn dist(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.iter().find(|a| a.as_str() != "--no-smoke") {
        return Err(format!("dist: unknown argument {a:?}"));
    }
    let smoke = !args.iter().any(|a| a == "--no-smoke");
    let root = crate::root();
    let target = target_dir(&root);
    let mut steps = Steps::default();
    let result = build_and_check(&root, &target, smoke, &mut steps);
    steps.print();
    result
}

fn build_and_check(
    root: &Path,
    target: &Path,
    smoke: bool,
    steps: &mut Steps,
) -> Result<(), String> {
    let python_path = steps.time("cross tools (zig, cargo-zigbuild, rust-src)", || {
        ensure_cross_tools(root, target)
    })?;
    let device = steps.time("device build (dynamic musl)", || {
        cross_build(root, target, &DEVICE, &python_path)
    })?;
    let size = steps.time("device binary checks", || check_device_binary(&device))?;
    let bundle = steps.time("bundle", || write_bundle(root, target, &device))?;
    eprintln!(
        "xtask dist: {} ({size} bytes, riscv64, {MUSL_LOADER}); bundle {}",
        device.display(),
        bundle.display()
    );
    if smoke {
        let sim = steps.time("smoke build (static, simulated target)", || {
            cross_build(root, target, &SMOKE, &python_path)
        })?;
        steps.time("smoke binary checks", || check_static_binary(&sim))?;
        let zig = zig_binary(&python_path)?;
        let musl = steps.time("riscv64 musl sysroot (cached after the first run)", || {
            musl::ensure(target, &zig)
        })?;
        steps.time("device binary under qemu-riscv64 (riscv64 mock)", || {
            device_smoke_test(root, &device, &musl)
        })?;
        steps.time("smoke test under qemu-riscv64", || smoke_test(root, &sim))?;
        steps.time("browser test under qemu-riscv64", || {
            browser_test(root, target, &sim)
        })?;
    }
    Ok(())
}

/// Installs what the cross build needs; returns the `PYTHONPATH` under which
/// `python3 -m ziglang` works (empty when it works as it is).
fn ensure_cross_tools(root: &Path, target: &Path) -> Result<String, String> {
    let zig_dir = target.join("dist-tools/python");
    let zig_dir_str = zig_dir.to_string_lossy().into_owned();
    let python_path = if ziglang_works("") {
        String::new()
    } else {
        if !ziglang_works(&zig_dir_str) {
            // Into a directory of our own: no system Python environment is changed (and
            // Debian's refuses a plain `pip install`).
            run(
                root,
                "python3",
                &[
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--upgrade",
                    "--target",
                    &zig_dir_str,
                    ZIGLANG,
                ],
            )?;
        }
        if !ziglang_works(&zig_dir_str) {
            return Err(format!(
                "`python3 -m ziglang` does not work even with {ZIGLANG} installed in {zig_dir_str}"
            ));
        }
        zig_dir_str
    };
    let zigbuild_works = Command::new("cargo")
        .args(["zigbuild", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !zigbuild_works {
        run(
            root,
            "cargo",
            &[
                "install",
                "--locked",
                "cargo-zigbuild",
                "--version",
                CARGO_ZIGBUILD_VERSION,
            ],
        )?;
    }
    let components = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        run(root, "rustup", &["component", "add", "rust-src"])?;
    }
    Ok(python_path)
}

/// The zig executable inside the `ziglang` package: called directly, not through
/// `python3 -m ziglang`, since musl's build runs it once per source file.
fn zig_binary(python_path: &str) -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))",
        ])
        .env("PYTHONPATH", python_path)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let zig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && zig.is_file() {
        Ok(zig)
    } else {
        Err(format!(
            "no zig executable in the ziglang package ({}): {}",
            zig.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn ziglang_works(python_path: &str) -> bool {
    Command::new("python3")
        .args(["-m", "ziglang", "version"])
        .env("PYTHONPATH", python_path)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `cargo zigbuild` with `-Zbuild-std`, in the variant's own target directory; returns the
/// binary.
fn cross_build(
    root: &Path,
    target: &Path,
    variant: &Variant,
    python_path: &str,
) -> Result<PathBuf, String> {
    let dir = target.join("riscv64").join(variant.name);
    let dir_str = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "zigbuild",
        "--locked",
        "-p",
        "nanokvmd",
        "--profile",
        "dist",
        "--target",
        TARGET,
        "-Zbuild-std=std,panic_abort",
    ];
    args.extend_from_slice(variant.features);
    run_with_env(
        root,
        "cargo",
        &args,
        &[
            ("CARGO_TARGET_DIR", dir_str.as_str()),
            // -Zbuild-std is unstable; this is the stable toolchain's way to allow it.
            ("RUSTC_BOOTSTRAP", "1"),
            ("RUSTFLAGS", variant.rustflags),
            ("PYTHONPATH", python_path),
        ],
    )?;
    Ok(dir.join(TARGET).join("dist").join("nanokvmd"))
}

fn riscv64_facts(binary: &Path) -> Result<elf::ElfFacts, String> {
    let bytes = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let facts = elf::facts(&bytes).map_err(|e| format!("{}: {e}", binary.display()))?;
    if facts.machine != EM_RISCV || !facts.class64 {
        return Err(format!(
            "{} is not a 64-bit RISC-V executable (e_machine {})",
            binary.display(),
            facts.machine
        ));
    }
    Ok(facts)
}

/// RISC-V 64, musl's dynamic loader, small enough; returns the size.
fn check_device_binary(binary: &Path) -> Result<u64, String> {
    let facts = riscv64_facts(binary)?;
    if facts.interpreter.as_deref() != Some(MUSL_LOADER) {
        return Err(format!(
            "{} must be linked dynamically against musl (interpreter {MUSL_LOADER}), \
             its interpreter is {:?}",
            binary.display(),
            facts.interpreter
        ));
    }
    let size = std::fs::metadata(binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    if size > SIZE_LIMIT {
        return Err(format!(
            "{} is {size} bytes, over the {SIZE_LIMIT} byte budget",
            binary.display()
        ));
    }
    Ok(size)
}

fn check_static_binary(binary: &Path) -> Result<(), String> {
    let facts = riscv64_facts(binary)?;
    match facts.interpreter {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} should be static for qemu, but asks for the loader {i}",
            binary.display()
        )),
    }
}

/// `<target>/dist/nanokvmd-riscv64/{nanokvmd, rootfs/etc/..., INSTALL.md}` and its tarball.
fn write_bundle(root: &Path, target: &Path, binary: &Path) -> Result<PathBuf, String> {
    let dist = target.join("dist");
    let bundle = dist.join(BUNDLE);
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    }
    copy_tree(&root.join("rootfs/etc"), &bundle.join("rootfs/etc"))?;
    copy(binary, &bundle.join("nanokvmd"))?;
    copy(&root.join("rootfs/INSTALL.md"), &bundle.join("INSTALL.md"))?;
    run(
        &dist,
        "tar",
        &[
            "--owner=0",
            "--group=0",
            "-czf",
            &format!("{BUNDLE}.tar.gz"),
            BUNDLE,
        ],
    )?;
    Ok(bundle)
}

/// Copies a file with its permissions (the scripts stay executable).
fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            copy(&path, &dest)?;
        }
    }
    Ok(())
}

fn smoke_test(root: &Path, binary: &Path) -> Result<(), String> {
    if !on_path("qemu-riscv64") {
        return Err("qemu-riscv64 is missing (Debian package qemu-user)".into());
    }
    let binary = binary.to_string_lossy();
    run_with_env(
        root,
        "cargo",
        &[
            "test",
            "-p",
            "nanokvmd",
            "--test",
            "riscv64_smoke",
            "--",
            "--ignored",
        ],
        &[("NANOKVMD_RISCV64_BIN", binary.as_ref())],
    )
}

/// The console in Chromium against the riscv64 build, which has no H.264 to give it.
fn browser_test(root: &Path, target: &Path, binary: &Path) -> Result<(), String> {
    // The browser tests run NANOKVMD_BIN for the daemon and its CLI: this runs it under qemu.
    let wrapper = target.join("riscv64").join("nanokvmd-under-qemu");
    let script = format!(
        "#!/bin/sh\nexec qemu-riscv64 '{}' \"$@\"\n",
        binary.to_string_lossy().replace('\'', r"'\''")
    );
    std::fs::write(&wrapper, script).map_err(|e| format!("{}: {e}", wrapper.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", wrapper.display()))?;
    let dir = root.join("tests/browser");
    if !dir.join("node_modules").is_dir() {
        run(&dir, "npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    let wrapper = wrapper.to_string_lossy();
    run_with_env(
        &dir,
        "node",
        &["--test", "no_h264.test.mjs"],
        &[
            ("NANOKVMD_BIN", wrapper.as_ref()),
            ("NANOKVMD_NO_H264", "1"),
        ],
    )
}

/// The device binary itself under `qemu-riscv64`, loaded by the musl built from source,
/// against the riscv64 build of the vendor library mock: `tests/tests/riscv64_device.rs`
/// streams its H.264 and decodes it on the host.
fn device_smoke_test(root: &Path, device: &Path, musl: &Musl) -> Result<(), String> {
    if !on_path("qemu-riscv64") {
        return Err("qemu-riscv64 is missing (Debian package qemu-user)".into());
    }
    let (device, sysroot, cc) = (
        device.to_string_lossy(),
        musl.sysroot.to_string_lossy(),
        musl.cc.to_string_lossy(),
    );
    run_with_env(
        root,
        "cargo",
        &[
            "test",
            "-p",
            "nanokvmd",
            "--test",
            "riscv64_device",
            "--",
            "--ignored",
        ],
        &[
            ("NANOKVMD_RISCV64_DEVICE_BIN", device.as_ref()),
            ("NANOKVM_RISCV64_SYSROOT", sysroot.as_ref()),
            // The mock is compiled by the test with the same sources and defines as the
            // host's (nanokvm_ffi::mock), only with this compiler.
            ("NANOKVM_MOCK_CC", cc.as_ref()),
        ],
    )
}
