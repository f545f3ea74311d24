/**
 * Paces garbage collection by the bytes of block buffers allocated, when memory is high.
 * V8 frees a Buffer's memory only when a collection finds its small wrapper dead, and it
 * counts memory outside its heap loosely: a stream of 1 MiB blocks (cold reads, frame
 * sequences, warm reads) let 60–100 MiB of dead buffers wait, so the agent's resident set
 * rose and fell by that much from run to run. Once per `lookEveryBytes` allocated this looks
 * at the resident set, and when it is above `softLimitBytes` asks for a collection, started
 * in the background (V8's concurrent marking), at most one per `everyBytes`. Below the limit
 * it forces nothing: each major collection costs the event loop 10–30 ms, and forcing one
 * per 64 MiB whatever the memory cost a quarter of cold and a third of warm throughput.
 *
 * Needs the process started with --expose-gc (the agent is); without it this does nothing.
 */
export type GcFunction = (options: { type: 'major' | 'minor'; execution: 'async' | 'sync' }) => Promise<void> | void;

export interface GcPacerOptions {
  everyBytes?: number;
  lookEveryBytes?: number;
  softLimitBytes?: number;
  gc?: GcFunction;
  rss?: () => number;
}

const MiB = 1024 * 1024;

export class GcPacer {
  private readonly gc?: GcFunction;
  private readonly everyBytes: number;
  private readonly lookEveryBytes: number;
  private readonly softLimitBytes: number;
  private readonly rss: () => number;
  /** Bytes since the last collection asked for, and since the last look at the resident set. */
  private since = 0;
  private sinceLook = 0;
  private running = false;
  collections = 0;

  constructor(options: GcPacerOptions = {}) {
    this.gc = 'gc' in options ? options.gc : (globalThis as { gc?: GcFunction }).gc;
    this.everyBytes = options.everyBytes ?? 64 * MiB;
    this.lookEveryBytes = options.lookEveryBytes ?? 16 * MiB;
    this.softLimitBytes = options.softLimitBytes ?? 224 * MiB;
    this.rss = options.rss ?? (() => process.memoryUsage.rss());
  }

  get enabled(): boolean {
    return this.gc !== undefined;
  }

  /** `bytes` of buffers were allocated (and as many will soon be dead). */
  allocated(bytes: number): void {
    if (!this.gc) return;
    this.since += bytes;
    this.sinceLook += bytes;
    if (this.sinceLook < this.lookEveryBytes || this.since < this.everyBytes || this.running) return;
    this.sinceLook = 0;
    if (this.rss() < this.softLimitBytes) return;
    this.since = 0;
    this.running = true;
    this.collections++;
    void Promise.resolve(this.gc({ type: 'major', execution: 'async' })).finally(() => { this.running = false; });
  }
}
