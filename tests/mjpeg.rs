//! MJPEG checks: the parts of a `multipart/x-mixed-replace` body, and JPEG decoding.

use crate::http;

/// One `--frame` part of `multipart/x-mixed-replace`.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Takes complete parts (`--BOUNDARY\r\nheaders\r\n\r\n<Content-Length bytes>\r\n`) from the
/// front of `buf`. Errors when the bytes do not follow that shape.
pub fn take_parts(buf: &mut Vec<u8>, boundary: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let delim = format!("--{boundary}\r\n");
    loop {
        // Tolerate a CRLF left before the delimiter.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if buf.len() < delim.len() {
            return Ok(parts);
        }
        if !buf.starts_with(delim.as_bytes()) {
            return Err(format!(
                "expected {delim:?}, found {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(60)])
            ));
        }
        let Some(head_end) = http::find(buf, b"\r\n\r\n") else {
            return Ok(parts);
        };
        let head = String::from_utf8_lossy(&buf[delim.len()..head_end]).into_owned();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .ok_or_else(|| format!("part without Content-Length: {head:?}"))?;
        let start = head_end + 4;
        if buf.len() < start + len + 2 {
            return Ok(parts);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Err(format!("part of {len} bytes not followed by CRLF"));
        }
        let body = buf[start..start + len].to_vec();
        buf.drain(..start + len + 2);
        parts.push(Part { headers, body });
    }
}

/// Decodes a JPEG and returns its size.
pub fn jpeg_size(data: &[u8]) -> Result<(u16, u16), String> {
    let mut d = jpeg_decoder::Decoder::new(data);
    d.decode().map_err(|e| format!("JPEG decode: {e}"))?;
    let info = d.info().ok_or("JPEG without info")?;
    Ok((info.width, info.height))
}
