// Glass-to-glass latency in headless Chromium: capture on the simulated target → the frame
// painted by the real web console, logged in like a user. A measurement, not a test:
// `cargo xtask bench` runs it and puts its figures into the report; glass_to_glass.test.mjs
// only checks that it still measures something.
//
//     NANOKVMD_BIN=target/release/nanokvmd node tests/browser/glass_to_glass.mjs [--seconds N]
//
// The daemon runs with --sim-stamp: the media thread draws each picture's capture time (ms on
// the daemon's clock) into its top-left corner as it captures it. The console, opened with
// `?probe`, reads the stamp back from every decoded frame right after painting it and notes
// the paint time (webroot/video-worker.js); the clock offset comes from the console's own
// Ping/Pong exchange (webroot/clock.js). Latency = paint time − (stamp − offset).
// Prints one JSON object on the last line of stdout.

import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

import { launchChromium, logIn, startDaemon } from './daemon.mjs';

const DAEMON_ARGS = ['--sim-stamp', '--fps', '30', '--resolution', '720p'];
const WARM_UP_MS = 3000;

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1];
}

async function framesSent(daemon) {
  const response = await fetch(new URL('metrics', daemon.url), {
    headers: daemon.authHeaders,
    signal: AbortSignal.timeout(5000),
  });
  const match = /^nanokvmd_frames_sent_total\{codec="h264"\} (\d+)$/m.exec(await response.text());
  if (match === null) throw new Error('no nanokvmd_frames_sent_total{codec="h264"} in /metrics');
  return Number(match[1]);
}

/** Measures over a window of `seconds` after the warm-up; resolves with the figures. */
export async function measure(seconds = 20) {
  const WINDOW_MS = 1000 * seconds;
  const daemon = await startDaemon({ args: DAEMON_ARGS });
  let chromium = null;
  try {
    chromium = await launchChromium();
    const { context, page } = chromium;
    await logIn(page, daemon);
    await page.goto(`${daemon.url}?probe`);
    const probes = () => page.evaluate(() => window.nanokvm?.probe?.length ?? 0);
    const deadline = Date.now() + 10_000;
    while ((await probes()) < 10) {
      if (Date.now() > deadline) throw new Error('the console painted no frames with a stamp within 10 s');
      await sleep(50);
    }
    await sleep(WARM_UP_MS);

    // The window on the page's clock (the clock of paintedUs); frames count when they were
    // captured inside it, on whichever side of its edges they were painted.
    const pageNowUs = () => page.evaluate(() => (performance.timeOrigin + performance.now()) * 1000);
    const from = Math.max(0, (await probes()) - 30);
    const sent0 = await framesSent(daemon);
    const t0 = await pageNowUs();
    await sleep(WINDOW_MS);
    const sent1 = await framesSent(daemon);
    const t1 = await pageNowUs();
    // Frames still in flight at the end arrive within a few frame intervals.
    await sleep(500);
    const all = await page.evaluate((start) => window.nanokvm.probe.slice(start), from);
    const stats = await page.evaluate(() => ({ ...window.nanokvm.stats }));
    const capturedOnPage = (s) => s.captureUs - (s.offsetUs ?? 0);
    const samples = all.filter((s) => s.offsetUs !== null && capturedOnPage(s) >= t0 && capturedOnPage(s) < t1);

    const read = samples.filter((s) => s.stamp !== null);
    // A frame's stamp is its capture time in whole ms: it must match the header's capture_us.
    const mismatched = read.filter((s) => s.stamp !== Math.floor(s.captureUs / 1000) % 2 ** 32).length;
    const latencies = read.map((s) => (s.paintedUs - (s.stamp * 1000 - s.offsetUs)) / 1000).sort((a, b) => a - b);
    const distinct = new Set(read.map((s) => s.stamp)).size;
    const sent = sent1 - sent0;
    return {
      window_s: WINDOW_MS / 1000,
      frames_sent: sent,
      frames_painted: samples.length,
      stamps_read: read.length,
      stamps_unreadable: samples.length - read.length,
      stamps_mismatched: mismatched,
      distinct_stamps: distinct,
      arrived_share: sent > 0 ? Math.min(1, distinct / sent) : null,
      median_ms: percentile(latencies, 0.5),
      p95_ms: percentile(latencies, 0.95),
      max_ms: latencies.at(-1) ?? null,
      rtt_ms: stats.rttMs ?? null,
      decoder_errors: stats.decoderErrors ?? null,
      chromium: context.browser()?.version() ?? null,
    };
  } finally {
    await chromium?.close();
    await daemon.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argSeconds = process.argv.indexOf('--seconds');
  try {
    const result = await measure(argSeconds > 0 ? Number(process.argv[argSeconds + 1]) : 20);
    console.log(JSON.stringify(result));
  } catch (error) {
    console.log(JSON.stringify({ error: error.message }));
    process.exitCode = 1;
  }
}
