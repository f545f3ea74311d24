/**
 * The prefetcher: watches each open handle's reads and fetches the blocks it will read next.
 *
 * - Pattern per handle: sequential (each read starts near where the last ended, small seeks
 *   tolerated), reverse (each read ends near where the last started), strided (reads of a
 *   fixed size a fixed distance apart, forward or back: every Nth frame, one column of
 *   records), or random.
 * - The window (blocks ahead) starts small and grows `growth` times (4) with every read
 *   that keeps the pattern, up to `maxWindowBlocks` (sized to cover the bandwidth-delay
 *   product); a broken pattern shrinks it to nothing and cancels that handle's queued
 *   prefetches. A stream from the start of a file thus asks for 2, then 8, then all 16
 *   blocks: the link is full one block-fetch sooner than with doubling, while the first
 *   fetch still has the link to itself.
 * - Fetches run in parallel, at most `maxInflight` blocks' bytes at once across all handles
 *   (and at most `maxRequests` fetches, however small): a budget of memory and bandwidth
 *   the prefetcher never exceeds. Demand reads never wait behind it
 *   (they go straight to the loader, which shares in-flight fetches with prefetches).
 * - Accuracy: blocks prefetched and later read, against blocks prefetched.
 * - `prefetchFile` brings in the first blocks of a file nobody has opened yet (the directory
 *   predictor's guess at the next frame); it shares the same in-flight budget, and can ask
 *   for them on disk only (files further ahead than memory would keep them).
 */

export interface PrefetchLoader {
  /** Whether block `idx` of `ino` is already in memory or on disk. */
  isCached(ino: number, idx: number): boolean;
  /**
   * Brings block `idx` of `ino` into the cache (a hole or a dirty block resolves at once);
   * `toDisk`: only to the disk cache, as fetched, for a file read later than memory would keep it.
   */
  load(ino: number, idx: number, toDisk?: boolean): Promise<void>;
}

export interface PrefetchOptions {
  blockSize: number;
  initialWindowBlocks?: number;
  maxWindowBlocks?: number;
  /** How many times the window grows with each read that keeps the pattern (4). */
  growth?: number;
  /** Block fetches in flight at most (16): a budget of `maxInflight` blocks' bytes. */
  maxInflight?: number;
  /**
   * Fetches in flight at most, however small (64): whole small files (`prefetchFile` with
   * their size) count their own bytes against the budget, so a walk of 4 KiB files keeps
   * many more requests on the link than a stream of full blocks.
   */
  maxRequests?: number;
  /** A seek of up to this many bytes still counts as sequential. */
  toleranceBytes?: number;
}

/**
 * The window for a mount that keeps `memoryBytes` of block plaintexts in memory: two thirds
 * of it (at most 32 blocks, at least 2), so blocks fetched ahead wait in memory until they
 * are read instead of being pushed out by the ones fetched after them.
 */
export function prefetchWindowBlocks(memoryBytes: number, blockSize: number): number {
  return Math.max(2, Math.min(32, Math.floor((memoryBytes / blockSize) * 2 / 3)));
}

export type Pattern = 'none' | 'sequential' | 'reverse' | 'strided' | 'random';

interface HandleState {
  ino: number;
  pattern: Pattern;
  window: number;
  lastStart: number;
  lastEnd: number;
  /** Distance between the starts of the last two reads (strided detection). */
  stride: number;
  /** The block the last read ended in, and how many block boundaries the pattern has crossed. */
  block: number;
  steps: number;
  /** Blocks this handle asked to prefetch that have not started yet. */
  queued: Set<number>;
}

export interface PrefetchStats {
  issued: number;
  used: number;
  cancelled: number;
  inflight: number;
}

export class Prefetcher {
  private readonly handles = new Map<number, HandleState>();
  private readonly queue: { fh: number; ino: number; idx: number; toDisk: boolean; bytes: number }[] = [];
  /** Bytes of the fetches in flight (a block's size unless a small file's size was given). */
  private inflightBytes = 0;
  private readonly inflight = new Set<string>();
  private readonly prefetched = new Set<string>();
  private readonly initial: number;
  private readonly max: number;
  private readonly growth: number;
  private readonly maxInflight: number;
  private readonly maxRequests: number;
  private readonly tolerance: number;
  private stats_ = { issued: 0, used: 0, cancelled: 0 };

  constructor(private readonly loader: PrefetchLoader, private readonly options: PrefetchOptions) {
    this.initial = options.initialWindowBlocks ?? 2;
    this.max = options.maxWindowBlocks ?? 32;
    this.growth = options.growth ?? 4;
    this.maxInflight = options.maxInflight ?? 16;
    this.maxRequests = Math.max(this.maxInflight, options.maxRequests ?? 64);
    this.tolerance = options.toleranceBytes ?? 2 * options.blockSize;
  }

  /**
   * Called for every read of a handle as it is issued. With `after` (the demand read itself),
   * the prefetches it calls for start only once that read is served, so a cold demand fetch
   * never shares the link with the prefetches it triggered.
   */
  onRead(fh: number, ino: number, offset: number, length: number, fileSize: number, after?: Promise<unknown>): void {
    const bs = this.options.blockSize;
    let h = this.handles.get(fh);
    if (!h) {
      h = { ino, pattern: 'none', window: 0, lastStart: offset, lastEnd: offset, stride: 0, block: Math.floor(offset / bs), steps: 0, queued: new Set() };
      this.handles.set(fh, h);
      // A read from the start of a file is most often the first of a sequential stream.
      if (offset === 0) { h.pattern = 'sequential'; h.window = this.initial; }
    } else {
      const end = offset + length;
      const sequential = offset >= h.lastEnd - this.tolerance && offset <= h.lastEnd + this.tolerance && end > h.lastEnd;
      const reverse = end <= h.lastStart + this.tolerance && end >= h.lastStart - this.tolerance && offset < h.lastStart;
      const stride = offset - h.lastStart;
      // Strided: the same jump twice in a row, larger than the read itself (else sequential).
      const strided = !sequential && !reverse && stride !== 0 && stride === h.stride && Math.abs(stride) > length;
      h.stride = stride;
      const next: Pattern = sequential ? 'sequential' : reverse ? 'reverse' : strided ? 'strided' : 'random';
      // The kernel splits one read() into several requests: the window grows per block
      // boundary crossed, not per request, and a stream that began mid-file must cross two
      // boundaries before it is fetched ahead (one unaligned random read crosses one).
      const block = Math.floor((end - 1) / bs);
      const crossed = next === 'sequential' ? block > h.block : next === 'reverse' ? Math.floor(offset / bs) < h.block : true;
      if (next === 'random') {
        h.window = 0;
        h.steps = 0;
      } else if (next !== h.pattern && !(h.pattern === 'none' && next === 'sequential')) {
        h.steps = 1;
        h.window = next === 'strided' ? this.initial : 0;
      } else if (crossed) {
        h.steps++;
        h.window = h.window === 0 ? (h.steps >= 2 ? this.initial : 0) : Math.min(this.max, h.window * this.growth);
      }
      if (next !== h.pattern) this.cancel(fh, h);
      h.pattern = next;
      h.block = next === 'reverse' ? Math.floor(offset / bs) : block;
    }
    for (let i = Math.floor(offset / bs); i <= Math.floor((offset + Math.max(length, 1) - 1) / bs); i++) {
      if (this.prefetched.delete(`${ino}:${i}`)) this.stats_.used++;
    }
    h.lastStart = offset;
    h.lastEnd = offset + length;
    if (h.window === 0 || fileSize === 0) return;
    const lastBlock = Math.floor((fileSize - 1) / bs);
    if (h.pattern === 'strided') {
      // The next `window` reads of the stride: their blocks, however far apart.
      for (let k = 1; k <= h.window; k++) {
        const at = offset + k * h.stride;
        if (at < 0 || at >= fileSize) break;
        const endAt = Math.min(fileSize, at + length) - 1;
        for (let i = Math.floor(at / bs); i <= Math.floor(endAt / bs); i++) this.want(fh, h, i);
      }
    } else if (h.pattern === 'reverse') {
      const first = Math.floor(offset / bs);
      for (let i = first - 1; i >= Math.max(0, first - h.window); i--) this.want(fh, h, i);
    } else {
      const last = Math.floor((offset + length - 1) / bs);
      for (let i = last + 1; i <= Math.min(lastBlock, last + h.window); i++) this.want(fh, h, i);
    }
    if (after) void after.finally(() => this.pump()).catch(() => {});
    else this.pump();
  }

  /**
   * Prefetches blocks [0, blocks) of a file that is not open yet (directory prediction),
   * queued behind the open handles' own prefetches. Returns how many were queued. `bytes`:
   * the file's size when it is one block or less (its fetch takes that much of the budget).
   */
  prefetchFile(ino: number, blocks: number, toDisk = false, bytes?: number): number {
    let h = this.handles.get(-ino);
    if (!h) {
      h = { ino, pattern: 'none', window: 0, lastStart: 0, lastEnd: 0, stride: 0, block: 0, steps: 0, queued: new Set() };
      this.handles.set(-ino, h);
    }
    const before = h.queued.size;
    for (let i = 0; i < blocks; i++) this.want(-ino, h, i, toDisk, blocks === 1 ? bytes : undefined);
    const added = h.queued.size - before;
    this.pump();
    return added;
  }

  /** Whether block `idx` of a file not open (`prefetchFile`) is neither queued nor in flight: fetched, dropped or failed. */
  settled(ino: number, idx = 0): boolean {
    return !this.handles.get(-ino)?.queued.has(idx) && !this.inflight.has(`${ino}:${idx}`);
  }

  /** Drops predicted prefetches of a file not started yet (the guess was wrong). */
  forgetFile(ino: number): void {
    this.close(-ino);
  }

  /** The handle closed: its queued prefetches go. */
  close(fh: number): void {
    const h = this.handles.get(fh);
    if (h) this.cancel(fh, h);
    this.handles.delete(fh);
  }

  /** The pattern a handle's reads follow now. */
  patternOf(fh: number): Pattern {
    return this.handles.get(fh)?.pattern ?? 'none';
  }

  stats(): PrefetchStats {
    return { ...this.stats_, inflight: this.inflight.size };
  }

  private want(fh: number, h: HandleState, idx: number, toDisk = false, bytes?: number): void {
    const k = `${h.ino}:${idx}`;
    if (h.queued.has(idx) || this.inflight.has(k) || this.loader.isCached(h.ino, idx)) return;
    h.queued.add(idx);
    const bs = this.options.blockSize;
    this.queue.push({ fh, ino: h.ino, idx, toDisk, bytes: bytes !== undefined && bytes > 0 ? Math.min(bytes, bs) : bs });
  }

  private cancel(fh: number, h: HandleState): void {
    if (h.queued.size === 0) return;
    this.stats_.cancelled += h.queued.size;
    h.queued.clear();
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].fh === fh) this.queue.splice(i, 1);
  }

  private pump(): void {
    const budget = this.maxInflight * this.options.blockSize;
    while (this.queue.length > 0 && this.inflight.size < this.maxRequests
      && (this.inflight.size === 0 || this.inflightBytes + this.queue[0].bytes <= budget)) {
      const { fh, ino, idx, toDisk, bytes } = this.queue.shift()!;
      const owner = this.handles.get(fh);
      owner?.queued.delete(idx);
      if (fh < 0 && owner && owner.queued.size === 0) this.handles.delete(fh);
      const k = `${ino}:${idx}`;
      if (this.inflight.has(k) || this.loader.isCached(ino, idx)) continue;
      this.inflight.add(k);
      this.inflightBytes += bytes;
      this.stats_.issued++;
      this.prefetched.add(k);
      this.loader.load(ino, idx, toDisk)
        .catch(() => { this.prefetched.delete(k); })
        .finally(() => {
          this.inflight.delete(k);
          this.inflightBytes -= bytes;
          this.pump();
        });
    }
    // Forget prefetched blocks nobody read, so the accuracy figure stays honest and bounded.
    if (this.prefetched.size > 10_000) this.prefetched.clear();
  }
}
