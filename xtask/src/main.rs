//! `cargo xtask <task>`: the project's chores in one place.
//!
//! - `tidy`: the docs against the code (paths, code map, API routes, one sentence per line;
//!   see `tidy.rs`).
//! - `ci`: everything CI checks — `tidy` first, then it installs missing system packages
//!   (Debian), and runs format, lints (also of the daemon's other feature sets), unit and
//!   end-to-end tests (once over HTTP, once over HTTPS), the browser tests in headless
//!   Chromium, and `dist`.
//! - `e2e`: only the end-to-end tests (`tests/tests/`, targets of the `nanokvmd` package, so
//!   cargo builds the daemon they run first; the device backend's also with the device's
//!   features) and the browser tests.
//! - `dist [--no-smoke]`: the NanoKVM build (riscv64 musl) and its bundle, checked, and the
//!   simulated target built for riscv64 and run under qemu (see `dist.rs`). Part of `ci`.
//! - `bench [--quick] [--no-browser]`: builds the daemon in release with the `alloc-count`
//!   feature (and once more with the device's features, for the replay rows) and runs the measurement program (`tests/examples/bench/`), which prints the
//!   table and writes `<target>/bench/report.{json,md}`. Not part of `ci`: it measures, it
//!   does not test.
//! - `bindgen`: regenerates `ffi/src/bindings/` from `ffi/include/` with the separate program
//!   in `xtask/bindgen/` (outside the workspace, so bindgen and libclang are compiled only
//!   here, never by `ci`). Needs libclang (Debian: libclang-dev).

mod dist;
mod elf;
mod musl;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests need: nasm makes OpenH264 build with its assembly (3x faster
/// encoding), chromium runs the browser tests, shellcheck checks the init scripts, ffmpeg and
/// curl show that API tokens work with the tools people use; qemu-user runs the riscv64 build,
/// pip fetches zig for the cross build (`cargo xtask dist`), make runs musl's own build there.
const SYSTEM_PACKAGES: &[(&str, &str)] = &[
    ("nasm", "nasm"),
    ("shellcheck", "shellcheck"),
    ("chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
    ("ffmpeg", "ffmpeg"),
    ("curl", "curl"),
    ("qemu-riscv64", "qemu-user"),
    ("pip3", "python3-pip"),
    ("make", "make"),
];

/// The end-to-end tests that run a second time over HTTPS/WSS (`NANOKVM_E2E_TLS=1`): all but
/// `connections`, whose connection-limit test writes plain HTTP to raw sockets on purpose.
const TLS_E2E_TESTS: &[&str] = &[
    "atx",
    "auth",
    "cli",
    "device",
    "hid",
    "replay",
    "robustness",
    "slow_client",
    "streams",
    "video_ws",
];

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "tidy" => tidy::tidy(&root()),
        "e2e" => e2e(),
        "dist" => ensure_system_packages()
            .and_then(|()| dist::dist(&std::env::args().skip(2).collect::<Vec<_>>())),
        "bench" => bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        "bindgen" => bindgen(),
        _ => Err(
            "usage: cargo xtask ci | tidy | e2e | dist [--no-smoke] | bench [--quick] [--no-browser] | bindgen"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    run_with_env(dir, program, args, &[])
}

fn run_with_env(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(), String> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Installs what is missing with apt-get (as root, or through sudo).
fn ensure_system_packages() -> Result<(), String> {
    let missing: Vec<&str> = SYSTEM_PACKAGES
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        return Err(format!(
            "missing system packages {missing:?} and no apt-get to install them"
        ));
    }
    // `env` carries the setting through sudo; no package may stop to ask a question.
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut full: Vec<&str> = sudo.to_vec();
        full.extend_from_slice(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        full.extend_from_slice(args);
        run(&root(), full[0], &full[1..])
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(missing.iter());
    apt(&install)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

fn ci() -> Result<(), String> {
    let root = root();
    tidy::tidy(&root)?;
    ensure_system_packages()?;
    run(&root, "cargo", &["fmt", "--all", "--check"])?;
    shellcheck(&root)?;
    run(
        &root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The daemon's other feature sets: the device build, and the simulated target without
    // OpenH264 (what runs under qemu).
    for features in [
        &["--no-default-features"][..],
        &["--no-default-features", "--features", "sim"],
    ] {
        let mut args = vec!["clippy", "-p", "nanokvmd", "--all-targets"];
        args.extend_from_slice(features);
        args.extend_from_slice(&["--", "-D", "warnings"]);
        run(&root, "cargo", &args)?;
    }
    // The e2e tests are targets of `nanokvmd`: cargo builds the binary they run first.
    run(&root, "cargo", &["test", "--workspace"])?;
    e2e_with_device_features(&root)?;
    e2e_over_tls(&root)?;
    browser_tests(&root)?;
    dist::dist(&[])
}

/// Every shell script installed on the device, checked as POSIX sh.
fn shellcheck(root: &Path) -> Result<(), String> {
    let dir = root.join("rootfs/etc/init.d");
    let mut scripts: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    scripts.sort();
    let mut args = vec!["--shell=sh"];
    args.extend(scripts.iter().map(String::as_str));
    run(root, "shellcheck", &args)
}

/// The end-to-end tests: every file in `tests/tests/`, each a `[[test]]` target of the
/// `nanokvmd` package (`tests/tests/harness.rs` checks that none is left out of
/// `actors/Cargo.toml`).
fn e2e_tests(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("tests/tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The tests of the device backend again, against the daemon built with the device's features
/// (no simulated target, no software encoder); the e2e tests that need the simulated target
/// declare `required-features` and are skipped by cargo in this build.
fn e2e_with_device_features(root: &Path) -> Result<(), String> {
    run(
        root,
        "cargo",
        &[
            "test",
            "-p",
            "nanokvmd",
            "--no-default-features",
            "--test",
            "device",
        ],
    )
}

/// The end-to-end suite again, with every daemon serving HTTPS with its generated certificate.
fn e2e_over_tls(root: &Path) -> Result<(), String> {
    let mut args = vec!["test", "-p", "nanokvmd"];
    for t in TLS_E2E_TESTS {
        args.extend_from_slice(&["--test", t]);
    }
    eprintln!("xtask: the e2e tests again over TLS (NANOKVM_E2E_TLS=1)");
    let status = Command::new("cargo")
        .args(&args)
        .env("NANOKVM_E2E_TLS", "1")
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the e2e tests over TLS failed ({status})"))
    }
}

fn e2e() -> Result<(), String> {
    ensure_system_packages()?;
    let root = root();
    let names = e2e_tests(&root)?;
    let mut args = vec!["test", "-p", "nanokvmd"];
    for name in &names {
        args.extend_from_slice(&["--test", name.as_str()]);
    }
    // Cargo builds the binary the e2e tests run before it runs them.
    run(&root, "cargo", &args)?;
    e2e_with_device_features(&root)?;
    e2e_over_tls(&root)?;
    browser_tests(&root)
}

/// Where cargo puts its output: `$CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(t) if t.is_relative() => root.join(t),
        Some(t) => t,
        None => root.join("target"),
    }
}

fn bench(args: &[String]) -> Result<(), String> {
    if let Some(a) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--quick" | "--no-browser"))
    {
        return Err(format!("bench: unknown argument {a:?}"));
    }
    ensure_system_packages()?;
    let root = root();
    let target = target_dir(&root);
    // The daemon with the counting allocator, and the measurement program.
    for package in [
        &["nanokvmd", "--features", "alloc-count"][..],
        &["nanokvm-e2e", "--example", "bench"],
    ] {
        let mut build = vec!["build", "--release", "-p"];
        build.extend_from_slice(package);
        run(&root, "cargo", &build)?;
    }
    if !args.iter().any(|a| a == "--no-browser") {
        run(
            &root.join("tests/browser"),
            "npm",
            &["ci", "--no-audit", "--no-fund"],
        )?;
    }
    // The replay rows measure the daemon as the device runs it: without the simulated target and
    // its software encoders (their C++ runtime alone is ~1 MB resident). Its own target
    // directory, so it does not replace the sim build above.
    let device_target = target.join("bench-device");
    let device_target_arg = device_target.to_string_lossy();
    run(
        &root,
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "nanokvmd",
            "--no-default-features",
            "--features",
            "alloc-count",
            "--target-dir",
            device_target_arg.as_ref(),
        ],
    )?;
    let device_daemon = device_target.join("release/nanokvmd");
    let device_daemon = device_daemon.to_string_lossy();
    let daemon = target.join("release/nanokvmd");
    let out = target.join("bench");
    let program = target.join("release/examples/bench");
    let (daemon, out, program) = (
        daemon.to_string_lossy(),
        out.to_string_lossy(),
        program.to_string_lossy(),
    );
    let mut bench_args = vec!["--out", out.as_ref()];
    bench_args.extend(args.iter().map(String::as_str));
    let command = format!("cargo xtask bench {}", args.join(" "));
    run_with_env(
        &root,
        program.as_ref(),
        &bench_args,
        &[
            ("NANOKVMD_BIN", daemon.as_ref()),
            ("NANOKVMD_DEVICE_BIN", device_daemon.as_ref()),
            ("BENCH_COMMAND", command.trim_end()),
        ],
    )
}

/// The browser tests run `<target>/debug/nanokvmd` (`tests/browser/daemon.mjs`). Built here
/// with the default features: the last `cargo test` may have left the device's build there.
fn browser_tests(root: &Path) -> Result<(), String> {
    run(root, "cargo", &["build", "-p", "nanokvmd"])?;
    let dir = root.join("tests/browser");
    run(&dir, "npm", &["ci", "--no-audit", "--no-fund"])?;
    run(&dir, "node", &["--test", "--test-concurrency=1"])
}

/// The FFI declarations, regenerated from our headers; the output is committed, so only a
/// change to `ffi/include/` needs this.
fn bindgen() -> Result<(), String> {
    let root = root();
    let manifest = root.join("xtask/bindgen/Cargo.toml");
    let (manifest, workspace) = (manifest.to_string_lossy(), root.to_string_lossy());
    run(
        &root,
        "cargo",
        &[
            "run",
            "--quiet",
            "--manifest-path",
            manifest.as_ref(),
            "--",
            workspace.as_ref(),
        ],
    )?;
    run(
        &root,
        "rustfmt",
        &[
            "--edition",
            "2021",
            "ffi/src/bindings/kvm_vision.rs",
            "ffi/src/bindings/cvi_venc.rs",
        ],
    )
}
