// The browser's capture-stamp reader (webroot/stamp.js) against a luma strip made by the Rust
// side (actors/src/sim/stamp.rs writes stamp-golden.json: the stamp drawn and converted to
// I420 exactly as the simulated target does).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { CELL_H, CELL_W, lumaOfRgba, readStamp } from '../../webroot/stamp.js';

const golden = JSON.parse(readFileSync(new URL('./stamp-golden.json', import.meta.url), 'utf8'));
const luma = Uint8Array.from(golden.luma_hex.match(/../g), (h) => parseInt(h, 16));

test('reads the value the Rust side stamped', () => {
  assert.equal(golden.height, CELL_H);
  assert.equal(readStamp(luma, golden.width), golden.value);
});

test('a damaged stamp or a plain picture reads as null', () => {
  const damaged = luma.slice();
  const x = (2 + 9) * CELL_W;
  for (let y = 0; y < CELL_H; y++) {
    for (let i = x; i < x + CELL_W; i++) damaged[y * golden.width + i] = 255 - damaged[y * golden.width + i];
  }
  assert.equal(readStamp(damaged, golden.width), null);
  assert.equal(readStamp(new Uint8Array(golden.width * CELL_H).fill(200), golden.width), null);
  assert.equal(readStamp(luma, 100), null, 'too narrow');
});

test('RGBA read through a canvas gives the same value', () => {
  const rgba = new Uint8ClampedArray(luma.length * 4);
  luma.forEach((v, i) => rgba.set([v, v, v, 255], i * 4));
  assert.equal(readStamp(lumaOfRgba(rgba), golden.width), golden.value);
});
