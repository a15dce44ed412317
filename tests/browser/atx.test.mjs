// The console's front panel in headless Chromium against the daemon with the simulated target:
// the target is forced off through the API, then the Power button boots it again and the
// power LED in the toolbar lights.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, logIn, startDaemon, stopDaemon, waitFor } from './daemon.mjs';

const TEST_TIMEOUT_MS = 30_000;

describe('front panel in the console', { timeout: 90_000 }, () => {
  let daemon = null;
  let browser = null;
  let page = null;
  const pageErrors = [];

  /** Opens the console page (the one place this file does so). */
  async function openConsole() {
    browser = await launchChromium();
    const p = browser.page;
    p.setDefaultTimeout(10_000);
    p.on('pageerror', (error) => pageErrors.push(error.message));
    await logIn(p, daemon);
    return p;
  }

  before(async () => {
    daemon = await startDaemon();
    page = await openConsole();
  });

  after(async () => {
    await browser?.close();
    if (daemon !== null) await stopDaemon(daemon);
  });

  async function api(path, init = {}) {
    const response = await fetch(new URL(path, daemon.url), {
      signal: AbortSignal.timeout(5000),
      ...init,
      headers: { ...daemon.authHeaders, ...init.headers },
    });
    return { status: response.status, body: await response.text() };
  }

  const simPower = async () => JSON.parse((await api('api/sim/state')).body).power;

  const panel = () =>
    page.evaluate(() => ({
      powerLed: document.getElementById('power-led').dataset.on,
      powerDisabled: document.getElementById('atx-power').disabled,
      busy: document.getElementById('atx-busy').textContent,
      noSignal: !document.getElementById('no-signal').hidden,
    }));

  test('clicking Power boots the target and the LED lights', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitFor('the power LED on at start', panel, (p) => p.powerLed === 'true' && !p.powerDisabled, 10_000);

    // Force off through the API (1 s is the shortest long press).
    const off = await api('api/atx/power-long', { method: 'POST', body: '{"ms": 1000}' });
    assert.equal(off.status, 202, off.body);
    await waitFor('the press shown as busy', panel, (p) => p.powerDisabled && p.busy.startsWith('force off'), 2000);
    await waitFor('the power LED off and "No signal"', panel, (p) => p.powerLed === 'false' && p.noSignal, 5000);
    assert.equal(await simPower(), 'off');
    await waitFor('the buttons usable again', panel, (p) => !p.powerDisabled, 5000);

    // The target is off: Power needs no confirmation.
    await page.locator('#atx-power').click();
    await waitFor('the power LED on again', panel, (p) => p.powerLed === 'true', 5000);
    assert.ok(['booting', 'on'].includes(await simPower()));
    await waitFor('the picture back', panel, (p) => !p.noSignal, 5000);
    await waitFor('booted', simPower, (s) => s === 'on', 5000);
  });

  test('Reset asks first, and Cancel presses nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitFor('idle', panel, (p) => !p.powerDisabled, 5000);
    await page.locator('#atx-reset').click();
    const dialog = page.locator('#atx-confirm');
    assert.equal(await dialog.isVisible(), true, 'the confirmation is shown');
    await dialog.locator('button[value=cancel]').click();
    assert.equal(await dialog.isVisible(), false);
    assert.equal(JSON.parse((await api('api/atx')).body).busy, null, 'nothing pressed');

    await page.locator('#atx-reset').click();
    await dialog.locator('#atx-confirm-ok').click();
    await waitFor('the reset reboots the target', simPower, (s) => s === 'booting', 3000);
    await waitFor('booted', simPower, (s) => s === 'on', 5000);
  });

  test('Force off asks for the duration and holds the button that long', { timeout: TEST_TIMEOUT_MS }, async () => {
    await waitFor('idle', panel, (p) => !p.powerDisabled && p.powerLed === 'true', 5000);
    await page.locator('#atx-force-off').click();
    const dialog = page.locator('#atx-confirm');
    await dialog.locator('#atx-duration').fill('1');
    await dialog.locator('#atx-confirm-ok').click();
    await waitFor('the power LED off', panel, (p) => p.powerLed === 'false', 5000);
    assert.equal(await simPower(), 'off');
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
