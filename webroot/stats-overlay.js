// The stats overlay: the worker's stats (stats.js) as a few lines of text.

export function formatStats(s) {
  const na = '–';
  const fixed = (value, digits, unit) => (value === null ? na : `${value.toFixed(digits)} ${unit}`);
  const lines = [
    ['mode', s.mode === 'h264' ? 'H.264 (WebCodecs)' : 'MJPEG'],
    ['size', s.width > 0 ? `${s.width}×${s.height}` : na],
    ['fps', fixed(s.fps, 1, '')],
    ['bitrate', fixed(s.bitrateKbps, 0, 'kbit/s')],
    ['latency', fixed(s.latencyMs, 1, 'ms')],
    ['decode', fixed(s.decodeMs, 1, 'ms')],
    ['clock', s.clockOffsetUs === null ? na : `±${(s.rttMs / 2).toFixed(2)} ms (rtt ${s.rttMs.toFixed(2)} ms)`],
    ['frames', `${s.framesReceived} received, ${s.framesDecoded} decoded`],
    ['keyframes', `${s.keyframesDecoded} decoded, ${s.keyframeRequests} requested`],
    ['errors', `${s.decoderErrors} decoder`],
  ];
  return lines.map(([name, value]) => `${name.padEnd(10)}${value}`).join('\n');
}
