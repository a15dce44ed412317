//! Message types for the target's keyboard, mouse and power buttons, and the state the server
//! reports about them. The pure HID logic (key map, report encoding, layouts) lives beside
//! these types; the actors that write reports and press buttons live in the daemon.

use serde::{Deserialize, Serialize};

/// The keyboard layout the *target* expects, used to turn pasted text into key presses.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyboardLayout {
    #[default]
    Us,
    De,
    Fr,
    Uk,
}

/// How one HID gadget device is doing, as far as the server can tell.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HidLink {
    /// Reports are being written.
    Ready,
    /// The host is not taking reports right now (full, suspended); they are retried.
    Retrying,
    /// The device node is missing or refused (host off, cable out); it is reopened.
    Absent,
}

/// The host's keyboard LEDs, from the keyboard's output report.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyboardLeds {
    pub num_lock: bool,
    pub caps_lock: bool,
    pub scroll_lock: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HidStatus {
    pub keyboard: HidLink,
    pub mouse: HidLink,
    pub absolute: HidLink,
    /// `None` until the host has told us (it sends them when it sets up the keyboard).
    pub leds: Option<KeyboardLeds>,
}

/// A press of the target's front-panel buttons.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtxAction {
    /// A short press of the power button (800 ms): boots, or asks the OS to shut down.
    Power,
    /// Holding the power button (1000..=30000 ms): forces the target off.
    PowerLong { ms: u32 },
    /// A press of the reset button (800 ms).
    Reset,
}

/// Which kind of press, without its parameters: what is busy, what finished.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtxKind {
    Power,
    PowerLong,
    Reset,
}

impl AtxAction {
    pub fn kind(&self) -> AtxKind {
        match self {
            AtxAction::Power => AtxKind::Power,
            AtxAction::PowerLong { .. } => AtxKind::PowerLong,
            AtxAction::Reset => AtxKind::Reset,
        }
    }
}

/// The front panel as the server sees it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtxState {
    pub power_led: bool,
    /// `None` on boards without an HDD LED input.
    pub hdd_led: Option<bool>,
    /// The press in progress, if any.
    pub busy: Option<AtxKind>,
}
