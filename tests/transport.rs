//! The harness's connections: plain TCP, or TLS over it when the daemon at that address serves
//! HTTPS (see `credentials.rs`). Blocking ones for the HTTP client, async ones for WebSockets.

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls;

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

/// An async connection (for WebSockets).
pub enum AsyncConn {
    Plain(smol::net::TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<smol::net::TcpStream>>),
}

impl AsyncConn {
    pub async fn connect(addr: SocketAddr) -> io::Result<AsyncConn> {
        let tcp = smol::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(match tls_for(addr) {
            None => AsyncConn::Plain(tcp),
            Some(config) => {
                let tls = futures_rustls::TlsConnector::from(config)
                    .connect(server_name(addr), tcp)
                    .await?;
                AsyncConn::Tls(Box::new(tls))
            }
        })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, AsyncConn::Tls(_))
    }
}

impl AsyncRead for AsyncConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            AsyncConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AsyncConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            AsyncConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            AsyncConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncConn::Plain(s) => Pin::new(s).poll_flush(cx),
            AsyncConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncConn::Plain(s) => Pin::new(s).poll_close(cx),
            AsyncConn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
