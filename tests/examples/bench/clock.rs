//! The daemon's clock on ours: `Ping`/`Pong` on a viewer's socket, so a frame's `capture_us`
//! (the daemon's monotonic clock) can be compared with when it arrived here.

use std::time::{Duration, Instant};

use nanokvm_e2e::proto::ClientMsg;
use nanokvm_e2e::ws::{Event, Msg, WsClient};

use crate::viewers::{send, MS};

/// Probes per estimate; the one with the smallest round trip is kept.
const PINGS: usize = 10;

/// Microseconds on this process's monotonic clock since `epoch`.
pub fn us_since(epoch: Instant, t: Instant) -> i64 {
    t.saturating_duration_since(epoch).as_micros() as i64
}

/// The daemon's clock minus ours, µs since `epoch`.
#[derive(Debug, Clone, Copy)]
pub struct Offset {
    pub epoch: Instant,
    pub offset_us: i64,
    /// Round trip of the probe the offset came from: the offset is good to about half of it.
    pub rtt_us: i64,
}

impl Offset {
    /// When a frame with this `capture_us` was captured, on our clock (µs since `epoch`).
    pub fn captured_at(&self, capture_us: u64) -> i64 {
        capture_us as i64 - self.offset_us
    }

    /// Capture → arrival here, ms.
    pub fn latency_ms(&self, capture_us: u64, arrived: Instant) -> f64 {
        (us_since(self.epoch, arrived) - self.captured_at(capture_us)) as f64 / 1000.0
    }
}

/// Estimates the offset from the `Pong` with the smallest round trip of [`PINGS`]; the offset
/// assumes the daemon read its clock halfway through. Messages that arrive meanwhile (video)
/// are skipped.
pub async fn offset(c: &mut WsClient, epoch: Instant) -> Result<Offset, String> {
    let mut best: Option<Offset> = None;
    for _ in 0..PINGS {
        let sent = us_since(epoch, Instant::now());
        send(
            c,
            &ClientMsg::Ping {
                client_time_us: sent as u64,
            },
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match c
                .next_event(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Some(Event::Msg(Msg::Pong {
                    client_time_us,
                    server_time_us,
                })) if client_time_us == sent as u64 => {
                    let rtt_us = us_since(epoch, Instant::now()) - sent;
                    let offset_us = server_time_us as i64 - (sent + rtt_us / 2);
                    if best.is_none_or(|b| rtt_us < b.rtt_us) {
                        best = Some(Offset {
                            epoch,
                            offset_us,
                            rtt_us,
                        });
                    }
                    break;
                }
                Some(Event::Msg(_)) => {}
                Some(other) => return Err(format!("the connection gave {other:?}")),
                None => return Err("no Pong within 2 s".into()),
            }
        }
        smol::Timer::after(MS(20)).await;
    }
    best.ok_or_else(|| "no Pong".into())
}
