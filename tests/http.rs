//! A small HTTP/1.1 client: one request per connection (`Connection: close`), authenticated as
//! the daemon's test user unless told otherwise, over TLS when the daemon serves HTTPS.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::{Auth, SyncConn};

mod body_stream;
pub use body_stream::{BodyStream, Chunk};

/// Default bound for whole requests.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status, headers and the start of the body, for assertion messages.
    pub fn summary(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        format!(
            "status {} headers {:?} body {body:?}",
            self.status, self.headers
        )
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"", TIMEOUT).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", content_type)],
        body,
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

pub fn post_json(addr: SocketAddr, path: &str, json: &str) -> Response {
    post(addr, path, "application/json", json.as_bytes())
}

/// One request on a fresh connection (`Connection: close`); reads the whole body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    d: Duration,
) -> io::Result<Response> {
    request_as(addr, &Auth::Default, method, path, headers, body, d)
}

/// Like [`request`] with the given authentication.
pub fn request_as(
    addr: SocketAddr,
    auth: &Auth,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    d: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + d;
    let mut s = BodyStream::open_as(addr, auth, method, path, headers, body, deadline)?;
    let mut out = Vec::new();
    loop {
        match s.read_some(deadline)? {
            Chunk::Data(d) => out.extend_from_slice(&d),
            Chunk::Eof => break,
            Chunk::Timeout => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "body not complete after {d:?} (status {}, got {} bytes)",
                        s.status,
                        out.len()
                    ),
                ))
            }
        }
    }
    Ok(Response {
        status: s.status,
        headers: s.headers,
        body: out,
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Opens a connection, sends `GET path` (authenticated) and never reads: a stalled
/// viewer. Returns the TCP socket (under TLS, what it would read is encrypted).
pub fn stalled_get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = SyncConn::connect(addr, Duration::from_secs(5)).expect("connect");
    s.tcp()
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = Auth::Default
        .header(addr)
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").expect("send request");
    s.flush().expect("send request");
    s.into_tcp()
}

/// Logs in through `POST /api/auth/login`; the `Cookie` value (`nanokvm_session=...`)
/// on success, the response otherwise.
pub fn login(addr: SocketAddr, user: &str, password: &str) -> Result<String, Response> {
    let body = format!(
        "{{\"username\":{},\"password\":{}}}",
        serde_json::Value::from(user),
        serde_json::Value::from(password)
    );
    let r = request_as(
        addr,
        &Auth::None,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("POST /api/auth/login: {e}"));
    if r.status != 200 {
        return Err(r);
    }
    r.header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or(r)
}
