/**
 * The block loader: object id → plaintext. It holds recently opened blocks in memory (an
 * LRU bounded in bytes), opens blocks from the disk cache, and fetches the rest from the
 * store, one fetch per object however many readers want it; a fetched object's sealed copy
 * goes to the disk cache in the background. It is the only file under src/fs that touches
 * an ObjectStore.
 *
 * Promises:
 * - every plaintext was authenticated (the AEAD binds the object id): a damaged cached copy
 *   is dropped and fetched again, a damaged object from the store is an IntegrityError;
 * - plaintexts and fetched objects live in reused buffers, each back in its pool only once
 *   nothing can read it: `use` keeps a block's buffer from reuse for the length of its call,
 *   even if the block leaves memory meanwhile;
 * - a failing cache disk is said once (until a write works again) and reads go on from the
 *   store.
 */
import { LRUCache } from 'lru-cache';
import { IntegrityError } from '../../errors.js';
import { plainSize, sealedSize, type BlockCodec } from '../../block/format.js';
import type { CleanBlocks } from '../../cache/types.js';
import type { BlockRef } from '../../meta/types.js';
import { blockKey } from '../../store/keys.js';
import type { ObjectStore } from '../../store/types.js';
import { BufferPool } from '../../util/buffer-pool.js';
import { traced, type TraceSink } from '../../util/trace.js';

export interface BlockLoaderOptions {
  /** Plaintext of recently read blocks kept in memory (bytes). */
  memoryCacheBytes?: number;
  log?: (line: string) => void;
  /** Told the bytes of each block object fetched (its body came in chunks that are garbage now), for pacing garbage collection. */
  allocated?: (bytes: number) => void;
  /** LUCID_TRACE: each block brought into memory (from disk or store), timed. */
  trace?: TraceSink;
}

/** Plaintexts up to this size are kept in buffers of their own size (see `compact`). */
const SMALL_PLAINTEXT_MAX = 256 * 1024;

export class BlockLoader {
  /** Bytes of opened block plaintexts kept in memory (the `plain` LRU's size). */
  readonly memoryBytes: number;
  private readonly plain: LRUCache<string, Buffer>;
  /**
   * Buffers blocks are decrypted into, in shared memory: the cache-file thread decrypts a
   * cached block into one in place. A plaintext evicted from memory comes back here once no
   * reader is using it (`users`: how many use it, and the plaintexts of that block set aside
   * meanwhile), so a reader always gets the bytes it asked for.
   */
  private readonly plainBuffers: BufferPool;
  private readonly users = new Map<string, { count: number; evicted?: Buffer[] }>();
  /**
   * Buffers block objects are fetched into (a fetch into memory), reused once the object is
   * on disk: as many as can be in flight and waiting for the disk, so GETs do not allocate.
   */
  private readonly sealedBuffers: BufferPool;
  private readonly loading = new Map<string, Promise<Buffer>>();
  /**
   * Block objects being fetched for the disk cache only (`stage`), by object id, until the
   * GET is done: a read meanwhile waits for it, then opens the sealed bytes the cache holds
   * until they are written (`BlockCache.sealedBeingWritten`).
   */
  private readonly staging = new Map<string, Promise<{ kept: Promise<void> }>>();
  /** Set when a block could not be written to the disk cache (said once), cleared when one is. */
  private cacheWritesFailing = false;

  constructor(private readonly store: ObjectStore, private readonly codec: BlockCodec, private readonly cache: CleanBlocks, blockSize: number,
    private readonly options: BlockLoaderOptions = {}) {
    this.memoryBytes = Math.max(options.memoryCacheBytes ?? 24 * 1024 * 1024, blockSize);
    this.sealedBuffers = new BufferPool(sealedSize(blockSize), 16);
    // Shared: as many as memory keeps plaintexts, and 8 more for those on their way in.
    this.plainBuffers = new BufferPool(blockSize, 8, { shared: Math.ceil(this.memoryBytes / blockSize) + 8 });
    this.plain = new LRUCache<string, Buffer>({
      maxSize: this.memoryBytes,
      // The memory held: a plaintext is a view of a block-sized buffer unless compacted.
      sizeCalculation: (b) => Math.max(1, b.buffer.byteLength),
      dispose: (b, id) => {
        const users = this.users.get(id);
        if (users) (users.evicted ??= []).push(b);
        else this.plainBuffers.give(b);
      },
    });
  }

  /** The buffer pools, for their statistics (tests, status). */
  get pools(): { sealed: BufferPool; plain: BufferPool } {
    return { sealed: this.sealedBuffers, plain: this.plainBuffers };
  }

  /** Plaintexts held in memory now: how many, and the memory their buffers take. */
  get held(): { blocks: number; bytes: number } {
    let bytes = 0;
    for (const b of this.plain.values()) bytes += b.buffer.byteLength;
    return { blocks: this.plain.size, bytes };
  }

  /** Whether the object is in memory, on its way there, or on disk: nothing to fetch. */
  isLocal(objectId: string): boolean {
    return this.plain.has(objectId) || this.cache.holdsClean(objectId);
  }

  /**
   * Calls `use` with a block's plaintext in the turn it is here, and returns what it returns.
   * `use` must not wait: from the call until it returns the plaintext's buffer is not reused,
   * even if the block leaves memory meanwhile. A reader waits for it: its open from disk
   * goes ahead of those for reading ahead.
   */
  async use<T>(ref: BlockRef, ino: number, use: (plain: Buffer) => T): Promise<T> {
    const id = ref.objectId;
    let users = this.users.get(id);
    if (!users) this.users.set(id, users = { count: 0 });
    users.count++;
    try {
      return use(await this.bringIn(ref, ino, true));
    } finally {
      if (--users.count === 0) {
        this.users.delete(id);
        for (const b of users.evicted ?? []) this.plainBuffers.give(b);
      }
    }
  }

  /**
   * Brings a block's plaintext into memory: memory, then the disk cache, then the store (one
   * fetch per object). Its bytes are safe to read only through `use`. `urgent`: a reader
   * waits for it, so its open from disk goes ahead of those for reading ahead (and one begun
   * for reading ahead is hurried).
   */
  async bringIn(ref: BlockRef, ino: number, urgent = false): Promise<Buffer> {
    const hot = this.plain.get(ref.objectId);
    if (hot) return hot;
    let pending = this.loading.get(ref.objectId);
    if (!pending) {
      pending = traced(this.options.trace, () => `load ino ${ino} block ${ref.index}`, () => this.load(ref.objectId, ino, urgent)).finally(() => this.loading.delete(ref.objectId));
      this.loading.set(ref.objectId, pending);
    } else if (urgent) {
      this.cache.hurryClean(ref.objectId);
    }
    return pending;
  }

  /** Opens into memory ahead of a sequential reader a block the disk cache holds (nothing if it is in memory or on its way). */
  openAhead(ref: BlockRef, ino: number): void {
    const id = ref.objectId;
    if (!this.plain.has(id) && !this.loading.has(id) && this.cache.holdsClean(id)) void this.bringIn(ref, ino).catch(() => {});
  }

  /**
   * Brings a block to the disk cache only, sealed as fetched (authenticated when it is
   * opened): a predicted file further ahead than memory would keep it costs no decryption
   * and no plaintext until it is read. Resolves once the object is here; its write goes on
   * in the background (behind a backlog of writes, it waits for that write).
   */
  async stage(objectId: string, ino: number): Promise<void> {
    if (this.plain.has(objectId) || this.loading.has(objectId) || this.cache.holdsClean(objectId)) return;
    let staging = this.staging.get(objectId);
    if (!staging) {
      staging = (async () => ({ kept: this.keepOnDisk(objectId, await this.getSealed(objectId), ino) }))().finally(() => this.staging.delete(objectId));
      this.staging.set(objectId, staging);
    }
    const { kept } = await staging;
    if (this.cache.keepingBacklogged) await kept;
  }

  /**
   * Fetches an object into the disk cache and authenticates it, keeping no plaintext
   * (`lucid warm`, pins): resolves once it is on disk. False if the cache already held it.
   */
  async fetchToDisk(objectId: string, ino: number): Promise<boolean> {
    // A block held while its cache write goes on is as good as on disk: not fetched again.
    if (this.cache.holdsClean(objectId)) return false;
    const { plain, kept } = await this.fetch(objectId, ino);
    // Opened only to authenticate it: its buffer goes straight back to the pool.
    this.plainBuffers.give(plain);
    await kept;
    return true;
  }

  private async load(objectId: string, ino: number, urgent: boolean): Promise<Buffer> {
    // Being fetched for the disk cache: waited for (a failed fetch is tried again below).
    // Fetched and not written yet: opened from the bytes the cache holds, at once (their
    // buffer is reused once the write settles).
    const staging = this.staging.get(objectId);
    if (staging) await staging.catch(() => undefined);
    const held = this.cache.sealedBeingWritten(objectId);
    if (held) {
      const plain = this.compact(this.openSealed(objectId, held, ino));
      this.plain.set(objectId, plain);
      return plain;
    }
    try {
      const opened = await this.openFromDisk(objectId, urgent);
      if (opened) {
        const cached = this.compact(opened);
        this.plain.set(objectId, cached);
        return cached;
      }
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      this.options.log?.(`cached copy of block object ${objectId} is damaged; fetching it again`);
      await this.cache.dropClean(objectId);
    }
    const fetched = await this.fetch(objectId, ino);
    const { kept } = fetched;
    const plain = this.compact(fetched.plain);
    this.plain.set(objectId, plain);
    // The reader is served while the sealed copy goes to disk; behind a backlog of such
    // writes (a slow cache disk) it waits, so the sealed copies in memory stay bounded.
    if (this.cache.keepingBacklogged) await kept.catch(() => {});
    return plain;
  }

  /**
   * A small plaintext (a small file's block) moves out of its block-sized pool buffer into
   * one of its own size, and the pool buffer goes back: kept in memory, thousands of 4 KiB
   * files held a MiB each (5.6 GiB of buffers in a cold read of 10 000 small files).
   */
  private compact(plain: Buffer): Buffer {
    if (plain.length > SMALL_PLAINTEXT_MAX || plain.buffer.byteLength < 2 * plain.length + 4096) return plain;
    const own = Buffer.allocUnsafeSlow(plain.length);
    plain.copy(own);
    this.plainBuffers.give(plain);
    return own;
  }

  /**
   * Opens a block from the disk cache into a buffer of the pool. A buffer the plaintext did
   * not end up in (no cache file, a torn or damaged one) goes back: the pool's shared
   * buffers are never made again, so one not given back is lost to it for good.
   */
  private async openFromDisk(objectId: string, urgent: boolean): Promise<Buffer | undefined> {
    let into: Buffer | undefined;
    try {
      const plain = await this.cache.openClean(objectId, (n) => (into = this.plainBuffers.take(n)), urgent);
      if (plain && plain.buffer === into?.buffer) into = undefined;
      return plain;
    } finally {
      // Moved to the cache-file thread and not back, it is detached: the pool ignores it.
      if (into) this.plainBuffers.give(into);
    }
  }

  /**
   * Fetches a block object from the store and authenticates it; its sealed copy goes to the
   * disk cache in the background (`kept` settles when it is there, or rejects if it cannot be).
   */
  private async fetch(objectId: string, ino: number): Promise<{ plain: Buffer; kept: Promise<void> }> {
    const sealed = await this.getSealed(objectId);
    const plain = this.openSealed(objectId, sealed, ino);
    return { plain, kept: this.keepOnDisk(objectId, sealed, ino) };
  }

  /**
   * GETs a block object into a buffer of the pool (given back by keepOnDisk). Its body came
   * in chunks that are garbage now: the collector's pacer is told.
   */
  private async getSealed(objectId: string): Promise<Buffer> {
    const sealed = await this.store.get(blockKey(objectId), undefined, { buffer: (n) => this.sealedBuffers.take(n) });
    this.options.allocated?.(sealed.length);
    return sealed;
  }

  /** Authenticates and opens an object as fetched from the store; a failure is logged, naming the inode. */
  private openSealed(objectId: string, sealed: Buffer, ino: number): Buffer {
    const into = this.plainBuffers.take(plainSize(sealed.length));
    try {
      return this.codec.open(objectId, sealed, into);
    } catch (e) {
      this.plainBuffers.give(into);
      this.options.log?.(`integrity error: ${(e as Error).message} (inode ${ino})`);
      throw e;
    }
  }

  /**
   * Hands a fetched object's sealed copy to the disk cache (settles when it is there). A
   * failing cache disk is said once (until a write works again); reads go on from the store.
   * Once on disk (or refused there) nothing holds the copy: its buffer goes back to the pool.
   */
  private keepOnDisk(objectId: string, sealed: Buffer, ino: number): Promise<void> {
    const kept = this.cache.writeCleanInBackground(objectId, sealed, ino);
    void kept.finally(() => this.sealedBuffers.give(sealed)).catch(() => {});
    void kept.then(() => { this.cacheWritesFailing = false; }, (e: Error) => {
      if (this.cacheWritesFailing) return;
      this.cacheWritesFailing = true;
      this.options.log?.(`could not keep block object ${objectId} in the disk cache (${e.message}); reads are served from the store until it works again`);
    });
    return kept;
  }
}
