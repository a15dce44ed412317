//! Packed RGB frames and a table-driven area-averaging scaler.
//!
//! The scaler treats every destination pixel as a rectangle laid over the source and averages
//! the source pixels it covers, weighted by the covered area. Downscaling text this way keeps
//! one-pixel strokes visible (they fade, they never vanish as with nearest-neighbour or
//! two-tap bilinear), and upscaling degrades gracefully to "nearest with blended seams".
//!
//! The filter is separable: each destination row is first combined vertically from the source
//! rows it covers into a 16-bit row buffer (contiguous, so the compiler vectorises it), then
//! that buffer is filtered horizontally. Weights are 8-bit fixed point summing to exactly 256
//! per output pixel, so a flat colour scales to the same flat colour.

use std::cell::Cell;
use std::fmt;

/// A packed RGB frame: 3 bytes per pixel, rows of `width * 3` bytes, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u16,
    pub height: u16,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// A black frame of the given size.
    pub fn new(width: u16, height: u16) -> Self {
        RgbFrame {
            width,
            height,
            data: vec![0; Self::byte_len(width, height)],
        }
    }

    /// Number of bytes a frame of this size holds.
    pub fn byte_len(width: u16, height: u16) -> usize {
        usize::from(width) * usize::from(height) * 3
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        usize::from(self.width) * 3
    }

    /// Changes the size, keeping the allocation when it is big enough. The pixel contents
    /// afterwards are unspecified (old bytes are kept, new ones are black): callers redraw.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
        self.data.resize(Self::byte_len(width, height), 0);
    }

    /// A frame of one colour.
    #[cfg(test)]
    pub fn filled(width: u16, height: u16, rgb: [u8; 3]) -> Self {
        let mut f = Self::new(width, height);
        for px in f.data.chunks_exact_mut(3) {
            px.copy_from_slice(&rgb);
        }
        f
    }

    /// The pixel at (x, y), or `None` outside the frame.
    #[cfg(test)]
    pub fn pixel(&self, x: u16, y: u16) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (usize::from(y) * usize::from(self.width) + usize::from(x)) * 3;
        let p = self.data.get(i..i + 3)?;
        Some([p[0], p[1], p[2]])
    }

    /// True when `data` has exactly the length the size implies.
    pub fn is_consistent(&self) -> bool {
        self.data.len() == Self::byte_len(self.width, self.height)
    }
}

impl fmt::Debug for RgbFrame {
    // Never dump megabytes of pixels into a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RgbFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Why [`Scaler::scale`] refused a source frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleError {
    /// The source frame's size is not the one this scaler was built for.
    SourceSize {
        expected: (u16, u16),
        got: (u16, u16),
    },
    /// The source frame's `data` length does not match its size.
    SourceData { expected: usize, got: usize },
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleError::SourceSize { expected, got } => write!(
                f,
                "scaler built for {}x{} got a {}x{} frame",
                expected.0, expected.1, got.0, got.1
            ),
            ScaleError::SourceData { expected, got } => {
                write!(f, "frame data is {got} bytes, its size implies {expected}")
            }
        }
    }
}

impl std::error::Error for ScaleError {}

/// Sum of the weights of one output pixel (8-bit fixed point).
const ONE: u32 = 256;

/// The filter along one axis: every output pixel reads `taps` consecutive source pixels
/// starting at `start[i]`, weighted by `weights[i * taps..][..taps]`.
#[derive(Debug, Clone)]
struct Axis {
    taps: usize,
    start: Vec<u32>,
    weights: Vec<u16>,
}

impl Axis {
    fn new(src: u16, dst: u16) -> Axis {
        let (src, dst) = (u64::from(src), u64::from(dst));
        if src == 0 || dst == 0 {
            return Axis {
                taps: 0,
                start: Vec::new(),
                weights: Vec::new(),
            };
        }
        // Output pixel i covers source [i*src/dst, (i+1)*src/dst). Working in units of
        // 1/dst source pixel keeps every boundary an integer.
        let span = |i: u64| {
            let (lo, hi) = (i * src, (i + 1) * src);
            (lo / dst, hi.div_ceil(dst)) // first and one-past-last source pixel touched
        };
        let taps = (0..dst).map(|i| span(i).1 - span(i).0).max().unwrap_or(1) as usize;
        let mut start = Vec::with_capacity(dst as usize);
        let mut weights = Vec::with_capacity(dst as usize * taps);
        for i in 0..dst {
            let (first, end) = span(i);
            // Keep all taps inside the source; shifting left only adds zero-weight taps.
            let base = first.min(src - taps as u64);
            start.push(base as u32);
            let (lo, hi) = (i * src, (i + 1) * src);
            // Round the running sum, not each weight, so the weights add up to exactly ONE.
            let mut covered = 0u64;
            let mut given = 0u64;
            for j in base..base + taps as u64 {
                if j >= first && j < end {
                    covered += hi.min((j + 1) * dst) - lo.max(j * dst);
                }
                let total = (covered * u64::from(ONE) + src / 2) / src;
                weights.push((total - given) as u16);
                given = total;
            }
        }
        Axis {
            taps,
            start,
            weights,
        }
    }
}

/// Reusable row buffers, kept between calls so that scaling allocates nothing per frame.
#[derive(Default)]
struct Scratch {
    /// Vertically filtered source row, 8 bits, plus zero padding for the shifted reads.
    row: Vec<u8>,
    /// `row` filtered horizontally at every source position (downscale path), plus one byte
    /// of padding for the 4-byte copies in [`pick`].
    filtered: Vec<u8>,
    /// 16-bit accumulator, only for filters with more than two taps.
    acc: Vec<u16>,
}

/// Scales frames of one fixed source size to one fixed destination size.
///
/// Build it once per (source size, destination size) pair; [`Scaler::scale`] then only reads
/// its tables and never allocates (apart from growing `dst` once if it was too small).
pub struct Scaler {
    src: (u16, u16),
    dst: (u16, u16),
    h: Axis,
    v: Axis,
    /// Horizontal weights indexed by source byte position, `taps` planes of `src_w * 3`, when
    /// every source pixel starts at most one output pixel (downscaling). The horizontal pass
    /// is then a contiguous, vectorisable loop over the row followed by a cheap pick, instead
    /// of a per-output-pixel gather that runs several times slower.
    per_source: Option<Vec<u16>>,
    /// A `Cell` so that `scale` can take `&self` (which makes `Scaler` `Send` but not
    /// `Sync`: one per capture pipeline); taken out while in use.
    scratch: Cell<Scratch>,
}

impl fmt::Debug for Scaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scaler")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("h_taps", &self.h.taps)
            .field("v_taps", &self.v.taps)
            .finish()
    }
}

impl Scaler {
    pub fn new(src_w: u16, src_h: u16, dst_w: u16, dst_h: u16) -> Scaler {
        let h = Axis::new(src_w, dst_w);
        let v = Axis::new(src_h, dst_h);
        let per_source = per_source_weights(&h, usize::from(src_w));
        let n = usize::from(src_w) * 3;
        let scratch = Scratch {
            row: vec![0; n + 3 * h.taps],
            filtered: vec![0; n + 1],
            acc: vec![0; n],
        };
        Scaler {
            src: (src_w, src_h),
            dst: (dst_w, dst_h),
            h,
            v,
            per_source,
            scratch: Cell::new(scratch),
        }
    }

    /// Scales `src` into `dst`, resizing `dst` to the destination size first if needed.
    pub fn scale(&self, src: &RgbFrame, dst: &mut RgbFrame) -> Result<(), ScaleError> {
        if (src.width, src.height) != self.src {
            return Err(ScaleError::SourceSize {
                expected: self.src,
                got: (src.width, src.height),
            });
        }
        if !src.is_consistent() {
            return Err(ScaleError::SourceData {
                expected: RgbFrame::byte_len(src.width, src.height),
                got: src.data.len(),
            });
        }
        if (dst.width, dst.height) != self.dst || !dst.is_consistent() {
            dst.resize(self.dst.0, self.dst.1);
        }
        if dst.data.is_empty() || src.data.is_empty() {
            return Ok(());
        }
        if self.src == self.dst {
            dst.data.copy_from_slice(&src.data);
            return Ok(());
        }
        let mut s = self.scratch.take();
        let n = src.stride();
        // Sized in `new`; these only do work if an earlier panic left the Cell emptied.
        s.row.resize(n + 3 * self.h.taps, 0);
        s.filtered.resize(n + 1, 0);
        s.acc.resize(n, 0);
        let dst_stride = dst.stride();
        for (y, out) in dst.data.chunks_exact_mut(dst_stride).enumerate() {
            self.vertical(src, y, &mut s.acc, &mut s.row[..n]);
            match &self.per_source {
                Some(w) => {
                    filter_rows(&s.row, w, self.h.taps, &mut s.acc, &mut s.filtered[..n]);
                    pick(&s.filtered, &self.h.start, out);
                }
                None => self.per_destination(&s.row, out),
            }
        }
        self.scratch.set(s);
        Ok(())
    }

    /// row = the source rows covered by output row `y`, weighted and rounded to 8 bits.
    fn vertical(&self, src: &RgbFrame, y: usize, acc: &mut [u16], row: &mut [u8]) {
        let stride = src.stride();
        let taps = self.v.taps;
        let first = self.v.start[y] as usize;
        let w = &self.v.weights[y * taps..][..taps];
        let line = |t: usize| &src.data[(first + t) * stride..][..stride];
        match taps {
            1 => row.copy_from_slice(line(0)),
            2 => {
                let (w0, w1) = (w[0], w[1]);
                for ((r, &a), &b) in row.iter_mut().zip(line(0)).zip(line(1)) {
                    // Cannot overflow: the weights sum to 256, so the sum is <= 255 * 256 + 128.
                    *r = ((u16::from(a) * w0 + u16::from(b) * w1 + 128) >> 8) as u8;
                }
            }
            _ => {
                let lines = (0..taps).map(line);
                accumulate(acc, lines, w.iter().copied());
                for (r, &a) in row.iter_mut().zip(acc.iter()) {
                    *r = ((a + 128) >> 8) as u8;
                }
            }
        }
    }

    /// Upscaling path: each output pixel reads its taps directly.
    fn per_destination(&self, row: &[u8], out: &mut [u8]) {
        let taps = self.h.taps;
        let per_px = self.h.start.iter().zip(self.h.weights.chunks_exact(taps));
        for ((&first, w), px) in per_px.zip(out.chunks_exact_mut(3)) {
            let s = &row[first as usize * 3..][..taps * 3];
            let mut sum = [128u16; 3];
            for (&wt, p) in w.iter().zip(s.chunks_exact(3)) {
                for c in 0..3 {
                    sum[c] += u16::from(p[c]) * wt;
                }
            }
            for c in 0..3 {
                px[c] = (sum[c] >> 8) as u8;
            }
        }
    }
}

/// Spreads the per-output-pixel horizontal weights over source byte positions, or `None`
/// when two output pixels start at the same source pixel (upscaling).
fn per_source_weights(h: &Axis, src_w: usize) -> Option<Vec<u16>> {
    let n = src_w * 3;
    if h.taps == 0 || h.start.windows(2).any(|p| p[0] >= p[1]) {
        return None;
    }
    let mut planes = vec![0u16; h.taps * n];
    for (&first, w) in h.start.iter().zip(h.weights.chunks_exact(h.taps)) {
        for (t, &wt) in w.iter().enumerate() {
            let at = t * n + first as usize * 3;
            planes[at..at + 3].fill(wt);
        }
    }
    Some(planes)
}

/// out[k] = sum over taps t of weight_t[k] * row[k + 3t], rounded. `row` is zero padded by
/// 3 * taps bytes so the shifted reads stay in bounds.
fn filter_rows(row: &[u8], weights: &[u16], taps: usize, acc: &mut [u16], out: &mut [u8]) {
    let n = out.len();
    let plane = |t: usize| &weights[t * n..][..n];
    match taps {
        1 => out.copy_from_slice(&row[..n]),
        2 => {
            let rows = row[..n].iter().zip(&row[3..n + 3]);
            let ws = plane(0).iter().zip(plane(1));
            for ((o, (&a, &b)), (&wa, &wb)) in out.iter_mut().zip(rows).zip(ws) {
                *o = ((u16::from(a) * wa + u16::from(b) * wb + 128) >> 8) as u8;
            }
        }
        _ => {
            let acc = &mut acc[..n];
            acc.fill(128);
            for t in 0..taps {
                let shifted = &row[3 * t..][..n];
                for ((a, &p), &w) in acc.iter_mut().zip(shifted).zip(plane(t)) {
                    *a += u16::from(p) * w;
                }
            }
            for (o, &a) in out.iter_mut().zip(acc.iter()) {
                *o = (a >> 8) as u8;
            }
        }
    }
}

/// acc = sum of line_t * weight_t (value * 256, not rounded).
fn accumulate<'a>(
    acc: &mut [u16],
    lines: impl Iterator<Item = &'a [u8]>,
    w: impl Iterator<Item = u16>,
) {
    acc.fill(0);
    for (line, wt) in lines.zip(w) {
        if wt == 0 {
            continue;
        }
        for (a, &p) in acc.iter_mut().zip(line) {
            // Cannot overflow: the weights sum to 256.
            *a += u16::from(p) * wt;
        }
    }
}

/// out pixel i = filtered pixel start[i]. Copies 4 bytes at a time (the 4th is overwritten by
/// the next pixel), which is markedly faster than 3 single-byte copies; `filtered` has one
/// byte of padding for the last source pixel.
fn pick(filtered: &[u8], start: &[u32], out: &mut [u8]) {
    let Some((&last, init)) = start.split_last() else {
        return;
    };
    for (i, &s) in init.iter().enumerate() {
        let s = s as usize * 3;
        out[i * 3..i * 3 + 4].copy_from_slice(&filtered[s..s + 4]);
    }
    let (s, o) = (last as usize * 3, init.len() * 3);
    out[o..o + 3].copy_from_slice(&filtered[s..s + 3]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::fastest_and_median;
    use std::hint::black_box;

    #[test]
    fn weights_sum_to_one_and_stay_in_bounds() {
        for &(s, d) in &[
            (1920, 1280),
            (1080, 720),
            (1024, 960),
            (768, 720),
            (3, 7),
            (7, 3),
            (5, 1),
        ] {
            let a = Axis::new(s, d);
            assert_eq!(a.start.len(), usize::from(d));
            for (i, w) in a.weights.chunks_exact(a.taps).enumerate() {
                assert_eq!(
                    w.iter().map(|&x| u32::from(x)).sum::<u32>(),
                    ONE,
                    "{s}->{d} px {i}"
                );
                assert!(a.start[i] as usize + a.taps <= usize::from(s));
            }
        }
        assert_eq!(Axis::new(1920, 1280).taps, 2);
        assert_eq!(Axis::new(1024, 960).taps, 2);
    }

    #[test]
    fn flat_colour_stays_flat() {
        for &(sw, sh, dw, dh) in &[
            (1920, 1080, 1280, 720),
            (1024, 768, 960, 720),
            (64, 48, 100, 90),
        ] {
            let src = RgbFrame::filled(sw, sh, [200, 17, 99]);
            let mut dst = RgbFrame::new(1, 1);
            Scaler::new(sw, sh, dw, dh).scale(&src, &mut dst).unwrap();
            assert_eq!((dst.width, dst.height), (dw, dh));
            assert!(dst.data.chunks_exact(3).all(|p| p == [200, 17, 99]));
        }
    }

    #[test]
    fn equal_size_is_a_copy() {
        let mut src = RgbFrame::new(5, 4);
        for (i, b) in src.data.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut dst = RgbFrame::new(5, 4);
        Scaler::new(5, 4, 5, 4).scale(&src, &mut dst).unwrap();
        assert_eq!(src, dst);
    }

    #[test]
    fn thin_strokes_survive_downscale() {
        // Every one-pixel vertical and horizontal line must leave a clear trace.
        for &(sw, sh, dw, dh) in &[(1920, 1080, 1280, 720), (1024, 768, 960, 720)] {
            let scaler = Scaler::new(sw, sh, dw, dh);
            let mut dst = RgbFrame::new(dw, dh);
            for x in 0..12u16 {
                let mut src = RgbFrame::new(sw, sh);
                for y in 0..sh {
                    let i = (usize::from(y) * usize::from(sw) + usize::from(x)) * 3;
                    src.data[i..i + 3].copy_from_slice(&[255, 255, 255]);
                }
                scaler.scale(&src, &mut dst).unwrap();
                let brightest = (0..dw)
                    .filter_map(|dx| dst.pixel(dx, dh / 2))
                    .map(|p| p[0])
                    .max();
                assert!(
                    brightest >= Some(80),
                    "column {x} nearly vanished: {brightest:?}"
                );
            }
            for y in 0..12u16 {
                let mut src = RgbFrame::new(sw, sh);
                let i = usize::from(y) * usize::from(sw) * 3;
                src.data[i..i + usize::from(sw) * 3].fill(255);
                scaler.scale(&src, &mut dst).unwrap();
                let brightest = (0..dh)
                    .filter_map(|dy| dst.pixel(dw / 2, dy))
                    .map(|p| p[0])
                    .max();
                assert!(
                    brightest >= Some(80),
                    "row {y} nearly vanished: {brightest:?}"
                );
            }
        }
    }

    /// Area average in floating point, straight from the definition.
    fn reference(src: &RgbFrame, dw: u16, dh: u16) -> RgbFrame {
        let (sw, sh) = (f64::from(src.width), f64::from(src.height));
        let (fx, fy) = (sw / f64::from(dw), sh / f64::from(dh));
        let overlap = |a0: f64, a1: f64, b0: f64, b1: f64| (a1.min(b1) - a0.max(b0)).max(0.0);
        let mut out = RgbFrame::new(dw, dh);
        for y in 0..dh {
            for x in 0..dw {
                let (x0, y0) = (f64::from(x) * fx, f64::from(y) * fy);
                let mut sum = [0.0f64; 3];
                for sy in 0..src.height {
                    let wy = overlap(y0, y0 + fy, f64::from(sy), f64::from(sy) + 1.0);
                    if wy == 0.0 {
                        continue;
                    }
                    for sx in 0..src.width {
                        let wx = overlap(x0, x0 + fx, f64::from(sx), f64::from(sx) + 1.0);
                        let p = src.pixel(sx, sy).unwrap();
                        for c in 0..3 {
                            sum[c] += wx * wy * f64::from(p[c]);
                        }
                    }
                }
                let i = (usize::from(y) * usize::from(dw) + usize::from(x)) * 3;
                for (o, s) in out.data[i..i + 3].iter_mut().zip(sum) {
                    *o = (s / (fx * fy)).round() as u8;
                }
            }
        }
        out
    }

    #[test]
    fn matches_floating_point_area_average() {
        let mut seed = 12345u32;
        for &(sw, sh, dw, dh) in &[
            (30, 20, 20, 15),
            (32, 24, 30, 22),
            (40, 9, 11, 4),
            (7, 5, 16, 9),
            (12, 12, 5, 17),
        ] {
            let mut src = RgbFrame::new(sw, sh);
            for b in src.data.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (seed >> 24) as u8;
            }
            let mut dst = RgbFrame::new(dw, dh);
            Scaler::new(sw, sh, dw, dh).scale(&src, &mut dst).unwrap();
            let want = reference(&src, dw, dh);
            let worst = dst
                .data
                .iter()
                .zip(&want.data)
                .map(|(&a, &b)| a.abs_diff(b))
                .max();
            // Two 8-bit roundings and 8-bit weights: a couple of levels at most.
            assert!(worst <= Some(3), "{sw}x{sh}->{dw}x{dh}: off by {worst:?}");
        }
    }

    #[test]
    fn two_to_one_averages_blocks() {
        let mut src = RgbFrame::new(4, 2);
        // Left 2x2 block: two black, two white pixels -> mid grey.
        src.data[3..6].fill(255);
        src.data[12..15].fill(255);
        let mut dst = RgbFrame::new(2, 1);
        Scaler::new(4, 2, 2, 1).scale(&src, &mut dst).unwrap();
        assert_eq!(dst.pixel(0, 0), Some([128, 128, 128]));
        assert_eq!(dst.pixel(1, 0), Some([0, 0, 0]));
    }

    #[test]
    fn wrong_source_is_an_error_not_a_panic() {
        let scaler = Scaler::new(8, 8, 4, 4);
        let mut dst = RgbFrame::new(4, 4);
        let err = scaler.scale(&RgbFrame::new(9, 8), &mut dst);
        assert!(matches!(err, Err(ScaleError::SourceSize { .. })));
        let mut short = RgbFrame::new(8, 8);
        short.data.truncate(10);
        assert!(matches!(
            scaler.scale(&short, &mut dst),
            Err(ScaleError::SourceData { .. })
        ));
        // Degenerate sizes do nothing rather than divide by zero.
        let mut empty = RgbFrame::new(0, 0);
        Scaler::new(0, 0, 0, 0)
            .scale(&RgbFrame::new(0, 0), &mut empty)
            .unwrap();
        Scaler::new(4, 4, 0, 3)
            .scale(&RgbFrame::new(4, 4), &mut empty)
            .unwrap();
    }

    #[test]
    fn resize_reuses_allocation() {
        let mut f = RgbFrame::new(1920, 1080);
        let cap = f.data.capacity();
        f.resize(1024, 768);
        assert_eq!(f.data.len(), 1024 * 768 * 3);
        f.resize(1920, 1080);
        assert_eq!(f.data.capacity(), cap);
    }

    /// `cargo test --release -- --ignored --nocapture --test-threads=1 timing`
    #[test]
    #[ignore]
    fn timing_scale_to_720p() {
        for (sw, sh, dw) in [(1920u16, 1080u16, 1280u16), (1024, 768, 960)] {
            let mut src = RgbFrame::new(sw, sh);
            for (i, b) in src.data.iter_mut().enumerate() {
                *b = (i * 7 % 251) as u8;
            }
            let mut dst = RgbFrame::new(dw, 720);
            let scaler = Scaler::new(sw, sh, dw, 720);
            let (min, med) =
                fastest_and_median(200, |_| scaler.scale(black_box(&src), &mut dst).unwrap());
            println!("scale {sw}x{sh} -> {dw}x720: min {min:?}, median {med:?}");
        }
    }
}
