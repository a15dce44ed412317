// Mapping the server's clock (µs since the daemon started, the clock of `capture_us`) onto
// this page's clock, from Ping/Pong round trips.

/** Client time in µs since the Unix epoch; the same clock on the main thread and in workers. */
export function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class ClockOffset {
  constructor(keep = 5) {
    this.keep = keep;
    this.samples = [];
  }

  /** Forget every sample: a new connection may be to a restarted daemon with a new clock. */
  reset() {
    this.samples = [];
  }

  /**
   * One Ping/Pong exchange. Assuming the Pong was stamped halfway through the round trip, the
   * offset is server − midpoint; the error is at most half the round trip, so the sample with
   * the shortest round trip among the last few is the one trusted (as NTP's clock filter does).
   */
  addSample(sentUs, serverUs, receivedUs) {
    const rttUs = receivedUs - sentUs;
    if (rttUs < 0) return;
    this.samples.push({ rttUs, offsetUs: serverUs - (sentUs + receivedUs) / 2 });
    if (this.samples.length > this.keep) this.samples.shift();
  }

  /** The best sample so far, or null before the first Pong. */
  best() {
    let best = null;
    for (const s of this.samples) if (best === null || s.rttUs < best.rttUs) best = s;
    return best;
  }

  /** Server time `serverUs` on the client clock, or null while the offset is unknown. */
  toClientUs(serverUs) {
    const best = this.best();
    return best === null ? null : serverUs - best.offsetUs;
  }
}
