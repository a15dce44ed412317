//! The simulated target as a test sees it: its state (`GET /api/sim/state`), polled until it
//! shows what a test waits for, and a US keyboard table to type with.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http;

/// `GET /api/sim/state` as JSON.
pub fn state(addr: SocketAddr) -> serde_json::Value {
    let r = http::get(addr, "/api/sim/state");
    assert_eq!(r.status, 200, "GET /api/sim/state: {}", r.summary());
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/api/sim/state is not JSON ({e}): {}", r.summary()))
}

/// Polls the simulated target's state until `accept` takes it; panics after `d` with the
/// last state seen.
pub fn wait_state(
    addr: SocketAddr,
    d: Duration,
    what: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + d;
    loop {
        let s = state(addr);
        if accept(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {d:?}; the target's state: {s:#}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The active console's text, from a state.
pub fn text(state: &serde_json::Value) -> &str {
    state["text"].as_str().unwrap_or("")
}

/// HID usage and whether Shift is needed, for a character on a US keyboard (the tests'
/// own table, independent of the daemon's paste layouts).
pub fn us_key(ch: char) -> Option<(bool, u8)> {
    const SHIFTED_DIGITS: &str = "!@#$%^&*()";
    const PUNCT: [(char, char, u8); 11] = [
        ('-', '_', 0x2D),
        ('=', '+', 0x2E),
        ('[', '{', 0x2F),
        (']', '}', 0x30),
        ('\\', '|', 0x31),
        (';', ':', 0x33),
        ('\'', '"', 0x34),
        ('`', '~', 0x35),
        (',', '<', 0x36),
        ('.', '>', 0x37),
        ('/', '?', 0x38),
    ];
    Some(match ch {
        'a'..='z' => (false, 0x04 + (ch as u8 - b'a')),
        'A'..='Z' => (true, 0x04 + (ch as u8 - b'A')),
        '1'..='9' => (false, 0x1E + (ch as u8 - b'1')),
        '0' => (false, 0x27),
        '\n' => (false, 0x28),
        ' ' => (false, 0x2C),
        c if SHIFTED_DIGITS.contains(c) => {
            let i = SHIFTED_DIGITS.find(c)?;
            (true, 0x1E + i as u8)
        }
        c => PUNCT.iter().find_map(|&(plain, shifted, u)| {
            (c == plain)
                .then_some((false, u))
                .or((c == shifted).then_some((true, u)))
        })?,
    })
}
