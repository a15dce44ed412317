//! The simulated target's screen: four text consoles, like the VTs of a Linux box.
//!
//! Consoles 1, 3 and 4 run at 1920x1080 and console 2 at 1024x768, so switching to and from
//! console 2 changes the video mode mid-stream. Each console is a grid of character cells
//! drawn with the 24-pixel Noto Sans Mono raster (antialiased), under a panel showing the
//! host name, the console and a clock. Nothing here reads a clock: [`SimScreen::set_time`]
//! drives the panel clock and the cursor blink.
//!
//! Rendering is incremental. The screen remembers what each cell looked like when it was last
//! drawn into the frame ("looks"), and [`SimScreen::render`] redraws only the cells whose look
//! differs now (typed text, scrolling, the blinking cursor) plus the clock digits that
//! changed. A console switch, a new size or a different frame buffer means a full redraw.

use super::cursor::Cursor;
use crate::media::scale::RgbFrame;
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};
use std::fmt;

type Rgb = [u8; 3];

const WEIGHT: FontWeight = FontWeight::Regular;
const SIZE: RasterHeight = RasterHeight::Size24;
/// Width of a character cell: the font's advance, spacing included.
const CELL_W: usize = get_raster_width(WEIGHT, SIZE);
/// Height of the glyph raster.
const GLYPH_H: usize = 24;
/// Height of a character cell: the raster plus some line spacing.
const CELL_H: usize = 28;
/// Where the glyph raster starts inside a text cell.
const CELL_GLYPH_TOP: usize = 2;
/// The cursor is an underline this thick at the bottom of the cell, like the Linux console's.
const CURSOR_H: usize = 3;
/// The panel at the top of the screen; its glyphs start `BAR_GLYPH_TOP` down.
const BAR_H: usize = 32;
const BAR_GLYPH_TOP: usize = 4;
/// A line in the console's accent colour under the panel.
const BAR_RULE_H: usize = 2;
/// Space between the screen edges (or the panel) and the text grid.
const MARGIN: usize = 8;
const CLOCK_LEN: usize = 8; // "HH:MM:SS"
const DAY_MS: u32 = 86_400_000;
const HOST: &str = "sim-target";
/// Drawn for characters the font lacks (and remembered as such, so that two different
/// missing characters count as the same picture).
const MISSING: char = '\u{FFFD}';

/// Errors of [`SimScreen`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimScreenError {
    /// Consoles are numbered 1 to 4.
    NoSuchConsole(u8),
}

impl fmt::Display for SimScreenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimScreenError::NoSuchConsole(n) => write!(f, "no console {n} (there are 1 to 4)"),
        }
    }
}

impl std::error::Error for SimScreenError {}

#[derive(Debug, Clone, Copy)]
struct Theme {
    bg: Rgb,
    fg: Rgb,
    accent: Rgb,
    bar_bg: Rgb,
    bar_fg: Rgb,
}

/// Per console: size, colours, and the first lines on screen. Distinct backgrounds make a
/// console switch change nearly every pixel, as on real hardware with different programs.
const CONSOLES: [(u16, u16, Theme, &[&str]); 4] = [
    (
        1920,
        1080,
        Theme {
            bg: [12, 16, 32],
            fg: [210, 214, 222],
            accent: [96, 170, 255],
            bar_bg: [34, 42, 70],
            bar_fg: [236, 240, 250],
        },
        &[
            "SimOS 1.0 (nanokvmd simulated target) tty1",
            "Kernel 6.6.0-sim on an x86_64, console 1920x1080",
            "",
            "sim-target login: ",
        ],
    ),
    (
        1024,
        768,
        Theme {
            bg: [40, 12, 30],
            fg: [236, 222, 200],
            accent: [255, 150, 90],
            bar_bg: [78, 30, 58],
            bar_fg: [255, 240, 226],
        },
        &[
            "SimOS 1.0 (nanokvmd simulated target) tty2",
            "Low-resolution console: 1024x768",
            "",
            "sim-target login: ",
        ],
    ),
    (
        1920,
        1080,
        Theme {
            bg: [8, 32, 18],
            fg: [200, 236, 204],
            accent: [120, 230, 140],
            bar_bg: [24, 64, 40],
            bar_fg: [226, 255, 230],
        },
        &[
            "SimOS 1.0 (nanokvmd simulated target) tty3",
            "Maintenance shell available after login.",
            "",
            "sim-target login: ",
        ],
    ),
    (
        1920,
        1080,
        Theme {
            bg: [40, 30, 6],
            fg: [240, 226, 190],
            accent: [255, 206, 84],
            bar_bg: [84, 64, 18],
            bar_fg: [255, 246, 220],
        },
        &[
            "SimOS 1.0 (nanokvmd simulated target) tty4",
            "System log follows on this console.",
            "[    0.000000] sim: booting the simulated target",
            "",
            "sim-target login: ",
        ],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    ch: char,
    fg: Rgb,
    bg: Rgb,
}

/// Where things go on one console's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    width: u16,
    height: u16,
    cols: usize,
    rows: usize,
    /// Pixel position of the top-left cell.
    left: usize,
    top: usize,
}

impl Layout {
    fn new(width: u16, height: u16) -> Layout {
        let (w, h) = (usize::from(width), usize::from(height));
        let top = BAR_H + MARGIN;
        let cols = (w.saturating_sub(2 * MARGIN) / CELL_W).max(1);
        let rows = (h.saturating_sub(top + MARGIN) / CELL_H).max(1);
        Layout {
            width,
            height,
            cols,
            rows,
            left: w.saturating_sub(cols * CELL_W) / 2,
            top,
        }
    }

    fn cell_origin(&self, i: usize) -> (usize, usize) {
        (
            self.left + (i % self.cols) * CELL_W,
            self.top + (i / self.cols) * CELL_H,
        )
    }

    /// Left edge of the clock in the panel.
    fn clock_x(&self) -> usize {
        usize::from(self.width).saturating_sub(MARGIN + CLOCK_LEN * CELL_W)
    }
}

struct Console {
    number: u8,
    layout: Layout,
    theme: Theme,
    cells: Vec<Cell>,
    /// Per row: the text continues on the next row because it wrapped (not a newline).
    wrapped: Vec<bool>,
    col: usize,
    row: usize,
    /// Bumped on every edit, so that an idle render can skip comparing the cells.
    generation: u64,
}

impl Console {
    fn new(number: u8, width: u16, height: u16, theme: Theme, banner: &[&str]) -> Console {
        let layout = Layout::new(width, height);
        let blank = Cell {
            ch: ' ',
            fg: theme.fg,
            bg: theme.bg,
        };
        let mut c = Console {
            number,
            layout,
            theme,
            cells: vec![blank; layout.cols * layout.rows],
            wrapped: vec![false; layout.rows],
            col: 0,
            row: 0,
            generation: 0,
        };
        // The first line (the "issue" banner) in the accent colour, the rest plain.
        for (i, line) in banner.iter().enumerate() {
            if i > 0 {
                c.line_feed(false);
            }
            let fg = if i == 0 { theme.accent } else { theme.fg };
            line.chars().for_each(|ch| c.put(ch, fg));
        }
        c
    }

    fn blank(&self) -> Cell {
        Cell {
            ch: ' ',
            fg: self.theme.fg,
            bg: self.theme.bg,
        }
    }

    fn type_char(&mut self, ch: char) {
        match ch {
            '\n' => self.line_feed(false),
            '\r' => self.col = 0,
            '\u{8}' => self.backspace(),
            '\t' => self.col = ((self.col / 8 + 1) * 8).min(self.layout.cols - 1),
            c if c.is_control() => {} // no terminal emulation: other controls are ignored
            c => self.put(c, self.theme.fg),
        }
    }

    /// Writes at the cursor and advances, wrapping (and scrolling) at the right edge.
    fn put(&mut self, ch: char, fg: Rgb) {
        let i = self.row * self.layout.cols + self.col;
        if let Some(cell) = self.cells.get_mut(i) {
            *cell = Cell {
                ch,
                fg,
                bg: self.theme.bg,
            };
        }
        self.col += 1;
        if self.col >= self.layout.cols {
            self.line_feed(true);
        }
    }

    /// Moves to the start of the next row, scrolling at the bottom.
    fn line_feed(&mut self, wrap: bool) {
        self.wrapped[self.row] = wrap;
        self.col = 0;
        self.row += 1;
        if self.row >= self.layout.rows {
            let cols = self.layout.cols;
            self.cells.copy_within(cols.., 0);
            let blank = self.blank();
            let len = self.cells.len();
            self.cells[len - cols..].fill(blank);
            self.wrapped.copy_within(1.., 0);
            self.wrapped[self.layout.rows - 1] = false;
            self.row = self.layout.rows - 1;
        }
    }

    /// Erases the character before the cursor, like a shell's line editor: back over a
    /// wrap, but not over a newline.
    fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
        } else if self.row > 0 && self.wrapped[self.row - 1] {
            self.row -= 1;
            self.wrapped[self.row] = false;
            self.col = self.layout.cols - 1;
        } else {
            return;
        }
        let i = self.row * self.layout.cols + self.col;
        let blank = self.blank();
        if let Some(cell) = self.cells.get_mut(i) {
            *cell = blank;
        }
    }

    fn cursor_index(&self) -> usize {
        self.row * self.layout.cols + self.col
    }

    fn text(&self) -> String {
        let mut out = String::with_capacity(self.cells.len() + self.layout.rows);
        for row in self.cells.chunks_exact(self.layout.cols) {
            let line: String = row.iter().map(|c| c.ch).collect();
            out.push_str(line.trim_end_matches(' '));
            out.push('\n');
        }
        let len = out.trim_end_matches('\n').len();
        out.truncate(len);
        out
    }
}

/// How a cell looks on screen: what the diff in `render` compares. Normalised so that cells
/// that draw the same pixels compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Look {
    ch: char,
    fg: Rgb,
    bg: Rgb,
    cursor: bool,
}

impl Look {
    fn of(cell: Cell, cursor: bool) -> Look {
        let ch = match cell.ch {
            ' ' => ' ',
            c @ '!'..='~' => c, // every printable ASCII character is in the font
            c if get_raster(c, WEIGHT, SIZE).is_some() => c,
            _ => MISSING,
        };
        // A blank cell without cursor shows no foreground at all.
        let fg = if ch == ' ' && !cursor {
            cell.bg
        } else {
            cell.fg
        };
        Look {
            ch,
            fg,
            bg: cell.bg,
            cursor,
        }
    }
}

/// What the frame buffer currently shows, as far as `render` drew it.
#[derive(Default)]
struct Shown {
    valid: bool,
    console: usize,
    layout: Option<Layout>,
    /// Address of the frame's pixels, to notice being handed a different buffer.
    data_addr: usize,
    looks: Vec<Look>,
    /// The console's generation and the cell showing the cursor when `looks` was updated.
    generation: u64,
    cursor: Option<usize>,
    clock: [u8; CLOCK_LEN],
}

/// The simulated target's screen. See the module documentation.
pub struct SimScreen {
    consoles: Vec<Console>,
    active: usize,
    time_ms: u32,
    shown: Shown,
    blender: Blender,
    cursor: Cursor,
}

impl Default for SimScreen {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SimScreen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimScreen")
            .field("active_console", &self.active_console())
            .field("size", &self.size())
            .field("time_ms", &self.time_ms)
            .finish_non_exhaustive()
    }
}

impl SimScreen {
    /// Four consoles with their login banners; console 1 active, time 00:00:00.
    pub fn new() -> Self {
        let consoles = CONSOLES
            .iter()
            .zip(1u8..)
            .map(|(&(w, h, theme, banner), n)| Console::new(n, w, h, theme, banner))
            .collect();
        SimScreen {
            consoles,
            active: 0,
            time_ms: 0,
            shown: Shown::default(),
            blender: Blender::default(),
            cursor: Cursor::default(),
        }
    }

    /// The active console, 1 to 4.
    pub fn active_console(&self) -> u8 {
        self.consoles[self.active].number
    }

    /// Makes console `n` (1 to 4) active; the next render redraws everything.
    pub fn switch_console(&mut self, n: u8) -> Result<(), SimScreenError> {
        match n {
            1..=4 => {
                self.active = usize::from(n - 1);
                Ok(())
            }
            _ => Err(SimScreenError::NoSuchConsole(n)),
        }
    }

    /// Size in pixels of the active console's video mode.
    pub fn size(&self) -> (u16, u16) {
        let l = self.consoles[self.active].layout;
        (l.width, l.height)
    }

    /// Types `s` at the active console's cursor. Handles `\n`, `\r`, backspace (`\u{8}`,
    /// erases the previous character) and tab; other control characters are ignored.
    /// Text wraps at the right edge and scrolls at the bottom.
    pub fn type_str(&mut self, s: &str) {
        let con = &mut self.consoles[self.active];
        con.generation += 1;
        s.chars().for_each(|c| con.type_char(c));
    }

    /// The visible text of console `console` (1 to 4): one line per row, trailing spaces and
    /// trailing empty lines removed. Empty for a console that does not exist.
    pub fn text(&self, console: u8) -> String {
        let i = usize::from(console).wrapping_sub(1);
        self.consoles.get(i).map(Console::text).unwrap_or_default()
    }

    /// Moves the mouse pointer to (`x`, `y`) in 0..=32767 units across the screen.
    pub fn set_pointer(&mut self, x: u16, y: u16) {
        self.cursor.set(x, y);
    }

    /// Sets the time of day shown by the clock, which also drives the cursor blink (on for
    /// the first 500 ms of every second). Wraps at midnight.
    pub fn set_time(&mut self, millis_since_midnight: u32) {
        self.time_ms = millis_since_midnight % DAY_MS;
    }

    /// Forgets what the frame buffer holds: the next render redraws everything.
    #[cfg(test)]
    pub fn invalidate(&mut self) {
        self.shown.valid = false;
    }

    /// Brings `fb` up to date with the active console, resizing it to the console's size if
    /// needed. Redraws only what changed since the previous render into the same frame (a
    /// full redraw after a console switch, a resize, [`SimScreen::invalidate`], or when given
    /// a different buffer). Returns whether any pixel changed.
    pub fn render(&mut self, fb: &mut RgbFrame) -> bool {
        let con = &self.consoles[self.active];
        let layout = con.layout;
        let full = !self.shown.valid
            || self.shown.console != self.active
            || self.shown.layout != Some(layout)
            || (fb.width, fb.height) != (layout.width, layout.height)
            || !fb.is_consistent()
            || fb.data.as_ptr() as usize != self.shown.data_addr;
        let clock = clock_text(self.time_ms);
        let mut changed = false;
        // The pointer is lifted first and drawn last, over whatever changed beneath it.
        let pointer_was = self.cursor.drawn();
        self.cursor.lift(fb, full);
        if full {
            fb.resize(layout.width, layout.height);
            draw_background(fb, &layout, &con.theme, con.number, &mut self.blender);
            // The grid is now all blank cells; the loop below draws everything else.
            self.shown.looks.clear();
            self.shown
                .looks
                .resize(con.cells.len(), Look::of(con.blank(), false));
            self.shown.clock = [0; CLOCK_LEN];
            changed = true;
        }

        let blink_on = self.time_ms % 1000 < 500;
        let cursor = Some(con.cursor_index()).filter(|_| blink_on);
        let cells_same =
            !full && (con.generation, cursor) == (self.shown.generation, self.shown.cursor);
        let cells = if cells_same { &[][..] } else { &con.cells[..] };
        for (i, (&cell, shown)) in cells.iter().zip(self.shown.looks.iter_mut()).enumerate() {
            let look = Look::of(cell, cursor == Some(i));
            if look != *shown {
                let (x, y) = layout.cell_origin(i);
                let area = GlyphBox {
                    x,
                    y,
                    h: CELL_H,
                    glyph_top: CELL_GLYPH_TOP,
                };
                draw_glyph(fb, area, look, &mut self.blender);
                *shown = look;
                changed = true;
            }
        }

        let x0 = layout.clock_x();
        let old = self.shown.clock;
        for (k, (&new, &old)) in clock.iter().zip(&old).enumerate() {
            if new != old {
                let look = Look {
                    ch: char::from(new),
                    fg: con.theme.bar_fg,
                    bg: con.theme.bar_bg,
                    cursor: false,
                };
                let area = GlyphBox {
                    x: x0 + k * CELL_W,
                    y: 0,
                    h: BAR_H,
                    glyph_top: BAR_GLYPH_TOP,
                };
                draw_glyph(fb, area, look, &mut self.blender);
                changed = true;
            }
        }
        changed |= self.cursor.draw(fb, pointer_was);
        self.shown.clock = clock;
        self.shown.generation = con.generation;
        self.shown.cursor = cursor;
        self.shown.valid = true;
        self.shown.console = self.active;
        self.shown.layout = Some(layout);
        self.shown.data_addr = fb.data.as_ptr() as usize;
        changed
    }
}

fn clock_text(ms: u32) -> [u8; CLOCK_LEN] {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600 % 24, s / 60 % 60, s % 60);
    let d = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let (h, m, s) = (d(h), d(m), d(s));
    [h[0], h[1], b':', m[0], m[1], b':', s[0], s[1]]
}

/// Panel, rule and empty text area. The clock is left to the caller.
fn draw_background(
    fb: &mut RgbFrame,
    l: &Layout,
    theme: &Theme,
    number: u8,
    blender: &mut Blender,
) {
    let w = usize::from(l.width);
    let h = usize::from(l.height);
    fill_rect(fb, 0, 0, w, BAR_H.min(h), theme.bar_bg);
    fill_rect(
        fb,
        0,
        BAR_H.min(h),
        w,
        BAR_RULE_H.min(h.saturating_sub(BAR_H)),
        theme.accent,
    );
    let top = (BAR_H + BAR_RULE_H).min(h);
    fill_rect(fb, 0, top, w, h - top, theme.bg);
    let title = format!("{HOST}  tty{number}");
    let max_chars = l.clock_x().saturating_sub(2 * MARGIN) / CELL_W;
    for (k, ch) in title.chars().take(max_chars).enumerate() {
        let look = Look {
            ch,
            fg: theme.bar_fg,
            bg: theme.bar_bg,
            cursor: false,
        };
        let area = GlyphBox {
            x: MARGIN + k * CELL_W,
            y: 0,
            h: BAR_H,
            glyph_top: BAR_GLYPH_TOP,
        };
        draw_glyph(fb, area, look, blender);
    }
}

/// Fills a rectangle (which must lie inside the frame): one row pixel by pixel, then copies.
fn fill_rect(fb: &mut RgbFrame, x: usize, y: usize, w: usize, h: usize, rgb: Rgb) {
    if w == 0 || h == 0 {
        return;
    }
    let stride = fb.stride();
    let first = y * stride + x * 3;
    for px in fb.data[first..first + w * 3].chunks_exact_mut(3) {
        px.copy_from_slice(&rgb);
    }
    for r in 1..h {
        let at = first + r * stride;
        fb.data.copy_within(first..first + w * 3, at);
    }
}

/// A CELL_W-wide box in the frame with a glyph drawn `glyph_top` pixels below its top.
#[derive(Clone, Copy)]
struct GlyphBox {
    x: usize,
    y: usize,
    h: usize,
    glyph_top: usize,
}

/// Draws one character box: background, antialiased glyph (or a replacement box), cursor.
fn draw_glyph(fb: &mut RgbFrame, b: GlyphBox, look: Look, blender: &mut Blender) {
    let raster = match look.ch {
        ' ' => None,
        c => get_raster(c, WEIGHT, SIZE),
    };
    let Some(raster) = raster else {
        fill_rect(fb, b.x, b.y, CELL_W, b.h, look.bg);
        if look.ch != ' ' {
            draw_replacement(fb, b, look.fg);
        }
        if look.cursor {
            fill_rect(fb, b.x, b.y + b.h - CURSOR_H, CELL_W, CURSOR_H, look.fg);
        }
        return;
    };
    let lut = blender.lut(look.fg, look.bg);
    let stride = fb.stride();
    let glyph_rows = b.glyph_top..b.glyph_top + GLYPH_H;
    let cursor_rows = b.h - CURSOR_H..b.h;
    let mut glyph = raster.rows();
    for r in 0..b.h {
        let at = (b.y + r) * stride + b.x * 3;
        let line = &mut fb.data[at..at + CELL_W * 3];
        let coverage = if glyph_rows.contains(&r) {
            glyph.next()
        } else {
            None
        };
        if look.cursor && cursor_rows.contains(&r) {
            line.chunks_exact_mut(3)
                .for_each(|px| px.copy_from_slice(&look.fg));
        } else if let Some(coverage) = coverage {
            for (px, &a) in line.chunks_exact_mut(3).zip(coverage) {
                px.copy_from_slice(&lut[usize::from(a)]);
            }
        } else {
            line.chunks_exact_mut(3)
                .for_each(|px| px.copy_from_slice(&look.bg));
        }
    }
}

/// Height of a line of text drawn with [`draw_text`].
pub(super) const TEXT_LINE_H: usize = CELL_H;

/// Draws `text` in the console font, one cell per character, with the top-left corner at
/// (`x`, `y`); what does not fit in the frame is left out. For the target's other screens
/// (the boot screen).
pub(super) fn draw_text(fb: &mut RgbFrame, x: usize, y: usize, text: &str, fg: Rgb, bg: Rgb) {
    let mut blender = Blender::default();
    for (k, ch) in text.chars().enumerate() {
        let left = x + k * CELL_W;
        if left + CELL_W > usize::from(fb.width) || y + CELL_H > usize::from(fb.height) {
            break;
        }
        let mut look = Look::of(Cell { ch, fg, bg }, false);
        look.fg = fg;
        let area = GlyphBox {
            x: left,
            y,
            h: CELL_H,
            glyph_top: CELL_GLYPH_TOP,
        };
        draw_glyph(fb, area, look, &mut blender);
    }
}

/// An outlined box where the glyph would be, for characters the font does not have.
fn draw_replacement(fb: &mut RgbFrame, b: GlyphBox, fg: Rgb) {
    let (x0, x1) = (b.x + 1, b.x + CELL_W - 2);
    let (y0, y1) = (b.y + b.glyph_top + 3, b.y + b.glyph_top + GLYPH_H - 4);
    fill_rect(fb, x0, y0, x1 - x0 + 1, 1, fg);
    fill_rect(fb, x0, y1, x1 - x0 + 1, 1, fg);
    fill_rect(fb, x0, y0, 1, y1 - y0 + 1, fg);
    fill_rect(fb, x1, y0, 1, y1 - y0 + 1, fg);
}

/// Blends of one foreground over one background for all 256 coverage values, recomputed only
/// when the colours change (almost all cells share them).
struct Blender {
    key: Option<(Rgb, Rgb)>,
    lut: [Rgb; 256],
}

impl Default for Blender {
    fn default() -> Self {
        Blender {
            key: None,
            lut: [[0; 3]; 256],
        }
    }
}

impl Blender {
    fn lut(&mut self, fg: Rgb, bg: Rgb) -> &[Rgb; 256] {
        if self.key != Some((fg, bg)) {
            for (a, out) in self.lut.iter_mut().enumerate() {
                let a = a as u32;
                for c in 0..3 {
                    let v = u32::from(fg[c]) * a + u32::from(bg[c]) * (255 - a);
                    out[c] = ((v + 127) / 255) as u8;
                }
            }
            self.key = Some((fg, bg));
        }
        &self.lut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::fastest_and_median;
    use std::hint::black_box;

    fn rendered() -> (SimScreen, RgbFrame) {
        let mut s = SimScreen::new();
        let mut fb = RgbFrame::new(1, 1);
        assert!(s.render(&mut fb));
        (s, fb)
    }

    fn active(s: &SimScreen) -> &Console {
        &s.consoles[s.active]
    }

    /// Pixels inside text cell `i` of the active console for which `keep` holds.
    fn count_where(s: &SimScreen, fb: &RgbFrame, i: usize, keep: impl Fn(Rgb) -> bool) -> usize {
        let (x, y) = active(s).layout.cell_origin(i);
        let pixels = (y..y + CELL_H).flat_map(|yy| (x..x + CELL_W).map(move |xx| (xx, yy)));
        pixels
            .filter_map(|(x, y)| fb.pixel(x as u16, y as u16))
            .filter(|&p| keep(p))
            .count()
    }

    /// Pixels inside text cell `i` of the active console that have exactly colour `rgb`.
    fn count_in_cell(s: &SimScreen, fb: &RgbFrame, i: usize, rgb: Rgb) -> usize {
        count_where(s, fb, i, |p| p == rgb)
    }

    /// Pixels in cell `i` nearer to the console's foreground than to its background.
    fn count_inked(s: &SimScreen, fb: &RgbFrame, i: usize) -> usize {
        let t = active(s).theme;
        let dist = |a: Rgb, b: Rgb| (0..3).map(|c| u32::from(a[c].abs_diff(b[c]))).sum::<u32>();
        count_where(s, fb, i, |p| dist(p, t.fg) < dist(p, t.bg))
    }

    #[test]
    fn font_metrics_are_what_the_layout_assumes() {
        assert_eq!(CELL_W, 11);
        let r = get_raster('W', WEIGHT, SIZE).expect("W in the font");
        assert_eq!((r.width(), r.height()), (CELL_W, GLYPH_H));
        let l = Layout::new(1920, 1080);
        assert!(l.left + l.cols * CELL_W <= 1920 && l.top + l.rows * CELL_H <= 1080);
        let l = Layout::new(1024, 768);
        assert!(l.left + l.cols * CELL_W <= 1024 && l.top + l.rows * CELL_H <= 768);
    }

    #[test]
    fn second_render_without_changes_draws_nothing() {
        let (mut s, mut fb) = rendered();
        assert_eq!((fb.width, fb.height), (1920, 1080));
        let before = fb.clone();
        assert!(!s.render(&mut fb));
        assert_eq!(fb, before);
        // A time change that neither ticks the clock nor flips the cursor changes nothing.
        s.set_time(100);
        assert!(!s.render(&mut fb));
    }

    #[test]
    fn clock_tick_changes_only_the_clock() {
        let (mut s, mut fb) = rendered();
        s.set_time(1_000); // 00:00:01, cursor still in its "on" half-second
        let before = fb.clone();
        assert!(s.render(&mut fb));
        let l = active(&s).layout;
        let x0 = l.clock_x();
        let mut changed = 0;
        for y in 0..fb.height {
            for x in 0..fb.width {
                if fb.pixel(x, y) != before.pixel(x, y) {
                    changed += 1;
                    let (x, y) = (usize::from(x), usize::from(y));
                    assert!(
                        x >= x0 && x < x0 + CLOCK_LEN * CELL_W && y < BAR_H,
                        "pixel {x},{y}"
                    );
                }
            }
        }
        assert!(changed > 10);
        assert_eq!(
            clock_text(13 * 3_600_000 + 7 * 60_000 + 9_999),
            *b"13:07:09"
        );
        s.set_time(DAY_MS + 5);
        assert_eq!(s.time_ms, 5);
    }

    #[test]
    fn cursor_blinks() {
        let (mut s, mut fb) = rendered();
        let cursor = active(&s).cursor_index();
        let fg = active(&s).theme.fg;
        assert!(count_in_cell(&s, &fb, cursor, fg) >= CELL_W * CURSOR_H);
        s.set_time(600);
        assert!(s.render(&mut fb));
        assert_eq!(count_in_cell(&s, &fb, cursor, fg), 0);
        s.set_time(1_200); // cursor back on (and the clock ticked)
        assert!(s.render(&mut fb));
        assert!(count_in_cell(&s, &fb, cursor, fg) >= CELL_W * CURSOR_H);
    }

    #[test]
    fn switching_consoles_changes_mode_and_nearly_every_pixel() {
        let (mut s, mut fb) = rendered();
        assert_eq!(s.switch_console(0), Err(SimScreenError::NoSuchConsole(0)));
        assert_eq!(s.switch_console(5), Err(SimScreenError::NoSuchConsole(5)));
        s.switch_console(2).unwrap();
        assert_eq!((s.active_console(), s.size()), (2, (1024, 768)));
        assert!(s.render(&mut fb));
        assert_eq!((fb.width, fb.height), (1024, 768));
        assert!(!s.render(&mut fb));

        s.switch_console(3).unwrap();
        s.render(&mut fb);
        let three = fb.clone();
        s.switch_console(4).unwrap();
        s.render(&mut fb);
        assert_eq!((fb.width, fb.height), (1920, 1080));
        let same = three
            .data
            .chunks_exact(3)
            .zip(fb.data.chunks_exact(3))
            .filter(|(a, b)| a == b);
        assert!(
            same.count() < 1920 * 1080 / 50,
            "consoles 3 and 4 look alike"
        );
    }

    #[test]
    fn typed_text_appears_and_is_drawn() {
        let (mut s, mut fb) = rendered();
        assert!(s.text(1).ends_with("sim-target login:"));
        let at = active(&s).cursor_index();
        s.type_str("W");
        assert!(s.render(&mut fb));
        assert!(s.text(1).ends_with("sim-target login: W"));
        let fg = active(&s).theme.fg;
        let inked = count_inked(&s, &fb, at);
        assert!(inked >= 40, "only {inked} foreground pixels in the W cell");
        assert!(count_in_cell(&s, &fb, at, fg) > 0, "no fully covered pixel");
        assert_eq!(
            count_in_cell(&s, &fb, at + 1, fg),
            CELL_W * CURSOR_H,
            "cursor moved on"
        );
        // Other consoles are untouched.
        assert!(!s.text(2).contains('W'));
        assert_eq!(s.text(9), "");
    }

    #[test]
    fn control_characters() {
        let mut s = SimScreen::new();
        s.type_str("root\npassword: x\u{8}y\rP\tz\u{7}\u{1b}");
        let text = s.text(1);
        let last: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(last, ["Passwordz y", "sim-target login: root"]);
        // Backspace does not go back over an explicit newline...
        s.type_str("\n\u{8}\u{8}!");
        assert!(s.text(1).ends_with("Passwordz y\n!"));
    }

    #[test]
    fn wrapping_and_scrolling() {
        let mut s = SimScreen::new();
        s.switch_console(2).unwrap();
        let (cols, rows) = (active(&s).layout.cols, active(&s).layout.rows);
        s.type_str(&"x".repeat(cols + 3));
        let text = s.text(2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[lines.len() - 2].len(),
            "sim-target login: ".len() + (cols - 18)
        );
        assert_eq!(lines[lines.len() - 1], "x".repeat(21));
        // ...but does go back over a wrap.
        s.type_str(&"\u{8}".repeat(22));
        assert!(s.text(2).ends_with(&"x".repeat(cols - 19)));
        for i in 0..rows {
            s.type_str(&format!("\nline {i}"));
        }
        let text = s.text(2);
        assert_eq!(text.lines().count(), rows);
        assert!(text.starts_with("line 0\n"));
        assert!(text.ends_with(&format!("line {}", rows - 1)));
        assert!(!s.text(1).contains("line"));
    }

    #[test]
    fn missing_glyphs_draw_a_box() {
        let (mut s, mut fb) = rendered();
        let at = active(&s).cursor_index();
        s.type_str("ж");
        assert!(s.text(1).ends_with('ж'));
        assert!(s.render(&mut fb));
        assert!(count_inked(&s, &fb, at) > 30);
        // Another missing character looks the same: nothing to redraw.
        s.type_str("\u{8}ф");
        s.set_time(0);
        assert!(!s.render(&mut fb));
    }

    #[test]
    fn the_pointer_is_drawn_moved_and_lifted_without_a_trace() {
        let (mut s, mut fb) = rendered();
        let before = fb.data.clone();
        let stride = fb.stride();
        // The 12x19 pixels at the screen's centre, where the pointer goes first.
        let spot = |data: &[u8]| -> Vec<u8> {
            (540..540 + 19)
                .flat_map(|y| data[y * stride + 960 * 3..y * stride + (960 + 12) * 3].to_vec())
                .collect()
        };
        s.set_pointer(16384, 16384);
        assert!(s.render(&mut fb), "the pointer appears");
        assert_ne!(spot(&fb.data), spot(&before));
        assert!(
            !s.render(&mut fb),
            "a pointer that did not move changes nothing"
        );
        s.set_pointer(0, 32767);
        assert!(s.render(&mut fb), "the pointer moved");
        assert_eq!(spot(&fb.data), spot(&before), "its old spot is as it was");
    }

    #[test]
    fn new_buffer_or_invalidate_means_full_redraw() {
        let (mut s, fb) = rendered();
        let mut other = RgbFrame::new(1920, 1080);
        assert!(s.render(&mut other));
        assert_eq!(other, fb);
        s.invalidate();
        assert!(s.render(&mut other));
        assert!(!s.render(&mut other));
    }

    /// `cargo test --release -- --ignored --nocapture --test-threads=1 timing`
    #[test]
    #[ignore]
    fn timing_render() {
        let mut s = SimScreen::new();
        let mut fb = RgbFrame::new(1920, 1080);
        let (min, med) = fastest_and_median(50, |_| {
            s.invalidate();
            s.render(&mut fb);
        });
        println!("full render 1920x1080, banner only: min {min:?}, median {med:?}");
        let (cols, rows) = (active(&s).layout.cols, active(&s).layout.rows);
        for r in 0..rows {
            let line = (0..cols).map(|c| char::from(b'!' + ((r * 7 + c) % 94) as u8));
            s.type_str(&line.collect::<String>());
        }
        let (min, med) = fastest_and_median(50, |_| {
            s.invalidate();
            s.render(&mut fb);
        });
        println!("full render 1920x1080, a glyph in every cell: min {min:?}, median {med:?}");
        let (min, med) = fastest_and_median(2000, |_| assert!(!s.render(black_box(&mut fb))));
        println!("idle render 1920x1080: min {min:?}, median {med:?}");
        let (min, med) = fastest_and_median(2000, |i| {
            s.type_str(if i % 2 == 0 { "a" } else { "\u{8}" });
            s.render(&mut fb);
        });
        println!("render after typing one character: min {min:?}, median {med:?}");
    }
}
