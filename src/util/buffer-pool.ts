/**
 * A pool of equal-sized buffers for bodies read again and again (block objects as fetched).
 * A fresh MiB Buffer per GET that lives past two young collections is freed only by a full
 * collection, and V8 starts those by the bytes allocated outside its heap: a loop of 1 MiB
 * GETs did 86 full collections with fresh buffers and 7 with reused ones (~3.3 against ~1.0
 * ms of CPU per GET).
 *
 * Promises: `take(n)` gives a buffer of exactly `n` bytes, a view of a pooled one when `n`
 * fits and is at least `minPooled` (else a fresh one); its contents are whatever was there. `give(b)` returns a buffer
 * taken from the pool (or any buffer of the pool's size that the caller owns) for reuse; the
 * caller must not touch it afterwards. Giving the same buffer twice, or one of another size,
 * does nothing. At most `keep` buffers wait unused.
 *
 * With `shared: N`, the first N buffers made are SharedArrayBuffers, kept for good (never
 * dropped, so never left for a collection to free): a worker thread fills one in place, with
 * no ArrayBuffer moved there and back. Each such move made a new ArrayBuffer that V8 counted
 * as fresh outside memory: a warm read of 1 GiB set off 14 full collections on the FUSE
 * thread for a 19 MB heap. Shared buffers are handed out first; past N in use, ordinary ones.
 */
export interface BufferPoolStats {
  /** Buffers made because none was free. */
  made: number;
  /** Takes served by a buffer given back. */
  reused: number;
  free: number;
}

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];
  private readonly freeShared: SharedArrayBuffer[] = [];
  private readonly shared = new Set<SharedArrayBuffer>();
  private made = 0;
  private reused = 0;

  constructor(readonly size: number, private readonly keep: number, private readonly options: { shared?: number; minPooled?: number } = {}) {}

  take(n: number): Buffer {
    if (n > this.size || n < (this.options.minPooled ?? 0)) return Buffer.allocUnsafe(n);
    let memory: ArrayBufferLike | undefined = this.freeShared.pop() ?? this.free.pop();
    if (memory) this.reused++;
    else {
      if (this.shared.size < (this.options.shared ?? 0)) {
        memory = new SharedArrayBuffer(this.size);
        this.shared.add(memory);
      } else {
        memory = new ArrayBuffer(this.size);
      }
      this.made++;
    }
    return Buffer.from(memory, 0, n);
  }

  give(b: Uint8Array): void {
    const memory = b.buffer;
    if (memory.byteLength !== this.size || b.byteOffset !== 0) return;
    if (memory instanceof SharedArrayBuffer) {
      if (this.shared.has(memory) && !this.freeShared.includes(memory)) this.freeShared.push(memory);
      return;
    }
    if (!(memory instanceof ArrayBuffer) || this.free.length >= this.keep || this.free.includes(memory)) return;
    this.free.push(memory);
  }

  get stats(): BufferPoolStats {
    return { made: this.made, reused: this.reused, free: this.free.length + this.freeShared.length };
  }
}
