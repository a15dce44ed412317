//! Packed RGB to planar I420 (YUV 4:2:0), BT.601 limited range, integer arithmetic.
//!
//! Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, and the chroma of each 2x2 block is taken
//! from the block's average colour. Coefficients are those of BT.601 scaled by 2^14 / 255 and
//! rounded so that each chroma row sums to zero (greys map to exactly 128) and white maps to
//! exactly 235.

use crate::media::scale::RgbFrame;
use std::fmt;

/// A planar YUV 4:2:0 frame. Chroma planes are `ceil(w/2) x ceil(h/2)`; every stride equals
/// its plane's width. Encoders want even sizes, which is what the capture path produces.
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: u16,
    pub height: u16,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("I420Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl I420Frame {
    /// A black frame (Y 16, U and V 128).
    pub fn new(width: u16, height: u16) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        I420Frame {
            width,
            height,
            y: vec![16; usize::from(width) * usize::from(height)],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
        }
    }

    /// Width and height of each chroma plane.
    pub fn chroma_size(width: u16, height: u16) -> (usize, usize) {
        (
            usize::from(width).div_ceil(2),
            usize::from(height).div_ceil(2),
        )
    }

    /// Changes the size, keeping the allocations when they are big enough. Contents are
    /// unspecified afterwards.
    pub fn resize(&mut self, width: u16, height: u16) {
        let (cw, ch) = Self::chroma_size(width, height);
        self.width = width;
        self.height = height;
        self.y.resize(usize::from(width) * usize::from(height), 16);
        self.u.resize(cw * ch, 128);
        self.v.resize(cw * ch, 128);
    }

    fn is_consistent(&self) -> bool {
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        self.y.len() == usize::from(self.width) * usize::from(self.height)
            && self.u.len() == cw * ch
            && self.v.len() == cw * ch
    }
}

const YR: u32 = 4207;
const YG: u32 = 8260;
const YB: u32 = 1604;
const UR: i32 = -2428;
const UG: i32 = -4768;
const UB: i32 = 7196;
const VR: i32 = 7196;
const VG: i32 = -6026;
const VB: i32 = -1170;

#[inline(always)]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    let y = YR * u32::from(r) + YG * u32::from(g) + YB * u32::from(b);
    ((y + (1 << 13)) >> 14) as u8 + 16
}

/// Chroma from the channel sums of four pixels.
#[inline(always)]
fn chroma(r4: i32, g4: i32, b4: i32) -> (u8, u8) {
    let u = (UR * r4 + UG * g4 + UB * b4 + (1 << 15)) >> 16;
    let v = (VR * r4 + VG * g4 + VB * b4 + (1 << 15)) >> 16;
    ((u + 128) as u8, (v + 128) as u8)
}

/// Converts `src` into `dst`, resizing `dst` if needed. Allocation-free when `dst` already has
/// the size. If `src.data` is shorter than its size implies, only its complete rows are
/// converted (a malformed frame must not bring the capture path down).
pub fn rgb_to_i420(src: &RgbFrame, dst: &mut I420Frame) {
    if (dst.width, dst.height) != (src.width, src.height) || !dst.is_consistent() {
        dst.resize(src.width, src.height);
    }
    let w = usize::from(src.width);
    let stride = w * 3;
    let (cw, _) = I420Frame::chroma_size(src.width, src.height);
    if stride == 0 {
        return;
    }
    let rows = src.data.len() / stride;
    let h = usize::from(src.height).min(rows);
    let pairs = h / 2;
    let even_w = w & !1;

    // Luma and chroma in separate passes: each loop is simple enough for the compiler to
    // vectorise, which the fused 2x2-block loop was not (2.7 ms -> 1.5 ms at 720p).
    for (ys, rgb) in dst
        .y
        .chunks_exact_mut(w)
        .zip(src.data.chunks_exact(stride))
        .take(h)
    {
        for (y, p) in ys.iter_mut().zip(rgb.chunks_exact(3)) {
            *y = luma(p[0], p[1], p[2]);
        }
    }
    let uv_rows = dst.u.chunks_exact_mut(cw).zip(dst.v.chunks_exact_mut(cw));
    let mut sums = [0u16; CHUNK];
    for ((us, vs), rgb) in uv_rows.zip(src.data.chunks_exact(2 * stride)).take(pairs) {
        let (r0, r1) = rgb.split_at(stride);
        let (r0, r1) = (&r0[..even_w * 3], &r1[..even_w * 3]);
        let chunks = r0.chunks(CHUNK).zip(r1.chunks(CHUNK));
        let outs = us.chunks_mut(CHUNK / 6).zip(vs.chunks_mut(CHUNK / 6));
        for ((a, b), (u, v)) in chunks.zip(outs) {
            chroma_run(a, b, u, v, &mut sums);
        }
    }
    // Odd last column and/or odd last row: rare (encoders want even sizes), so kept simple.
    if even_w != w {
        for cy in 0..pairs {
            edge_block(src, dst, w - 1, 2 * cy, 1, 2, cw);
        }
    }
    if h % 2 == 1 {
        for cx in 0..w.div_ceil(2) {
            edge_block(src, dst, 2 * cx, h - 1, (w - 2 * cx).min(2), 1, cw);
        }
    }
}

/// Bytes of a row pair summed at a time: a whole number of 2-pixel blocks, on the stack.
const CHUNK: usize = 384;

/// Chroma of the 2x2 blocks spanning rows `a` and `b` (at most CHUNK bytes each): first the
/// vertical sums (a contiguous, vectorisable loop), then each block's two columns.
#[inline(always)]
fn chroma_run(a: &[u8], b: &[u8], u: &mut [u8], v: &mut [u8], sums: &mut [u16; CHUNK]) {
    for ((s, &p), &q) in sums.iter_mut().zip(a).zip(b) {
        *s = u16::from(p) + u16::from(q);
    }
    for ((s, u), v) in sums.chunks_exact(6).zip(u.iter_mut()).zip(v.iter_mut()) {
        let sum = |c: usize| i32::from(s[c] + s[c + 3]);
        (*u, *v) = chroma(sum(0), sum(1), sum(2));
    }
}

/// Converts a partial block of `bw` x `bh` pixels at (x, y); chroma averages the pixels present.
fn edge_block(
    src: &RgbFrame,
    dst: &mut I420Frame,
    x: usize,
    y: usize,
    bw: usize,
    bh: usize,
    cw: usize,
) {
    let w = usize::from(src.width);
    let mut sum = [0i32; 3];
    for yy in y..y + bh {
        for xx in x..x + bw {
            let i = (yy * w + xx) * 3;
            let Some(p) = src.data.get(i..i + 3) else {
                return;
            };
            dst.y[yy * w + xx] = luma(p[0], p[1], p[2]);
            for c in 0..3 {
                sum[c] += i32::from(p[c]);
            }
        }
    }
    // Scale the sums to four pixels' worth (bw * bh is 1 or 2 here).
    let k = (4 / (bw * bh)) as i32;
    let (u, v) = chroma(sum[0] * k, sum[1] * k, sum[2] * k);
    let ci = (y / 2) * cw + x / 2;
    dst.u[ci] = u;
    dst.v[ci] = v;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::fastest_and_median;
    use std::hint::black_box;

    fn convert(rgb: [u8; 3]) -> (u8, u8, u8) {
        let mut out = I420Frame::new(2, 2);
        rgb_to_i420(&RgbFrame::filled(4, 2, rgb), &mut out);
        assert_eq!((out.width, out.height), (4, 2));
        assert!(out.y.iter().all(|&y| y == out.y[0]));
        assert!(out.u.iter().all(|&u| u == out.u[0]));
        (out.y[0], out.u[0], out.v[0])
    }

    #[test]
    fn known_colours() {
        assert_eq!(convert([255, 255, 255]), (235, 128, 128));
        assert_eq!(convert([0, 0, 0]), (16, 128, 128));
        assert_eq!(convert([128, 128, 128]), (126, 128, 128));
        // Reference values from the BT.601 formulas, rounded.
        assert_eq!(convert([255, 0, 0]), (81, 90, 240));
        assert_eq!(convert([0, 255, 0]), (145, 54, 34));
        assert_eq!(convert([0, 0, 255]), (41, 240, 110));
    }

    #[test]
    fn chroma_is_the_block_average() {
        // A 2x2 block of two black and two white pixels has the chroma of mid grey (128) and
        // keeps full luma resolution.
        let mut src = RgbFrame::new(2, 2);
        src.data[0..3].fill(255);
        src.data[9..12].fill(255);
        let mut out = I420Frame::new(2, 2);
        rgb_to_i420(&src, &mut out);
        assert_eq!(out.y, vec![235, 16, 16, 235]);
        assert_eq!((out.u[0], out.v[0]), (128, 128));
        // Red next to blue averages to purple in the chroma.
        let mut src = RgbFrame::new(2, 2);
        for (i, px) in src.data.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(if i % 2 == 0 {
                &[255, 0, 0]
            } else {
                &[0, 0, 255]
            });
        }
        rgb_to_i420(&src, &mut out);
        assert_eq!((out.u[0], out.v[0]), chroma(510, 0, 510));
        assert!(
            out.u[0] > 160 && out.v[0] > 160,
            "purple: {out:?} {:?}",
            (out.u[0], out.v[0])
        );
    }

    #[test]
    fn odd_sizes_and_short_data_do_not_panic() {
        let src = RgbFrame::filled(5, 3, [255, 0, 0]);
        let mut out = I420Frame::new(0, 0);
        rgb_to_i420(&src, &mut out);
        assert_eq!((out.y.len(), out.u.len(), out.v.len()), (15, 6, 6));
        assert!(out.y.iter().all(|&y| y == 81));
        assert!(out.u.iter().all(|&u| u == 90) && out.v.iter().all(|&v| v == 240));

        // Every pixel gets its own luma whatever the parity of the size.
        for (w, h) in [(5u16, 3u16), (6, 4), (7, 8), (1, 1)] {
            let mut src = RgbFrame::new(w, h);
            for (i, b) in src.data.iter_mut().enumerate() {
                *b = (i * 53 % 256) as u8;
            }
            rgb_to_i420(&src, &mut out);
            for (y, p) in out.y.iter().zip(src.data.chunks_exact(3)) {
                assert_eq!(*y, luma(p[0], p[1], p[2]), "{w}x{h}");
            }
        }

        let mut short = RgbFrame::filled(4, 4, [255, 255, 255]);
        short.data.truncate(4 * 3 * 2 + 5);
        rgb_to_i420(&short, &mut out);
        assert_eq!(out.y[..8], [235; 8]);
        rgb_to_i420(&RgbFrame::new(0, 0), &mut out);
        assert!(out.y.is_empty());
    }

    #[test]
    fn resize_keeps_allocations() {
        let mut f = I420Frame::new(1280, 720);
        let cap = (f.y.capacity(), f.u.capacity());
        f.resize(960, 720);
        assert_eq!((f.y.len(), f.u.len()), (960 * 720, 480 * 360));
        f.resize(1280, 720);
        assert_eq!((f.y.capacity(), f.u.capacity()), cap);
    }

    /// `cargo test --release -- --ignored --nocapture --test-threads=1 timing`
    #[test]
    #[ignore]
    fn timing_rgb_to_i420_720p() {
        let mut src = RgbFrame::new(1280, 720);
        for (i, b) in src.data.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut dst = I420Frame::new(1280, 720);
        let (min, med) = fastest_and_median(300, |_| rgb_to_i420(black_box(&src), &mut dst));
        println!("rgb_to_i420 1280x720: min {min:?}, median {med:?}");
    }
}
