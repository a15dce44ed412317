//! Which `nanokvmd` binary the harness runs.
//!
//! The e2e tests are `[[test]]` targets of the `nanokvmd` package (`actors/Cargo.toml`), so
//! `cargo test` builds the binary before it runs them and names it in `CARGO_BIN_EXE_nanokvmd`:
//! a test never runs a binary older than the sources. The measurement programs
//! (`tests/examples/`) and the riscv64 smoke test name theirs in `NANOKVMD_BIN`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The workspace root (the parent of this package's directory).
pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// Set by [`use_daemon_bin`]: a binary that replaces the usual one for a while.
static DAEMON_BIN_OVERRIDE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Daemons (and CLI runs) started from now on use `bin` (`None`: back to the usual one). The
/// bench runs its replay rows with the daemon built as for the device.
pub fn use_daemon_bin(bin: Option<PathBuf>) {
    *DAEMON_BIN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = bin;
}

/// The daemon binary under test: the one [`use_daemon_bin`] set, else `$NANOKVMD_BIN`, else the
/// one cargo built for the running e2e test.
pub fn daemon_bin() -> PathBuf {
    if let Some(p) = DAEMON_BIN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return p;
    }
    if let Some(p) = std::env::var_os("NANOKVMD_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "NANOKVMD_BIN={} does not exist", p.display());
        return p;
    }
    match cargo_built_bin() {
        Some(p) => p,
        None => panic!(
            "no nanokvmd binary to test: run the e2e tests through cargo, which builds it \
             (`cargo test -p nanokvmd --test NAME`), or set NANOKVMD_BIN"
        ),
    }
}

/// The binary cargo built for the e2e test running now. Cargo 1.94 and later pass
/// `CARGO_BIN_EXE_nanokvmd` to the test process as well as to the compiler; older ones only to
/// the compiler, and there it names `nanokvmd` in the directory above the test executable's
/// `deps/`.
fn cargo_built_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_nanokvmd") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let bin = deps.parent()?.join("nanokvmd");
    bin.is_file().then_some(bin)
}
