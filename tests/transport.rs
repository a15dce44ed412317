//! The harness's connections: plain TCP, or TLS over it when the daemon at that address serves
//! HTTPS (see `credentials.rs`). Blocking ones for the HTTP client, async ones for WebSockets.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_rustls::client::TlsStream;
use futures_rustls::rustls;
use futures_util::future::Either;

use crate::credentials::{server_name, tls_for};

/// A blocking connection.
pub enum SyncConn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl SyncConn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<SyncConn> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)?;
        tcp.set_nodelay(true)?;
        Ok(match tls_for(addr) {
            None => SyncConn::Plain(tcp),
            Some(config) => {
                let conn = rustls::ClientConnection::new(config, server_name(addr))
                    .map_err(io::Error::other)?;
                SyncConn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        })
    }

    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            SyncConn::Plain(s) => s,
            SyncConn::Tls(s) => &s.sock,
        }
    }

    /// The TCP socket, for a client that will never read or write through TLS again.
    pub fn into_tcp(self) -> TcpStream {
        match self {
            SyncConn::Plain(s) => s,
            SyncConn::Tls(s) => s.sock,
        }
    }
}

impl Read for SyncConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SyncConn::Plain(s) => s.read(buf),
            // A peer that closes without close_notify is an end of stream here: the harness
            // checks body framing itself.
            SyncConn::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for SyncConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SyncConn::Plain(s) => s.write(buf),
            SyncConn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SyncConn::Plain(s) => s.flush(),
            SyncConn::Tls(s) => s.flush(),
        }
    }
}

/// An async connection (for WebSockets): plain TCP (`Left`) or TLS over it (`Right`).
pub type AsyncConn = Either<smol::net::TcpStream, Box<TlsStream<smol::net::TcpStream>>>;

pub async fn connect_async(addr: SocketAddr) -> io::Result<AsyncConn> {
    let tcp = smol::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(match tls_for(addr) {
        None => Either::Left(tcp),
        Some(config) => {
            let tls = futures_rustls::TlsConnector::from(config)
                .connect(server_name(addr), tcp)
                .await?;
            Either::Right(Box::new(tls))
        }
    })
}
