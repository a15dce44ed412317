// Decodes the H.264 stream with WebCodecs and paints every frame the moment it is decoded.
// Runs in the video worker. Nothing is buffered: a frame is either decodable now or dropped
// until the next keyframe.

import { codecFromAnnexB } from './h264.js';
import { nowUs } from './clock.js';

// Constrained Baseline, level 3.1: what the daemon sends, for the (unexpected) IDR without SPS.
const FALLBACK_CODEC = 'avc1.42E01F';

// Errors with no decoded frame in between after which H.264 is given up (a browser that has
// VideoDecoder but cannot decode this stream) rather than asking for keyframes forever.
const MAX_FAILURES_IN_A_ROW = 3;

// Chunks waiting in the decoder beyond which it is falling behind the stream. Queued frames
// are latency, so the player skips to the next keyframe instead of letting the delay grow.
const MAX_DECODE_QUEUE = 3;

export class H264Player {
  /**
   * @param canvas          the OffscreenCanvas to paint on
   * @param stats           the shared stats object (see stats.js); this class updates its
   *                        decode counters, size and latency
   * @param clock           a ClockOffset, to put capture times on the client clock
   * @param requestKeyframe called with a KeyframeReason ("Gap" | "DecoderError")
   * @param onChange        called after stats changed
   * @param onUnusable      called when keyframes keep failing to decode: this browser cannot
   *                        play the stream, MJPEG should take over
   * @param onPainted       optional, measurements only: called with a clone of each painted
   *                        VideoFrame (to close) and the time it was painted
   */
  constructor({ canvas, stats, clock, requestKeyframe, onChange, onUnusable, onPainted = null }) {
    this.canvas = canvas;
    // A plain 2D context: in software-rendering Chromium, drawImage of a 720p frame measured
    // 5-8 ms here against 8-10 ms with { alpha: false } and ~11 ms through createImageBitmap
    // and a 'bitmaprenderer' context.
    this.ctx = canvas.getContext('2d');
    this.stats = stats;
    this.clock = clock;
    this.requestKeyframe = requestKeyframe;
    this.onChange = onChange;
    this.onUnusable = onUnusable;
    this.onPainted = onPainted;
    this.failuresInARow = 0;
    this.decoder = null;
    this.configKey = null; // "codec WxH" the decoder is configured for
    this.waitingForKey = true;
    this.lastSeq = null;
    // Frames in the decoder by capture time (their chunk timestamp): whether each is a
    // keyframe and when it arrived, to count keyframes and time decoding as frames come out.
    this.inDecoder = new Map();
  }

  /** One `Video` message with H.264 payload. */
  push(header, data) {
    const gap = this.lastSeq !== null && header.seq !== ((this.lastSeq + 1) >>> 0);
    this.lastSeq = header.seq;

    if (header.keyframe) {
      // A keyframe needs nothing before it, so it also ends any wait or gap.
      if (!this.configureFor(header, data)) return;
      this.waitingForKey = false;
    } else if (this.waitingForKey) {
      return;
    } else if (gap) {
      this.resync('Gap');
      return;
    } else if (this.decoder.decodeQueueSize >= MAX_DECODE_QUEUE) {
      // Skipping frames leaves the next ones without references, exactly as a gap does.
      console.warn(`H.264 decoder ${this.decoder.decodeQueueSize} frames behind, skipping to a keyframe`);
      this.resync('Gap');
      return;
    }

    this.inDecoder.set(header.capture_us, { keyframe: header.keyframe, receivedUs: nowUs() });
    try {
      this.decoder.decode(
        new EncodedVideoChunk({
          type: header.keyframe ? 'key' : 'delta',
          timestamp: header.capture_us, // comes back as VideoFrame.timestamp, for latency
          data,
        }),
      );
    } catch (error) {
      this.fail(error);
    }
  }

  /**
   * Stops decoding until the next keyframe and frees the decoder: used when the tab is hidden,
   * the connection is lost or MJPEG takes over. The last picture stays on the canvas.
   */
  stop() {
    this.closeDecoder();
    this.waitingForKey = true;
    this.lastSeq = null;
  }

  /** Makes sure a decoder is configured for this keyframe's stream; false if that failed. */
  configureFor(header, data) {
    const codec = codecFromAnnexB(data) ?? FALLBACK_CODEC;
    const key = `${codec} ${header.width}x${header.height}`;
    try {
      if (this.decoder === null) {
        const decoder = new VideoDecoder({
          output: (frame) => this.paint(frame),
          // Only the current decoder's errors count; a replaced one is already closed.
          error: (error) => decoder === this.decoder && this.fail(error),
        });
        this.decoder = decoder;
      }
      // A new size (console or settings change) or profile needs a new configuration; the
      // keyframe that announces it is the first chunk decoded under it.
      if (key !== this.configKey) {
        this.decoder.configure({
          codec,
          codedWidth: header.width,
          codedHeight: header.height,
          optimizeForLatency: true,
        });
        this.configKey = key;
      }
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  paint(frame) {
    const { displayWidth: width, displayHeight: height, timestamp: captureUs } = frame;
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.ctx.drawImage(frame, 0, 0);
    const paintedUs = nowUs();
    if (this.onPainted !== null) this.onPainted(frame.clone(), paintedUs);
    frame.close();

    this.failuresInARow = 0;
    const s = this.stats;
    s.framesDecoded += 1;
    const chunk = this.inDecoder.get(captureUs);
    if (chunk !== undefined) {
      this.inDecoder.delete(captureUs);
      if (chunk.keyframe) s.keyframesDecoded += 1;
      s.decodeMs = (paintedUs - chunk.receivedUs) / 1000;
    }
    s.width = width;
    s.height = height;
    const captureClientUs = this.clock.toClientUs(captureUs);
    if (captureClientUs !== null) s.latencyMs = (paintedUs - captureClientUs) / 1000;
    this.onChange();
  }

  /** Decoder error: the decoder is unusable; start over from a fresh keyframe. */
  fail(error) {
    this.stats.decoderErrors += 1;
    this.failuresInARow += 1;
    const message = error?.message ?? String(error);
    if (this.failuresInARow >= MAX_FAILURES_IN_A_ROW) {
      this.stop();
      this.onChange();
      this.onUnusable(message);
      return;
    }
    console.warn(`H.264 decoder error, waiting for a keyframe: ${message}`);
    this.resync('DecoderError');
  }

  /** Drops everything in flight and asks the server for a keyframe to restart from. */
  resync(reason) {
    this.closeDecoder();
    this.waitingForKey = true;
    this.stats.keyframeRequests += 1;
    this.requestKeyframe(reason);
    this.onChange();
  }

  closeDecoder() {
    if (this.decoder !== null && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.configKey = null;
    this.inDecoder.clear();
  }
}
