//! The simulated target's stand-in for the device's file system: a private scratch directory
//! where the sim puts what the hid and atx actors open on a NanoKVM (`dev/hidg0..2` as FIFOs,
//! `sys/class/gpio/gpioN/value` as plain files). The actors are pointed at it, so they run the
//! same file I/O as on the device.

use std::path::{Path, PathBuf};

pub struct SimRoot {
    path: PathBuf,
}

impl SimRoot {
    /// Creates `$XDG_RUNTIME_DIR/nanokvmd-sim-PID` (or the same under the temp dir), owner
    /// only. A leftover from a crashed run with the same pid is replaced.
    pub fn create() -> std::io::Result<Self> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        Self::create_in(&base)
    }

    pub fn create_in(base: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = base.join(format!("nanokvmd-sim-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    /// The directory that stands for `/` on the device.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SimRoot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("simroot-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let root = SimRoot::create_in(&base).unwrap();
        let path = root.path().to_owned();
        std::fs::create_dir_all(path.join("dev")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(root);
        assert!(!path.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
