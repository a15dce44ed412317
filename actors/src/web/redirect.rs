//! The plain-HTTP listener beside HTTPS (port 80 on the device): every request is answered
//! with a permanent redirect to the same path over HTTPS, and nothing else. It serves no
//! content, so it needs no access decision.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};
use smol::net::TcpListener;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::write_deadline::WriteDeadline;
use super::{respond, App, Body, TEXT, WRITE_DEADLINE};

/// `https://HOST[:PORT]/path?query` for a request that came in as `http://HOST[:x]/...`.
pub fn https_location(host: Option<&str>, path_and_query: &str, https_port: u16) -> Option<String> {
    let host = host?.trim();
    // Drop a port from Host (IPv6 literals keep their brackets).
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    Some(format!("https://{name}{port}{path_and_query}"))
}

fn redirect(req: &Request<Incoming>, https_port: u16) -> Response<Body> {
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match https_location(host, pq, https_port).and_then(|l| HeaderValue::from_str(&l).ok()) {
        Some(location) => {
            let mut res = respond(StatusCode::PERMANENT_REDIRECT, TEXT, "use HTTPS\n");
            res.headers_mut().insert(LOCATION, location);
            res
        }
        None => respond(StatusCode::BAD_REQUEST, TEXT, "no usable Host header\n"),
    }
}

pub async fn serve(listener: TcpListener, app: Rc<App>, https_port: u16) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _ = app.links.shutdown.recv().await;
            None
        })
        .await;
        let (tcp, _) = match accepted {
            None => break,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                log::warn!("redirect listener: accept failed: {e}");
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = app.connection_slot() else {
            continue;
        };
        app.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| async move {
                Ok::<_, Infallible>(super::with_security_headers(redirect(&req, https_port)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(SmolTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(
                    FuturesIo::new(WriteDeadline::new(tcp, WRITE_DEADLINE)),
                    service,
                )
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::https_location;

    #[test]
    fn locations() {
        assert_eq!(
            https_location(Some("kvm.local"), "/a?b=1", 443).as_deref(),
            Some("https://kvm.local/a?b=1")
        );
        assert_eq!(
            https_location(Some("10.0.0.5:80"), "/", 8443).as_deref(),
            Some("https://10.0.0.5:8443/")
        );
        assert_eq!(
            https_location(Some("[fe80::1]:80"), "/", 443).as_deref(),
            Some("https://[fe80::1]/")
        );
        assert_eq!(
            https_location(Some("[fe80::1]"), "/", 443).as_deref(),
            Some("https://[fe80::1]/")
        );
        assert_eq!(https_location(None, "/", 443), None);
        assert_eq!(https_location(Some("evil.example/x"), "/", 443), None);
    }
}
