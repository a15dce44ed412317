//! Kernel settings for every accepted connection.
//!
//! - `TCP_NOTSENT_LOWAT`: the kernel reports the socket writable only while little unsent data
//!   is queued in it. Without it Linux grows the send buffer to megabytes, a slow client soaks
//!   up seconds of video there, and our own bounded queue (which drops to the next IDR) never
//!   sees the backlog. With it the backlog builds where it is handled.
//! - Keep-alive probes: a raw stream client whose machine went to sleep sends nothing and, on a
//!   still screen, is sent nothing either; only probes notice it is gone.

use std::io;
use std::os::fd::AsRawFd;

/// Unsent bytes the kernel may hold before it stops reporting the socket writable.
const NOTSENT_LOWAT: libc::c_int = 64 * 1024;
const KEEPALIVE_IDLE_S: libc::c_int = 15;
const KEEPALIVE_INTERVAL_S: libc::c_int = 5;
const KEEPALIVE_PROBES: libc::c_int = 3;

pub fn tune(socket: &impl AsRawFd) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    set(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        NOTSENT_LOWAT,
    )?;
    set(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE_S)?;
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL_S,
    )?;
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_PROBES)
}

fn set(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and the
    // option value is a c_int whose size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket and a c_int-sized buffer with its length.
        let rc =
            unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &raw mut len) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn accepted_sockets_get_every_option() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        tune(&server).unwrap();
        let fd = server.as_raw_fd();
        assert_eq!(
            get(fd, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
            NOTSENT_LOWAT
        );
        assert_ne!(get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        assert_eq!(
            get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            KEEPALIVE_IDLE_S
        );
        assert_ne!(get(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
    }
}
