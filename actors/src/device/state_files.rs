//! `ROOT/kvmapp/kvm/{now_fps,type,qlty,res,fps}`: what the firmware's OLED daemon
//! (`kvm_system`) shows, written in the stock server's format — the number or word alone, no
//! newline (`server/service/vm/screen.go`, `server/service/stream/frame_rate.go`).
//! Each is replaced atomically (a temporary file renamed over it), so a reader never sees a
//! half-written value; `kvm_system` opens them without checking for a missing file, and a rename
//! never leaves one missing. Written by the media thread, never by the executor.
//!
//! Not written here, on purpose: `state`, `width` and `height` belong to the vendor library,
//! which writes them itself (see [`super`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StateFile;

pub struct StateFiles {
    dir: PathBuf,
    /// Only the first failure is logged; a read-only or missing directory is not news at 30 fps.
    failed: bool,
}

impl StateFiles {
    /// The files under `root` (`/` on the device, a scratch directory in tests).
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("kvmapp/kvm"),
            failed: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn write(&mut self, file: StateFile) {
        if let Err(e) = self.replace(file) {
            if !std::mem::replace(&mut self.failed, true) {
                log::warn!(
                    "writing {}: {e} (the OLED shows stale values)",
                    self.dir.join(file.name()).display()
                );
            }
        }
    }

    fn replace(&self, file: StateFile) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let name = file.name();
        let tmp = self.dir.join(format!(".{name}.nanokvmd"));
        let mut f = std::fs::File::create(&tmp)?;
        write!(f, "{}", file.content())?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_replace_the_files_whole_in_the_stock_format() {
        let root = std::env::temp_dir().join(format!("nanokvmd-state-{}", std::process::id()));
        let mut files = StateFiles::new(&root);
        files.write(StateFile::Qlty(2000));
        files.write(StateFile::Qlty(1000));
        files.write(StateFile::Type);
        files.write(StateFile::Res(0));
        let read = |n: &str| std::fs::read_to_string(root.join("kvmapp/kvm").join(n)).unwrap();
        assert_eq!(read("qlty"), "1000");
        assert_eq!(read("type"), "h264");
        assert_eq!(read("res"), "0");
        let names: Vec<_> = std::fs::read_dir(files.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
