//! Asking a running daemon, without panicking (a measurement records what went wrong and goes
//! on): `/metrics` and the simulated target's console switch.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{http, Metrics};

const TIMEOUT: Duration = Duration::from_secs(3);

pub fn metrics(addr: SocketAddr) -> Result<Metrics, String> {
    let r = http::request(addr, "GET", "/metrics", &[], b"", TIMEOUT)
        .map_err(|e| format!("GET /metrics: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET /metrics: {}", r.summary()));
    }
    Ok(Metrics::parse(&r.text()))
}

/// Switches the sim to console 1..=4 (a full-screen change).
pub fn post_console(addr: SocketAddr, console: u8) -> Result<(), String> {
    let body = format!("{{\"console\": {console}}}");
    let r = http::request(
        addr,
        "POST",
        "/api/sim/console",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        TIMEOUT,
    )
    .map_err(|e| format!("POST /api/sim/console {console}: {e}"))?;
    if r.status != 204 {
        return Err(format!("POST /api/sim/console {console}: {}", r.summary()));
    }
    Ok(())
}
