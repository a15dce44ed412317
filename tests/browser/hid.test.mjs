// Keyboard and mouse from the web console in headless Chromium, checked on the simulated
// target: what is typed on the console page appears in the target's console text.
//
// Needs the daemon binary (NANOKVMD_BIN, or target/debug/nanokvmd) and Chromium at
// /usr/bin/chromium (CHROMIUM_BIN). Every wait is bounded.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, logIn, startDaemon, stopDaemon, waitFor } from './daemon.mjs';

describe('keyboard and mouse from the console', { timeout: 90_000 }, () => {
  let daemon = null;
  let browser = null;
  let context = null;
  let page = null;
  const errors = [];

  /** Opens the console page; the one place this file does so. */
  async function openConsole() {
    const p = context.pages()[0] ?? (await context.newPage());
    p.setDefaultTimeout(10_000);
    p.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    p.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
    await logIn(p, daemon);
    return p;
  }

  before(async () => {
    daemon = await startDaemon();
    browser = await launchChromium();
    context = browser.context;
    page = await openConsole();
  });

  after(async () => {
    await browser?.close();
    if (daemon !== null) await stopDaemon(daemon);
  });

  const targetState = async () => {
    const r = await fetch(new URL('api/sim/state', daemon.url), {
      headers: daemon.authHeaders,
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(r.status, 200);
    return r.json();
  };

  const stats = () => page.evaluate(() => ({ ...window.nanokvm?.stats }));

  /**
   * Types `text` the way a person does on a US keyboard: physical keys, with Shift held for
   * capitals and symbols (page.keyboard.type would send the characters without Shift).
   */
  async function typeLikeAPerson(text) {
    const shifted = { '!': 'Digit1', '@': 'Digit2', '#': 'Digit3' };
    const plain = { ' ': 'Space', ',': 'Comma', '.': 'Period' };
    for (const ch of text) {
      let key;
      if (/[a-z]/.test(ch)) key = `Key${ch.toUpperCase()}`;
      else if (/[A-Z]/.test(ch)) key = `Shift+Key${ch}`;
      else if (/[0-9]/.test(ch)) key = `Digit${ch}`;
      else if (ch in shifted) key = `Shift+${shifted[ch]}`;
      else if (ch in plain) key = plain[ch];
      else throw new Error(`no key for ${ch}`);
      await page.keyboard.press(key, { delay: 5 });
    }
  }

  test('typing on the console appears on the target', { timeout: 30_000 }, async () => {
    await waitFor('a decoded frame', stats, (s) => s.framesDecoded >= 1, 10_000);
    await page.locator('#stage').click();
    await typeLikeAPerson('Hello, World! 123 @#');
    const s = await waitFor('the text on the target', targetState, (t) => t.text.endsWith('Hello, World! 123 @#'), 10_000);
    assert.ok(s.text.endsWith('login: Hello, World! 123 @#'), s.text);
    assert.deepEqual(s.keys_held, []);
    // Enter and Backspace are keys too.
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Enter');
    await typeLikeAPerson('ok');
    await waitFor('backspace, a new line, more text', targetState, (t) => t.text.endsWith('123 @\nok'), 5000);
  });

  test('a click lands where it was made on the picture', { timeout: 30_000 }, async () => {
    const box = await page.locator('#stage').boundingBox();
    const size = await stats();
    // Where the 16:9 picture is drawn inside the stage (letterboxed).
    const scale = Math.min(box.width / size.width, box.height / size.height);
    const left = box.x + (box.width - size.width * scale) / 2;
    const top = box.y + (box.height - size.height * scale) / 2;
    await page.mouse.click(left + size.width * scale * 0.25, top + size.height * scale * 0.75);
    // The move, the press and the release arrive one after the other: wait for the last.
    const near = (t) => Math.abs(t.pointer.x - 8192) < 200 && Math.abs(t.pointer.y - 24576) < 200;
    await waitFor('the pointer at 1/4, 3/4, released', targetState, (t) => near(t) && t.pointer.buttons === 0, 5000);
  });

  test('Caps Lock lights the LED shown in the toolbar', { timeout: 30_000 }, async () => {
    await page.locator('#stage').focus();
    await page.keyboard.press('CapsLock');
    const caps = () => page.evaluate(() => document.querySelector('[data-led="caps_lock"]').dataset.on);
    await waitFor('the Caps Lock LED on', caps, (on) => on === 'true', 5000);
    await page.keyboard.press('CapsLock');
    await waitFor('the Caps Lock LED off', caps, (on) => on === 'false', 5000);
  });

  test('the shortcut menu sends Ctrl+Alt+F2 and the paste dialog types text', { timeout: 30_000 }, async () => {
    await page.locator('#keys-button').click();
    await page.locator('#keys-menu button', { hasText: 'Ctrl+Alt+F2' }).click();
    await waitFor('console 2', targetState, (t) => t.console === 2, 5000);
    await page.locator('#paste-button').click();
    await page.locator('#paste-dialog textarea').fill('pasted: ok');
    await page.locator('#paste-dialog button[type=submit]').click();
    await waitFor('the pasted text', targetState, (t) => t.text.endsWith('pasted: ok'), 10_000);
    const notice = () => page.evaluate(() => document.getElementById('notice-text').textContent);
    await waitFor('the paste reported', notice, (n) => n === 'Pasted 10 characters.', 5000);
    await page.locator('#keys-button').click();
    await page.locator('#keys-menu button', { hasText: 'Ctrl+Alt+F1' }).click();
    await waitFor('console 1', targetState, (t) => t.console === 1, 5000);
  });

  test('the page logged no errors', () => {
    assert.deepEqual(errors, []);
  });
});
