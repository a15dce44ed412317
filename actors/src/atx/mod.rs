//! The atx actor: presses the target's front-panel buttons (power, reset) through GPIO lines
//! and watches its LEDs (power, HDD).
//!
//! [`AtxCore`] is the logic without I/O: which line a press drives and for how long, the rule
//! that a press is never doubled, and LED filtering as a pure function of timestamped samples.
//! `run.rs` is the loop around it: it writes and reads the sysfs value files and arms the
//! executor's timers.

mod lines;
mod run;

pub use lines::{hw_file, value_path, Variant};
pub use run::{run, AtxConfig, AtxHandle, AtxReply, AtxRequest};

use nanokvm_protocol::{AtxAction, AtxKind, AtxState};

use crate::clock::Micros;

/// A short press of either button, as the stock firmware does it.
pub const SHORT_PRESS_MS: u32 = 800;
/// How long a "force off" press may be held.
pub const LONG_PRESS_MS: std::ops::RangeInclusive<u32> = 1_000..=30_000;
/// The default "force off" press.
pub const DEFAULT_LONG_PRESS_MS: u32 = 12_000;

/// After a button is let go, the next press waits this long: a board (or the simulated target,
/// which looks at its buttons every 10 ms) must see the release to see the next press.
pub const RELEASE_GAP_MS: u32 = 200;

/// A power-LED change counts once the new level has held this long (two samples apart):
/// a single glitchy read never reaches the clients.
const POWER_LED_SETTLE_US: Micros = 15_000;
/// The HDD LED blinks faster than anyone could follow: it is shown on from the first lit
/// sample until it has been dark this long, so a one-sample blink is still seen and the
/// clients get a few changes a second at most, not one per sample.
const HDD_LED_HOLD_US: Micros = 100_000;

/// Which button a press drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Power,
    Reset,
}

/// A press under way: `button`'s line is driven until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Press {
    pub kind: AtxKind,
    pub button: Button,
    pub ms: u32,
    pub until: Micros,
}

/// What is due when the press timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Let go of the button now.
    Release(Press),
    /// The release gap is over: the press is finished and the next one may start.
    Done(Press),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Busy {
    press: Press,
    released: bool,
}

impl Busy {
    fn deadline(&self) -> Micros {
        if self.released {
            self.press.until + Micros::from(RELEASE_GAP_MS) * 1000
        } else {
            self.press.until
        }
    }
}

/// Why a press was not started. Nothing was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another press is still running.
    Busy(AtxKind),
    /// A long press outside [`LONG_PRESS_MS`].
    Duration(u32),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Busy(kind) => write!(
                f,
                "a {} press is in progress; wait until it ends",
                describe(*kind)
            ),
            Refusal::Duration(ms) => write!(
                f,
                "a long press of {ms} ms is out of range (allowed {}..={} ms)",
                LONG_PRESS_MS.start(),
                LONG_PRESS_MS.end()
            ),
        }
    }
}

/// A kind of press in words, for messages.
pub fn describe(kind: AtxKind) -> &'static str {
    match kind {
        AtxKind::Power => "power",
        AtxKind::PowerLong => "long power (force off)",
        AtxKind::Reset => "reset",
    }
}

/// The name of a kind of press in JSON (`power`, `power_long`, `reset`).
pub fn kind_name(kind: AtxKind) -> &'static str {
    match kind {
        AtxKind::Power => "power",
        AtxKind::PowerLong => "power_long",
        AtxKind::Reset => "reset",
    }
}

/// The power LED: a level, changed only once a new level has settled.
#[derive(Debug, Clone, Copy)]
struct SettledLevel {
    shown: bool,
    /// A differing level and when it was first seen.
    candidate: Option<(bool, Micros)>,
}

impl SettledLevel {
    fn new() -> Self {
        Self {
            shown: false,
            candidate: None,
        }
    }

    fn sample(&mut self, now: Micros, lit: bool) {
        if lit == self.shown {
            self.candidate = None;
            return;
        }
        match self.candidate {
            Some((level, since)) if level == lit => {
                if now.saturating_sub(since) >= POWER_LED_SETTLE_US {
                    self.shown = lit;
                    self.candidate = None;
                }
            }
            _ => self.candidate = Some((lit, now)),
        }
    }
}

/// The HDD LED: activity, shown from the first lit sample until it has been dark a while.
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    last_lit: Option<Micros>,
}

impl Activity {
    fn sample(&mut self, now: Micros, lit: bool) {
        if lit {
            self.last_lit = Some(now);
        }
    }

    fn shown(&self, now: Micros) -> bool {
        self.last_lit
            .is_some_and(|t| now.saturating_sub(t) < HDD_LED_HOLD_US)
    }
}

/// The front panel's logic. See the module documentation.
#[derive(Debug)]
pub struct AtxCore {
    busy: Option<Busy>,
    power_led: SettledLevel,
    /// `None` on boards without an HDD LED input.
    hdd_led: Option<Activity>,
    now: Micros,
}

impl AtxCore {
    pub fn new(has_hdd_led: bool) -> Self {
        Self {
            busy: None,
            power_led: SettledLevel::new(),
            hdd_led: has_hdd_led.then(Activity::default),
            now: 0,
        }
    }

    /// Starts a press unless one is running or the duration is out of range. The caller drives
    /// the line and calls [`Self::abort`] if that fails.
    pub fn request(&mut self, now: Micros, action: AtxAction) -> Result<Press, Refusal> {
        if let Some(b) = self.busy {
            return Err(Refusal::Busy(b.press.kind));
        }
        let (button, ms) = match action {
            AtxAction::Power => (Button::Power, SHORT_PRESS_MS),
            AtxAction::Reset => (Button::Reset, SHORT_PRESS_MS),
            AtxAction::PowerLong { ms } if LONG_PRESS_MS.contains(&ms) => (Button::Power, ms),
            AtxAction::PowerLong { ms } => return Err(Refusal::Duration(ms)),
        };
        let press = Press {
            kind: action.kind(),
            button,
            ms,
            until: now + Micros::from(ms) * 1000,
        };
        self.busy = Some(Busy {
            press,
            released: false,
        });
        Ok(press)
    }

    /// The line could not be driven: there is no press after all.
    pub fn abort(&mut self) {
        self.busy = None;
    }

    /// When [`Self::due`] has something to do next.
    pub fn deadline(&self) -> Option<Micros> {
        self.busy.map(|b| b.deadline())
    }

    /// What the press in progress needs by `now`: the button released, or the press finished.
    pub fn due(&mut self, now: Micros) -> Option<Due> {
        let b = self.busy.as_mut()?;
        if now < b.deadline() {
            return None;
        }
        if b.released {
            let press = b.press;
            self.busy = None;
            Some(Due::Done(press))
        } else {
            b.released = true;
            Some(Due::Release(b.press))
        }
    }

    /// Ends the press in progress at once (shutdown); returns it when its button is still to
    /// be released.
    pub fn interrupt(&mut self) -> Option<Press> {
        self.busy.take().filter(|b| !b.released).map(|b| b.press)
    }

    /// One reading of the LED inputs: `true` is lit. A line that could not be read is `None`
    /// and leaves its LED as it was.
    pub fn sample(&mut self, now: Micros, power_lit: Option<bool>, hdd_lit: Option<bool>) {
        self.now = self.now.max(now);
        if let Some(lit) = power_lit {
            self.power_led.sample(now, lit);
        }
        if let (Some(hdd), Some(lit)) = (&mut self.hdd_led, hdd_lit) {
            hdd.sample(now, lit);
        }
    }

    /// The front panel as clients are to see it, as of the last sample.
    pub fn state(&self) -> AtxState {
        AtxState {
            power_led: self.power_led.shown,
            hdd_led: self.hdd_led.map(|h| h.shown(self.now)),
            busy: self.busy.map(|b| b.press.kind),
        }
    }
}

#[cfg(test)]
mod tests;
