// Reads the capture stamp that the simulated target draws into each picture when the daemon
// runs with --sim-stamp (layout in actors/src/sim/stamp.rs): a row of 36 cells of 8x16 pixels
// from the top-left corner — white, black, 32 bits of the capture time in ms (most significant
// first, white = 1), even parity, black. Used only by the glass-to-glass measurement.

export const CELL_W = 8;
export const CELL_H = 16;
const DATA_BITS = 32;
export const CELLS = 2 + DATA_BITS + 2;
export const STAMP_WIDTH = CELLS * CELL_W;

/**
 * The stamp's value from a luma plane (`stride` bytes per row, at least STAMP_WIDTH x CELL_H),
 * or null when there is no valid stamp (wrong sync or parity).
 */
export function readStamp(luma, stride) {
  if (stride < STAMP_WIDTH || luma.length < stride * CELL_H) return null;
  const bits = [];
  for (let c = 0; c < CELLS; c++) {
    // The centre of the cell, away from the edges the codec blurs.
    const x0 = c * CELL_W + 2;
    let sum = 0;
    for (let y = 4; y < 4 + CELL_H / 2; y++) {
      for (let x = x0; x < x0 + CELL_W / 2; x++) sum += luma[y * stride + x];
    }
    bits.push(sum / ((CELL_H / 2) * (CELL_W / 2)) >= 128);
  }
  let value = 0;
  let ones = 0;
  for (const bit of bits.slice(2, 2 + DATA_BITS)) {
    value = value * 2 + (bit ? 1 : 0);
    if (bit) ones += 1;
  }
  const syncOk = bits[0] && !bits[1] && !bits[CELLS - 1];
  return syncOk && bits[2 + DATA_BITS] === (ones % 2 === 1) ? value : null;
}

/** Luma (BT.601) of RGBA pixels, for frames that can only be read through a canvas. */
export function lumaOfRgba(rgba) {
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = (rgba[4 * i] * 299 + rgba[4 * i + 1] * 587 + rgba[4 * i + 2] * 114) / 1000;
  }
  return out;
}
