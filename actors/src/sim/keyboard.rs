//! The simulated target's keyboard driver: keyboard reports in, decoded through the report
//! descriptor the gadget declares, turned into what a US-layout console does with them —
//! characters, Ctrl+Alt+F1..F4 console switches, and the Caps/Num/Scroll Lock LEDs, whose
//! state goes back to the keyboard as its output report. Pure: no I/O.
//!
//! The character table here is the target's own, written independently of the paste
//! layouts in `protocol/`, so that a wrong paste table shows up as wrong text.

use nanokvm_protocol::hid::descriptor::{self, ReportLayout, USAGE_PAGE_KEYBOARD};
use nanokvm_protocol::hid::report::ERROR_ROLL_OVER;

/// What the target does in answer to a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Characters for the active console (`\n`, backspace `\u{8}` and tab included).
    Type(char),
    /// Ctrl+Alt+Fn.
    SwitchConsole(u8),
    /// The lock LEDs changed: the new output report byte.
    Leds(u8),
}

pub const LED_NUM: u8 = 1;
pub const LED_CAPS: u8 = 2;
pub const LED_SCROLL: u8 = 4;

pub struct SimKeyboard {
    layout: ReportLayout,
    modifiers: u8,
    keys: Vec<u8>,
    leds: u8,
}

impl Default for SimKeyboard {
    fn default() -> Self {
        Self::new()
    }
}

impl SimKeyboard {
    pub fn new() -> Self {
        // The descriptor is a constant that a test parses; failing here is a build defect.
        let layout = ReportLayout::parse(descriptor::KEYBOARD)
            .unwrap_or(ReportLayout { fields: Vec::new() });
        Self {
            layout,
            modifiers: 0,
            keys: Vec::new(),
            leds: 0,
        }
    }

    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// The usages held now (modifiers as 0xE0..=0xE7).
    pub fn held(&self) -> Vec<u8> {
        let mods = (0..8)
            .filter(|b| self.modifiers >> b & 1 == 1)
            .map(|b| 0xE0 + b);
        mods.chain(self.keys.iter().copied()).collect()
    }

    /// One input report.
    pub fn report(&mut self, report: &[u8], out: &mut Vec<KeyAction>) {
        let mut modifiers = 0u8;
        for bit in 0..8u8 {
            if let Some((f, i)) = self.layout.find(USAGE_PAGE_KEYBOARD, 0xE0 + u16::from(bit)) {
                if f.value(report, i) == Some(1) {
                    modifiers |= 1 << bit;
                }
            }
        }
        self.modifiers = modifiers;
        let Some(array) = self.layout.array(USAGE_PAGE_KEYBOARD) else {
            return;
        };
        let keys: Vec<u8> = (0..array.count)
            .filter_map(|i| array.value(report, i))
            .filter(|&u| u != 0)
            .map(|u| u as u8)
            .collect();
        if keys.contains(&ERROR_ROLL_OVER) {
            return; // too many keys: the keyboard says nothing about which; keep the old set
        }
        let pressed: Vec<u8> = keys
            .iter()
            .copied()
            .filter(|k| !self.keys.contains(k))
            .collect();
        self.keys = keys;
        for usage in pressed {
            self.key_down(usage, out);
        }
    }

    fn key_down(&mut self, usage: u8, out: &mut Vec<KeyAction>) {
        let ctrl = self.modifiers & 0x11 != 0;
        let shift = self.modifiers & 0x22 != 0;
        let alt = self.modifiers & 0x44 != 0;
        let gui = self.modifiers & 0x88 != 0;
        match usage {
            0x39 => return self.toggle(LED_CAPS, out),
            0x53 => return self.toggle(LED_NUM, out),
            0x47 => return self.toggle(LED_SCROLL, out),
            0x3A..=0x3D if ctrl && alt => {
                return out.push(KeyAction::SwitchConsole(usage - 0x3A + 1));
            }
            _ => {}
        }
        if ctrl || alt || gui {
            return; // shortcuts, not text
        }
        let caps = self.leds & LED_CAPS != 0;
        let num = self.leds & LED_NUM != 0;
        if let Some(ch) = us_char(usage, shift, caps, num) {
            out.push(KeyAction::Type(ch));
        }
    }

    fn toggle(&mut self, led: u8, out: &mut Vec<KeyAction>) {
        self.leds ^= led;
        out.push(KeyAction::Leds(self.leds));
    }
}

/// A US-layout console's character for a key.
fn us_char(usage: u8, shift: bool, caps: bool, num: bool) -> Option<char> {
    const DIGITS_SHIFTED: &[u8; 10] = b"!@#$%^&*()";
    const PUNCT: [(u8, char, char); 11] = [
        (0x2D, '-', '_'),
        (0x2E, '=', '+'),
        (0x2F, '[', '{'),
        (0x30, ']', '}'),
        (0x31, '\\', '|'),
        (0x33, ';', ':'),
        (0x34, '\'', '"'),
        (0x35, '`', '~'),
        (0x36, ',', '<'),
        (0x37, '.', '>'),
        (0x38, '/', '?'),
    ];
    const KEYPAD_DIGITS: &[u8; 10] = b"1234567890";
    Some(match usage {
        0x04..=0x1D => {
            let c = char::from(b'a' + (usage - 0x04));
            if shift != caps {
                c.to_ascii_uppercase()
            } else {
                c
            }
        }
        0x1E..=0x27 => {
            let i = usize::from(usage - 0x1E);
            if shift {
                char::from(DIGITS_SHIFTED[i])
            } else {
                char::from(KEYPAD_DIGITS[i])
            }
        }
        0x28 | 0x58 => '\n',
        0x2A => '\u{8}',
        0x2B => '\t',
        0x2C => ' ',
        0x54 => '/',
        0x55 => '*',
        0x56 => '-',
        0x57 => '+',
        0x59..=0x62 if num => char::from(KEYPAD_DIGITS[usize::from(usage - 0x59)]),
        0x63 if num => '.',
        _ => {
            return PUNCT
                .iter()
                .find(|(u, _, _)| *u == usage)
                .map(|&(_, plain, shifted)| if shift { shifted } else { plain })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanokvm_protocol::hid::report::keyboard_report;

    fn feed(kb: &mut SimKeyboard, held: &[u8]) -> Vec<KeyAction> {
        let mut out = Vec::new();
        kb.report(&keyboard_report(held.iter().copied()), &mut out);
        out
    }

    fn typed(actions: &[KeyAction]) -> String {
        actions
            .iter()
            .filter_map(|a| match a {
                KeyAction::Type(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn keys_type_on_the_way_down_with_shift() {
        let mut kb = SimKeyboard::new();
        assert_eq!(typed(&feed(&mut kb, &[0x0B])), "h");
        assert_eq!(typed(&feed(&mut kb, &[0x0B, 0x08])), "e", "h is still down");
        assert_eq!(typed(&feed(&mut kb, &[])), "");
        assert_eq!(typed(&feed(&mut kb, &[0xE1, 0x1F])), "@");
        assert_eq!(typed(&feed(&mut kb, &[0xE5, 0x34])), "\"");
        assert_eq!(typed(&feed(&mut kb, &[0x28])), "\n");
        assert_eq!(kb.held(), vec![0x28]);
    }

    #[test]
    fn caps_lock_toggles_its_led_and_the_case() {
        let mut kb = SimKeyboard::new();
        assert_eq!(feed(&mut kb, &[0x39]), vec![KeyAction::Leds(LED_CAPS)]);
        feed(&mut kb, &[]);
        assert_eq!(typed(&feed(&mut kb, &[0x04])), "A");
        assert_eq!(typed(&feed(&mut kb, &[0xE1, 0x05])), "b");
        assert_eq!(feed(&mut kb, &[0x39]), vec![KeyAction::Leds(0)]);
    }

    #[test]
    fn the_keypad_types_digits_only_with_num_lock() {
        let mut kb = SimKeyboard::new();
        assert_eq!(typed(&feed(&mut kb, &[0x59])), "");
        feed(&mut kb, &[0x53]);
        assert_eq!(kb.leds(), LED_NUM);
        feed(&mut kb, &[]);
        assert_eq!(typed(&feed(&mut kb, &[0x59])), "1");
    }

    #[test]
    fn ctrl_alt_function_keys_switch_consoles_and_shortcuts_type_nothing() {
        let mut kb = SimKeyboard::new();
        assert_eq!(
            feed(&mut kb, &[0xE0, 0xE2, 0x3B]),
            vec![KeyAction::SwitchConsole(2)]
        );
        feed(&mut kb, &[]);
        assert_eq!(
            feed(&mut kb, &[0xE4, 0xE6, 0x3D]),
            vec![KeyAction::SwitchConsole(4)]
        );
        feed(&mut kb, &[]);
        assert_eq!(feed(&mut kb, &[0xE0, 0x06]), vec![], "Ctrl+C types nothing");
    }

    #[test]
    fn a_rollover_report_changes_nothing() {
        let mut kb = SimKeyboard::new();
        feed(&mut kb, &[4]);
        assert!(feed(&mut kb, &[4, 5, 6, 7, 8, 9, 10]).is_empty());
        assert_eq!(kb.held(), vec![4]);
    }
}
