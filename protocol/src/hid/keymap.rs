//! Browser `KeyboardEvent.code` → HID usage (Keyboard/Keypad page 0x07).
//!
//! `code` names a physical key position, whatever layout the browser's machine uses, which
//! is exactly what a USB keyboard reports: the target applies its own layout. This table is
//! the source of truth; `protocol/keymap.json` is written from it and `webroot/keymap.js`
//! is tested against that file.

/// Left Control; the eight modifiers are 0xE0..=0xE7 (LCtrl, LShift, LAlt, LGUI, RCtrl,
/// RShift, RAlt/AltGr, RGUI) and travel as bits of the report's first byte.
pub const FIRST_MODIFIER: u8 = 0xE0;
pub const LAST_MODIFIER: u8 = 0xE7;

/// Every key of a 104/105-key keyboard, the keypad, F1–F24 and the international keys, in
/// usage order.
pub const KEYMAP: &[(&str, u8)] = &[
    ("KeyA", 0x04),
    ("KeyB", 0x05),
    ("KeyC", 0x06),
    ("KeyD", 0x07),
    ("KeyE", 0x08),
    ("KeyF", 0x09),
    ("KeyG", 0x0A),
    ("KeyH", 0x0B),
    ("KeyI", 0x0C),
    ("KeyJ", 0x0D),
    ("KeyK", 0x0E),
    ("KeyL", 0x0F),
    ("KeyM", 0x10),
    ("KeyN", 0x11),
    ("KeyO", 0x12),
    ("KeyP", 0x13),
    ("KeyQ", 0x14),
    ("KeyR", 0x15),
    ("KeyS", 0x16),
    ("KeyT", 0x17),
    ("KeyU", 0x18),
    ("KeyV", 0x19),
    ("KeyW", 0x1A),
    ("KeyX", 0x1B),
    ("KeyY", 0x1C),
    ("KeyZ", 0x1D),
    ("Digit1", 0x1E),
    ("Digit2", 0x1F),
    ("Digit3", 0x20),
    ("Digit4", 0x21),
    ("Digit5", 0x22),
    ("Digit6", 0x23),
    ("Digit7", 0x24),
    ("Digit8", 0x25),
    ("Digit9", 0x26),
    ("Digit0", 0x27),
    ("Enter", 0x28),
    ("Escape", 0x29),
    ("Backspace", 0x2A),
    ("Tab", 0x2B),
    ("Space", 0x2C),
    ("Minus", 0x2D),
    ("Equal", 0x2E),
    ("BracketLeft", 0x2F),
    ("BracketRight", 0x30),
    ("Backslash", 0x31),
    // The ISO key left of Enter (# ~ on UK, # ' on German keyboards).
    ("IntlHash", 0x32),
    ("Semicolon", 0x33),
    ("Quote", 0x34),
    ("Backquote", 0x35),
    ("Comma", 0x36),
    ("Period", 0x37),
    ("Slash", 0x38),
    ("CapsLock", 0x39),
    ("F1", 0x3A),
    ("F2", 0x3B),
    ("F3", 0x3C),
    ("F4", 0x3D),
    ("F5", 0x3E),
    ("F6", 0x3F),
    ("F7", 0x40),
    ("F8", 0x41),
    ("F9", 0x42),
    ("F10", 0x43),
    ("F11", 0x44),
    ("F12", 0x45),
    ("PrintScreen", 0x46),
    ("ScrollLock", 0x47),
    ("Pause", 0x48),
    ("Insert", 0x49),
    ("Home", 0x4A),
    ("PageUp", 0x4B),
    ("Delete", 0x4C),
    ("End", 0x4D),
    ("PageDown", 0x4E),
    ("ArrowRight", 0x4F),
    ("ArrowLeft", 0x50),
    ("ArrowDown", 0x51),
    ("ArrowUp", 0x52),
    ("NumLock", 0x53),
    ("NumpadDivide", 0x54),
    ("NumpadMultiply", 0x55),
    ("NumpadSubtract", 0x56),
    ("NumpadAdd", 0x57),
    ("NumpadEnter", 0x58),
    ("Numpad1", 0x59),
    ("Numpad2", 0x5A),
    ("Numpad3", 0x5B),
    ("Numpad4", 0x5C),
    ("Numpad5", 0x5D),
    ("Numpad6", 0x5E),
    ("Numpad7", 0x5F),
    ("Numpad8", 0x60),
    ("Numpad9", 0x61),
    ("Numpad0", 0x62),
    ("NumpadDecimal", 0x63),
    // The ISO key right of left Shift (< > on German and French keyboards, \ | on UK).
    ("IntlBackslash", 0x64),
    ("ContextMenu", 0x65),
    ("Power", 0x66),
    ("NumpadEqual", 0x67),
    ("F13", 0x68),
    ("F14", 0x69),
    ("F15", 0x6A),
    ("F16", 0x6B),
    ("F17", 0x6C),
    ("F18", 0x6D),
    ("F19", 0x6E),
    ("F20", 0x6F),
    ("F21", 0x70),
    ("F22", 0x71),
    ("F23", 0x72),
    ("F24", 0x73),
    ("NumpadComma", 0x85),
    ("IntlRo", 0x87),
    ("KanaMode", 0x88),
    ("IntlYen", 0x89),
    ("Convert", 0x8A),
    ("NonConvert", 0x8B),
    ("Lang1", 0x90),
    ("Lang2", 0x91),
    ("ControlLeft", 0xE0),
    ("ShiftLeft", 0xE1),
    ("AltLeft", 0xE2),
    ("MetaLeft", 0xE3),
    ("ControlRight", 0xE4),
    ("ShiftRight", 0xE5),
    ("AltRight", 0xE6),
    ("MetaRight", 0xE7),
    // Older names some browsers still send for the GUI keys.
    ("OSLeft", 0xE3),
    ("OSRight", 0xE7),
];

/// The HID usage of the key at `code`, or `None` for a key this keyboard does not have.
pub fn usage_for_code(code: &str) -> Option<u8> {
    KEYMAP.iter().find(|(c, _)| *c == code).map(|&(_, u)| u)
}

/// The bit of a modifier usage (0xE0..=0xE7) in the report's modifier byte.
pub fn modifier_bit(usage: u8) -> Option<u8> {
    (FIRST_MODIFIER..=LAST_MODIFIER)
        .contains(&usage)
        .then(|| 1 << (usage - FIRST_MODIFIER))
}

/// Well-known usages, by name, for the code that builds keystrokes.
pub mod usage {
    pub const A: u8 = 0x04;
    pub const DIGIT1: u8 = 0x1E;
    pub const DIGIT0: u8 = 0x27;
    pub const ENTER: u8 = 0x28;
    pub const ESCAPE: u8 = 0x29;
    pub const BACKSPACE: u8 = 0x2A;
    pub const TAB: u8 = 0x2B;
    pub const SPACE: u8 = 0x2C;
    pub const CAPS_LOCK: u8 = 0x39;
    pub const F1: u8 = 0x3A;
    pub const F12: u8 = 0x45;
    pub const SCROLL_LOCK: u8 = 0x47;
    pub const DELETE: u8 = 0x4C;
    pub const NUM_LOCK: u8 = 0x53;
    pub const LEFT_CTRL: u8 = 0xE0;
    pub const LEFT_SHIFT: u8 = 0xE1;
    pub const LEFT_ALT: u8 = 0xE2;
    pub const LEFT_GUI: u8 = 0xE3;
    pub const RIGHT_CTRL: u8 = 0xE4;
    pub const RIGHT_SHIFT: u8 = 0xE5;
    pub const RIGHT_ALT: u8 = 0xE6;
    pub const RIGHT_GUI: u8 = 0xE7;
}

/// Bits of the modifier byte.
pub mod modifier {
    pub const LEFT_CTRL: u8 = 0x01;
    pub const LEFT_SHIFT: u8 = 0x02;
    pub const LEFT_ALT: u8 = 0x04;
    pub const LEFT_GUI: u8 = 0x08;
    pub const RIGHT_CTRL: u8 = 0x10;
    pub const RIGHT_SHIFT: u8 = 0x20;
    /// AltGr on European layouts.
    pub const RIGHT_ALT: u8 = 0x40;
    pub const RIGHT_GUI: u8 = 0x80;
    pub const CTRL: u8 = LEFT_CTRL | RIGHT_CTRL;
    pub const SHIFT: u8 = LEFT_SHIFT | RIGHT_SHIFT;
    pub const ALT: u8 = LEFT_ALT;
}

/// The key map as JSON (`{"KeyA": 4, ...}` in table order), for `protocol/keymap.json`.
pub fn keymap_json() -> String {
    let mut out = String::from("{\n");
    for (i, (code, usage)) in KEYMAP.iter().enumerate() {
        let comma = if i + 1 < KEYMAP.len() { "," } else { "" };
        out.push_str(&format!("  \"{code}\": {usage}{comma}\n"));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_block_and_modifiers_map_to_their_usages() {
        assert_eq!(usage_for_code("KeyA"), Some(0x04));
        assert_eq!(usage_for_code("KeyZ"), Some(0x1D));
        assert_eq!(usage_for_code("Digit0"), Some(0x27));
        assert_eq!(usage_for_code("F24"), Some(0x73));
        assert_eq!(usage_for_code("Numpad0"), Some(0x62));
        assert_eq!(usage_for_code("AltRight"), Some(0xE6));
        assert_eq!(usage_for_code("MediaPlayPause"), None);
        assert_eq!(usage_for_code(""), None);
    }

    #[test]
    fn every_code_is_unique_and_only_the_gui_keys_have_two_names() {
        let mut codes: Vec<&str> = KEYMAP.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), KEYMAP.len(), "a code appears twice");
        let mut usages: Vec<u8> = KEYMAP.iter().map(|(_, u)| *u).collect();
        usages.sort_unstable();
        let before = usages.len();
        usages.dedup();
        assert_eq!(before - usages.len(), 2, "only OSLeft/OSRight are aliases");
    }

    #[test]
    fn the_full_key_set_is_there() {
        // 26 letters, 10 digits, F1-F24, 17 keypad keys, 8 modifiers at least.
        let count = |p: fn(&str) -> bool| KEYMAP.iter().filter(|(c, _)| p(c)).count();
        assert_eq!(count(|c| c.starts_with("Key")), 26);
        assert_eq!(count(|c| c.starts_with("Digit")), 10);
        assert_eq!(
            count(|c| c.len() <= 3 && c.starts_with('F') && c[1..].parse::<u8>().is_ok()),
            24
        );
        assert_eq!(count(|c| c.starts_with("Numpad")), 18);
        for usage in 0x04..=0x65 {
            assert!(
                KEYMAP.iter().any(|&(_, u)| u == usage),
                "usage {usage:#04x} of the 104/105-key set is missing"
            );
        }
    }

    #[test]
    fn modifier_bits() {
        assert_eq!(modifier_bit(0xE0), Some(modifier::LEFT_CTRL));
        assert_eq!(modifier_bit(0xE6), Some(modifier::RIGHT_ALT));
        assert_eq!(modifier_bit(0xE7), Some(modifier::RIGHT_GUI));
        assert_eq!(modifier_bit(0x04), None);
        assert_eq!(modifier_bit(0xE8), None);
    }

    /// `protocol/keymap.json` is what `webroot/keymap.js` is tested against.
    /// `UPDATE_GOLDEN=1 cargo test -p nanokvm-protocol` rewrites it.
    #[test]
    fn keymap_json_matches_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/keymap.json");
        let fresh = keymap_json();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &fresh).expect("write keymap.json");
        }
        let committed = std::fs::read_to_string(path).expect("protocol/keymap.json exists");
        assert_eq!(
            committed, fresh,
            "keymap.json is stale: run UPDATE_GOLDEN=1 cargo test -p nanokvm-protocol"
        );
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&committed).expect("valid JSON");
        assert_eq!(parsed.len(), KEYMAP.len());
    }
}
