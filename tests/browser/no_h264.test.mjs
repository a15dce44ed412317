// The console against a daemon that cannot serve H.264 (the simulated target built without
// OpenH264, as for riscv64): in a browser that decodes H.264 it asks for it, is told
// `CodecUnavailable`, says so and shows MJPEG.
//
// Skipped unless NANOKVMD_NO_H264=1: `cargo xtask dist` runs it with NANOKVMD_BIN naming the
// riscv64 build under qemu-riscv64.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, logIn, startDaemon, stopDaemon, waitFor } from './daemon.mjs';

const skip = process.env.NANOKVMD_NO_H264 === '1' ? false : 'needs a daemon without H.264 (cargo xtask dist)';

describe('console against a daemon without H.264', { skip, timeout: 120_000 }, () => {
  let daemon = null;
  let browser = null;
  const errors = [];

  before(async () => {
    daemon = await startDaemon();
    browser = await launchChromium();
    browser.page.setDefaultTimeout(20_000);
    browser.page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
    await logIn(browser.page, daemon);
  });

  after(async () => {
    await browser?.close();
    if (daemon !== null) await stopDaemon(daemon);
  });

  test('asks for H.264, is told why there is none, and shows MJPEG', { timeout: 60_000 }, async () => {
    const { page } = browser;
    const read = () =>
      page.evaluate(() => ({
        mode: window.nanokvm?.stats.mode,
        connected: window.nanokvm?.stats.connected,
        jpegWidth: document.getElementById('mjpeg').naturalWidth,
        notice: document.getElementById('notice').hidden ? null : document.getElementById('notice-text').textContent,
      }));
    const shown = await waitFor(
      'MJPEG shown after the H.264 refusal',
      read,
      (s) => s.mode === 'mjpeg' && s.connected && s.jpegWidth === 1280 && s.notice !== null,
      30_000,
    );
    assert.match(shown.notice, /No H\.264 from this server/);
    assert.match(shown.notice, /soft-h264/);
    assert.equal(await page.evaluate(() => window.nanokvm.stats.framesReceived), 0, 'no WebSocket video');
    assert.deepEqual(errors, []);
  });
});
