//! Frame change detection for the capture path.
//!
//! Two parts, because they answer different questions cheaply:
//! - "did anything change at all?" must be exact, so every byte goes through a hash. The hash
//!   runs four independent lanes over the buffer read as little-endian u64 words; each lane
//!   step `s = ((s ^ word) * K).rotate_left(R)` is a bijection of the state for a fixed word,
//!   so a change confined to one lane can never cancel out: any change within one 8-byte word
//!   (e.g. a single byte) is always detected. All four lane states are compared (256 bits),
//!   so other changes are missed with negligible probability.
//! - "how much changed?" comes from ~4096 pixels sampled on a fixed grid and compared with the
//!   previous frame's samples. It is an estimate: a small change between grid points reports
//!   `Changed { fraction: 0.0 }`.
//!
//! No copy of the frame is kept, and `observe` allocates only when the frame size changes.

/// The result of [`ChangeDetector::observe`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Byte-for-byte the same as the previous frame.
    Unchanged,
    /// Different; `fraction` (0.0..=1.0) is the share of sampled pixels that differ.
    Changed { fraction: f32 },
}

impl Change {
    #[cfg(test)]
    pub fn is_changed(&self) -> bool {
        matches!(self, Change::Changed { .. })
    }
}

const LANES: usize = 4;
const K: u64 = 0x9E37_79B9_7F4A_7C15; // odd, so multiplying by it is a bijection
const SEEDS: [u64; LANES] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
];
/// Grid of sampled pixels: up to this many columns and rows.
const GRID: usize = 64;

/// Remembers just enough of the previous frame to classify the next one.
#[derive(Debug, Default, Clone)]
pub struct ChangeDetector {
    /// (width, height, byte length) of the previous frame; `None` before the first frame.
    shape: Option<(u16, u16, usize)>,
    hash: [u64; LANES],
    /// Byte offsets of the sampled pixels, computed once per frame shape.
    positions: Vec<usize>,
    /// The previous frame's sampled pixels, packed as 0x00RRGGBB.
    samples: Vec<u32>,
}

impl ChangeDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the previous frame: the next one reports `Changed { fraction: 1.0 }`.
    #[cfg(test)]
    pub fn reset(&mut self) {
        self.shape = None;
    }

    /// Compares `frame` (packed RGB, `width * height * 3` bytes) with the previous frame and
    /// remembers it for the next call. A first frame or a size change is a full change.
    pub fn observe(&mut self, frame: &[u8], width: u16, height: u16) -> Change {
        let shape = (width, height, frame.len());
        let hash = hash_words(frame);
        if self.shape != Some(shape) {
            self.positions = grid_positions(width, height, frame.len());
            self.samples.clear();
            self.samples
                .extend(self.positions.iter().map(|&i| sample(frame, i)));
            self.shape = Some(shape);
            self.hash = hash;
            return Change::Changed { fraction: 1.0 };
        }
        if hash == self.hash {
            return Change::Unchanged;
        }
        self.hash = hash;
        let mut differing = 0usize;
        for (&i, old) in self.positions.iter().zip(self.samples.iter_mut()) {
            let new = sample(frame, i);
            differing += usize::from(new != *old);
            *old = new;
        }
        let fraction = if self.positions.is_empty() {
            0.0
        } else {
            differing as f32 / self.positions.len() as f32
        };
        Change::Changed { fraction }
    }
}

#[inline(always)]
fn step(state: u64, word: u64) -> u64 {
    (state ^ word).wrapping_mul(K).rotate_left(29)
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = bytes.len().min(8);
    w[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(w)
}

/// The four lane states after absorbing every byte of `data` and its length.
fn hash_words(data: &[u8]) -> [u64; LANES] {
    let mut s = SEEDS;
    let mut blocks = data.chunks_exact(8 * LANES);
    for block in &mut blocks {
        // Four independent dependency chains keep the multiplier busy.
        for (lane, bytes) in s.iter_mut().zip(block.chunks_exact(8)) {
            *lane = step(*lane, word(bytes));
        }
    }
    // Leftover words go to successive lanes; the last partial word is zero padded, and the
    // length (absorbed last) tells "ends in zeros" from "ends early".
    for (lane, bytes) in s.iter_mut().zip(blocks.remainder().chunks(8)) {
        *lane = step(*lane, word(bytes));
    }
    s[0] = step(s[0], data.len() as u64);
    s
}

/// Byte offsets of pixels on a grid of up to GRID x GRID cells, one per cell centre,
/// restricted to pixels that lie entirely inside `len` bytes.
fn grid_positions(width: u16, height: u16, len: usize) -> Vec<usize> {
    let (w, h) = (usize::from(width), usize::from(height));
    let (cols, rows) = (w.min(GRID), h.min(GRID));
    let mut out = Vec::with_capacity(cols * rows);
    for r in 0..rows {
        let y = (2 * r + 1) * h / (2 * rows);
        for c in 0..cols {
            let x = (2 * c + 1) * w / (2 * cols);
            let i = (y * w + x) * 3;
            if i + 3 <= len {
                out.push(i);
            }
        }
    }
    out
}

#[inline(always)]
fn sample(frame: &[u8], i: usize) -> u32 {
    match frame.get(i..i + 3) {
        Some(p) => u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::fastest_and_median;
    use std::hint::black_box;

    fn frame(w: u16, h: u16, fill: u8) -> Vec<u8> {
        vec![fill; usize::from(w) * usize::from(h) * 3]
    }

    #[test]
    fn first_frame_then_unchanged() {
        let mut d = ChangeDetector::new();
        let f = frame(64, 48, 7);
        assert_eq!(d.observe(&f, 64, 48), Change::Changed { fraction: 1.0 });
        assert_eq!(d.observe(&f, 64, 48), Change::Unchanged);
        assert_eq!(d.observe(&f.clone(), 64, 48), Change::Unchanged);
        d.reset();
        assert_eq!(d.observe(&f, 64, 48), Change::Changed { fraction: 1.0 });
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        // Odd size so the buffer has a partial last word.
        let (w, h) = (37u16, 11u16);
        let base: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3)
            .map(|i| (i * 31) as u8)
            .collect();
        let mut d = ChangeDetector::new();
        d.observe(&base, w, h);
        let mut f = base.clone();
        for i in 0..f.len() {
            for delta in [1u8, 0x80, 0xFF] {
                f[i] = base[i].wrapping_add(delta);
                assert!(d.observe(&f, w, h).is_changed(), "byte {i} +{delta}");
                f[i] = base[i];
                assert!(d.observe(&f, w, h).is_changed(), "byte {i} restored");
                assert_eq!(d.observe(&f, w, h), Change::Unchanged);
            }
        }
    }

    #[test]
    fn size_change_is_a_full_change() {
        let mut d = ChangeDetector::new();
        d.observe(&frame(32, 32, 0), 32, 32);
        // Same bytes, different shape.
        assert_eq!(
            d.observe(&frame(64, 16, 0), 64, 16),
            Change::Changed { fraction: 1.0 }
        );
        assert_eq!(d.observe(&frame(64, 16, 0), 64, 16), Change::Unchanged);
    }

    #[test]
    fn fraction_estimates_changed_area() {
        let (w, h) = (1280u16, 720u16);
        let mut d = ChangeDetector::new();
        let mut f = frame(w, h, 0);
        d.observe(&f, w, h);
        // Whole frame changes.
        f.fill(200);
        assert_eq!(d.observe(&f, w, h), Change::Changed { fraction: 1.0 });
        // Left half changes.
        for row in f.chunks_exact_mut(usize::from(w) * 3) {
            row[..usize::from(w) * 3 / 2].fill(10);
        }
        match d.observe(&f, w, h) {
            Change::Changed { fraction } => assert!((fraction - 0.5).abs() < 0.02, "{fraction}"),
            Change::Unchanged => panic!("missed"),
        }
        // One pixel in a corner: changed, but no sample hit it.
        f[0] = 1;
        assert_eq!(d.observe(&f, w, h), Change::Changed { fraction: 0.0 });
        assert_eq!(d.observe(&f, w, h), Change::Unchanged);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let mut d = ChangeDetector::new();
        assert!(d.observe(&[], 0, 0).is_changed());
        assert_eq!(d.observe(&[], 0, 0), Change::Unchanged);
        // Buffer shorter than the size says: sampled where possible, still hashed exactly.
        let short = vec![9u8; 100];
        assert!(d.observe(&short, 640, 480).is_changed());
        assert_eq!(d.observe(&short, 640, 480), Change::Unchanged);
        let mut other = short.clone();
        other[99] = 0;
        assert!(d.observe(&other, 640, 480).is_changed());
        assert_eq!(grid_positions(1280, 720, 1280 * 720 * 3).len(), GRID * GRID);
    }

    /// `cargo test --release -- --ignored --nocapture --test-threads=1 timing`
    #[test]
    #[ignore]
    fn timing_change_detector_720p() {
        let (w, h) = (1280u16, 720u16);
        let mut a = frame(w, h, 0);
        for (i, b) in a.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut b = a.clone();
        b[1000] ^= 1;
        let mut d = ChangeDetector::new();
        d.observe(&a, w, h);
        let (min, med) = fastest_and_median(500, |i| {
            let f = if i % 2 == 0 { &b } else { &a };
            assert!(d.observe(black_box(f), w, h).is_changed());
        });
        println!("ChangeDetector 1280x720, changed: min {min:?}, median {med:?}");
        d.observe(&a, w, h);
        let (min, med) = fastest_and_median(500, |_| {
            d.observe(black_box(&a), w, h);
        });
        println!("ChangeDetector 1280x720, unchanged: min {min:?}, median {med:?}");
    }
}
