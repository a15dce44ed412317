//! The data directory: where accounts, the TLS certificate and the setup code live, and how a
//! file there is replaced without ever leaving a partial one (temp file, fsync, rename, fsync
//! of the directory), readable by the owner only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The accounts and API tokens (JSON).
pub const ACCOUNTS_FILE: &str = "accounts.json";
/// The one-time code that lets the first admin be created.
pub const SETUP_CODE_FILE: &str = "setup-code";
/// The generated (or user-supplied, when configured elsewhere) TLS certificate and key.
pub const TLS_CERT_FILE: &str = "tls-cert.pem";
pub const TLS_KEY_FILE: &str = "tls-key.pem";

/// The data directory when none is configured: `/etc/nanokvm` on a NanoKVM, else the
/// user's state directory (`$XDG_STATE_HOME/nanokvmd`, `~/.local/state/nanokvmd`).
pub fn default_data_dir(on_device: bool) -> PathBuf {
    if on_device {
        return PathBuf::from("/etc/nanokvm");
    }
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(state) = env("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        return state.join("nanokvmd");
    }
    match env("HOME") {
        Some(home) => home.join(".local/state/nanokvmd"),
        None => PathBuf::from("/etc/nanokvm"),
    }
}

#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub what: &'static str,
    pub error: io::Error,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.what, self.path.display(), self.error)
    }
}

impl std::error::Error for StoreError {}

fn err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError { path, what, error }
}

/// Creates the directory (mode 0700) if it is missing.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err(dir, "creating the data directory"))
}

/// Replaces `path` with `contents` atomically: readers (and a crash at any moment) see either
/// the old file or the new one, never a mix or a truncated file. Mode 0600.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err(&tmp, "creating"))?;
        // An existing temp file keeps its old mode through open(): set it explicitly.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(err(&tmp, "restricting"))?;
        f.write_all(contents).map_err(err(&tmp, "writing"))?;
        f.sync_all().map_err(err(&tmp, "syncing"))?;
        fs::rename(&tmp, path).map_err(err(path, "replacing"))?;
        // The rename itself is durable only once the directory is synced.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err(dir, "syncing"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file that may be missing (`Ok(None)`).
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, "reading")(e)),
    }
}

/// What identifies a version of a file cheaply: a change of any of these means "reload".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

pub fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: m.ino(),
        len: m.len(),
        modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanokvmd-store-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        ensure_dir(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_and_restricts() {
        let d = scratch("replace");
        let p = d.join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // No temp file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let d = scratch("fail");
        let p = d.join("f.json");
        write_atomic(&p, b"old").unwrap();
        // A directory where the temp file would go makes the write fail before the rename.
        let tmp = d.join(format!(".f.json.tmp{}", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn default_dirs() {
        assert_eq!(default_data_dir(true), PathBuf::from("/etc/nanokvm"));
        assert!(default_data_dir(false).ends_with("nanokvmd"));
    }
}
