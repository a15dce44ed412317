// Accounts in the browser: the first admin is created with the printed setup link, the
// console opens, logout leads back to the login page, a wrong password is refused there, and
// a session ended from elsewhere (password changed with the CLI) sends the open console back
// to the login page instead of leaving it stuck.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { nanokvmd, pathOf, startDaemon, waitFor } from './daemon.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const TEST_TIMEOUT_MS = 30_000;
const ADMIN = 'admin';
const ADMIN_PASSWORD = 'the first password';

describe('accounts in the console', { timeout: 120_000 }, () => {
  let daemon = null;
  let profileDir = null;
  let context = null;
  let page = null;
  const pageErrors = [];

  before(async () => {
    daemon = await startDaemon({ provision: false });
    profileDir = await mkdtemp(join(tmpdir(), 'nanokvm-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      timeout: 30_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (error) => pageErrors.push(error.message));
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (daemon !== null) await daemon.stop();
    if (profileDir !== null) await rm(profileDir, { recursive: true, force: true });
  });

  const connected = () => page.evaluate(() => window.nanokvm?.stats?.connected === true).catch(() => false);

  test('the console sends a visitor without an account to setup', { timeout: TEST_TIMEOUT_MS }, async () => {
    await page.goto(daemon.url);
    assert.equal(pathOf(page), '/setup.html');
  });

  test('setup with the printed code creates the admin and opens the console', { timeout: TEST_TIMEOUT_MS }, async () => {
    await page.goto(await daemon.setupUrl());
    const form = page.locator('#setup-form');
    assert.match(await form.locator('[name=code]').inputValue(), /^[0-9a-f]{32}$/, 'the code comes from the link');
    assert.equal(new URL(page.url()).hash, '', 'the code is removed from the address bar');
    await form.locator('[name=username]').fill(ADMIN);
    await form.locator('[name=password]').fill(ADMIN_PASSWORD);
    await form.locator('[name=repeat]').fill(ADMIN_PASSWORD);
    await form.locator('button[type=submit]').click();
    await waitFor('the console page', () => pathOf(page), (p) => p === '/', 10_000);
    await waitFor('the console connected', connected, (c) => c, 10_000);
  });

  test('logout leads to the login page and the console stays closed', { timeout: TEST_TIMEOUT_MS }, async () => {
    await page.locator('#account-button').click();
    await waitFor('the user shown', () => page.locator('#account-user').textContent(), (t) => t.includes(ADMIN), 5000);
    await page.locator('#logout-button').click();
    await waitFor('the login page', () => pathOf(page), (p) => p === '/login.html', 10_000);
    await page.goto(daemon.url);
    assert.equal(pathOf(page), '/login.html', 'the console needs a login again');
  });

  test('a wrong password is refused on the login page', { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = page.locator('#login-form');
    await form.locator('[name=username]').fill(ADMIN);
    await form.locator('[name=password]').fill('not the password');
    await form.locator('button[type=submit]').click();
    const error = page.locator('#login-error');
    await waitFor('the error shown', () => error.isVisible(), (v) => v, 10_000);
    assert.match(await error.textContent(), /wrong/i);
    assert.equal(pathOf(page), '/login.html');
  });

  test('login opens the console; a session ended elsewhere returns it to the login page', { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = page.locator('#login-form');
    await form.locator('[name=username]').fill(ADMIN);
    await form.locator('[name=password]').fill(ADMIN_PASSWORD);
    await form.locator('button[type=submit]').click();
    await waitFor('the console page', () => pathOf(page), (p) => p === '/', 10_000);
    await waitFor('the console connected', connected, (c) => c, 10_000);

    // The admin's password is changed from the command line: every session of theirs ends,
    // and the open console (its WebSocket closed with 4401) goes to the login page.
    nanokvmd(['user', 'passwd', ADMIN, '--password-stdin', '--data-dir', daemon.dataDir], 'another password 2\n');
    await waitFor('the login page after the session ended', () => pathOf(page), (p) => p === '/login.html', 10_000);
  });

  test('the pages threw no errors', () => {
    // The video worker does not know the HID and front-panel messages yet (their console
    // parts land with the hid and atx work); anything else is an error of these pages.
    const ours = pageErrors.filter((e) => !/^unhandled server message (HidStatus|Atx)$/.test(e));
    assert.deepEqual(ours, []);
  });
});
