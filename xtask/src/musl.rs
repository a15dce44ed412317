//! A riscv64 musl for `qemu-riscv64 -L`: the device binary and the vendor library mock are
//! linked dynamically against musl (interpreter `/lib/ld-musl-riscv64.so.1`, `NEEDED
//! libc.so`), and musl's `libc.so` is its own dynamic loader, so one file installed under both
//! names is the whole sysroot.
//!
//! Built from source with the zig the cross build already uses. Zig's copy of musl
//! (`ziglang/lib/libc/musl/`) cannot build it: it lacks `ldso/dynlink.c` (zig never builds the
//! loader), and musl's `configure` and `Makefile`. So the source is Debian's `musl` source
//! package, fetched with `apt-get source` through an apt configuration of our own (the
//! machine's sources lists have no `deb-src`; nothing of the system's apt state changes).
//!
//! One more piece comes from Debian: riscv64's `long double` is IEEE quad, emulated by
//! libgcc's soft-float routines (`__addtf3` …). Zig would link its own compiler_rt for them,
//! but compiler_rt also defines `memcpy`, `sin` and the like as hidden symbols, and a hidden
//! duplicate hides musl's export of the same name (the linker keeps the stricter visibility):
//! the result loads, then fails with "memcpy: symbol not found". So the link leaves
//! compiler_rt out (`-rtlib=none`) and takes `libgcc.a` from Debian's
//! `libgcc-12-dev-riscv64-cross`, unpacked, not installed.
//!
//! The result is kept in `<target>/riscv64/musl/`: a second `dist` reuses it.

use std::path::{Path, PathBuf};

use crate::{run, run_with_env};

/// The loader's name on the device (and so in the binary's `PT_INTERP`).
pub const LOADER_NAME: &str = "ld-musl-riscv64.so.1";
/// Debian's package with libgcc.a for riscv64 (bookworm's gcc is 12).
const LIBGCC_PACKAGE: &str = "libgcc-12-dev-riscv64-cross";
/// What the cache stamp records: a change here rebuilds.
const RECIPE: &str =
    "musl from Debian source, zig cc -target riscv64-linux-musl, -rtlib=none + Debian libgcc.a, v1";

/// Where each part lives under `<target>/riscv64/musl/`.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn apt(&self) -> PathBuf {
        self.dir.join("apt")
    }
    fn src(&self) -> PathBuf {
        self.dir.join("src")
    }
    fn libgcc(&self) -> PathBuf {
        self.dir.join("libgcc")
    }
    fn sysroot(&self) -> PathBuf {
        self.dir.join("sysroot")
    }
    fn stamp(&self) -> PathBuf {
        self.sysroot().join(".built")
    }
    /// `zig cc` for riscv64 musl as one program, for `configure` and for the mock's build.
    fn cc(&self) -> PathBuf {
        self.dir.join("riscv64-musl-cc")
    }
}

/// What the smoke test needs: the sysroot for `qemu-riscv64 -L` and a C compiler for riscv64
/// musl (one program, so it can stand in `CC` or `NANOKVM_MOCK_CC`).
pub struct Musl {
    pub sysroot: PathBuf,
    pub cc: PathBuf,
}

/// Builds the sysroot unless the cache holds one made the same way with the same zig.
pub fn ensure(target: &Path, zig: &Path) -> Result<Musl, String> {
    let layout = Layout {
        dir: target.join("riscv64").join("musl"),
    };
    write_cc_wrapper(&layout.cc(), zig)?;
    let zig_version = command_output(zig, &["version"])?;
    let stamp = format!("{RECIPE}\nzig {zig_version}\n");
    let lib = layout.sysroot().join("lib");
    let cached = std::fs::read_to_string(layout.stamp()).is_ok_and(|s| s == stamp)
        && lib.join("libc.so").is_file()
        && lib.join(LOADER_NAME).is_file();
    if !cached {
        build(&layout)?;
        std::fs::write(layout.stamp(), stamp)
            .map_err(|e| format!("{}: {e}", layout.stamp().display()))?;
    }
    Ok(Musl {
        sysroot: layout.sysroot(),
        cc: layout.cc(),
    })
}

fn build(layout: &Layout) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(layout.src());
    let _ = std::fs::remove_dir_all(layout.libgcc());
    let _ = std::fs::remove_dir_all(layout.sysroot());
    for d in [layout.src(), layout.libgcc(), layout.sysroot().join("lib")] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let apt = PrivateApt::set_up(&layout.apt())?;
    apt.run(&layout.src(), &["source", "--download-only", "musl"])?;
    apt.run(&layout.libgcc(), &["download", LIBGCC_PACKAGE])?;
    let tarball = only_file(&layout.src(), |n| n.ends_with(".orig.tar.gz"))?;
    run(&layout.src(), "tar", &["-xzf", &tarball.to_string_lossy()])?;
    let source = only_file(&layout.src(), |n| n.starts_with("musl-"))?;
    let deb = only_file(&layout.libgcc(), |n| n.ends_with(".deb"))?;
    run(
        &layout.libgcc(),
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), "unpacked"],
    )?;
    let libgcc = find_libgcc(&layout.libgcc().join("unpacked/usr/lib/gcc-cross"))?;
    let cc = layout.cc();
    run(
        &source,
        "./configure",
        &[
            "--target=riscv64-linux-musl",
            "--disable-static",
            "--prefix=/",
            "--syslibdir=/lib",
            &format!("CC={}", cc.display()),
        ],
    )?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run(
        &source,
        "make",
        &[
            &format!("-j{jobs}"),
            "--quiet",
            "lib/libc.so",
            "LDFLAGS=-rtlib=none",
            &format!("LIBCC={}", libgcc.display()),
        ],
    )?;
    let built = source.join("lib/libc.so");
    let lib = layout.sysroot().join("lib");
    for name in ["libc.so", LOADER_NAME] {
        std::fs::copy(&built, lib.join(name))
            .map_err(|e| format!("copying {} to {}: {e}", built.display(), lib.display()))?;
    }
    Ok(())
}

/// apt with its own sources list and package lists, so `deb-src` can be used without
/// touching the machine's configuration. Debian's archive key signs both.
struct PrivateApt {
    options: Vec<String>,
}

impl PrivateApt {
    fn set_up(dir: &Path) -> Result<Self, String> {
        let parts = dir.join("sources.list.d");
        let lists = dir.join("lists");
        std::fs::create_dir_all(lists.join("partial"))
            .map_err(|e| format!("{}: {e}", lists.display()))?;
        std::fs::create_dir_all(&parts).map_err(|e| format!("{}: {e}", parts.display()))?;
        let suite = debian_suite()?;
        std::fs::write(
            parts.join("debian.sources"),
            format!(
                "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: {suite}\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", parts.display()))?;
        let empty = dir.join("empty.list");
        std::fs::write(&empty, "").map_err(|e| format!("{}: {e}", empty.display()))?;
        let apt = Self {
            options: vec![
                format!("Dir::Etc::SourceList={}", empty.display()),
                format!("Dir::Etc::SourceParts={}", parts.display()),
                format!("Dir::State::Lists={}", lists.display()),
                // The machine's package caches describe its own lists, not these.
                "Dir::Cache::pkgcache=".into(),
                "Dir::Cache::srcpkgcache=".into(),
                // Downloads land in our directories, which apt's sandbox user cannot write.
                "APT::Sandbox::User=root".into(),
            ],
        };
        apt.run(dir, &["update"])?;
        Ok(apt)
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Result<(), String> {
        let mut full: Vec<&str> = Vec::new();
        for o in &self.options {
            full.extend_from_slice(&["-o", o]);
        }
        full.push("-qq");
        full.extend_from_slice(args);
        run_with_env(
            dir,
            "apt-get",
            &full,
            &[("DEBIAN_FRONTEND", "noninteractive")],
        )
    }
}

/// The machine's Debian release name (`VERSION_CODENAME`), so the source matches it.
fn debian_suite() -> Result<String, String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .map_err(|e| format!("/etc/os-release: {e} (the musl sysroot needs Debian's apt)"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "/etc/os-release has no VERSION_CODENAME".to_string())
}

/// `gcc-cross/riscv64-linux-gnu/<version>/libgcc.a`.
fn find_libgcc(gcc_cross: &Path) -> Result<PathBuf, String> {
    let triple = gcc_cross.join("riscv64-linux-gnu");
    let version = only_file(&triple, |_| true)?;
    let libgcc = version.join("libgcc.a");
    if libgcc.is_file() {
        Ok(libgcc)
    } else {
        Err(format!("{LIBGCC_PACKAGE} has no {}", libgcc.display()))
    }
}

/// The one entry of `dir` whose name matches.
fn only_file(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| matches(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one matching entry in {}, found {found:?}",
            dir.display()
        )),
    }
}

fn write_cc_wrapper(path: &Path, zig: &Path) -> Result<(), String> {
    let script = format!(
        "#!/bin/sh\nexec '{}' cc -target riscv64-linux-musl \"$@\"\n",
        zig.to_string_lossy().replace('\'', r"'\''")
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn command_output(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed ({})",
            program.display(),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
