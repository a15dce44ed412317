// Shared by the browser tests: the daemon under test and the Chromium to drive it.
//
// Needs the daemon binary (NANOKVMD_BIN, or target/debug/nanokvmd: `cargo build -p nanokvmd`)
// and Chromium at /usr/bin/chromium (CHROMIUM_BIN to override). Every wait is bounded.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const DAEMON = process.env.NANOKVMD_BIN ?? fileURLToPath(new URL('../../target/debug/nanokvmd', import.meta.url));
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
const DAEMON_START_MS = 20_000;

/** Starts the daemon and resolves with it and its URL once it prints its listening line. */
export function startDaemon() {
  const child = spawn(DAEMON, ['--listen', '127.0.0.1:0', '--backend', 'sim'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8192); // the tail is what explains a failure
  });
  const daemon = { child, stderr: () => stderr, exited: new Promise((resolve) => child.once('exit', resolve)) };

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
    child.once('exit', (code, signal) => fail(`nanokvmd exited before listening (code ${code}, signal ${signal})`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^nanokvmd listening on (http:\/\/\S+)$/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve({ ...daemon, url: match[1] });
      }
    });
  });
}

export async function stopDaemon(daemon) {
  if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill('SIGTERM');
  const stopped = await Promise.race([daemon.exited.then(() => true), sleep(3000).then(() => false)]);
  if (!stopped) {
    daemon.child.kill('SIGKILL');
    await daemon.exited;
  }
}

/**
 * Polls `read()` until `accept` takes its value; on timeout, fails saying what was last read.
 * Polled from here rather than with waitForFunction, which evals its predicate in the page
 * and so needs the 'unsafe-eval' that the console's CSP rightly refuses.
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

/** Headless Chromium with a fresh profile; `close()` ends it and removes the profile. */
export async function launchChromium() {
  const profileDir = await mkdtemp(join(tmpdir(), 'nanokvm-chromium-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profileDir, { recursive: true, force: true });
    },
  };
}
