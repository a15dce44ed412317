//! The daemon's calls into the C library, each behind a small safe function.
//!
//! Everything else in the daemon stays free of `unsafe` (the workspace denies `unsafe_code`);
//! the exceptions are `alloc_count.rs` (a global allocator is `unsafe` by its trait) and
//! `media/h264.rs` (OpenH264's raw option call, which belongs to the encoder it configures).
//! Each wrapper states the invariant that makes its call sound, so a caller cannot break it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets an integer socket option (`setsockopt` with a C `int` value).
///
/// The borrowed fd keeps the socket open for the whole call.
pub fn set_socket_option(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `socket` is an open descriptor for the duration of the call (it is borrowed), the
    // value pointer points at a live c_int and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an integer socket option (`getsockopt` into a C `int`).
#[cfg(test)]
pub fn socket_option(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `socket` is open for the call; the kernel writes at most `len` bytes into `value`,
    // a live c_int, and `len` is a live socklen_t holding that size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a named pipe (`mkfifo`) at `path` with the given permission bits.
#[cfg(feature = "sim")]
pub fn make_fifo(path: &std::path::Path, mode: libc::mode_t) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated path that lives until the call returns.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Fixes glibc's mmap threshold at `bytes`: blocks at least that large get a mapping of their
/// own, unmapped when freed, and glibc stops raising the threshold after such a free.
/// A no-op where the C library is not glibc (musl on the device unmaps large blocks anyway).
pub fn fix_mmap_threshold(bytes: libc::c_int) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable and rejects (returns 0 for) a value it
    // does not accept; it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

/// Hands glibc's freed heap memory back to the kernel (`malloc_trim(0)`).
/// A no-op where the C library is not glibc.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is already free; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_option_set_reads_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_fd();
        let before = socket_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).unwrap();
        assert_eq!(before, 0);
        set_socket_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).unwrap();
        assert_ne!(
            socket_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).unwrap(),
            0
        );
    }

    #[test]
    fn an_unknown_option_is_an_error_not_a_crash() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(set_socket_option(listener.as_fd(), libc::SOL_SOCKET, -1, 1).is_err());
    }

    #[cfg(feature = "sim")]
    #[test]
    fn make_fifo_creates_a_fifo_and_refuses_an_existing_path() {
        use std::os::unix::fs::FileTypeExt;
        let dir = std::env::temp_dir().join(format!("nanokvmd-sys-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        make_fifo(&path, 0o600).unwrap();
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
        assert!(make_fifo(&path, 0o600).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
