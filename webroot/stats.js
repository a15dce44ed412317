// The console's statistics: one plain object, owned and updated by the video worker, mirrored
// on the page as `window.nanokvm.stats` (tests read it there).

export function createStats(mode) {
  return {
    mode, // "h264" | "mjpeg"
    connected: false,
    lastCloseCode: null,
    lastCloseReason: '',
    framesReceived: 0, // Video messages received over the WebSocket
    bytesReceived: 0, // their payload bytes
    framesDecoded: 0, // frames the decoder output and the canvas painted
    keyframesDecoded: 0,
    decoderErrors: 0,
    keyframeRequests: 0,
    width: 0,
    height: 0,
    fps: null, // decoded frames per second over the last second; null in MJPEG mode
    bitrateKbps: null, // received video kbit/s over the last second; null in MJPEG mode
    latencyMs: null, // last frame: paint time − capture time on the client clock
    decodeMs: null, // last frame: paint time − arrival time, the browser's share of latencyMs
    clockOffsetUs: null, // server clock − client clock
    rttMs: null, // round trip of the Ping sample the offset comes from
  };
}

/** Turns the running counters into per-second rates, once per `tick`. */
export class RateMeter {
  constructor(stats) {
    this.stats = stats;
    this.restart(performance.now());
  }

  restart(now) {
    this.since = now;
    this.frames = this.stats.framesDecoded;
    this.bytes = this.stats.bytesReceived;
  }

  tick(now) {
    const seconds = (now - this.since) / 1000;
    if (seconds <= 0) return;
    this.stats.fps = (this.stats.framesDecoded - this.frames) / seconds;
    this.stats.bitrateKbps = ((this.stats.bytesReceived - this.bytes) * 8) / 1000 / seconds;
    this.restart(now);
  }
}
