// The daemon and the Chromium for the browser tests. The daemon is started with a fresh data
// directory, with a user (and an API token for requests from the test itself) made through the
// real CLI, and a helper logs a page in. Every browser test starts its daemon through here.
//
// Needs the daemon binary: NANOKVMD_BIN, or CARGO_TARGET_DIR/debug/nanokvmd, or
// target/debug/nanokvmd (`cargo build -p nanokvmd`; `cargo xtask e2e` builds it first).

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const WORKSPACE = fileURLToPath(new URL('../../', import.meta.url));
export const DAEMON =
  process.env.NANOKVMD_BIN ??
  join(resolve(WORKSPACE, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'nanokvmd');
export const USER = 'browser';
export const PASSWORD = 'browser password 1';
const DAEMON_START_MS = 20_000;
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Headless Chromium with a fresh profile. Resolves with its context, its first page and
 * `close()`, which also removes the profile.
 */
export async function launchChromium() {
  const profileDir = await mkdtemp(join(tmpdir(), 'nanokvm-chromium-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close().catch(() => {});
    await rm(profileDir, { recursive: true, force: true });
  };
  return { context, page, close };
}

/** Runs a `nanokvmd` account command; returns its stdout. */
export function nanokvmd(args, input = '') {
  return execFileSync(DAEMON, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * Starts the daemon (sim backend, free port) and resolves once it prints its listening line.
 * With `provision` (the default) the data directory holds USER/PASSWORD and a token
 * (`daemon.authHeaders` for fetch from the test); without, the daemon waits for setup and
 * `daemon.setupUrl()` resolves with the link it prints.
 */
export async function startDaemon({ provision = true, args = [] } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'nanokvm-browser-data-'));
  let token = null;
  if (provision) {
    nanokvmd(['user', 'add', USER, '--password-stdin', '--data-dir', dataDir], `${PASSWORD}\n`);
    token = nanokvmd(['token', 'new', 'browser-tests', '--data-dir', dataDir]).trim();
  }
  const child = spawn(DAEMON, ['--listen', '127.0.0.1:0', '--backend', 'sim', '--data-dir', dataDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8192); // the tail is what explains a failure
  });
  let setupLink = null;
  const daemon = {
    child,
    dataDir,
    token,
    authHeaders: token === null ? {} : { authorization: `Bearer ${token}` },
    stderr: () => stderr,
    exited: new Promise((resolve) => child.once('exit', resolve)),
    async setupUrl() {
      const deadline = Date.now() + 5000;
      while (setupLink === null && Date.now() < deadline) await sleep(20);
      if (setupLink === null) throw new Error('the daemon printed no setup link');
      return setupLink;
    },
    stop: () => stopDaemon(daemon),
  };

  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      // Anything the daemon started could hold the pipes open and keep this process alive.
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new Error(`${why}\n--- nanokvmd stderr ---\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`nanokvmd printed no listening line in ${DAEMON_START_MS} ms`), DAEMON_START_MS);
    child.once('error', (error) => fail(`cannot run ${DAEMON}: ${error.message}`));
    const early = (code, signal) => fail(`nanokvmd exited before listening (code ${code}, signal ${signal})`);
    child.once('exit', early);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const setup = /(https?:\/\/\S+\/setup\.html#code=\w+)/.exec(line);
      if (setup) setupLink = setup[1];
      const match = /^nanokvmd listening on (https?:\/\/\S+)$/.exec(line);
      if (match) {
        clearTimeout(timer);
        child.off('exit', early);
        resolve({ ...daemon, url: match[1] });
      }
    });
  });
}

export async function stopDaemon(daemon) {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) {
    daemon.child.kill('SIGTERM');
    const stopped = await Promise.race([daemon.exited.then(() => true), sleep(3000).then(() => false)]);
    if (!stopped) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
  }
  await rm(daemon.dataDir, { recursive: true, force: true });
}

/**
 * Polls `read()` until `accept` takes its value; on timeout, fails saying what was last read.
 * Polled from here with evaluate rather than with waitForFunction, which evals its predicate
 * in the page and so needs the 'unsafe-eval' that the console's CSP rightly refuses.
 */
export async function waitFor(what, read, accept, timeout) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not within ${timeout} ms; last seen: ${JSON.stringify(value)}`);
    }
    await sleep(25);
  }
}

/** The path the page shows now. */
export const pathOf = (page) => new URL(page.url()).pathname;

/** Logs `page` in through the login page and waits until the console page is open. */
export async function logIn(page, daemon, { user = USER, password = PASSWORD } = {}) {
  await page.goto(new URL('login.html', daemon.url).href);
  await page.locator('#login-form [name=username]').fill(user);
  await page.locator('#login-form [name=password]').fill(password);
  await page.locator('#login-form button[type=submit]').click();
  await waitFor('the console page after logging in', () => pathOf(page), (p) => p === '/', 10_000);
  await page.waitForLoadState('domcontentloaded');
}
