//! Kernel settings for every accepted connection.
//!
//! - `TCP_NOTSENT_LOWAT`: the kernel reports the socket writable only while little unsent data
//!   is queued in it. Without it Linux grows the send buffer to megabytes, a slow client soaks
//!   up seconds of video there, and our own bounded queue (which drops to the next IDR) never
//!   sees the backlog. With it the backlog builds where it is handled.
//! - Keep-alive probes: a raw stream client whose machine went to sleep sends nothing and, on a
//!   still screen, is sent nothing either; only probes notice it is gone.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys;

/// Unsent bytes the kernel may hold before it stops reporting the socket writable.
const NOTSENT_LOWAT: libc::c_int = 64 * 1024;
const KEEPALIVE_IDLE_S: libc::c_int = 15;
const KEEPALIVE_INTERVAL_S: libc::c_int = 5;
const KEEPALIVE_PROBES: libc::c_int = 3;

pub fn tune(socket: &impl AsFd) -> io::Result<()> {
    let fd = socket.as_fd();
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
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    sys::set_socket_option(fd, level, name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        sys::socket_option(fd, level, name).unwrap()
    }

    #[test]
    fn accepted_sockets_get_every_option() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        tune(&server).unwrap();
        let fd = server.as_fd();
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
