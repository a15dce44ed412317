//! A machine-readable capture stamp for glass-to-glass measurements (`--sim-stamp`): the
//! capture time, in milliseconds on the daemon's clock, drawn into the top-left corner of each
//! captured picture as a row of big black and white cells, so a browser can read it back from
//! the decoded video and compare it with the time it painted the frame.
//!
//! Off by default: a stamp that changes every frame makes every frame different, so an idle
//! console would no longer be idle.
//!
//! Layout, at the output resolution: [`CELLS`] cells of [`CELL_W`]x[`CELL_H`] pixels in one row
//! from (0, 0): a white and a black sync cell, the 32 bits of the value (most significant first,
//! white = 1), an even-parity cell (white when the number of 1 bits is odd) and a black end
//! cell. Big flat cells survive H.264 at a low bitrate; the reader looks only at each cell's
//! centre, so ringing at the edges does not matter. `webroot/stamp.js` is the browser's reader.

use crate::media::scale::RgbFrame;

pub const CELL_W: usize = 8;
pub const CELL_H: usize = 16;
pub const DATA_BITS: usize = 32;
/// Sync (2) + data + parity + end.
pub const CELLS: usize = 2 + DATA_BITS + 2;
/// The stamp's width in pixels.
pub const WIDTH: usize = CELLS * CELL_W;

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

/// The cell values (true = white) that encode `value`.
fn cells(value: u32) -> [bool; CELLS] {
    let mut out = [false; CELLS];
    out[0] = true;
    for (i, cell) in out[2..2 + DATA_BITS].iter_mut().enumerate() {
        *cell = value >> (DATA_BITS - 1 - i) & 1 == 1;
    }
    out[2 + DATA_BITS] = value.count_ones() % 2 == 1;
    out
}

/// Draws the stamp for `value`; a frame smaller than the stamp is left alone.
pub fn draw(frame: &mut RgbFrame, value: u32) {
    if usize::from(frame.width) < WIDTH || usize::from(frame.height) < CELL_H {
        return;
    }
    let stride = frame.stride();
    let cells = cells(value);
    for row in frame.data.chunks_exact_mut(stride).take(CELL_H) {
        for (cell, px) in cells
            .iter()
            .zip(row[..WIDTH * 3].chunks_exact_mut(CELL_W * 3))
        {
            let colour = if *cell { WHITE } else { BLACK };
            for p in px.chunks_exact_mut(3) {
                p.copy_from_slice(&colour);
            }
        }
    }
}

/// Reads a stamp from a luma plane (`stride` bytes per row); `None` when the sync or parity
/// cells are wrong (no stamp there, or damaged).
#[cfg(test)]
pub fn read(luma: &[u8], stride: usize) -> Option<u32> {
    if stride < WIDTH || luma.len() < stride * CELL_H {
        return None;
    }
    let mut bits = [false; CELLS];
    for (c, bit) in bits.iter_mut().enumerate() {
        // The centre of the cell: away from the edges where the codec blurs.
        let (x0, y0) = (c * CELL_W + 2, 4);
        let mut sum = 0u32;
        for y in y0..y0 + CELL_H / 2 {
            for x in x0..x0 + CELL_W / 2 {
                sum += u32::from(luma[y * stride + x]);
            }
        }
        *bit = sum / ((CELL_H / 2 * CELL_W / 2) as u32) >= 128;
    }
    let value = bits[2..2 + DATA_BITS]
        .iter()
        .fold(0u32, |v, &b| v << 1 | u32::from(b));
    (bits[..2] == [true, false]
        && !bits[CELLS - 1]
        && bits[2 + DATA_BITS] == cells(value)[2 + DATA_BITS])
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::yuv::{rgb_to_i420, I420Frame};

    fn stamped_luma(value: u32, width: u16, height: u16) -> I420Frame {
        let mut rgb = RgbFrame::filled(width, height, [90, 140, 200]);
        draw(&mut rgb, value);
        let mut yuv = I420Frame::new(width, height);
        rgb_to_i420(&rgb, &mut yuv);
        yuv
    }

    #[test]
    fn a_stamp_reads_back_through_colour_conversion() {
        for value in [0, 1, 0x8000_0000, 0xdead_beef, u32::MAX, 123_456_789] {
            let yuv = stamped_luma(value, 1280, 720);
            assert_eq!(read(&yuv.y, 1280), Some(value), "{value:#x}");
        }
    }

    #[test]
    fn a_picture_without_a_stamp_reads_as_none() {
        let rgb = RgbFrame::filled(320, 32, [255, 255, 255]);
        let mut yuv = I420Frame::new(320, 32);
        rgb_to_i420(&rgb, &mut yuv);
        assert_eq!(read(&yuv.y, 320), None);
    }

    #[test]
    fn a_flipped_bit_fails_the_parity() {
        let yuv = stamped_luma(0x0f0f_0f0f, 320, 32);
        let mut luma = yuv.y.clone();
        let x = (2 + 5) * CELL_W;
        for y in 0..CELL_H {
            for p in &mut luma[y * 320 + x..y * 320 + x + CELL_W] {
                *p = 255 - *p;
            }
        }
        assert_eq!(read(&luma, 320), None);
    }

    #[test]
    fn a_frame_too_small_is_left_alone() {
        let mut rgb = RgbFrame::filled(100, 10, [1, 2, 3]);
        draw(&mut rgb, 7);
        assert_eq!(rgb, RgbFrame::filled(100, 10, [1, 2, 3]));
    }

    /// The browser's reader (`webroot/stamp.js`) is tested against this luma strip; run with
    /// `UPDATE_GOLDEN=1` to rewrite it after changing the layout.
    #[test]
    fn the_golden_strip_for_the_browser_reader_is_current() {
        let (value, width) = (0x89ab_cdef_u32, 320u16);
        let yuv = stamped_luma(value, width, 32);
        let strip = &yuv.y[..usize::from(width) * CELL_H];
        let hex: String = strip.iter().map(|b| format!("{b:02x}")).collect();
        let json = format!(
            "{{\n  \"value\": {value},\n  \"width\": {width},\n  \"height\": {CELL_H},\n  \"luma_hex\": \"{hex}\"\n}}\n"
        );
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/browser/stamp-golden.json"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &json).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == json,
            "{path} is stale: UPDATE_GOLDEN=1 cargo test -p nanokvmd stamp"
        );
    }
}
