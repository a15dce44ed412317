//! The mouse pointer drawn over the simulated screen, so pointer input shows in the video.
//!
//! It keeps the pixels it covers ("save-under"): before the screen draws anything, the
//! pointer is lifted (those pixels put back); after, it is drawn again where it is now. A
//! full redraw of the screen makes the saved pixels stale, so then it is not lifted.

use crate::media::scale::RgbFrame;

/// An arrow, one row per string: `#` outline, `.` fill.
const ARROW: [&str; 19] = [
    "#",
    "##",
    "#.#",
    "#..#",
    "#...#",
    "#....#",
    "#.....#",
    "#......#",
    "#.......#",
    "#........#",
    "#.........#",
    "#..........#",
    "#......#####",
    "#...#..#",
    "#..##..#",
    "#.#  #..#",
    "##   #..#",
    "      #..#",
    "       ##",
];
const W: usize = 12;
const H: usize = ARROW.len();

#[derive(Debug, Default)]
pub struct Cursor {
    /// Where the target's pointer is, in 0..=32767 units; `None` until the first report.
    position: Option<(u16, u16)>,
    /// Where it is drawn (top-left pixel) and the pixels under it, row by row.
    drawn: Option<(usize, usize)>,
    saved: Vec<u8>,
}

impl Cursor {
    pub fn set(&mut self, x: u16, y: u16) {
        self.position = Some((x, y));
    }

    /// Puts back the pixels under the pointer, unless the frame was redrawn (`full`).
    pub fn lift(&mut self, fb: &mut RgbFrame, full: bool) {
        let Some((x, y)) = self.drawn.take() else {
            return;
        };
        if full {
            return;
        }
        let (w, h) = clipped(fb, x, y);
        let stride = fb.stride();
        for r in 0..h {
            let at = (y + r) * stride + x * 3;
            fb.data[at..at + w * 3].copy_from_slice(&self.saved[r * W * 3..r * W * 3 + w * 3]);
        }
    }

    /// Draws the pointer where it is now; returns whether it moved since it was last drawn.
    pub fn draw(&mut self, fb: &mut RgbFrame, previous: Option<(usize, usize)>) -> bool {
        let Some((ux, uy)) = self.position else {
            return false;
        };
        let x = usize::from(ux) * usize::from(fb.width) / 32768;
        let y = usize::from(uy) * usize::from(fb.height) / 32768;
        let (w, h) = clipped(fb, x, y);
        let stride = fb.stride();
        self.saved.resize(W * H * 3, 0);
        for (r, row) in ARROW.iter().enumerate().take(h) {
            let at = (y + r) * stride + x * 3;
            self.saved[r * W * 3..r * W * 3 + w * 3].copy_from_slice(&fb.data[at..at + w * 3]);
            for (c, b) in row.bytes().enumerate().take(w) {
                let rgb = match b {
                    b'#' => [0, 0, 0],
                    b'.' => [255, 255, 255],
                    _ => continue,
                };
                fb.data[at + c * 3..at + c * 3 + 3].copy_from_slice(&rgb);
            }
        }
        self.drawn = Some((x, y));
        previous != Some((x, y))
    }

    /// Where it was drawn last, if it is on the frame now.
    pub fn drawn(&self) -> Option<(usize, usize)> {
        self.drawn
    }
}

fn clipped(fb: &RgbFrame, x: usize, y: usize) -> (usize, usize) {
    (
        W.min(usize::from(fb.width).saturating_sub(x)),
        H.min(usize::from(fb.height).saturating_sub(y)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifting_restores_the_pixels_and_moving_is_noticed() {
        let mut fb = RgbFrame::new(64, 48);
        fb.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i % 251) as u8);
        let original = fb.data.clone();
        let mut c = Cursor::default();
        assert!(!c.draw(&mut fb, None), "no pointer before the first report");
        c.set(16384, 16384);
        assert!(c.draw(&mut fb, None));
        assert_ne!(fb.data, original);
        let at = c.drawn();
        assert_eq!(at, Some((32, 24)));
        c.lift(&mut fb, false);
        assert_eq!(fb.data, original);
        assert!(!c.draw(&mut fb, at), "same place");
        c.lift(&mut fb, false);
        // At the bottom-right corner it is clipped, not out of bounds.
        c.set(32767, 32767);
        assert!(c.draw(&mut fb, at));
        c.lift(&mut fb, false);
        assert_eq!(fb.data, original);
    }
}
