//! The firmware's software watchdog: while `/etc/kvm/watchdog` or `/tmp/watchdog` exists,
//! `kvm_system` deletes `/tmp/nanokvm_wd` every second and reboots the board when it has not
//! come back for 10 s. The video server must recreate it every 500 ms.
//!
//! It is fed from the executor on purpose: if the executor hangs, the feeding stops and the
//! board reboots, which is the point. Each feed is a `stat` or two and an `open` on tmpfs,
//! microseconds. (The vendor library's own thread feeds it too while it is loaded; that one
//! cannot be turned off.)

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FEED_INTERVAL: Duration = Duration::from_millis(500);

pub struct Watchdog {
    flags: [PathBuf; 2],
    file: PathBuf,
    failed: bool,
}

impl Watchdog {
    /// The files under `root` (`/` on the device).
    pub fn new(root: &Path) -> Self {
        Self {
            flags: [root.join("etc/kvm/watchdog"), root.join("tmp/watchdog")],
            file: root.join("tmp/nanokvm_wd"),
            failed: false,
        }
    }

    /// Feeds it if it is armed; true when fed.
    pub fn feed(&mut self) -> bool {
        if !self.flags.iter().any(|f| f.exists()) {
            return false;
        }
        match std::fs::File::create(&self.file) {
            Ok(_) => true,
            Err(e) => {
                if !std::mem::replace(&mut self.failed, true) {
                    log::error!(
                        "feeding the watchdog {}: {e} (the board may reboot)",
                        self.file.display()
                    );
                }
                false
            }
        }
    }
}

/// Feeds the watchdog every [`FEED_INTERVAL`] until `shutdown` closes.
pub async fn run(mut watchdog: Watchdog, shutdown: async_channel::Receiver<()>) {
    loop {
        watchdog.feed();
        let stop = futures_lite::future::or(
            async {
                smol::Timer::after(FEED_INTERVAL).await;
                false
            },
            async {
                let _ = shutdown.recv().await;
                true
            },
        )
        .await;
        if stop {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_fed_only_while_a_flag_exists() {
        let root = std::env::temp_dir().join(format!("nanokvmd-wd-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc/kvm")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let fed = root.join("tmp/nanokvm_wd");
        let mut wd = Watchdog::new(&root);
        assert!(!wd.feed());
        assert!(!fed.exists(), "not armed: nothing written");
        for flag in ["etc/kvm/watchdog", "tmp/watchdog"] {
            std::fs::write(root.join(flag), "").unwrap();
            assert!(wd.feed(), "{flag}");
            assert!(fed.exists());
            std::fs::remove_file(&fed).unwrap(); // what kvm_system does every second
            std::fs::remove_file(root.join(flag)).unwrap();
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
