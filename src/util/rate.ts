/**
 * A rate over the last few seconds of a growing total (bytes uploaded): samples as the total
 * grows, and the rate is what grew within the window divided by the time from its oldest
 * sample to now, so it falls to zero once nothing moves.
 */
export class RateMeter {
  private readonly samples: { atMs: number; total: number }[] = [];

  constructor(private readonly windowMs = 5000) {}

  /** The total is now `total`. */
  note(total: number, nowMs = performance.now()): void {
    this.samples.push({ atMs: nowMs, total });
    this.prune(nowMs);
  }

  /** Units per second over the window (0 without two samples in it). */
  perSecond(nowMs = performance.now()): number {
    this.prune(nowMs);
    if (this.samples.length < 2) return 0;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (nowMs - first.atMs) / 1000;
    return seconds > 0 ? (last.total - first.total) / seconds : 0;
  }

  private prune(nowMs: number): void {
    // Keeps one sample from before the window, so the window's growth counts from it.
    while (this.samples.length > 2 && this.samples[1].atMs < nowMs - this.windowMs) this.samples.shift();
    if (this.samples.length > 0 && this.samples[this.samples.length - 1].atMs < nowMs - this.windowMs) this.samples.splice(0);
  }
}
