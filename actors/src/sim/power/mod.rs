//! The simulated target's power supply and front panel: it watches the power and reset button
//! lines the atx actor drives and lights the LEDs the atx actor reads, through the same kind of
//! GPIO value files as on a NanoKVM (under the sim's scratch root).
//!
//! [`SimPower`] is the machine without I/O, like a PC's: a press of the power button boots it
//! when off and asks the OS to shut down when on; holding the button forces it off (the
//! override); reset reboots. [`run::run`] polls the button files, writes the LED files and tells the
//! media thread what the screen shows.
//!
//! The sim starts **on**, so the console (and every video test) has a picture without
//! pressing anything first.

pub mod run;

use serde::Serialize;

use crate::clock::Micros;

/// From power on to the login prompt.
const BOOT_US: Micros = 2_000_000;
/// The boot screen shows one more line this often.
const BOOT_STEP_US: Micros = 250_000;
/// From the power button press to power off, when the OS shuts down cleanly.
const SHUTDOWN_US: Micros = 1_500_000;
/// Holding the power button this long forces the target off. A real board waits about 4 s;
/// the sim waits less than the shortest long press the console allows (1 s) and more than
/// a short press (0.8 s), so that every long press forces it off and no short press does.
const OVERRIDE_US: Micros = 900_000;
/// One burst of disk activity (a write after typing) lights the HDD LED this long.
const DISK_BURST_US: Micros = 60_000;
/// The disk LED pattern while booting changes this often.
const BOOT_DISK_SLOT_US: Micros = 40_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    Off,
    Booting,
    On,
    ShuttingDown,
}

/// What the target's video output shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Powered off: no signal on the cable.
    NoSignal,
    /// The firmware's boot screen with `lines` lines printed so far.
    Boot { lines: u8 },
    /// The text consoles.
    Console,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    Booting { since: Micros },
    On,
    ShuttingDown { until: Micros },
}

/// See the module documentation.
#[derive(Debug)]
pub struct SimPower {
    state: State,
    /// Since when the power button is held.
    power_held: Option<Micros>,
    reset_held: bool,
    disk_until: Micros,
}

impl Default for SimPower {
    fn default() -> Self {
        Self::new()
    }
}

impl SimPower {
    /// A target that is on (see the module documentation).
    pub fn new() -> Self {
        Self {
            state: State::On,
            power_held: None,
            reset_held: false,
            disk_until: 0,
        }
    }

    /// One look at the button lines (`true`: pressed) at `now`.
    pub fn poll(&mut self, now: Micros, power_pressed: bool, reset_pressed: bool) {
        match (self.power_held, power_pressed) {
            (None, true) => {
                self.power_held = Some(now);
                self.state = match self.state {
                    State::Off => State::Booting { since: now },
                    State::On => State::ShuttingDown {
                        until: now + SHUTDOWN_US,
                    },
                    // The firmware, or an OS already going down, ignores the button.
                    s => s,
                };
            }
            (Some(since), true) if now.saturating_sub(since) >= OVERRIDE_US => {
                self.state = State::Off;
            }
            (Some(_), false) => self.power_held = None,
            _ => {}
        }
        if reset_pressed && !self.reset_held && self.state != State::Off {
            self.state = State::Booting { since: now };
        }
        self.reset_held = reset_pressed;
        match self.state {
            State::Booting { since } if now.saturating_sub(since) >= BOOT_US => {
                self.state = State::On
            }
            State::ShuttingDown { until } if now >= until => self.state = State::Off,
            _ => {}
        }
    }

    /// The OS wrote to its disk (typed text is saved): the HDD LED blinks.
    pub fn disk_activity(&mut self, now: Micros) {
        self.disk_until = now + DISK_BURST_US;
    }

    pub fn power_state(&self) -> PowerState {
        match self.state {
            State::Off => PowerState::Off,
            State::Booting { .. } => PowerState::Booting,
            State::On => PowerState::On,
            State::ShuttingDown { .. } => PowerState::ShuttingDown,
        }
    }

    pub fn display(&self, now: Micros) -> Display {
        match self.state {
            State::Off => Display::NoSignal,
            State::Booting { since } => Display::Boot {
                lines: (now.saturating_sub(since) / BOOT_STEP_US + 1).min(u8::MAX.into()) as u8,
            },
            State::On | State::ShuttingDown { .. } => Display::Console,
        }
    }

    /// Whether the power and HDD LEDs are lit.
    pub fn leds(&self, now: Micros) -> (bool, bool) {
        let hdd = match self.state {
            State::Off => false,
            // Loading the OS: the disk is busy in an irregular pattern.
            State::Booting { since } => {
                let slot = now.saturating_sub(since) / BOOT_DISK_SLOT_US;
                slot.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62 != 0
            }
            _ => now < self.disk_until,
        };
        (self.state != State::Off, hdd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1000;

    /// Presses the power button from `at` for `ms`, polling every 10 ms, and polls on until
    /// `end`; returns the states seen in order (without repeats).
    fn press(sim: &mut SimPower, at: Micros, ms: Micros, end: Micros) -> Vec<PowerState> {
        let mut seen = vec![sim.power_state()];
        let mut t = at;
        while t <= end {
            let pressed = t >= at && t < at + ms * MS;
            sim.poll(t, pressed, false);
            if seen.last() != Some(&sim.power_state()) {
                seen.push(sim.power_state());
            }
            t += 10 * MS;
        }
        seen
    }

    #[test]
    fn starts_on_with_the_console_and_power_led() {
        let sim = SimPower::new();
        assert_eq!(sim.power_state(), PowerState::On);
        assert_eq!(sim.display(0), Display::Console);
        assert_eq!(sim.leds(0), (true, false));
    }

    #[test]
    fn a_short_press_shuts_down_cleanly_and_another_boots() {
        use PowerState::*;
        let mut sim = SimPower::new();
        assert_eq!(
            press(&mut sim, 0, 800, 3_000 * MS),
            vec![On, ShuttingDown, Off]
        );
        assert_eq!(sim.display(3_000 * MS), Display::NoSignal);
        assert_eq!(sim.leds(3_000 * MS), (false, false));
        assert_eq!(
            press(&mut sim, 4_000 * MS, 800, 7_000 * MS),
            vec![Off, Booting, On]
        );
        assert_eq!(sim.display(7_000 * MS), Display::Console);
    }

    #[test]
    fn a_long_press_forces_it_off_while_still_held() {
        let mut sim = SimPower::new();
        sim.poll(0, true, false);
        assert_eq!(sim.power_state(), PowerState::ShuttingDown);
        sim.poll(899 * MS, true, false);
        assert_eq!(sim.power_state(), PowerState::ShuttingDown);
        sim.poll(900 * MS, true, false);
        assert_eq!(sim.power_state(), PowerState::Off);
        // Still held: it stays off.
        sim.poll(5_000 * MS, true, false);
        assert_eq!(sim.power_state(), PowerState::Off);
        sim.poll(5_010 * MS, false, false);
        assert_eq!(sim.power_state(), PowerState::Off);
        // Even from off, holding the button ends off: it boots at the press and is cut.
        sim.poll(6_000 * MS, true, false);
        assert_eq!(sim.power_state(), PowerState::Booting);
        sim.poll(7_000 * MS, true, false);
        assert_eq!(sim.power_state(), PowerState::Off);
    }

    #[test]
    fn reset_reboots_a_running_target_and_does_nothing_when_off() {
        let mut sim = SimPower::new();
        sim.poll(0, false, true);
        assert_eq!(sim.power_state(), PowerState::Booting);
        assert_eq!(sim.display(0), Display::Boot { lines: 1 });
        assert_eq!(sim.display(600 * MS), Display::Boot { lines: 3 });
        // Held reset is one press, not many.
        sim.poll(700 * MS, false, true);
        sim.poll(2_000 * MS, false, false);
        assert_eq!(sim.power_state(), PowerState::On);
        press(&mut sim, 3_000 * MS, 1000, 4_500 * MS);
        assert_eq!(sim.power_state(), PowerState::Off);
        sim.poll(5_000 * MS, false, true);
        assert_eq!(sim.power_state(), PowerState::Off);
    }

    #[test]
    fn the_hdd_led_flickers_while_booting_and_after_disk_writes() {
        let mut sim = SimPower::new();
        sim.disk_activity(100 * MS);
        assert!(sim.leds(120 * MS).1);
        assert!(!sim.leds(200 * MS).1);
        sim.poll(1_000 * MS, false, true);
        let lit: Vec<bool> = (0..50)
            .map(|i| sim.leds(1_000 * MS + i * BOOT_DISK_SLOT_US).1)
            .collect();
        let changes = lit.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(changes >= 10, "flickers: {lit:?}");
        assert!(lit.iter().any(|&l| !l) && lit.iter().any(|&l| l));
    }
}
