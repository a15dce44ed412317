//! Which machine the daemon runs on: the defaults (backend, data directory, exposure) differ
//! on a NanoKVM.

use std::path::Path;

/// Files that exist only on a NanoKVM.
pub fn nanokvm_detected() -> bool {
    Path::new("/etc/kvm/hw").exists() || Path::new("/kvmapp/server/dl_lib").exists()
}
