// The video worker: owns the WebSocket to /api/ws and the H.264 decoder, paints onto the
// page's canvas (transferred here as an OffscreenCanvas), so that decoding and painting never
// wait for the page's main thread.
//
// Page → worker messages:
//   { type: 'start', url, canvas, visible, mode, probe }   once; canvas is null when MJPEG is
//                                                   forced; probe: report each painted frame's
//                                                   capture stamp (glass-to-glass measurement)
//   { type: 'visibility', visible }                 the page was hidden or shown
//   { type: 'mode', mode }                          "h264" | "mjpeg", the user's codec choice
//   { type: 'settings', settings }                  send SetStreamSettings
//   { type: 'atx', action }                         send Atx(action): press a front-panel button
//   { type: 'input', msg }                          send a keyboard/mouse/paste ClientMsg
// Worker → page messages:
//   { type: 'stats', stats }                        the whole stats object (stats.js)
//   { type: 'connection', state, code, reason, retryMs }   "connecting" | "connected" | "disconnected"
//   { type: 'settings', settings }                  the server's StreamSettings (Hello or Settings)
//   { type: 'videoStatus', status }                 VideoStatus
//   { type: 'serverError', code, message }          an Error message from the server
//   { type: 'atx', state }                          AtxState: LEDs and the press in progress
//   { type: 'atxDone', done }                       AtxDone: a press this console asked for ended
//   { type: 'h264Unusable', message }               decoding keeps failing; fall back to MJPEG
//   { type: 'hidStatus', status }                   HidStatus: HID links and the target's LEDs
//   { type: 'pasteDone', typed, unknown }           a paste finished
//   { type: 'probe', stamp, captureUs, paintedUs, offsetUs }   with probe only: one painted frame

import { decodeServerMsg, encodeClientMsg, PROTOCOL_VERSION } from './protocol.js';
import { ClockOffset, nowUs } from './clock.js';
import { H264Player } from './h264-player.js';
import { createStats, RateMeter } from './stats.js';
import { CELL_H, STAMP_WIDTH, lumaOfRgba, readStamp } from './stamp.js';

const PING_INTERVAL_MS = 2000;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
// The WebSocket API refuses close reasons over 123 bytes.
const MAX_CLOSE_REASON = 123;

let url = null;
let pageVisible = true;
let stats = null;
let rates = null;
let player = null;
let lastStatus = null;
const clock = new ClockOffset();

let socket = null;
let backoffMs = BACKOFF_MIN_MS;
let pingTimer = null;
// What this side said when it closed the socket; the close event only carries the server's echo.
let ownCloseReason = null;
// The visibility the server last heard from us, to tell it only about changes.
let announcedVisible = null;

self.onmessage = ({ data: msg }) => {
  switch (msg.type) {
    case 'start':
      start(msg);
      break;
    case 'visibility':
      pageVisible = msg.visible;
      videoWantChanged();
      break;
    case 'mode':
      stats.mode = msg.mode;
      rates.restart(performance.now());
      videoWantChanged();
      if (!wantsVideo() && lastStatus !== null) showAnnouncedSize();
      break;
    case 'settings':
      send({ SetStreamSettings: msg.settings });
      break;
    case 'atx':
      send({ Atx: msg.action });
      break;
    case 'input':
      // Input while disconnected is dropped: what was held is released by the server.
      send(msg.msg);
      break;
    default:
      throw new Error(`video worker: unknown message ${msg.type}`);
  }
};

function start({ url: wsUrl, canvas, visible, mode, probe = false }) {
  url = wsUrl;
  pageVisible = visible;
  stats = createStats(mode);
  rates = new RateMeter(stats);
  if (canvas !== null) {
    player = new H264Player({
      canvas,
      stats,
      clock,
      requestKeyframe: (reason) => send({ RequestKeyframe: { reason } }),
      onChange: statsChanged,
      onUnusable: (message) => postMessage({ type: 'h264Unusable', message }),
      onPainted: probe ? reportStamp : null,
    });
  }
  setInterval(tickRates, 1000);
  statsChanged();
  connect();
}

/** Video is wanted only by a visible page that shows H.264; MJPEG comes over plain HTTP. */
function wantsVideo() {
  return pageVisible && stats.mode === 'h264' && player !== null;
}

function videoWantChanged() {
  const visible = wantsVideo();
  // Frames still in flight after this are dropped; the server sends an IDR when we want
  // video again, which is where decoding restarts.
  if (!visible) player?.stop();
  if (socket?.readyState === WebSocket.OPEN && visible !== announcedVisible) {
    send({ Visibility: { visible } });
    announcedVisible = visible;
  }
  statsChanged();
}

// ---- the connection -----------------------------------------------------------------------

function connect() {
  ownCloseReason = null;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  postMessage({ type: 'connection', state: 'connecting' });

  ws.onopen = () => {
    announcedVisible = wantsVideo();
    send({ Hello: { version: PROTOCOL_VERSION, visible: announcedVisible } });
    ping();
    pingTimer = setInterval(ping, PING_INTERVAL_MS);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') {
      closeWith(1003, 'text message from the server');
      return;
    }
    let msg;
    try {
      msg = decodeServerMsg(event.data);
    } catch (error) {
      closeWith(1007, `undecodable message from the server: ${error.message}`);
      return;
    }
    onServerMsg(msg);
  };
  // An error is always followed by a close event, which is where it is handled.
  ws.onerror = () => {};
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pingTimer);
    player?.stop();
    clock.reset();
    Object.assign(stats, {
      connected: false,
      lastCloseCode: event.code,
      lastCloseReason: ownCloseReason ?? event.reason,
      clockOffsetUs: null,
      rttMs: null,
    });
    statsChanged();
    const retryMs = backoffMs;
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    postMessage({
      type: 'connection',
      state: 'disconnected',
      code: stats.lastCloseCode,
      reason: stats.lastCloseReason,
      retryMs,
    });
    setTimeout(connect, retryMs);
  };
}

function closeWith(code, reason) {
  ownCloseReason = reason;
  let short = reason;
  const encoder = new TextEncoder();
  while (encoder.encode(short).length > MAX_CLOSE_REASON) short = short.slice(0, -1);
  socket?.close(code, short);
}

function send(msg) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(encodeClientMsg(msg));
}

function ping() {
  send({ Ping: { client_time_us: nowUs() } });
}

function onServerMsg(msg) {
  const [kind, body] = Object.entries(msg)[0];
  switch (kind) {
    case 'Video':
      stats.framesReceived += 1;
      stats.bytesReceived += body.data.length;
      // This console takes only H.264 over the WebSocket; MJPEG comes over HTTP.
      if (body.header.codec === 'H264' && wantsVideo()) player.push(body.header, body.data);
      statsChanged();
      break;
    case 'Hello':
      if (body.version !== PROTOCOL_VERSION) {
        closeWith(1008, `the server speaks protocol version ${body.version}, this console ${PROTOCOL_VERSION}`);
        return;
      }
      backoffMs = BACKOFF_MIN_MS;
      stats.connected = true;
      statsChanged();
      postMessage({ type: 'connection', state: 'connected' });
      postMessage({ type: 'settings', settings: body.settings });
      break;
    case 'Pong': {
      clock.addSample(body.client_time_us, body.server_time_us, nowUs());
      const best = clock.best();
      if (best !== null) {
        stats.clockOffsetUs = Math.round(best.offsetUs);
        stats.rttMs = best.rttUs / 1000;
        statsChanged();
      }
      break;
    }
    case 'VideoStatus':
      lastStatus = body;
      if (!wantsVideo()) showAnnouncedSize();
      postMessage({ type: 'videoStatus', status: body });
      break;
    case 'Settings':
      postMessage({ type: 'settings', settings: body });
      break;
    case 'Error':
      postMessage({ type: 'serverError', code: body.code, message: body.message });
      break;
    case 'Atx':
      postMessage({ type: 'atx', state: body });
      break;
    case 'AtxDone':
      postMessage({ type: 'atxDone', done: body });
      break;
    case 'HidStatus':
      postMessage({ type: 'hidStatus', status: body });
      break;
    case 'PasteDone':
      postMessage({ type: 'pasteDone', typed: body.typed, unknown: body.unknown });
      break;
    default:
      // decodeServerMsg returns only the variants above.
      throw new Error(`unhandled server message ${kind}`);
  }
}

// ---- glass-to-glass probe ------------------------------------------------------------------

let stampCanvas = null;

/** Reads the capture stamp of a painted frame (after painting, so the picture is not delayed). */
async function reportStamp(frame, paintedUs) {
  const offsetUs = clock.best()?.offsetUs ?? null;
  const captureUs = frame.timestamp;
  let stamp = null;
  try {
    stamp = await readFrameStamp(frame);
  } catch (error) {
    console.warn(`probe: cannot read the stamp: ${error.message}`);
  } finally {
    frame.close();
  }
  postMessage({ type: 'probe', stamp, captureUs, paintedUs, offsetUs });
}

async function readFrameStamp(frame) {
  const rect = { x: 0, y: 0, width: STAMP_WIDTH, height: CELL_H };
  if (frame.format === 'I420' || frame.format === 'NV12' || frame.format === 'I420A') {
    const buffer = new Uint8Array(frame.allocationSize({ rect }));
    const [luma] = await frame.copyTo(buffer, { rect });
    return readStamp(buffer.subarray(luma.offset), luma.stride);
  }
  // A frame the decoder keeps in another format: read it back through a small canvas.
  stampCanvas ??= new OffscreenCanvas(STAMP_WIDTH, CELL_H).getContext('2d', { willReadFrequently: true });
  stampCanvas.drawImage(frame, 0, 0);
  const { data } = stampCanvas.getImageData(0, 0, STAMP_WIDTH, CELL_H);
  return readStamp(lumaOfRgba(data), STAMP_WIDTH);
}

// ---- stats --------------------------------------------------------------------------------

/** Without decoded frames to measure (MJPEG, hidden), the announced size is the best there is. */
function showAnnouncedSize() {
  stats.width = lastStatus.width;
  stats.height = lastStatus.height;
  statsChanged();
}

function tickRates() {
  if (stats.mode === 'h264') {
    rates.tick(performance.now());
  } else {
    stats.fps = null;
    stats.bitrateKbps = null;
  }
  statsChanged();
}

let statsQueued = false;

/** Posts the stats once per task however many things changed in it. */
function statsChanged() {
  if (statsQueued) return;
  statsQueued = true;
  queueMicrotask(() => {
    statsQueued = false;
    postMessage({ type: 'stats', stats });
  });
}
