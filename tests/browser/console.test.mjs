// The web console in headless Chromium against the real daemon with the simulated target.
//
// Needs the daemon binary (NANOKVMD_BIN, or target/debug/nanokvmd: `cargo build -p nanokvmd`)
// and Chromium at /usr/bin/chromium (CHROMIUM_BIN to override). Every wait is bounded, so a
// broken daemon or console fails a test instead of hanging the run.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import { launchChromium, logIn, startDaemon, stopDaemon, waitFor } from './daemon.mjs';

const TEST_TIMEOUT_MS = 30_000;

describe('web console against the sim daemon', { timeout: 120_000 }, () => {
  let daemon = null;
  let browser = null;
  let context = null;
  let page = null;
  const consoleErrors = [];

  before(async () => {
    daemon = await startDaemon();
    browser = await launchChromium();
    ({ context, page } = browser);
    watchErrors(page);
    await logIn(page, daemon);
  });

  after(async () => {
    await browser?.close();
    if (daemon !== null) await stopDaemon(daemon);
  });

  function watchErrors(p) {
    p.setDefaultTimeout(10_000);
    p.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()}`);
    });
    p.on('pageerror', (error) => consoleErrors.push(`pageerror: ${error.message}`));
  }

  const readStats = () => page.evaluate(() => ({ ...window.nanokvm?.stats }));

  const waitForStats = (what, accept, timeout) => waitFor(what, readStats, accept, timeout);

  /** Opens the settings panel (whatever state an earlier test left it in) and returns its form. */
  async function openSettings() {
    if (await page.locator('#settings-panel').isHidden()) await page.locator('#settings-button').click();
    return page.locator('#settings-form');
  }

  /** Simulates the tab being hidden or shown, as Page Visibility reports it. */
  function setHidden(hidden) {
    return page.evaluate((hide) => {
      if (hide) {
        Object.defineProperty(document, 'hidden', { value: true, configurable: true });
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      } else {
        // The own properties shadow Document.prototype's getters; removing them restores those.
        delete document.hidden;
        delete document.visibilityState;
      }
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  }

  test('shows decoded H.264 video at 1280x720', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitForStats('3 decoded frames', (s) => s.framesDecoded >= 3, 10_000);
    const stats = await readStats();
    assert.equal(stats.mode, 'h264');
    assert.equal(stats.connected, true);
    assert.equal(stats.decoderErrors, 0);
    assert.equal(`${stats.width}x${stats.height}`, '1280x720');
    assert.ok(stats.keyframesDecoded >= 1, 'the first frame is a keyframe');
    assert.equal(await page.locator('#connection').getAttribute('data-state'), 'connected');
    assert.equal(await page.locator('#notice').isHidden(), true, 'no error notice');
  });

  test('a hidden tab receives no video and gets a keyframe when shown again', { timeout: TEST_TIMEOUT_MS }, async () => {
    await setHidden(true);
    await sleep(300); // frames the server sent before it heard of it
    const hidden = await readStats();
    await sleep(1500);
    const stillHidden = await readStats();
    assert.equal(stillHidden.framesReceived, hidden.framesReceived, 'frames arrived while hidden');

    await setHidden(false);
    await waitForStats(
      'a keyframe decoded after showing the tab',
      (s) => s.keyframesDecoded > stillHidden.keyframesDecoded,
      1000,
    );
    assert.equal((await readStats()).decoderErrors, 0);
  });

  test('a console switch to another resolution reconfigures the decoder', { timeout: TEST_TIMEOUT_MS }, async () => {
    const switchConsole = async (n) => {
      const response = await fetch(new URL('api/sim/console', daemon.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...daemon.authHeaders },
        body: JSON.stringify({ console: n }),
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(response.status, 204, await response.text());
    };
    await switchConsole(2); // 1024x768 → 960x720 at 720p
    await waitForStats('frames at 960x720', (s) => s.width === 960 && s.height === 720, 5000);
    await switchConsole(1);
    await waitForStats('frames at 1280x720', (s) => s.width === 1280 && s.height === 720, 5000);
    assert.equal((await readStats()).decoderErrors, 0);
  });

  test('the settings panel changes the stream and shows what the server applied', { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = await openSettings();
    assert.equal(await form.locator('[name=resolution]').inputValue(), 'P720', 'shows the server settings');
    assert.equal(await form.locator('[name=fps]').inputValue(), '30');

    await form.locator('[name=resolution]').selectOption('Native');
    await form.locator('button[type=submit]').click();
    await waitForStats('frames at 1920x1080', (s) => s.width === 1920 && s.height === 1080, 5000);

    await form.locator('[name=resolution]').selectOption('P720');
    await form.locator('button[type=submit]').click();
    await waitForStats('frames at 1280x720', (s) => s.width === 1280 && s.height === 720, 5000);
    assert.equal((await readStats()).decoderErrors, 0);
    // What the stream really gets: the simulated target's encoder takes the settings as they are.
    const effective = form.locator('#settings-effective');
    const deadline = Date.now() + 5000;
    let line = '';
    while (!line.startsWith('In force: 1280×720') && Date.now() < deadline) {
      line = (await effective.isVisible()) ? await effective.textContent() : '';
      if (!line.startsWith('In force: 1280×720')) await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(line, /^In force: 1280×720, 30 fps, \d+ kbit\/s, GOP \d+$/, 'nothing "asked" differs in the sim');
    await page.locator('#settings-close').click();
    assert.equal(await page.locator('#settings-panel').isHidden(), true);
  });

  test('MJPEG mode shows the JPEG stream and stops WebSocket video', { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = await openSettings();
    await form.locator('[name=codec]').selectOption('mjpeg');
    await form.locator('button[type=submit]').click();

    const jpegWidth = () => page.evaluate(() => document.getElementById('mjpeg').naturalWidth);
    await waitFor('a 1280 pixels wide JPEG', jpegWidth, (width) => width === 1280, 5000);
    assert.equal(await page.locator('#screen').isHidden(), true);
    await sleep(300);
    const before = await readStats();
    assert.equal(before.mode, 'mjpeg');
    await sleep(1500);
    assert.equal((await readStats()).framesReceived, before.framesReceived, 'WebSocket video in MJPEG mode');

    await form.locator('[name=codec]').selectOption('h264');
    await form.locator('button[type=submit]').click();
    await page.locator('#settings-close').click();
    await waitForStats('a keyframe after going back to H.264', (s) => s.keyframesDecoded > before.keyframesDecoded, 2000);
    assert.equal(await page.locator('#mjpeg').getAttribute('src'), null, 'the MJPEG stream was stopped');
  });

  test('without WebCodecs the console falls back to MJPEG', { timeout: TEST_TIMEOUT_MS }, async () => {
    const bare = await context.newPage();
    try {
      watchErrors(bare);
      await bare.addInitScript(() => delete window.VideoDecoder);
      await bare.goto(daemon.url);
      const read = () =>
        bare.evaluate(() => ({
          mode: window.nanokvm?.stats.mode,
          connected: window.nanokvm?.stats.connected,
          jpegWidth: document.getElementById('mjpeg').naturalWidth,
        }));
      await waitFor('MJPEG shown', read, (s) => s.mode === 'mjpeg' && s.connected && s.jpegWidth === 1280, 5000);
      const h264Option = bare.locator('#settings-form [name=codec] option[value=h264]');
      assert.equal(await h264Option.isDisabled(), true, 'H.264 is not offered');
      await sleep(500);
      assert.equal(await bare.evaluate(() => window.nanokvm.stats.framesReceived), 0, 'no video over the WebSocket');
    } finally {
      await bare.close();
    }
  });

  test('the pages logged no errors', () => {
    assert.deepEqual(consoleErrors, []);
  });
});
