/**
 * Dirty blocks kept in memory: the dirty side of the cache for the library API
 * (`Filespace.write`), which writes through the mount's file I/O and uploader but has no
 * cache directory, and uploads each write before it returns, so at most one call's blocks
 * are held. Nothing here survives the process; a writer that needs that uses `BlockCache`.
 *
 * Promises: those of `DirtyBlocks` (src/cache/types.ts); every operation on one block runs
 * alone, so a write never meets its own upload's settling half-way.
 */
import { KeyedMutex } from '../util/mutex.js';
import { Signal } from '../util/signal.js';
import type { DirtyBlock, DirtyBlocks, DirtySnapshot, PendingSize } from './types.js';

interface Held extends DirtyBlock {
  /** The block's plaintext; `length` bytes of it are the block. */
  data: Buffer;
}

const key = (ino: number, idx: number) => `${ino}:${idx}`;

export class MemoryDirtyBlocks implements DirtyBlocks {
  /** Never emitted: memory makes no writer wait. */
  readonly pressure = new Signal();

  /** Dirty data here is memory: it never waits longer than it must. */
  mayHoldBack(): boolean {
    return false;
  }
  private readonly blocks = new Map<number, Map<number, Held>>();
  private readonly pendingSizes = new Map<number, PendingSize>();
  private readonly locks = new KeyedMutex<string>();
  private nextGen = 1;

  dirtyRow(ino: number, idx: number): DirtyBlock | undefined {
    return this.blocks.get(ino)?.get(idx);
  }

  dirtyRowsOf(ino: number): DirtyBlock[] {
    return [...(this.blocks.get(ino)?.values() ?? [])].sort((a, b) => a.idx - b.idx);
  }

  allDirty(): DirtyBlock[] {
    return [...this.blocks.values()].flatMap((m) => [...m.values()]);
  }

  writeDirty(ino: number, idx: number, offset: number, data: Buffer, base: () => Promise<Buffer | undefined>, baseLength: number, pending?: PendingSize): Promise<void> {
    return this.locks.run(key(ino, idx), async () => {
      const end = offset + data.length;
      let held = this.blocks.get(ino)?.get(idx);
      if (!held) {
        const from = offset === 0 && end >= baseLength ? undefined : await base();
        const bytes = Buffer.alloc(Math.max(baseLength, end));
        from?.copy(bytes, 0, 0, Math.min(baseLength, from.length));
        held = { ino, idx, length: baseLength, gen: 0, data: bytes };
      } else if (held.data.length < end) {
        const grown = Buffer.alloc(end);
        held.data.copy(grown, 0, 0, held.length);
        held.data = grown;
      }
      data.copy(held.data, offset);
      this.set({ ...held, length: Math.max(held.length, end), gen: this.nextGen++ });
      if (pending) this.setPending(pending);
    });
  }

  async readDirty(ino: number, idx: number, offset: number, length: number): Promise<Buffer | undefined> {
    const held = this.blocks.get(ino)?.get(idx);
    if (!held) return undefined;
    const out = Buffer.alloc(length);
    if (offset < held.length) held.data.copy(out, 0, offset, Math.min(held.length, offset + length));
    return out;
  }

  snapshotDirty(ino: number, idx: number): Promise<DirtySnapshot | undefined> {
    return this.locks.run(key(ino, idx), async () => {
      const held = this.blocks.get(ino)?.get(idx);
      return held && { gen: held.gen, length: held.length, data: Buffer.from(held.data.subarray(0, held.length)) };
    });
  }

  async settleUploaded(ino: number, idx: number, gen: number): Promise<void> {
    await this.dropDirty(ino, idx, gen);
  }

  truncateDirty(ino: number, idx: number, length: number): Promise<void> {
    return this.locks.run(key(ino, idx), async () => {
      const held = this.blocks.get(ino)?.get(idx);
      if (!held || length >= held.length) return;
      held.data.fill(0, length, held.length);
      this.set({ ...held, length, gen: this.nextGen++ });
    });
  }

  dropDirty(ino: number, idx: number, ifGen?: number): Promise<boolean> {
    return this.locks.run(key(ino, idx), async () => {
      const rows = this.blocks.get(ino);
      const held = rows?.get(idx);
      if (!rows || !held || (ifGen !== undefined && held.gen !== ifGen)) return false;
      rows.delete(idx);
      if (rows.size === 0) this.blocks.delete(ino);
      return true;
    });
  }

  pending(ino: number): PendingSize | undefined {
    return this.pendingSizes.get(ino);
  }

  setPending(row: PendingSize): void {
    this.pendingSizes.set(row.ino, row);
  }

  clearPending(ino: number): void {
    this.pendingSizes.delete(ino);
  }

  private set(held: Held): void {
    let rows = this.blocks.get(held.ino);
    if (!rows) {
      rows = new Map();
      this.blocks.set(held.ino, rows);
    }
    rows.set(held.idx, held);
  }
}
