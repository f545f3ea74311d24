/**
 * How busy callers keep the mount: changes counted over a short window. Background work
 * (the uploader's small PUTs) asks `busy()` and steps back while a `tar x` or a `git clone`
 * is making files, so on a machine with few cores their requests are served first, and it
 * catches up at full speed the moment they pause.
 */
export class ActivityMeter {
  private windowStart = 0;
  private count = 0;
  private previous = 0;

  /** Busy: at least `busyCount` changes in the current or the previous window of `windowMs`. */
  constructor(private readonly windowMs = 100, private readonly busyCount = 20) {}

  /** A caller's change was made. */
  note(): void {
    this.roll(performance.now());
    this.count++;
  }

  busy(): boolean {
    this.roll(performance.now());
    return Math.max(this.count, this.previous) >= this.busyCount;
  }

  private roll(now: number): void {
    if (now - this.windowStart < this.windowMs) return;
    this.previous = now - this.windowStart < 2 * this.windowMs ? this.count : 0;
    this.windowStart = now;
    this.count = 0;
  }
}
