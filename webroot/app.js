// The console page: toolbar, settings, stats overlay and the MJPEG fallback. The WebSocket
// and the H.264 decoder live in video-worker.js, which paints straight onto the canvas.

import { AtxPanel } from './atx.js';
import { SESSION_REVOKED, checkSession, initAccount, sessionEnded } from './account.js';
import { SettingsForm, sameSettings } from './settings.js';
import { createStats } from './stats.js';
import { formatStats } from './stats-overlay.js';
import { setupInput } from './input.js';

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $('connection'),
  connectionText: $('connection-text'),
  videoInfo: $('video-info'),
  settingsButton: $('settings-button'),
  statsButton: $('stats-button'),
  fullscreenButton: $('fullscreen-button'),
  stage: $('stage'),
  canvas: $('screen'),
  noSignal: $('no-signal'),
  mjpeg: $('mjpeg'),
  statsOverlay: $('stats-overlay'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  settingsPanel: $('settings-panel'),
  settingsForm: $('settings-form'),
  settingsClose: $('settings-close'),
};

const MJPEG_URL = new URL('api/stream/mjpeg', location.href).href;
const CODEC_PREFERENCE = 'nanokvm.codec';

const h264Possible = await canDecodeH264();
let mode = h264Possible && loadCodecPreference() !== 'mjpeg' ? 'h264' : 'mjpeg';
let connected = false;
let lastDisconnect = null; // why the last connection ended, shown while reconnecting
let serverSettings = null;
let videoStatus = null;
let statsRenderQueued = false;
let noticeTimer = null;
const NOTICE_MS = 8000;

// Kept up to date from the worker; tests read it as window.nanokvm.stats.
const stats = createStats(mode);
window.nanokvm = { stats };

const settingsForm = new SettingsForm(ui.settingsForm, applySettings);
const atx = new AtxPanel(document, (action) => worker.postMessage({ type: 'atx', action }), showNotice);
settingsForm.allowH264(h264Possible);
settingsForm.showCodec(mode);

// The canvas is handed to the worker once and for all; without WebCodecs it stays unused.
const offscreen = h264Possible ? ui.canvas.transferControlToOffscreen() : null;
const worker = new Worker(new URL('video-worker.js', import.meta.url), { type: 'module' });
worker.onmessage = ({ data: msg }) => onWorkerMessage(msg);
worker.onerror = (event) => showNotice(`The video worker failed: ${event.message}`);
// `?probe`: the glass-to-glass measurement (tests/browser/glass_to_glass.mjs) collects each
// painted frame's capture stamp in window.nanokvm.probe.
const probe = new URLSearchParams(location.search).has('probe');
if (probe) window.nanokvm.probe = [];
worker.postMessage(
  { type: 'start', url: webSocketUrl(), canvas: offscreen, visible: !document.hidden, mode, probe },
  offscreen === null ? [] : [offscreen],
);
showMode();

// Keyboard and mouse go out through the worker's WebSocket.
const input = setupInput({
  stage: ui.stage,
  pictureSize,
  send: (msg) => worker.postMessage({ type: 'input', msg }),
  notice: showNotice,
});

/** The size of the picture shown now, for mapping pointer positions onto it. */
function pictureSize() {
  if (mode === 'mjpeg' && ui.mjpeg.naturalWidth > 0) {
    return { width: ui.mjpeg.naturalWidth, height: ui.mjpeg.naturalHeight };
  }
  if (stats.width > 0 && stats.height > 0) return { width: stats.width, height: stats.height };
  return videoStatus === null ? null : { width: videoStatus.width, height: videoStatus.height };
}

document.addEventListener('visibilitychange', () => {
  worker.postMessage({ type: 'visibility', visible: !document.hidden });
  updateMjpeg();
});

function onWorkerMessage(msg) {
  switch (msg.type) {
    case 'stats':
      Object.assign(stats, msg.stats);
      scheduleStatsRender();
      break;
    case 'connection':
      showConnection(msg);
      break;
    case 'settings':
      serverSettings = msg.settings;
      settingsForm.showSettings(msg.settings);
      settingsForm.showEffective(videoStatus, serverSettings);
      break;
    case 'videoStatus':
      videoStatus = msg.status;
      showVideoInfo();
      settingsForm.showEffective(videoStatus, serverSettings);
      break;
    case 'atx':
      atx.showState(msg.state);
      break;
    case 'atxDone':
      atx.showDone(msg.done);
      break;
    case 'serverError':
      // A daemon without H.264 for its source says so when video is asked for: MJPEG it is.
      if (msg.code === 'CodecUnavailable') {
        showNotice(`No H.264 from this server: ${msg.message}. Showing MJPEG instead.`);
        setMode('mjpeg');
        break;
      }
      showNotice(`Server: ${msg.message} (${msg.code})`);
      // A refused change leaves the settings as they were; the form says so.
      if (msg.code === 'InvalidSettings' && serverSettings !== null) settingsForm.showSettings(serverSettings);
      break;
    case 'hidStatus':
      input.onHidStatus(msg.status);
      break;
    case 'pasteDone':
      input.onPasteDone(msg);
      break;
    case 'probe':
      window.nanokvm.probe?.push(msg);
      break;
    case 'h264Unusable':
      showNotice(`This browser cannot decode the H.264 stream (${msg.message}); showing MJPEG instead.`);
      setMode('mjpeg');
      break;
    default:
      throw new Error(`unknown message from the video worker: ${msg.type}`);
  }
}

// ---- connection and video info ------------------------------------------------------------

const CLOSE_CODES = {
  1000: 'closed',
  1001: 'server going away',
  1005: 'closed without a status code',
  1006: 'connection lost',
  1011: 'server error',
};

function showConnection({ state, code, reason, retryMs }) {
  // A revoked or expired session ends on the login page; a refused reconnect (the socket
  // closes before opening) may mean the same, which the API says.
  if (state === 'disconnected' && code === SESSION_REVOKED) sessionEnded();
  else if (state === 'disconnected') checkSession();
  ui.connection.dataset.state = state;
  const wasConnected = connected;
  connected = state === 'connected';
  if (state === 'connecting') {
    ui.connectionText.textContent = lastDisconnect === null ? 'connecting…' : `reconnecting… (${lastDisconnect})`;
  } else if (state === 'connected') {
    lastDisconnect = null;
    ui.connectionText.textContent = 'connected';
  } else {
    lastDisconnect = reason || CLOSE_CODES[code] || `closed with code ${code}`;
    input.onDisconnect();
    ui.connectionText.textContent = `disconnected: ${lastDisconnect} — retrying in ${formatSeconds(retryMs)}`;
    // The size and rate shown belong to a stream that is gone.
    videoStatus = null;
    ui.videoInfo.textContent = '';
    ui.noSignal.hidden = true;
  }
  ui.connection.title = ui.connectionText.textContent;
  atx.setConnected(connected);
  // A daemon that went away took the MJPEG stream with it: open a new one.
  if (connected && !wasConnected) restartMjpeg();
}

function formatSeconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

function showVideoInfo() {
  if (videoStatus === null) return;
  const { signal, width, height, fps } = videoStatus;
  ui.videoInfo.textContent = signal ? `${width}×${height} · ${fps} fps` : 'no signal';
  ui.noSignal.hidden = signal;
}

// ---- codec choice and MJPEG ---------------------------------------------------------------

async function canDecodeH264() {
  if (typeof VideoDecoder === 'undefined' || typeof ui.canvas.transferControlToOffscreen !== 'function') {
    return false;
  }
  try {
    const { supported } = await VideoDecoder.isConfigSupported({ codec: 'avc1.42E01F', optimizeForLatency: true });
    return supported;
  } catch {
    return false;
  }
}

function setMode(newMode) {
  if (newMode === mode) return;
  mode = newMode;
  worker.postMessage({ type: 'mode', mode });
  settingsForm.showCodec(mode);
  showMode();
}

function showMode() {
  ui.canvas.hidden = mode !== 'h264';
  ui.mjpeg.hidden = mode !== 'mjpeg';
  updateMjpeg();
}

/** The MJPEG stream runs only while it is shown: in MJPEG mode, visible, connected. */
function updateMjpeg() {
  const wanted = mode === 'mjpeg' && !document.hidden && connected;
  const streaming = ui.mjpeg.hasAttribute('src');
  if (wanted && !streaming) ui.mjpeg.src = MJPEG_URL;
  else if (!wanted && streaming) ui.mjpeg.removeAttribute('src');
}

function restartMjpeg() {
  ui.mjpeg.removeAttribute('src');
  updateMjpeg();
}

initAccount();

ui.mjpeg.addEventListener('error', () => {
  checkSession();
  if (ui.mjpeg.hasAttribute('src') && connected) showNotice('The MJPEG stream is not available.');
});

function loadCodecPreference() {
  try {
    return localStorage.getItem(CODEC_PREFERENCE);
  } catch {
    return null; // storage disabled: no preference
  }
}

function saveCodecPreference(codec) {
  try {
    localStorage.setItem(CODEC_PREFERENCE, codec);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

// ---- settings panel -----------------------------------------------------------------------

function applySettings({ codec, settings }) {
  if (codec !== mode) {
    saveCodecPreference(codec);
    setMode(codec);
  }
  // Settings are shared by every viewer and a change may cost them a keyframe: send only
  // real changes.
  if (!sameSettings(settings, serverSettings)) {
    if (!connected) showNotice('Not connected: the stream settings were not sent.');
    worker.postMessage({ type: 'settings', settings });
  }
}

function toggleSettings(open = ui.settingsPanel.hidden) {
  ui.settingsPanel.hidden = !open;
  ui.settingsButton.setAttribute('aria-expanded', String(open));
  if (open && serverSettings !== null) settingsForm.showSettings(serverSettings);
}

ui.settingsButton.addEventListener('click', () => toggleSettings());
ui.settingsClose.addEventListener('click', () => toggleSettings(false));

// ---- stats overlay ------------------------------------------------------------------------

/** Renders at most once per display frame, however often the worker reports. */
function scheduleStatsRender() {
  if (ui.statsOverlay.hidden || statsRenderQueued) return;
  statsRenderQueued = true;
  requestAnimationFrame(() => {
    statsRenderQueued = false;
    ui.statsOverlay.textContent = formatStats(stats);
  });
}

ui.statsButton.addEventListener('click', () => {
  const show = ui.statsOverlay.hidden;
  ui.statsOverlay.hidden = !show;
  ui.statsButton.setAttribute('aria-pressed', String(show));
  scheduleStatsRender();
});

// ---- fullscreen ---------------------------------------------------------------------------

ui.fullscreenButton.disabled = !document.fullscreenEnabled;
ui.fullscreenButton.addEventListener('click', () => {
  const request = document.fullscreenElement ? document.exitFullscreen() : ui.stage.requestFullscreen();
  request.catch((error) => showNotice(`Fullscreen: ${error.message}`));
});
document.addEventListener('fullscreenchange', () => {
  ui.fullscreenButton.textContent = document.fullscreenElement ? 'Exit fullscreen' : 'Fullscreen';
});

// ---- notices ------------------------------------------------------------------------------

function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, NOTICE_MS);
}

function hideNotice() {
  ui.notice.hidden = true;
}

ui.noticeClose.addEventListener('click', hideNotice);

function webSocketUrl() {
  const url = new URL('api/ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
