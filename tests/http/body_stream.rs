//! A response read as it comes: the head first, then the body in pieces, de-chunked (for the
//! endless video streams, and for whole responses through `request_as`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{find, find_header, TIMEOUT};
use crate::{Auth, SyncConn};

/// What [`BodyStream::read_some`] got.
#[derive(Debug)]
pub enum Chunk {
    Data(Vec<u8>),
    Eof,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Chunked(ChunkState),
    Length(usize),
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
}

/// A response whose body is read incrementally (for endless streams).
pub struct BodyStream {
    stream: SyncConn,
    raw: Vec<u8>,
    framing: Framing,
    sock_eof: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl BodyStream {
    /// Sends a GET and reads the status line and headers (bounded by [`TIMEOUT`]).
    pub fn get(addr: SocketAddr, path: &str) -> io::Result<Self> {
        Self::open_with(addr, "GET", path, &[], b"", Instant::now() + TIMEOUT)
    }

    pub fn open_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Self> {
        Self::open_as(addr, &Auth::Default, method, path, headers, body, deadline)
    }

    /// Sends a request with the given authentication (added unless `headers` already
    /// carry an `Authorization` or `Cookie`) and reads the response head.
    pub fn open_as(
        addr: SocketAddr,
        auth: &Auth,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Self> {
        let mut stream = SyncConn::connect(addr, Duration::from_secs(5))?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("authorization") && !has("cookie") {
            if let Some((k, v)) = auth.header(addr) {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        stream
            .tcp()
            .set_write_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(req.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let mut s = BodyStream {
            stream,
            raw: Vec::new(),
            framing: Framing::Close,
            sock_eof: false,
            status: 0,
            headers: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = find(&s.raw, b"\r\n\r\n") {
                break i;
            }
            if s.sock_eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before the response head ({} bytes)",
                        s.raw.len()
                    ),
                ));
            }
            if !s.fill(deadline)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no response head in time",
                ));
            }
        };
        let head = String::from_utf8_lossy(&s.raw[..head_end]).into_owned();
        s.raw.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            ));
        }
        s.status = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                s.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let chunked = find_header(&s.headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length =
            find_header(&s.headers, "content-length").and_then(|v| v.parse::<usize>().ok());
        s.framing = if method == "HEAD" || s.status == 204 || s.status == 304 {
            Framing::Done
        } else if chunked {
            Framing::Chunked(ChunkState::Size)
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            }
        } else {
            Framing::Close
        };
        Ok(s)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Reads more raw bytes; false when the deadline passed without any.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.sock_eof {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let left = (deadline - now).max(Duration::from_millis(1));
        self.stream.tcp().set_read_timeout(Some(left))?;
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.sock_eof = true;
                Ok(true)
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Returns the body bytes that are available (de-chunked), waiting until `deadline` for
    /// at least one.
    pub fn read_some(&mut self, deadline: Instant) -> io::Result<Chunk> {
        loop {
            let mut out = Vec::new();
            self.decode(&mut out)?;
            if !out.is_empty() {
                return Ok(Chunk::Data(out));
            }
            if self.framing == Framing::Done {
                return Ok(Chunk::Eof);
            }
            if self.sock_eof {
                return match self.framing {
                    Framing::Close => Ok(Chunk::Eof),
                    _ => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed inside the body ({:?})", self.framing),
                    )),
                };
            }
            if !self.fill(deadline)? {
                return Ok(Chunk::Timeout);
            }
        }
    }

    /// Reads body bytes for `d` (or until the body ends); returns them and whether it ended.
    pub fn read_for(&mut self, d: Duration) -> io::Result<(Vec<u8>, bool)> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        loop {
            match self.read_some(deadline)? {
                Chunk::Data(b) => out.extend_from_slice(&b),
                Chunk::Eof => return Ok((out, true)),
                Chunk::Timeout => return Ok((out, false)),
            }
        }
    }

    fn decode(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            match self.framing {
                Framing::Done => return Ok(()),
                Framing::Close => {
                    out.append(&mut self.raw);
                    return Ok(());
                }
                Framing::Length(n) => {
                    let k = n.min(self.raw.len());
                    out.extend(self.raw.drain(..k));
                    self.framing = if n == k {
                        Framing::Done
                    } else {
                        Framing::Length(n - k)
                    };
                    return Ok(());
                }
                Framing::Chunked(ChunkState::Size) => {
                    let Some(i) = find(&self.raw, b"\r\n") else {
                        return Ok(());
                    };
                    let line = String::from_utf8_lossy(&self.raw[..i]).into_owned();
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let n = usize::from_str_radix(hex, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size line {line:?}"),
                        )
                    })?;
                    self.raw.drain(..i + 2);
                    if n == 0 {
                        // Trailers are not used; the body is over.
                        self.framing = Framing::Done;
                        return Ok(());
                    }
                    self.framing = Framing::Chunked(ChunkState::Data(n));
                }
                Framing::Chunked(ChunkState::Data(n)) => {
                    if self.raw.is_empty() {
                        return Ok(());
                    }
                    let k = n.min(self.raw.len());
                    out.extend(self.raw.drain(..k));
                    self.framing = Framing::Chunked(if n == k {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - k)
                    });
                }
                Framing::Chunked(ChunkState::DataEnd) => {
                    if self.raw.len() < 2 {
                        return Ok(());
                    }
                    if &self.raw[..2] != b"\r\n" {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                    self.raw.drain(..2);
                    self.framing = Framing::Chunked(ChunkState::Size);
                }
            }
        }
    }
}
