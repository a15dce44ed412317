//! The simulated target's firmware screen, shown while it boots: white text on black at
//! 800x600, one more line every quarter second, like a PC's power-on self test.

use super::screen::{draw_text, TEXT_LINE_H};
use crate::media::scale::RgbFrame;

pub const SIZE: (u16, u16) = (800, 600);

const LINES: [&str; 8] = [
    "SimBIOS 2.0 - nanokvmd simulated target",
    "",
    "CPU: Simulated x86-64 processor @ 3.00 GHz",
    "Memory test: 16384 MB OK",
    "USB: NanoKVM keyboard, NanoKVM mouse",
    "SATA port 0: SIM-SSD 256 GB",
    "",
    "Booting SimOS from SATA port 0 ...",
];

const FG: [u8; 3] = [200, 200, 200];
const BG: [u8; 3] = [0, 0, 0];
const MARGIN: usize = 16;

/// Draws the boot screen with its first `lines` lines into `fb` (resized to [`SIZE`]).
pub fn render(fb: &mut RgbFrame, lines: u8) {
    fb.resize(SIZE.0, SIZE.1);
    fb.data.fill(0);
    for (i, line) in LINES.iter().take(usize::from(lines)).enumerate() {
        draw_text(fb, MARGIN, MARGIN + i * TEXT_LINE_H, line, FG, BG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit_pixels(fb: &RgbFrame) -> usize {
        fb.data.chunks_exact(3).filter(|p| p[0] > 100).count()
    }

    #[test]
    fn more_lines_light_more_pixels() {
        let mut fb = RgbFrame::new(1, 1);
        render(&mut fb, 1);
        assert_eq!((fb.width, fb.height), SIZE);
        let one = lit_pixels(&fb);
        assert!(one > 500, "the first line is drawn: {one}");
        render(&mut fb, 8);
        assert!(lit_pixels(&fb) > 4 * one);
        render(&mut fb, 0);
        assert_eq!(lit_pixels(&fb), 0);
    }
}
