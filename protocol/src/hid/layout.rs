//! Text → keystrokes for the target's keyboard layout, for paste.
//!
//! A USB keyboard sends key positions; the target turns them into characters with its own
//! layout. To type text, each character is looked up in the layout the user says the target
//! uses: which key, with Shift or AltGr, or a dead key followed by a key (`^` then Space
//! types `^` on German and French keyboards; `^` then `e` types `ê`). Dead keys follow the
//! Windows conventions of each layout. Characters a layout cannot type are reported.

use super::keymap::{modifier, usage};
use crate::KeyboardLayout;

/// One key press: the key and the modifiers held with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stroke {
    pub modifiers: u8,
    pub usage: u8,
}

impl Stroke {
    const fn plain(usage: u8) -> Stroke {
        Stroke {
            modifiers: 0,
            usage,
        }
    }
}

/// The strokes that type one character (at most a dead key and a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharStrokes {
    strokes: [Stroke; 2],
    len: u8,
}

impl CharStrokes {
    fn one(s: Stroke) -> Self {
        Self {
            strokes: [s, s],
            len: 1,
        }
    }
    fn two(a: Stroke, b: Stroke) -> Self {
        Self {
            strokes: [a, b],
            len: 2,
        }
    }
    pub fn as_slice(&self) -> &[Stroke] {
        &self.strokes[..usize::from(self.len)]
    }
}

const NONE: char = '\0';
const SHIFT: u8 = modifier::LEFT_SHIFT;
const ALTGR: u8 = modifier::RIGHT_ALT;

/// A key of the layout: the characters it types plain, with Shift and with AltGr.
type Key = (u8, char, char, char);
/// A dead key: the character it stands for, the stroke, and (base, composed) pairs.
type Dead = (char, Stroke, &'static [(char, char)]);

struct Layout {
    /// Letters by usage from KeyA (0x04): the lower-case letter that key types, or NONE.
    letters: &'static str,
    keys: &'static [Key],
    dead: &'static [Dead],
}

const US: Layout = Layout {
    letters: "abcdefghijklmnopqrstuvwxyz",
    keys: &[
        (0x1E, '1', '!', NONE),
        (0x1F, '2', '@', NONE),
        (0x20, '3', '#', NONE),
        (0x21, '4', '$', NONE),
        (0x22, '5', '%', NONE),
        (0x23, '6', '^', NONE),
        (0x24, '7', '&', NONE),
        (0x25, '8', '*', NONE),
        (0x26, '9', '(', NONE),
        (0x27, '0', ')', NONE),
        (0x2D, '-', '_', NONE),
        (0x2E, '=', '+', NONE),
        (0x2F, '[', '{', NONE),
        (0x30, ']', '}', NONE),
        (0x31, '\\', '|', NONE),
        (0x33, ';', ':', NONE),
        (0x34, '\'', '"', NONE),
        (0x35, '`', '~', NONE),
        (0x36, ',', '<', NONE),
        (0x37, '.', '>', NONE),
        (0x38, '/', '?', NONE),
    ],
    dead: &[],
};

const UK: Layout = Layout {
    letters: "abcdefghijklmnopqrstuvwxyz",
    keys: &[
        (0x1E, '1', '!', NONE),
        (0x1F, '2', '"', NONE),
        (0x20, '3', '£', NONE),
        (0x21, '4', '$', '€'),
        (0x22, '5', '%', NONE),
        (0x23, '6', '^', NONE),
        (0x24, '7', '&', NONE),
        (0x25, '8', '*', NONE),
        (0x26, '9', '(', NONE),
        (0x27, '0', ')', NONE),
        (0x2D, '-', '_', NONE),
        (0x2E, '=', '+', NONE),
        (0x2F, '[', '{', NONE),
        (0x30, ']', '}', NONE),
        (0x32, '#', '~', NONE),
        (0x33, ';', ':', NONE),
        (0x34, '\'', '@', NONE),
        (0x35, '`', '¬', '¦'),
        (0x36, ',', '<', NONE),
        (0x37, '.', '>', NONE),
        (0x38, '/', '?', NONE),
        (0x64, '\\', '|', NONE),
    ],
    dead: &[],
};

const DE: Layout = Layout {
    letters: "abcdefghijklmnopqrstuvwxzy",
    keys: &[
        (0x1E, '1', '!', NONE),
        (0x1F, '2', '"', '²'),
        (0x20, '3', '§', '³'),
        (0x21, '4', '$', NONE),
        (0x22, '5', '%', NONE),
        (0x23, '6', '&', NONE),
        (0x24, '7', '/', '{'),
        (0x25, '8', '(', '['),
        (0x26, '9', ')', ']'),
        (0x27, '0', '=', '}'),
        (0x2D, 'ß', '?', '\\'),
        (0x2F, 'ü', 'Ü', NONE),
        (0x30, '+', '*', '~'),
        (0x32, '#', '\'', NONE),
        (0x33, 'ö', 'Ö', NONE),
        (0x34, 'ä', 'Ä', NONE),
        (0x35, NONE, '°', NONE),
        (0x36, ',', ';', NONE),
        (0x37, '.', ':', NONE),
        (0x38, '-', '_', NONE),
        (0x64, '<', '>', '|'),
        (0x14, NONE, NONE, '@'),
        (0x08, NONE, NONE, '€'),
        (0x10, NONE, NONE, 'µ'),
    ],
    dead: &[
        ('^', Stroke::plain(0x35), CIRCUMFLEX),
        ('´', Stroke::plain(0x2E), ACUTE),
        (
            '`',
            Stroke {
                modifiers: SHIFT,
                usage: 0x2E,
            },
            GRAVE,
        ),
    ],
};

const FR: Layout = Layout {
    letters: "qbcdefghijkl\0noparstuvzxyw",
    keys: &[
        (0x35, '²', NONE, NONE),
        (0x1E, '&', '1', NONE),
        (0x1F, 'é', '2', NONE),
        (0x20, '"', '3', '#'),
        (0x21, '\'', '4', '{'),
        (0x22, '(', '5', '['),
        (0x23, '-', '6', '|'),
        (0x24, 'è', '7', NONE),
        (0x25, '_', '8', '\\'),
        (0x26, 'ç', '9', NONE),
        (0x27, 'à', '0', '@'),
        (0x2D, ')', '°', ']'),
        (0x2E, '=', '+', '}'),
        (0x30, '$', '£', '¤'),
        (0x32, '*', 'µ', NONE),
        (0x33, 'm', 'M', NONE),
        (0x34, 'ù', '%', NONE),
        (0x10, ',', '?', NONE),
        (0x36, ';', '.', NONE),
        (0x37, ':', '/', NONE),
        (0x38, '!', '§', NONE),
        (0x64, '<', '>', NONE),
        (0x08, NONE, NONE, '€'),
    ],
    dead: &[
        ('^', Stroke::plain(0x2F), CIRCUMFLEX),
        (
            '¨',
            Stroke {
                modifiers: SHIFT,
                usage: 0x2F,
            },
            &[
                ('a', 'ä'),
                ('e', 'ë'),
                ('i', 'ï'),
                ('o', 'ö'),
                ('u', 'ü'),
                ('y', 'ÿ'),
                ('A', 'Ä'),
                ('E', 'Ë'),
                ('I', 'Ï'),
                ('O', 'Ö'),
                ('U', 'Ü'),
            ],
        ),
        (
            '~',
            Stroke {
                modifiers: ALTGR,
                usage: 0x1F,
            },
            &[('n', 'ñ'), ('N', 'Ñ'), ('o', 'õ'), ('a', 'ã')],
        ),
        (
            '`',
            Stroke {
                modifiers: ALTGR,
                usage: 0x24,
            },
            &[('a', 'à'), ('e', 'è'), ('u', 'ù'), ('A', 'À'), ('E', 'È')],
        ),
    ],
};

const CIRCUMFLEX: &[(char, char)] = &[
    ('a', 'â'),
    ('e', 'ê'),
    ('i', 'î'),
    ('o', 'ô'),
    ('u', 'û'),
    ('A', 'Â'),
    ('E', 'Ê'),
    ('I', 'Î'),
    ('O', 'Ô'),
    ('U', 'Û'),
];
const ACUTE: &[(char, char)] = &[
    ('a', 'á'),
    ('e', 'é'),
    ('i', 'í'),
    ('o', 'ó'),
    ('u', 'ú'),
    ('A', 'Á'),
    ('E', 'É'),
    ('I', 'Í'),
    ('O', 'Ó'),
    ('U', 'Ú'),
];
const GRAVE: &[(char, char)] = &[
    ('a', 'à'),
    ('e', 'è'),
    ('i', 'ì'),
    ('o', 'ò'),
    ('u', 'ù'),
    ('A', 'À'),
    ('E', 'È'),
    ('I', 'Ì'),
    ('O', 'Ò'),
    ('U', 'Ù'),
];

fn layout(l: KeyboardLayout) -> &'static Layout {
    match l {
        KeyboardLayout::Us => &US,
        KeyboardLayout::Uk => &UK,
        KeyboardLayout::De => &DE,
        KeyboardLayout::Fr => &FR,
    }
}

/// One key (no dead keys) that types `ch`.
fn direct(l: &Layout, ch: char) -> Option<Stroke> {
    match ch {
        '\n' => return Some(Stroke::plain(usage::ENTER)),
        '\t' => return Some(Stroke::plain(usage::TAB)),
        ' ' => return Some(Stroke::plain(usage::SPACE)),
        _ => {}
    }
    for &(u, plain, shifted, altgr) in l.keys {
        for (c, modifiers) in [(plain, 0), (shifted, SHIFT), (altgr, ALTGR)] {
            if c != NONE && c == ch {
                return Some(Stroke {
                    modifiers,
                    usage: u,
                });
            }
        }
    }
    let lower = ch.to_lowercase().next().filter(|_| ch.is_alphabetic())?;
    let at = l.letters.chars().position(|c| c != NONE && c == lower)?;
    let modifiers = if lower == ch { 0 } else { SHIFT };
    Some(Stroke {
        modifiers,
        usage: usage::A + at as u8,
    })
}

/// How to type `ch` on `layout`, or `None` when it cannot be typed.
pub fn char_strokes(ch: char, layout_id: KeyboardLayout) -> Option<CharStrokes> {
    let l = layout(layout_id);
    if let Some(s) = direct(l, ch) {
        return Some(CharStrokes::one(s));
    }
    for &(dead_char, dead, composed) in l.dead {
        if ch == dead_char {
            return Some(CharStrokes::two(dead, Stroke::plain(usage::SPACE)));
        }
        if let Some(&(base, _)) = composed.iter().find(|&&(_, c)| c == ch) {
            return direct(l, base).map(|b| CharStrokes::two(dead, b));
        }
    }
    None
}

/// A text turned into keystrokes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PastePlan {
    /// Per typeable character, its strokes.
    pub chars: Vec<CharStrokes>,
    /// The characters that cannot be typed, each once, in order of appearance.
    pub unknown: String,
}

/// Plans `text` for `layout`. `\r\n` and a lone `\r` type one Enter.
pub fn plan(text: &str, layout_id: KeyboardLayout) -> PastePlan {
    let mut plan = PastePlan::default();
    let mut chars = text.chars().peekable();
    while let Some(mut ch) = chars.next() {
        if ch == '\r' {
            if chars.peek() == Some(&'\n') {
                continue;
            }
            ch = '\n';
        }
        match char_strokes(ch, layout_id) {
            Some(s) => plan.chars.push(s),
            None if !plan.unknown.contains(ch) => plan.unknown.push(ch),
            None => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyboardLayout::*;

    fn one(ch: char, l: KeyboardLayout) -> (u8, u8) {
        let s = char_strokes(ch, l).unwrap_or_else(|| panic!("{ch:?} on {l:?}"));
        assert_eq!(s.as_slice().len(), 1, "{ch:?} on {l:?} is one stroke");
        (s.as_slice()[0].modifiers, s.as_slice()[0].usage)
    }

    #[test]
    fn us_letters_digits_and_symbols() {
        assert_eq!(one('a', Us), (0, 0x04));
        assert_eq!(one('Z', Us), (SHIFT, 0x1D));
        assert_eq!(one('1', Us), (0, 0x1E));
        assert_eq!(one('0', Us), (0, 0x27));
        assert_eq!(one('@', Us), (SHIFT, 0x1F));
        assert_eq!(one('#', Us), (SHIFT, 0x20));
        assert_eq!(one('"', Us), (SHIFT, 0x34));
        assert_eq!(one('\n', Us), (0, usage::ENTER));
        assert_eq!(one('\t', Us), (0, usage::TAB));
        assert_eq!(one(' ', Us), (0, usage::SPACE));
        assert!(char_strokes('é', Us).is_none());
        // Every printable ASCII character can be typed on US.
        for ch in ' '..='~' {
            assert!(char_strokes(ch, Us).is_some(), "{ch:?}");
        }
    }

    #[test]
    fn german_qwertz_altgr_and_dead_keys() {
        assert_eq!(one('z', De), (0, 0x1C));
        assert_eq!(one('y', De), (0, 0x1D));
        assert_eq!(one('Y', De), (SHIFT, 0x1D));
        assert_eq!(one('ß', De), (0, 0x2D));
        assert_eq!(one('Ü', De), (SHIFT, 0x2F));
        assert_eq!(one('@', De), (ALTGR, 0x14));
        assert_eq!(one('€', De), (ALTGR, 0x08));
        assert_eq!(one('{', De), (ALTGR, 0x24));
        assert_eq!(one('\\', De), (ALTGR, 0x2D));
        assert_eq!(one('|', De), (ALTGR, 0x64));
        let caret = char_strokes('^', De).unwrap();
        assert_eq!(
            caret.as_slice(),
            &[Stroke::plain(0x35), Stroke::plain(usage::SPACE)]
        );
        let e_acute = char_strokes('é', De).unwrap();
        assert_eq!(
            e_acute.as_slice(),
            &[Stroke::plain(0x2E), Stroke::plain(0x08)]
        );
        for ch in ' '..='~' {
            assert!(char_strokes(ch, De).is_some(), "{ch:?} on German");
        }
    }

    #[test]
    fn french_azerty() {
        assert_eq!(one('a', Fr), (0, 0x14));
        assert_eq!(one('q', Fr), (0, 0x04));
        assert_eq!(one('w', Fr), (0, 0x1D));
        assert_eq!(one('m', Fr), (0, 0x33));
        assert_eq!(one(',', Fr), (0, 0x10));
        assert_eq!(one('1', Fr), (SHIFT, 0x1E));
        assert_eq!(one('é', Fr), (0, 0x1F));
        assert_eq!(one('@', Fr), (ALTGR, 0x27));
        assert_eq!(one('€', Fr), (ALTGR, 0x08));
        let e_circ = char_strokes('ê', Fr).unwrap();
        assert_eq!(
            e_circ.as_slice(),
            &[Stroke::plain(0x2F), Stroke::plain(0x08)]
        );
        for ch in ' '..='~' {
            assert!(char_strokes(ch, Fr).is_some(), "{ch:?} on French");
        }
    }

    #[test]
    fn uk_differs_from_us_where_it_should() {
        assert_eq!(one('"', Uk), (SHIFT, 0x1F));
        assert_eq!(one('@', Uk), (SHIFT, 0x34));
        assert_eq!(one('£', Uk), (SHIFT, 0x20));
        assert_eq!(one('#', Uk), (0, 0x32));
        assert_eq!(one('\\', Uk), (0, 0x64));
        assert_eq!(one('€', Uk), (ALTGR, 0x21));
        for ch in ' '..='~' {
            assert!(char_strokes(ch, Uk).is_some(), "{ch:?} on UK");
        }
    }

    #[test]
    fn plan_counts_typeable_chars_and_lists_unknown_ones_once() {
        let p = plan("Hello, World! 123 @#", Us);
        assert_eq!(p.chars.len(), 20);
        assert_eq!(p.unknown, "");
        let p = plan("a€b€c✓\r\nd\re", Us);
        assert_eq!(p.unknown, "€✓");
        assert_eq!(p.chars.len(), 3 + 1 + 1 + 1 + 1, "abc, Enter, d, Enter, e");
        assert_eq!(plan("Grüße", De).unknown, "");
        assert_eq!(plan("Grüße", Us).unknown, "üß");
    }
}
