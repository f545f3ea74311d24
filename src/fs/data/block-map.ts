/**
 * The block map as this mount knows it: (inode, block index) → the object holding that
 * block's committed bytes, or a hole. Windows of the map are loaded from the service ahead
 * of the readers that need them, one load per window at a time, shared by every reader.
 *
 * Promises:
 * - a map never goes back in time: a newer committed version (another writer) starts afresh,
 *   and a load that raced a commit or a truncate of the same inode is asked again rather
 *   than written over the newer entries (`gen` counts the updates);
 * - this mount's own commits and truncates update it at once (`committed`, `trim`, `drop`);
 * - a file made by this mount and not yet at the service has no committed block (its data
 *   is all dirty; the rest holes), and nothing is asked of the service for it.
 */
import { LRUCache } from 'lru-cache';
import type { Attr, BlockRef, MetaEngine } from '../../meta/types.js';

interface KnownMap {
  version: number;
  gen: number;
  map: Map<number, BlockRef | null>;
}

export interface BlockMapOptions {
  /** Block refs asked of the service at a time (default 1024). */
  windowBlocks?: number;
  /** Whether `ino` was made by this mount and its creation is not at the service yet. */
  madeLocally?: (ino: number) => boolean;
}

/** Block refs kept in memory at most, across files (~100 bytes each). */
const MAP_REFS_KEPT = 256 * 1024;

export class BlockMap {
  /**
   * Maps of recently used files, bounded by the refs they hold (a small file's map is one
   * ref: a folder of thousands of small files learnt ahead keeps every one of them).
   */
  private readonly maps = new LRUCache<number, KnownMap>({ max: 50_000, maxSize: MAP_REFS_KEPT, sizeCalculation: (c) => Math.min(c.map.size + 1, MAP_REFS_KEPT / 4) });
  private readonly loads = new Map<string, Promise<void>>();
  /** Block refs are loaded from the service this many at a time. */
  readonly window: number;

  constructor(private readonly meta: MetaEngine, readonly blockSize: number, private readonly options: BlockMapOptions = {}) {
    this.window = options.windowBlocks ?? 1024;
  }

  /** The ref of block `idx` of `ino` at committed `version` (undefined: a hole), loaded if unknown. */
  async ref(ino: number, idx: number, version: number): Promise<BlockRef | undefined> {
    if (this.options.madeLocally?.(ino)) return undefined;
    const window = this.window;
    for (;;) {
      let c = this.maps.get(ino);
      if (!c || version > c.version) {
        c = { version, gen: 0, map: new Map() };
        this.maps.set(ino, c);
      }
      if (c.map.has(idx)) return c.map.get(idx) ?? undefined;
      // One load per window of the map at a time, shared by every reader that needs it.
      const first = Math.floor(idx / window) * window;
      const loadKey = `${ino}:${first}:${c.gen}:${c.version}`;
      let load = this.loads.get(loadKey);
      if (!load) {
        const known = c;
        const gen = c.gen;
        load = (async () => {
          const got = await this.meta.getBlocks(ino, first, window);
          if (this.maps.get(ino) !== known || known.gen !== gen) return; // a commit or truncate came in between
          for (let i = first; i < first + window; i++) if (!known.map.has(i)) known.map.set(i, null);
          for (const r of got) known.map.set(r.index, r);
          this.maps.set(ino, known); // counted again at its new size
        })().finally(() => this.loads.delete(loadKey));
        this.loads.set(loadKey, load);
      }
      await load;
      if (this.maps.get(ino) === c && c.map.has(idx)) return c.map.get(idx) ?? undefined;
    }
  }

  /** The committed refs of blocks `first`… (at most `count`), asked of the service now, not kept. */
  committedRefs(ino: number, first: number, count: number): Promise<BlockRef[]> {
    return this.meta.getBlocks(ino, first, count);
  }

  /** What is known of block `idx` without asking: a ref, null for a hole, undefined if unknown. */
  known(ino: number, idx: number): BlockRef | null | undefined {
    return this.maps.get(ino)?.map.get(idx);
  }

  /**
   * Starts loading the window of the map that holds block `idx`, unless the file ends before
   * it or it is known: a reader should not wait a round trip for a map.
   */
  loadAhead(ino: number, idx: number, version: number, size: number): void {
    if (idx < 0 || idx * this.blockSize >= size) return;
    const c = this.maps.get(ino);
    if (c && c.version >= version && c.map.has(idx)) return;
    void this.ref(ino, idx, version).catch(() => {});
  }

  /** Block refs that came with a lookup: the first `blocks.length`-or-more indexes are now known. */
  prime(a: Attr, blocks: BlockRef[]): void {
    const known = this.maps.get(a.ino);
    if (known && known.version >= a.version) return;
    const map = new Map<number, BlockRef | null>();
    const count = Math.min(Math.ceil(a.size / this.blockSize), Math.max(16, blocks.length ? blocks[blocks.length - 1].index + 1 : 0));
    for (let i = 0; i < count; i++) map.set(i, null);
    for (const r of blocks) map.set(r.index, r);
    this.maps.set(a.ino, { version: a.version, gen: (known?.gen ?? 0) + 1, map });
  }

  /**
   * This mount committed `refs` of `ino` as `version`. With no map known yet (a file this
   * mount made: its reads never needed one), the map starts from these refs — the rest is
   * loaded if a reader asks — so reading back what was just written (`git clone` reads the
   * objects it wrote) asks the service nothing.
   */
  committed(ino: number, refs: BlockRef[], version: number): void {
    let c = this.maps.get(ino);
    if (!c) {
      if (refs.length === 0) return;
      c = { version, gen: 0, map: new Map() };
      this.maps.set(ino, c);
    }
    c.gen++;
    c.version = Math.max(c.version, version);
    for (const r of refs) c.map.set(r.index, r);
    this.maps.set(ino, c); // counted again at its new size
  }

  /**
   * A change of this mount's that moved no block (a chmod, a rename, a size this mount's map
   * already follows) reached the service as `version`, with no other client's commit to
   * `ino` in between: the map known holds at that version too.
   */
  advance(ino: number, version: number): void {
    const c = this.maps.get(ino);
    if (c && version > c.version) c.version = version;
  }

  /** A truncate made offline: the map this mount knows ends at `size` (the service's is cut on replay). */
  trim(ino: number, size: number): void {
    const c = this.maps.get(ino);
    if (!c) return;
    const cut = Math.ceil(size / this.blockSize);
    c.gen++;
    for (const [idx, r] of c.map) {
      if (idx >= cut) c.map.set(idx, null);
      else if (r && idx === cut - 1 && size % this.blockSize !== 0) c.map.set(idx, { ...r, length: Math.min(r.length, size % this.blockSize) });
    }
  }

  /** Every inode whose map is known. */
  inodes(): number[] {
    return [...this.maps.keys()];
  }

  /** Forgets what is known of `ino`'s map (truncated, removed, or changed by another client). */
  drop(ino: number): void {
    this.maps.delete(ino);
  }
}
