// webroot/keymap.js against protocol/keymap.json (written by the Rust tests from the key map
// in protocol/src/hid/keymap.rs, the source of truth), and the pointer mapping's arithmetic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { KEYMAP, usageForCode } from '../../webroot/keymap.js';
import { pictureRect, toUnits } from '../../webroot/pointer.js';
import { describePaste } from '../../webroot/paste.js';

const rust = JSON.parse(readFileSync(new URL('../../protocol/keymap.json', import.meta.url), 'utf8'));

test('the JS key map is exactly the Rust one, in the same order', () => {
  assert.deepStrictEqual(Object.entries(KEYMAP), Object.entries(rust));
});

test('usageForCode knows the keys and nothing else', () => {
  assert.equal(usageForCode('KeyA'), 0x04);
  assert.equal(usageForCode('AltRight'), 0xe6);
  assert.equal(usageForCode('MediaPlayPause'), undefined);
  assert.equal(usageForCode('toString'), undefined, 'no prototype keys');
});

test('pointer positions are relative to the letterboxed picture', () => {
  // A 4:3 picture in a 16:9 box: bars left and right.
  const box = { left: 0, top: 40, width: 1600, height: 900 };
  const rect = pictureRect(box, { width: 1024, height: 768 });
  assert.deepStrictEqual(rect, { left: 200, top: 40, width: 1200, height: 900 });
  // A wide picture in a tall box: bars above and below.
  const tall = pictureRect({ left: 0, top: 0, width: 500, height: 1000 }, { width: 1920, height: 1080 });
  assert.ok(Math.abs(tall.left) < 1e-9);
  assert.equal(Math.round(tall.top), 359);
  assert.equal(pictureRect(box, null), null);
  assert.equal(pictureRect(box, { width: 0, height: 0 }), null);
  assert.equal(toUnits(0), 0);
  assert.equal(toUnits(0.5), 16384);
  assert.equal(toUnits(1), 32767);
  assert.equal(toUnits(1.5), 32767);
});

test('a finished paste is described with what was skipped', () => {
  assert.equal(describePaste({ typed: 1, unknown: '' }), 'Pasted 1 character.');
  assert.equal(describePaste({ typed: 20, unknown: '€✓' }), 'Pasted 20 characters; not on this layout, skipped: € ✓.');
});
