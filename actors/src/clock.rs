//! The daemon's one time base. Actor cores never read it: their loops pass `now` in, so the
//! cores can be driven by a fake clock in tests.

use std::time::Instant;

/// Microseconds on the monotonic clock since the daemon started. Capture stamps, `Pong` and
/// the IDR policy all use it, so a client can relate them with one offset.
pub type Micros = u64;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    pub fn now_us(&self) -> Micros {
        self.epoch.elapsed().as_micros() as Micros
    }
}

/// Milliseconds since local midnight (UTC here: the simulated target has no time zone),
/// for the simulated target's clock display.
pub fn wall_millis_of_day() -> u32 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (since_epoch.as_millis() % 86_400_000) as u32
}
