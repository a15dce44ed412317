//! The report descriptors of the three gadget functions, and a parser for HID short items
//! that turns a descriptor into the fields of its reports.
//!
//! The gadget setup script (`rootfs/etc/init.d/S03usbdev`) writes exactly these bytes; a test
//! there checks it. The simulated target decodes reports through [`ReportLayout`] parsed from
//! them, and the tests below check that every encoder in `report.rs` matches its descriptor.

/// Boot-protocol keyboard: input [modifiers, reserved, 6 key usages 0..=0xE7], output one
/// byte of LEDs (Num, Caps, Scroll, Compose, Kana + 3 bits of padding).
#[rustfmt::skip]
pub const KEYBOARD: &[u8] = &[
    0x05, 0x01,       // Usage Page (Generic Desktop)
    0x09, 0x06,       // Usage (Keyboard)
    0xA1, 0x01,       // Collection (Application)
    0x05, 0x07,       //   Usage Page (Keyboard/Keypad)
    0x19, 0xE0,       //   Usage Minimum (Left Control)
    0x29, 0xE7,       //   Usage Maximum (Right GUI)
    0x15, 0x00,       //   Logical Minimum (0)
    0x25, 0x01,       //   Logical Maximum (1)
    0x75, 0x01,       //   Report Size (1)
    0x95, 0x08,       //   Report Count (8)
    0x81, 0x02,       //   Input (Data, Variable, Absolute): modifier bits
    0x95, 0x01,       //   Report Count (1)
    0x75, 0x08,       //   Report Size (8)
    0x81, 0x01,       //   Input (Constant): reserved byte
    0x05, 0x08,       //   Usage Page (LEDs)
    0x19, 0x01,       //   Usage Minimum (Num Lock)
    0x29, 0x05,       //   Usage Maximum (Kana)
    0x95, 0x05,       //   Report Count (5)
    0x75, 0x01,       //   Report Size (1)
    0x91, 0x02,       //   Output (Data, Variable, Absolute): LEDs
    0x95, 0x01,       //   Report Count (1)
    0x75, 0x03,       //   Report Size (3)
    0x91, 0x01,       //   Output (Constant): padding
    0x05, 0x07,       //   Usage Page (Keyboard/Keypad)
    0x19, 0x00,       //   Usage Minimum (0)
    0x29, 0xE7,       //   Usage Maximum (Right GUI)
    0x15, 0x00,       //   Logical Minimum (0)
    0x26, 0xE7, 0x00, //   Logical Maximum (231)
    0x95, 0x06,       //   Report Count (6)
    0x75, 0x08,       //   Report Size (8)
    0x81, 0x00,       //   Input (Data, Array): the pressed keys
    0xC0,             // End Collection
];

/// Relative mouse: input [5 buttons + 3 padding bits, dx, dy, wheel], each axis int8.
#[rustfmt::skip]
pub const MOUSE: &[u8] = &[
    0x05, 0x01,       // Usage Page (Generic Desktop)
    0x09, 0x02,       // Usage (Mouse)
    0xA1, 0x01,       // Collection (Application)
    0x09, 0x01,       //   Usage (Pointer)
    0xA1, 0x00,       //   Collection (Physical)
    0x05, 0x09,       //     Usage Page (Button)
    0x19, 0x01,       //     Usage Minimum (1)
    0x29, 0x05,       //     Usage Maximum (5)
    0x15, 0x00,       //     Logical Minimum (0)
    0x25, 0x01,       //     Logical Maximum (1)
    0x95, 0x05,       //     Report Count (5)
    0x75, 0x01,       //     Report Size (1)
    0x81, 0x02,       //     Input (Data, Variable, Absolute): buttons
    0x95, 0x01,       //     Report Count (1)
    0x75, 0x03,       //     Report Size (3)
    0x81, 0x01,       //     Input (Constant): padding
    0x05, 0x01,       //     Usage Page (Generic Desktop)
    0x09, 0x30,       //     Usage (X)
    0x09, 0x31,       //     Usage (Y)
    0x09, 0x38,       //     Usage (Wheel)
    0x15, 0x81,       //     Logical Minimum (-127)
    0x25, 0x7F,       //     Logical Maximum (127)
    0x75, 0x08,       //     Report Size (8)
    0x95, 0x03,       //     Report Count (3)
    0x81, 0x06,       //     Input (Data, Variable, Relative)
    0xC0,             //   End Collection
    0xC0,             // End Collection
];

/// Absolute pointer: input [5 buttons + 3 padding bits, X u16 LE, Y u16 LE (0..=32767),
/// wheel int8 relative].
#[rustfmt::skip]
pub const ABSOLUTE: &[u8] = &[
    0x05, 0x01,       // Usage Page (Generic Desktop)
    0x09, 0x02,       // Usage (Mouse)
    0xA1, 0x01,       // Collection (Application)
    0x09, 0x01,       //   Usage (Pointer)
    0xA1, 0x00,       //   Collection (Physical)
    0x05, 0x09,       //     Usage Page (Button)
    0x19, 0x01,       //     Usage Minimum (1)
    0x29, 0x05,       //     Usage Maximum (5)
    0x15, 0x00,       //     Logical Minimum (0)
    0x25, 0x01,       //     Logical Maximum (1)
    0x95, 0x05,       //     Report Count (5)
    0x75, 0x01,       //     Report Size (1)
    0x81, 0x02,       //     Input (Data, Variable, Absolute): buttons
    0x95, 0x01,       //     Report Count (1)
    0x75, 0x03,       //     Report Size (3)
    0x81, 0x01,       //     Input (Constant): padding
    0x05, 0x01,       //     Usage Page (Generic Desktop)
    0x09, 0x30,       //     Usage (X)
    0x09, 0x31,       //     Usage (Y)
    0x15, 0x00,       //     Logical Minimum (0)
    0x26, 0xFF, 0x7F, //     Logical Maximum (32767)
    0x75, 0x10,       //     Report Size (16)
    0x95, 0x02,       //     Report Count (2)
    0x81, 0x02,       //     Input (Data, Variable, Absolute)
    0x09, 0x38,       //     Usage (Wheel)
    0x15, 0x81,       //     Logical Minimum (-127)
    0x25, 0x7F,       //     Logical Maximum (127)
    0x75, 0x08,       //     Report Size (8)
    0x95, 0x01,       //     Report Count (1)
    0x81, 0x06,       //     Input (Data, Variable, Relative)
    0xC0,             //   End Collection
    0xC0,             // End Collection
];

pub const USAGE_PAGE_DESKTOP: u16 = 0x01;
pub const USAGE_PAGE_KEYBOARD: u16 = 0x07;
pub const USAGE_PAGE_LEDS: u16 = 0x08;
pub const USAGE_PAGE_BUTTON: u16 = 0x09;
pub const USAGE_X: u16 = 0x30;
pub const USAGE_Y: u16 = 0x31;
pub const USAGE_WHEEL: u16 = 0x38;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One main item: `count` values of `size` bits starting at `bit_offset` in its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub direction: Direction,
    pub bit_offset: usize,
    pub size: usize,
    pub count: usize,
    /// Padding or a reserved value.
    pub constant: bool,
    /// One value per usage (bits, axes); otherwise an array of usage indices (key codes).
    pub variable: bool,
    pub relative: bool,
    pub usage_page: u16,
    /// For variable fields: the usage of each value (the last repeats, as the spec says).
    /// For arrays: the usage range the values may name.
    pub usages: Vec<u16>,
    pub usage_range: Option<(u16, u16)>,
    pub logical_min: i32,
    pub logical_max: i32,
}

impl Field {
    /// The usage of the `i`th value of a variable field.
    pub fn usage(&self, i: usize) -> Option<u16> {
        if let Some((min, max)) = self.usage_range {
            let u = usize::from(min) + i;
            return (u <= usize::from(max)).then_some(u as u16);
        }
        self.usages.get(i).or(self.usages.last()).copied()
    }

    /// The `i`th value of this field in `report`, sign-extended when the logical minimum is
    /// negative. `None` when the report is too short.
    pub fn value(&self, report: &[u8], i: usize) -> Option<i32> {
        let start = self.bit_offset + i * self.size;
        let mut raw: u32 = 0;
        for bit in 0..self.size {
            let at = start + bit;
            let byte = report.get(at / 8)?;
            if byte >> (at % 8) & 1 == 1 {
                raw |= 1 << bit;
            }
        }
        if self.logical_min < 0 && self.size < 32 && raw >> (self.size - 1) & 1 == 1 {
            Some(raw as i32 - (1 << self.size))
        } else {
            Some(raw as i32)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLayout {
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorError(pub String);

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "report descriptor: {}", self.0)
    }
}

impl std::error::Error for DescriptorError {}

impl ReportLayout {
    /// Parses short items (no report IDs, no long items: none of our descriptors use them).
    pub fn parse(desc: &[u8]) -> Result<ReportLayout, DescriptorError> {
        #[derive(Clone, Copy, Default)]
        struct Globals {
            page: u16,
            min: i32,
            max: i32,
            size: usize,
            count: usize,
        }
        let err = |at: usize, m: &str| DescriptorError(format!("byte {at}: {m}"));
        let mut g = Globals::default();
        let mut stack = Vec::new();
        let mut usages: Vec<u16> = Vec::new();
        let (mut umin, mut umax) = (None, None);
        let mut offsets = [0usize; 2];
        let mut depth = 0usize;
        let mut fields = Vec::new();
        let mut i = 0;
        while i < desc.len() {
            let prefix = desc[i];
            if prefix == 0xFE {
                return Err(err(i, "long items are not supported"));
            }
            let len = match prefix & 3 {
                3 => 4,
                n => usize::from(n),
            };
            let data = desc
                .get(i + 1..i + 1 + len)
                .ok_or_else(|| err(i, "item runs past the end"))?;
            let unsigned = data
                .iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            let signed = match len {
                1 => i32::from(data[0] as i8),
                2 => i32::from(i16::from_le_bytes([data[0], data[1]])),
                4 => unsigned as i32,
                _ => 0,
            };
            let (kind, tag) = ((prefix >> 2) & 3, prefix >> 4);
            match (kind, tag) {
                (0, 0x8 | 0x9) => {
                    let direction = if tag == 0x8 {
                        Direction::Input
                    } else {
                        Direction::Output
                    };
                    let slot = &mut offsets[direction as usize];
                    let range = match (umin, umax) {
                        (Some(a), Some(b)) => Some((a, b)),
                        _ => None,
                    };
                    fields.push(Field {
                        direction,
                        bit_offset: *slot,
                        size: g.size,
                        count: g.count,
                        constant: unsigned & 1 == 1,
                        variable: unsigned & 2 == 2,
                        relative: unsigned & 4 == 4,
                        usage_page: g.page,
                        usages: std::mem::take(&mut usages),
                        usage_range: range,
                        logical_min: g.min,
                        logical_max: g.max,
                    });
                    *slot += g.size * g.count;
                    (umin, umax) = (None, None);
                }
                (0, 0xA) => {
                    depth += 1;
                    usages.clear();
                    (umin, umax) = (None, None);
                }
                (0, 0xC) => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| err(i, "End Collection without Collection"))?;
                }
                (0, 0xB) => return Err(err(i, "feature reports are not expected")),
                (1, 0x0) => g.page = unsigned as u16,
                (1, 0x1) => g.min = signed,
                (1, 0x2) => g.max = signed,
                (1, 0x3..=0x6) => {} // physical range and units: no effect on the bits
                (1, 0x7) => g.size = unsigned as usize,
                (1, 0x8) => return Err(err(i, "report IDs are not expected")),
                (1, 0x9) => g.count = unsigned as usize,
                (1, 0xA) => stack.push(g),
                (1, 0xB) => g = stack.pop().ok_or_else(|| err(i, "Pop without Push"))?,
                (2, 0x0) => usages.push(unsigned as u16),
                (2, 0x1) => umin = Some(unsigned as u16),
                (2, 0x2) => umax = Some(unsigned as u16),
                _ => return Err(err(i, &format!("unknown item {prefix:#04x}"))),
            }
            i += 1 + len;
        }
        if depth != 0 {
            return Err(err(desc.len(), "unclosed collection"));
        }
        Ok(ReportLayout { fields })
    }

    /// Length in bytes of the input (or output) report.
    pub fn len(&self, direction: Direction) -> usize {
        let bits: usize = self
            .fields
            .iter()
            .filter(|f| f.direction == direction)
            .map(|f| f.size * f.count)
            .sum();
        bits.div_ceil(8)
    }

    /// The non-constant input field that carries `usage` of `page`, and the value's index.
    pub fn find(&self, page: u16, usage: u16) -> Option<(&Field, usize)> {
        self.fields
            .iter()
            .filter(|f| f.direction == Direction::Input && !f.constant && f.variable)
            .filter(|f| f.usage_page == page)
            .find_map(|f| {
                (0..f.count)
                    .find(|&i| f.usage(i) == Some(usage))
                    .map(|i| (f, i))
            })
    }

    /// The input array field of `page` (the keyboard's key slots).
    pub fn array(&self, page: u16) -> Option<&Field> {
        self.fields.iter().find(|f| {
            f.direction == Direction::Input && !f.constant && !f.variable && f.usage_page == page
        })
    }
}
