//! `ROOT/kvmapp/kvm/{state,now_fps,width,height}`: what the firmware's OLED daemon shows.
//! Each is replaced atomically (a temporary file renamed over it), so a reader never sees a
//! half-written number. Written by the media thread, never by the executor.

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

    pub fn write(&mut self, file: StateFile, value: u32) {
        if let Err(e) = self.replace(file.name(), value) {
            if !std::mem::replace(&mut self.failed, true) {
                log::warn!(
                    "writing {}: {e} (the OLED shows stale values)",
                    self.dir.join(file.name()).display()
                );
            }
        }
    }

    fn replace(&self, name: &str, value: u32) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.nanokvmd"));
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{value}")?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_replace_the_files_whole() {
        let root = std::env::temp_dir().join(format!("nanokvmd-state-{}", std::process::id()));
        let mut files = StateFiles::new(&root);
        files.write(StateFile::Width, 1920);
        files.write(StateFile::Width, 1024);
        files.write(StateFile::State, 1);
        let read = |n: &str| std::fs::read_to_string(root.join("kvmapp/kvm").join(n)).unwrap();
        assert_eq!(read("width"), "1024\n");
        assert_eq!(read("state"), "1\n");
        let names: Vec<_> = std::fs::read_dir(files.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
