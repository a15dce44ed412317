//! The bytes of the reports the gadget functions send, exactly as their descriptors in
//! [`descriptor`](super::descriptor) declare them.

use super::keymap::modifier_bit;
use crate::KeyboardLeds;

pub const KEYBOARD_REPORT_LEN: usize = 8;
pub const MOUSE_REPORT_LEN: usize = 4;
pub const ABSOLUTE_REPORT_LEN: usize = 6;

/// Largest absolute coordinate (the logical maximum of X and Y).
pub const ABSOLUTE_MAX: u16 = 32767;
/// Largest relative step of one mouse report, either way (int8 without -128).
pub const MOUSE_STEP_MAX: i32 = 127;
/// Key slots of the boot keyboard report.
pub const KEY_SLOTS: usize = 6;
/// What all slots say when more than six keys are down (the HID spec's ErrorRollOver): the
/// host keeps the keys it had and waits for fewer, rather than guessing.
pub const ERROR_ROLL_OVER: u8 = 0x01;
/// The five mouse buttons: left, right, middle, back, forward.
pub const BUTTONS_MASK: u8 = 0x1F;

pub type KeyboardReport = [u8; KEYBOARD_REPORT_LEN];
pub type MouseReport = [u8; MOUSE_REPORT_LEN];
pub type AbsoluteReport = [u8; ABSOLUTE_REPORT_LEN];

/// The report for a set of held keys (HID usages, in the order they went down): modifiers
/// become bits of byte 0, other keys fill the six slots in press order. More than six
/// non-modifier keys is a rollover error, reported as the spec says. Usage 0 and repeats
/// are ignored.
pub fn keyboard_report(held: impl IntoIterator<Item = u8>) -> KeyboardReport {
    let mut report = [0u8; KEYBOARD_REPORT_LEN];
    let mut slots = 0;
    let mut rollover = false;
    for usage in held {
        if let Some(bit) = modifier_bit(usage) {
            report[0] |= bit;
        } else if usage != 0 && !report[2..2 + slots].contains(&usage) {
            if slots == KEY_SLOTS {
                rollover = true;
            } else {
                report[2 + slots] = usage;
                slots += 1;
            }
        }
    }
    if rollover {
        report[2..].fill(ERROR_ROLL_OVER);
    }
    report
}

/// Relative mouse reports for a move of (`dx`, `dy`) with `buttons` held and `wheel`
/// detents: moves larger than one report can carry are split into steps of at most 127;
/// the wheel (clamped to ±127) goes with the first report. Always at least one report, so a
/// button change without movement is sent too.
pub fn mouse_reports(dx: i32, dy: i32, buttons: u8, wheel: i8) -> Vec<MouseReport> {
    let steps = |v: i32| (v.unsigned_abs() as i32 + MOUSE_STEP_MAX - 1) / MOUSE_STEP_MAX;
    let n = steps(dx).max(steps(dy)).max(1);
    let mut out = Vec::with_capacity(n as usize);
    let (mut left_x, mut left_y) = (dx, dy);
    for i in 0..n {
        // Spread evenly so a diagonal stays a diagonal.
        let remaining = n - i;
        let sx = (left_x / remaining).clamp(-MOUSE_STEP_MAX, MOUSE_STEP_MAX);
        let sy = (left_y / remaining).clamp(-MOUSE_STEP_MAX, MOUSE_STEP_MAX);
        let sx = if i + 1 == n {
            left_x.clamp(-127, 127)
        } else {
            sx
        };
        let sy = if i + 1 == n {
            left_y.clamp(-127, 127)
        } else {
            sy
        };
        left_x -= sx;
        left_y -= sy;
        let w = if i == 0 { clamp_wheel(wheel) } else { 0 };
        out.push([
            buttons & BUTTONS_MASK,
            sx as i8 as u8,
            sy as i8 as u8,
            w as u8,
        ]);
    }
    out
}

/// The absolute pointer report: `x`, `y` clamped to 0..=32767.
pub fn absolute_report(x: u16, y: u16, buttons: u8, wheel: i8) -> AbsoluteReport {
    let [xl, xh] = x.min(ABSOLUTE_MAX).to_le_bytes();
    let [yl, yh] = y.min(ABSOLUTE_MAX).to_le_bytes();
    [
        buttons & BUTTONS_MASK,
        xl,
        xh,
        yl,
        yh,
        clamp_wheel(wheel) as u8,
    ]
}

/// -128 is outside the descriptor's logical range.
fn clamp_wheel(wheel: i8) -> i8 {
    wheel.max(-127)
}

/// The keyboard's output report (one byte from the host): bit 0 Num Lock, 1 Caps Lock,
/// 2 Scroll Lock.
pub fn leds_from_output(byte: u8) -> KeyboardLeds {
    KeyboardLeds {
        num_lock: byte & 1 != 0,
        caps_lock: byte & 2 != 0,
        scroll_lock: byte & 4 != 0,
    }
}

pub fn leds_to_output(leds: KeyboardLeds) -> u8 {
    u8::from(leds.num_lock) | u8::from(leds.caps_lock) << 1 | u8::from(leds.scroll_lock) << 2
}

#[cfg(test)]
mod tests {
    use super::super::descriptor::{self, *};
    use super::*;

    #[test]
    fn keyboard_report_has_modifier_bits_and_keys_in_press_order() {
        assert_eq!(keyboard_report([]), [0; 8]);
        assert_eq!(
            keyboard_report([0xE1, 0x0B, 0xE6, 0x08]),
            [0x42, 0, 0x0B, 0x08, 0, 0, 0, 0]
        );
        // Repeats and usage 0 are ignored.
        assert_eq!(keyboard_report([4, 4, 0, 5]), [0, 0, 4, 5, 0, 0, 0, 0]);
    }

    #[test]
    fn more_than_six_keys_is_a_rollover_error_but_modifiers_still_count() {
        let six = keyboard_report([4, 5, 6, 7, 8, 9, 0xE0]);
        assert_eq!(six, [1, 0, 4, 5, 6, 7, 8, 9]);
        let seven = keyboard_report([4, 5, 6, 7, 8, 9, 10, 0xE0]);
        assert_eq!(seven, [1, 0, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn mouse_moves_are_split_and_clamped() {
        assert_eq!(mouse_reports(0, 0, 1, 0), vec![[1, 0, 0, 0]]);
        assert_eq!(mouse_reports(-5, 7, 0xFF, -128), vec![[0x1F, 251, 7, 129]]);
        let big = mouse_reports(300, -20, 0, 2);
        assert_eq!(big.len(), 3);
        let sum = |axis: usize| big.iter().map(|r| i32::from(r[axis] as i8)).sum::<i32>();
        assert_eq!((sum(1), sum(2)), (300, -20));
        assert!(big
            .iter()
            .all(|r| (r[1] as i8) > -128 && (r[2] as i8) > -128));
        assert_eq!(big[0][3], 2);
        assert_eq!(big[1][3], 0, "the wheel goes once");
        let huge = mouse_reports(-32768, 32767, 0, 0);
        let total: i32 = huge.iter().map(|r| i32::from(r[1] as i8)).sum();
        assert_eq!(total, -32768);
    }

    #[test]
    fn absolute_report_is_little_endian_and_clamped() {
        assert_eq!(
            absolute_report(0x1234, 0x7FFF, 0b101, -1),
            [5, 0x34, 0x12, 0xFF, 0x7F, 0xFF]
        );
        assert_eq!(
            absolute_report(u16::MAX, 40000, 0, 0)[1..5],
            [0xFF, 0x7F, 0xFF, 0x7F]
        );
    }

    #[test]
    fn led_byte_round_trips() {
        for b in 0..8 {
            assert_eq!(leds_to_output(leds_from_output(b)), b);
        }
        assert!(leds_from_output(2).caps_lock);
        assert!(!leds_from_output(2).num_lock);
    }

    // ---- the reports against their descriptors ---------------------------------------

    fn layout(desc: &[u8]) -> ReportLayout {
        ReportLayout::parse(desc).expect("descriptor parses")
    }

    #[test]
    fn report_lengths_are_what_the_descriptors_declare() {
        assert_eq!(layout(KEYBOARD).len(Direction::Input), KEYBOARD_REPORT_LEN);
        assert_eq!(layout(KEYBOARD).len(Direction::Output), 1);
        assert_eq!(layout(MOUSE).len(Direction::Input), MOUSE_REPORT_LEN);
        assert_eq!(layout(MOUSE).len(Direction::Output), 0);
        assert_eq!(layout(ABSOLUTE).len(Direction::Input), ABSOLUTE_REPORT_LEN);
    }

    #[test]
    fn keyboard_fields_decode_what_the_encoder_wrote() {
        let l = layout(KEYBOARD);
        let report = keyboard_report([0xE1, 0xE6, 0x04, 0x1E, 0x62]);
        for (usage, down) in [(0xE0, 0), (0xE1, 1), (0xE6, 1), (0xE7, 0)] {
            let (f, i) = l.find(USAGE_PAGE_KEYBOARD, usage).expect("modifier field");
            assert_eq!(f.value(&report, i), Some(down), "modifier {usage:#x}");
        }
        let keys = l.array(USAGE_PAGE_KEYBOARD).expect("key array");
        assert_eq!(keys.count, KEY_SLOTS);
        assert_eq!((keys.logical_min, keys.logical_max), (0, 0xE7));
        let got: Vec<i32> = (0..keys.count)
            .filter_map(|i| keys.value(&report, i))
            .collect();
        assert_eq!(got, vec![0x04, 0x1E, 0x62, 0, 0, 0]);
        // The LEDs: five output bits from Num Lock on.
        let leds = l
            .fields
            .iter()
            .find(|f| f.direction == Direction::Output && !f.constant)
            .expect("LED field");
        assert_eq!(leds.usage_page, USAGE_PAGE_LEDS);
        assert_eq!((leds.bit_offset, leds.size), (0, 1));
        assert_eq!(
            (leds.usage(0), leds.usage(1), leds.usage(2)),
            (Some(1), Some(2), Some(3))
        );
        let out = [leds_to_output(KeyboardLeds {
            num_lock: false,
            caps_lock: true,
            scroll_lock: true,
        })];
        assert_eq!(
            (
                leds.value(&out, 0),
                leds.value(&out, 1),
                leds.value(&out, 2)
            ),
            (Some(0), Some(1), Some(1))
        );
    }

    #[test]
    fn mouse_fields_decode_what_the_encoder_wrote() {
        let l = layout(MOUSE);
        let r = mouse_reports(-100, 42, 0b10110, -3)[0];
        for (button, want) in [(1, 0), (2, 1), (3, 1), (4, 0), (5, 1)] {
            let (f, i) = l.find(USAGE_PAGE_BUTTON, button).expect("button");
            assert_eq!(f.value(&r, i), Some(want), "button {button}");
        }
        for (usage, want) in [(USAGE_X, -100), (USAGE_Y, 42), (USAGE_WHEEL, -3)] {
            let (f, i) = l.find(USAGE_PAGE_DESKTOP, usage).expect("axis");
            assert!(f.relative, "{usage:#x} is relative");
            assert_eq!((f.logical_min, f.logical_max), (-127, 127));
            assert_eq!(f.value(&r, i), Some(want), "axis {usage:#x}");
        }
    }

    #[test]
    fn absolute_fields_decode_what_the_encoder_wrote() {
        let l = layout(ABSOLUTE);
        let r = absolute_report(32767, 12345, 0b1, 5);
        let (f, i) = l.find(USAGE_PAGE_BUTTON, 1).expect("left button");
        assert_eq!(f.value(&r, i), Some(1));
        for (usage, want) in [(USAGE_X, 32767), (USAGE_Y, 12345)] {
            let (f, i) = l.find(USAGE_PAGE_DESKTOP, usage).expect("axis");
            assert!(!f.relative);
            assert_eq!((f.logical_min, f.logical_max), (0, i32::from(ABSOLUTE_MAX)));
            assert_eq!(f.value(&r, i), Some(want));
        }
        let (f, i) = l.find(USAGE_PAGE_DESKTOP, USAGE_WHEEL).expect("wheel");
        assert!(f.relative);
        assert_eq!(f.value(&r, i), Some(5));
    }

    #[test]
    fn the_parser_refuses_broken_descriptors() {
        assert!(ReportLayout::parse(&[0x05]).is_err(), "truncated item");
        assert!(ReportLayout::parse(&[0xA1, 0x01]).is_err(), "unclosed");
        assert!(ReportLayout::parse(&[0xC0]).is_err(), "stray end");
        assert!(ReportLayout::parse(&[0x85, 0x01]).is_err(), "report id");
        assert!(ReportLayout::parse(descriptor::MOUSE).is_ok());
    }
}
