/**
 * The persistent block cache of one filespace on local disk, bounded by a size limit.
 *
 * - Clean blocks are the sealed objects exactly as the store holds them (encrypted and
 *   authenticated at rest for free), content-addressed by object id, evicted least recently
 *   used first (lru-cache keeps the order; the index keeps it across restarts).
 * - Dirty blocks (written, not yet uploaded) live in files keyed by (inode, block index):
 *   a block written whole is sealed at once into its final object (the upload sends those
 *   bytes, and the clean cache adopts the file by rename); a block written in part is kept
 *   AES-XTS encrypted per sector so small writes stay cheap. Neither is ever evicted, nor
 *   are pinned blocks.
 * - Space: writers reserve before a dirty block grows; when clean blocks cannot be evicted
 *   to make room, they wait (backpressure) until uploads turn dirty blocks clean.
 * - A block fetched for a reader is kept in the background (`writeCleanInBackground`): the reader is
 *   served while it is written; `keepingBytes` says how much waits, and close() waits for it.
 *   Until its write settles its sealed bytes are readable (`sealedBeingWritten`), so a block that
 *   left memory meanwhile is opened from them, not fetched again.
 *
 * Promises: a dirty block's bytes are in its file before its index row says so, so after a
 * kill at any moment the index names only bytes that are really there; the limit is never
 * exceeded by dirty growth, and by clean inserts at most transiently by one block per upload.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { SECTOR, SectorCipher, sectorsFor } from '../crypto/sectors.js';
import { CacheIndex, type DirtyRow, type PendingRow } from './index-db.js';
import { EventLoopFileIo, UnreadableCacheFile, type CacheWriteError, type CleanFileIo } from './clean-files.js';
import { KeyedMutex } from '../util/mutex.js';
import { Signal } from '../util/signal.js';
import type { CleanBlocks, DirtyBlocks, DirtySnapshot } from './types.js';
import { plainSize, sealedSize } from '../block/format.js';
import { NoSpaceError } from '../errors.js';
import { formatSize } from '../util/size.js';
import { OpenDirtyFiles, SpareFiles, readDirtyFileInto, removeDirty, writeNewDirty } from './dirty-files.js';
import { BufferPool } from '../util/buffer-pool.js';

/** Seals and opens block objects (the block codec), so whole blocks are sealed once. */
export interface BlockSealer {
  newObjectId(): string;
  seal(objectId: string, plaintext: Uint8Array, into?: Buffer): Buffer;
  open(objectId: string, sealed: Buffer, into?: Buffer): Buffer;
}

export interface BlockCacheOptions {
  dir: string;
  filespaceId: string;
  cacheKey: Buffer;
  limitBytes: number;
  sealer: BlockSealer;
  /** Opens and writes clean cache files (default: on the event loop with `sealer`). */
  files?: CleanFileIo;
  /**
   * The filespace's block size: a write covering a block's bytes is then sealed whole only if
   * it is the whole block or small (`WHOLE_SEAL_SMALL`); without it, always.
   */
  blockSize?: number;
}



export interface CacheStats {
  limitBytes: number;
  usedBytes: number;
  cleanBytes: number;
  pinnedBytes: number;
  dirtyBytes: number;
  /** Plaintext bytes written but not yet uploaded ("remaining upload"). */
  uploadBytes: number;
  dirtyBlocks: number;
  cleanObjects: number;
  hits: number;
  misses: number;
  evictions: number;
  waitingWriters: number;
}

interface CleanEntry {
  size: number;
  ino: number;
}

const key = (ino: number, idx: number) => `${ino}:${idx}`;
const allocated = (length: number) => sectorsFor(length) * SECTOR;
/** Disk bytes a dirty block's file takes. */
const bytesOf = (r: DirtyRow) => (r.sealedId ? sealedSize(r.length) : allocated(r.length));

/** A write of at most this many bytes that covers all its block holds is sealed whole at once (small files). */
const WHOLE_SEAL_SMALL = 64 * 1024;
/** Sealed-block buffers kept for reuse when none is in use (16 MiB at 1 MiB blocks). */
const BLOCK_BUFFERS_KEPT = 16;
/**
 * Blocks smaller than this get buffers of their own size: a whole block's buffer for a 4 KiB
 * file was a zeroed MiB each time none was free (`tar x`: 64 small uploads in flight).
 */
const BLOCK_BUFFERS_MIN = 128 * 1024;
/** Sealed objects waiting to be written by writeCleanInBackground past which their callers wait. */
const KEEP_BACKLOG_BYTES = 16 * 1024 * 1024;

export class BlockCache implements CleanBlocks, DirtyBlocks {
  private readonly dirsMade = new Set<string>();
  /** Clean-block writes started by `writeCleanInBackground` and not yet finished; close() waits for them. */
  private readonly keeping = new Set<Promise<void>>();
  private keepingBytes_ = 0;
  /** The sealed bytes handed to writeCleanInBackground, by object id, until their write settles. */
  private readonly keepingObjects = new Map<string, Buffer>();
  // Recency order only: eviction against the limit is done here (makeRoom), so no max is
  // set (lru-cache preallocates for `max`), just a size bound it never reaches.
  private readonly lru = new LRUCache<string, CleanEntry>({ maxSize: Number.MAX_SAFE_INTEGER, sizeCalculation: (e) => Math.max(1, e.size) });
  private readonly pinnedClean = new Map<string, CleanEntry>();
  /** Dirty rows by inode, then block index (the index's rows, mirrored). */
  private readonly dirty = new Map<number, Map<number, DirtyRow>>();
  private dirtyCount = 0;
  /** Pending sizes by inode (the index's rows, mirrored: read on every getattr and read). */
  private readonly pendingRows = new Map<number, PendingRow>();
  private readonly pinnedInos: Set<number>;
  private readonly sectors: SectorCipher;
  private readonly touched = new Set<string>();
  /** Every operation on one dirty block runs alone: a write never meets its file's deletion. */
  private readonly blockLocks = new KeyedMutex<string>();
  /** Generations are unique across all dirty blocks, ever: a recreated block never reuses one. */
  private nextGen = 1;
  private cleanBytes = 0;
  /** Room granted to writes still in progress: counted against the limit until they land. */
  private reservedBytes = 0;
  private pinnedBytes = 0;
  private dirtyBytes = 0;
  private waiters: (() => void)[] = [];
  private touchTimer: NodeJS.Timeout;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  /** Dirty blocks whose cache files were missing at start-up (reported by the agent). */
  readonly lost: DirtyRow[] = [];
  /** Emitted when writers wait for space: the uploader should start now. */
  readonly pressure = new Signal();
  /** Empty dirty files made ahead (a create is the slow step of a small file's write). */
  private readonly spares: SpareFiles;
  /** Scratch for synchronous sector writes (writeSectorsSync). */
  private scratch = Buffer.allocUnsafe(0);
  /** Dirty files in sector form kept open between writes. */
  private readonly openFiles: OpenDirtyFiles;
  /**
   * Buffers of one sealed block, reused: a whole block sealed as it is written, and the
   * blocks handed to the uploader (`snapshotDirty`, which gives them back here once settled).
   * Fresh, each MiB written cost two or three MiB of buffers that only a full collection
   * freed: 16 writers of 64 MiB left 100–150 MiB of them waiting (agent RSS 330–350 MiB).
   */
  readonly blockBuffers: BufferPool;

  private constructor(private readonly dir: string, private readonly index: CacheIndex, cacheKey: Buffer, private limit: number, private readonly sealer: BlockSealer,
    private readonly files: CleanFileIo, private readonly blockSize?: number) {
    this.sectors = new SectorCipher(cacheKey);
    this.spares = new SpareFiles(path.join(dir, 'dirty'));
    this.openFiles = new OpenDirtyFiles(path.join(dir, 'dirty'));
    this.blockBuffers = new BufferPool(blockSize ? sealedSize(blockSize) : 0, BLOCK_BUFFERS_KEPT, { minPooled: BLOCK_BUFFERS_MIN });
    this.pinnedInos = new Set(index.pins());
    this.touchTimer = setInterval(() => this.persistTouches(), 5_000);
    this.touchTimer.unref();
  }

  static async open(options: BlockCacheOptions): Promise<BlockCache> {
    await fs.mkdir(path.join(options.dir, 'objects'), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(options.dir, 'dirty'), { recursive: true, mode: 0o700 });
    const index = new CacheIndex(path.join(options.dir, 'index.sqlite'), options.filespaceId);
    const cache = new BlockCache(options.dir, index, options.cacheKey, options.limitBytes, options.sealer, options.files ?? new EventLoopFileIo(options.sealer), options.blockSize);
    await cache.load();
    // Only now: load() removes every file in dirty/ that the index does not name.
    cache.spares.fill();
    return cache;
  }

  private async load(): Promise<void> {
    for (const e of this.index.cleanEntries()) {
      const entry = { size: e.size, ino: e.ino };
      if (this.pinnedInos.has(e.ino)) {
        this.pinnedClean.set(e.objectId, entry);
        this.pinnedBytes += e.size;
      } else {
        this.lru.set(e.objectId, entry);
        this.cleanBytes += e.size;
      }
    }
    for (const p of this.index.allPending()) this.pendingRows.set(p.ino, p);
    const liveFiles = new Set<string>();
    for (const row of this.index.allDirty()) {
      if (!(await fs.stat(this.dirtyPath(row.fileId)).catch(() => undefined))) {
        // Its bytes are gone (the cache directory was damaged): nothing can be uploaded.
        this.lost.push(row);
        this.index.deleteDirty(row.ino, row.idx);
        continue;
      }
      this.setDirtyRow(row);
      this.nextGen = Math.max(this.nextGen, row.gen + 1);
      this.dirtyBytes += bytesOf(row);
      liveFiles.add(row.fileId);
    }
    // Files a killed process made but never recorded hold no acknowledged bytes.
    for (const name of await fs.readdir(path.join(this.dir, 'dirty'))) {
      if (!liveFiles.has(name)) await fs.rm(path.join(this.dir, 'dirty', name), { force: true });
    }
    // Nor do clean files it was still writing (a temporary name is never in the index).
    const objects = path.join(this.dir, 'objects');
    for (const fan of await fs.readdir(objects)) {
      const names = await fs.readdir(path.join(objects, fan)).catch(() => [] as string[]);
      for (const name of names) if (name.endsWith('.tmp')) await fs.rm(path.join(objects, fan, name), { force: true });
    }
  }

  // ---- clean blocks -------------------------------------------------------------------

  /**
   * The plaintext of a cached clean object, or undefined when it is not cached (or its file
   * is missing or torn: the entry is dropped). Throws IntegrityError when the cached bytes
   * do not authenticate; the caller drops them (`dropClean`) and fetches again. `buffer`
   * gives memory of the plaintext's size to open into (as CleanFileIo.open's `into`);
   * `urgent`: a reader waits for it (it goes ahead of opens for reading ahead).
   */
  async openClean(objectId: string, buffer?: (size: number) => Buffer, urgent = false): Promise<Buffer | undefined> {
    const entry = this.lru.get(objectId) ?? this.pinnedClean.get(objectId);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    try {
      const plain = await this.files.open(this.objectPath(objectId), entry.size, objectId, buffer?.(plainSize(entry.size)), urgent);
      this.hits++;
      this.touched.add(objectId);
      return plain;
    } catch (e) {
      if (!(e instanceof UnreadableCacheFile)) throw e;
      this.misses++;
      await this.dropClean(objectId);
      return undefined;
    }
  }

  /** Creates a fan-out directory once per run (a mkdir per insert showed in profiles). */
  private async ensureDir(dir: string): Promise<void> {
    if (this.dirsMade.has(dir)) return;
    await fs.mkdir(dir, { recursive: true });
    this.dirsMade.add(dir);
  }

  /** An open of `objectId` begun for reading ahead, that a reader now waits for, goes first. */
  hurryClean(objectId: string): void {
    this.files.hurry?.(objectId);
  }

  /** Whether the object's sealed copy is in a cache file. */
  isCleanOnDisk(objectId: string): boolean {
    return this.lru.has(objectId) || this.pinnedClean.has(objectId);
  }

  /** Caches a sealed object; evicts older clean blocks to stay within the limit. */
  async writeClean(objectId: string, sealed: Buffer, ino: number): Promise<void> {
    if (this.isCleanOnDisk(objectId)) return;
    const pinned = this.pinnedInos.has(ino);
    const evicted: Promise<void>[] = [];
    if (!pinned && !this.makeRoom(sealed.length, evicted)) return; // no room: serve uncached
    this.reservedBytes += sealed.length;
    try {
      // The files evicted to make room are gone before this one is written (the write may run
      // on another thread, ahead of the removals): the disk never holds more than the limit.
      await Promise.all(evicted);
      await this.files.write(this.objectPath(objectId), sealed);
    } catch (e) {
      if ((e as CacheWriteError).code === 'ENOSPC') return;
      throw e;
    } finally {
      this.reservedBytes -= sealed.length;
    }
    if (this.isCleanOnDisk(objectId)) return;
    this.addClean(objectId, sealed.length, ino);
  }

  /**
   * Starts caching a sealed object (as writeClean) and returns at once with the write's
   * promise, so a reader is served while its block goes to disk. close() waits for every
   * write still going.
   */
  writeCleanInBackground(objectId: string, sealed: Buffer, ino: number): Promise<void> {
    const write = this.writeClean(objectId, sealed, ino);
    this.keeping.add(write);
    this.keepingBytes_ += sealed.length;
    if (!this.keepingObjects.has(objectId)) this.keepingObjects.set(objectId, sealed);
    // Registered before the caller can attach to `write`: the bytes stop being readable here
    // before the caller reuses their buffer.
    void write.finally(() => {
      this.keeping.delete(write);
      this.keepingBytes_ -= sealed.length;
      if (this.keepingObjects.get(objectId) === sealed) this.keepingObjects.delete(objectId);
    }).catch(() => {});
    return write;
  }

  /**
   * The sealed bytes of an object handed to writeCleanInBackground whose write has not settled, exactly as
   * they were handed over (authenticated when opened). Use them before the next wait: once
   * the write settles the caller of writeCleanInBackground may reuse their buffer.
   */
  sealedBeingWritten(objectId: string): Buffer | undefined {
    return this.keepingObjects.get(objectId);
  }

  /** Whether the object can be opened without the store: on disk, or held while it is written. */
  holdsClean(objectId: string): boolean {
    return this.isCleanOnDisk(objectId) || this.keepingObjects.has(objectId);
  }

  /** Bytes of sealed objects handed to writeCleanInBackground and not yet on disk. */
  get keepingBytes(): number {
    return this.keepingBytes_;
  }

  /**
   * Whether the writes handed to writeCleanInBackground are past their backlog (16 MiB, a slow cache
   * disk): callers then wait for their own write, so the sealed copies in memory stay bounded.
   */
  get keepingBacklogged(): boolean {
    return this.keepingBytes_ > KEEP_BACKLOG_BYTES;
  }

  private addClean(objectId: string, size: number, ino: number): void {
    this.index.addClean(objectId, size, ino);
    const entry = { size, ino };
    if (this.pinnedInos.has(ino)) {
      this.pinnedClean.set(objectId, entry);
      this.pinnedBytes += entry.size;
    } else {
      this.lru.set(objectId, entry);
      this.cleanBytes += entry.size;
    }
  }

  async dropClean(objectId: string): Promise<void> {
    const entry = this.lru.get(objectId);
    if (entry) {
      this.lru.delete(objectId);
      this.cleanBytes -= entry.size;
    }
    const pinned = this.pinnedClean.get(objectId);
    if (pinned) {
      this.pinnedClean.delete(objectId);
      this.pinnedBytes -= pinned.size;
    }
    this.index.deleteClean(objectId);
    await fs.rm(this.objectPath(objectId), { force: true });
  }

  /** The cache's directory (the mount keeps its metadata journal there too). */
  get directory(): string {
    return this.dir;
  }

  /** Journal entries this cache's index kept before the journal had a file of its own: handed over once. */
  get legacyJournal(): { entries(): string[]; forget(): void } {
    return { entries: () => this.index.legacyJournal(), forget: () => this.index.forgetLegacyJournal() };
  }

  // ---- pins -----------------------------------------------------------------------------

  isPinned(ino: number): boolean {
    return this.pinnedInos.has(ino);
  }

  pin(ino: number): void {
    if (this.pinnedInos.has(ino)) return;
    this.pinnedInos.add(ino);
    this.index.pin(ino);
    for (const [id, e] of this.lru.entries()) {
      if (e.ino !== ino) continue;
      this.lru.delete(id);
      this.cleanBytes -= e.size;
      this.pinnedClean.set(id, e);
      this.pinnedBytes += e.size;
    }
  }

  unpin(ino: number): void {
    if (!this.pinnedInos.delete(ino)) return;
    this.index.unpin(ino);
    for (const [id, e] of this.pinnedClean) {
      if (e.ino !== ino) continue;
      this.pinnedClean.delete(id);
      this.pinnedBytes -= e.size;
      this.lru.set(id, e);
      this.cleanBytes += e.size;
    }
    this.makeRoom(0);
  }

  // ---- dirty blocks ---------------------------------------------------------------------

  dirtyRow(ino: number, idx: number): DirtyRow | undefined {
    return this.dirty.get(ino)?.get(idx);
  }

  dirtyRowsOf(ino: number): DirtyRow[] {
    const rows = this.dirty.get(ino);
    return rows ? [...rows.values()].sort((a, b) => a.idx - b.idx) : [];
  }

  allDirty(): DirtyRow[] {
    return [...this.dirty.values()].flatMap((rows) => [...rows.values()]);
  }

  private setDirtyRow(row: DirtyRow): void {
    let rows = this.dirty.get(row.ino);
    if (!rows) {
      rows = new Map();
      this.dirty.set(row.ino, rows);
    }
    if (!rows.has(row.idx)) this.dirtyCount++;
    rows.set(row.idx, row);
  }

  private deleteDirtyRow(row: DirtyRow): void {
    const rows = this.dirty.get(row.ino);
    if (!rows?.delete(row.idx)) return;
    this.dirtyCount--;
    if (rows.size === 0) this.dirty.delete(row.ino);
  }

  /**
   * Writes `data` at `offset` inside block (ino, idx). A block not yet dirty starts from
   * `base()` (its committed plaintext, or undefined for a hole) unless the write covers it.
   */
  async writeDirty(ino: number, idx: number, offset: number, data: Buffer, base: () => Promise<Buffer | undefined>, baseLength: number, pending?: PendingRow): Promise<void> {
    // Space is reserved before taking the block's lock: the upload that frees space may need it.
    const end = offset + data.length;
    const current = this.dirtyRow(ino, idx);
    const growth = current ? allocated(Math.max(current.length, end)) - bytesOf(current) : allocated(Math.max(baseLength, end));
    if (growth > 0) await this.reserve(growth);
    try {
      await this.whenDiskFull(() => this.blockLocks.run(key(ino, idx), () => this.writeDirtyLocked(ino, idx, offset, data, base, baseLength, pending)), Math.max(growth, data.length));
    } finally {
      if (growth > 0) this.release(growth);
    }
  }

  /**
   * Runs a dirty write; if the cache's disk is full (the limit is larger than what the disk
   * has left), evicts clean blocks for room and tries once more, then gives up with
   * NoSpaceError (ENOSPC to the writer). What was written before stays intact.
   */
  private async whenDiskFull<T>(write: () => Promise<T>, bytes: number): Promise<T> {
    try {
      return await write();
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      if (await this.evictForDisk(4 * Math.max(bytes, SECTOR))) {
        try {
          return await write();
        } catch (again) {
          if (!isDiskFull(again)) throw again;
        }
      }
      throw new NoSpaceError(`the cache disk (${this.dir}) is full: ${formatSize(this.dirtyBytes)} waits to be uploaded; free space there or lower --cache-size`);
    }
  }

  /** Evicts least recently used clean blocks, at least `bytes` of them, deleting their files now. */
  private async evictForDisk(bytes: number): Promise<boolean> {
    let freed = 0;
    while (freed < bytes && this.lru.size > 0) {
      const victim = this.evictOldest();
      await victim.removed;
      freed += victim.size;
    }
    return freed > 0;
  }

  private async writeDirtyLocked(ino: number, idx: number, offset: number, data: Buffer, base: () => Promise<Buffer | undefined>, baseLength: number, pending?: PendingRow): Promise<void> {
    let row = this.dirtyRow(ino, idx);
    const end = offset + data.length;
    // A write that covers all the block holds is sealed whole at once when it is the whole
    // block, or a small first block (a small file written in one go: the upload sends these
    // very bytes and the clean cache adopts the file). A longer first piece (`dd bs=128k`), or
    // any piece of a later block, starts in sector form instead: sealed whole, the next write
    // would have to unseal it again.
    const coversAll = offset === 0 && end >= (row ? row.length : baseLength);
    if (coversAll && (this.blockSize === undefined || data.length >= this.blockSize || (idx === 0 && data.length <= WHOLE_SEAL_SMALL))) {
      return this.writeWholeLocked(ino, idx, data, row, pending);
    }
    if (row?.sealedId && idx === 0 && Math.max(row.length, end) <= WHOLE_SEAL_SMALL) {
      // A small file written in more than one piece (`tar x` writes one in two when it spans
      // a 10 KiB record: 4 in 10 of 4 KiB files) stays whole, sealed again with the piece:
      // cheaper than turning it into sectors, and the upload still sends the file as it is.
      const plain = await this.openSealedDirty(row);
      const merged = Buffer.alloc(Math.max(row.length, end));
      plain.copy(merged, 0, 0, row.length);
      data.copy(merged, offset);
      return this.writeWholeLocked(ino, idx, merged, row, pending);
    }
    if (row?.sealedId) row = await this.unsealLocked(row);
    if (!row) {
      const needsBase = baseLength > 0 && (offset > 0 || end < baseLength);
      const baseData = needsBase ? await base() : undefined;
      const initial = baseData ? baseData.subarray(0, baseLength) : undefined;
      const length = Math.max(initial?.length ?? 0, end);
      const { fileId, spare } = this.spares.take();
      const plain = Buffer.alloc(allocated(length));
      if (initial) initial.copy(plain, 0);
      data.copy(plain, offset);
      const file = this.openFiles.open(fileId, spare ? 'r+' : 'wx');
      file.pwrite(this.sectors.encrypt(Buffer.from(fileId, 'hex'), 0, plain, plain), 0);
      row = { ino, idx, fileId, length, gen: this.nextGen++, sealedId: null };
      this.dirtyBytes += allocated(length);
      this.recordDirty(row, pending);
      return;
    }
    this.writeSectorsSync(row, offset, data);
    const next = { ...row, length: Math.max(row.length, end), gen: this.nextGen++ };
    this.dirtyBytes += bytesOf(next) - bytesOf(row);
    this.recordDirty(next, pending);
  }

  /**
   * Writes `data` at `offset` into a dirty block in sector form, all synchronously (so the
   * scratch buffer is never shared across an await): the partial first and last sectors are
   * read and decrypted, the run is encrypted in one call and written in one.
   */
  private writeSectorsSync(row: DirtyRow, offset: number, data: Buffer): void {
    const end = offset + data.length;
    const physEnd = allocated(row.length);
    const first = Math.floor(offset / SECTOR);
    const last = sectorsFor(end);
    const fileId = Buffer.from(row.fileId, 'hex');
    const file = this.openFiles.open(row.fileId);
    const run = this.scratchOf((last - first) * SECTOR);
    if (offset % SECTOR === 0 && end % SECTOR === 0) {
      this.sectors.encrypt(fileId, first, data, run);
    } else {
      // Only the partial first and last sectors hold bytes that must survive the write; past
      // the block's end they are zeros.
      for (const s of new Set([first, last - 1])) {
        const partial = (s === first && offset % SECTOR !== 0) || (s === last - 1 && end % SECTOR !== 0);
        if (!partial) continue;
        const sector = run.subarray((s - first) * SECTOR, (s - first + 1) * SECTOR);
        if (s * SECTOR < physEnd) {
          file.pread(sector, s * SECTOR);
          this.sectors.decrypt(fileId, s, sector, sector);
        } else {
          sector.fill(0);
        }
      }
      data.copy(run, offset - first * SECTOR);
      this.sectors.encrypt(fileId, first, run, run);
    }
    // A write past the old end leaves a gap that must read as zeros: those sectors are written too.
    const gapStart = Math.min(first * SECTOR, physEnd);
    if (gapStart < first * SECTOR) {
      const zeros = Buffer.alloc(first * SECTOR - gapStart);
      file.pwrite(this.sectors.encrypt(fileId, gapStart / SECTOR, zeros, zeros), gapStart);
    }
    file.pwrite(run, first * SECTOR);
  }

  /** A buffer of `bytes` for one synchronous step at a time (grown as needed, never shrunk). */
  private scratchOf(bytes: number): Buffer {
    if (this.scratch.length < bytes) this.scratch = Buffer.allocUnsafe(Math.max(bytes, 1024 * 1024 + 2 * SECTOR));
    return this.scratch.subarray(0, bytes);
  }

  /** A dirty block's row (and the size its write implies) in the index, then in memory. */
  private recordDirty(row: DirtyRow, pending?: PendingRow): void {
    this.index.putDirty(row, pending);
    this.setDirtyRow(row);
    if (pending) this.pendingRows.set(pending.ino, pending);
  }

  /** The write replaces the whole block: seal it now into its final object and journal that. */
  private async writeWholeLocked(ino: number, idx: number, data: Buffer, old: DirtyRow | undefined, pending?: PendingRow): Promise<void> {
    const objectId = this.sealer.newObjectId();
    const sealed = this.sealer.seal(objectId, data, this.blockBuffers.take(sealedSize(data.length)));
    const { fileId, spare } = this.spares.take();
    try {
      await writeNewDirty(this.dirtyPath(fileId), sealed, spare ? 'r+' : 'wx');
    } finally {
      this.blockBuffers.give(sealed);
    }
    const row: DirtyRow = { ino, idx, fileId, length: data.length, gen: this.nextGen++, sealedId: objectId };
    this.recordDirty(row, pending);
    this.dirtyBytes += bytesOf(row) - (old ? bytesOf(old) : 0);
    if (old) await this.removeDirtyFile(old);
    this.wake();
  }

  /** The plaintext of a dirty block kept sealed whole. */
  private async openSealedDirty(row: DirtyRow): Promise<Buffer> {
    return this.sealer.open(row.sealedId!, await readDirtyFileInto(this.dirtyPath(row.fileId), Buffer.allocUnsafe(bytesOf(row))));
  }

  /** Turns a block journaled sealed back into sector form, for a partial write or a truncate. */
  private async unsealLocked(row: DirtyRow): Promise<DirtyRow> {
    const plain = await this.openSealedDirty(row);
    const { fileId, spare } = this.spares.take();
    const padded = Buffer.alloc(allocated(row.length));
    plain.copy(padded, 0, 0, row.length);
    await writeNewDirty(this.dirtyPath(fileId), this.sectors.encrypt(Buffer.from(fileId, 'hex'), 0, padded), spare ? 'r+' : 'wx');
    const next: DirtyRow = { ...row, fileId, sealedId: null, gen: this.nextGen++ };
    this.recordDirty(next);
    this.dirtyBytes += bytesOf(next) - bytesOf(row);
    await this.removeDirtyFile(row);
    return next;
  }

  /** Plaintext [offset, offset+length) of a dirty block, zeros past its end. */
  async readDirty(ino: number, idx: number, offset: number, length: number): Promise<Buffer | undefined> {
    if (!this.dirtyRow(ino, idx)) return undefined;
    return this.blockLocks.run(key(ino, idx), () => this.readDirtyLocked(ino, idx, offset, length));
  }

  private async readDirtyLocked(ino: number, idx: number, offset: number, length: number): Promise<Buffer | undefined> {
    const row = this.dirtyRow(ino, idx);
    if (!row) return undefined;
    const out = Buffer.alloc(length);
    const end = Math.min(offset + length, row.length);
    if (end <= offset) return out;
    if (row.sealedId) {
      const plain = await this.openSealedDirty(row);
      plain.copy(out, 0, offset, end);
      return out;
    }
    const first = Math.floor(offset / SECTOR);
    const plain = this.decryptedSectorsSync(row, first, Buffer.allocUnsafe((sectorsFor(end) - first) * SECTOR));
    plain.copy(out, 0, offset - first * SECTOR, end - first * SECTOR);
    return out;
  }

  /** Sectors from `first` of a dirty block in sector form, read into `run` and decrypted there (zeros past the file's end, as written). */
  private decryptedSectorsSync(row: DirtyRow, first: number, run: Buffer): Buffer {
    this.openFiles.open(row.fileId).pread(run, first * SECTOR);
    return this.sectors.decrypt(Buffer.from(row.fileId, 'hex'), first, run, run);
  }

  /** The whole dirty block as the uploader needs it, with the generation it had when read. */
  async snapshotDirty(ino: number, idx: number): Promise<DirtySnapshot | undefined> {
    return this.blockLocks.run(key(ino, idx), async () => {
      const row = this.dirtyRow(ino, idx);
      if (!row) return undefined;
      if (row.sealedId) {
        const bytes = await readDirtyFileInto(this.dirtyPath(row.fileId), this.blockBuffers.take(bytesOf(row)));
        return { gen: row.gen, length: row.length, sealed: { objectId: row.sealedId, bytes }, pooled: true };
      }
      return { gen: row.gen, length: row.length, data: this.readSectorsWholeSync(row), pooled: true };
    });
  }

  /** The plaintext of a dirty block in sector form, whole, decrypted in place in a buffer of `blockBuffers`. */
  private readSectorsWholeSync(row: DirtyRow): Buffer {
    if (row.length === 0) return Buffer.alloc(0);
    return this.decryptedSectorsSync(row, 0, this.blockBuffers.take(allocated(row.length))).subarray(0, row.length);
  }

  /**
   * After the upload of generation `gen` was committed as `objectId`: the block becomes clean.
   * A block journaled sealed as that very object moves into the clean cache by rename; if the
   * block changed meanwhile it stays dirty and the uploaded copy is cached from `sealed`.
   */
  async settleUploaded(ino: number, idx: number, gen: number, objectId: string, sealed: Buffer): Promise<void> {
    const adopted = await this.blockLocks.run(key(ino, idx), async () => {
      const row = this.dirtyRow(ino, idx);
      if (!row || row.gen !== gen) return false;
      if (row.sealedId === objectId && !this.isCleanOnDisk(objectId)) {
        const target = this.objectPath(objectId);
        await this.ensureDir(path.dirname(target));
        this.openFiles.forget(row.fileId);
        await fs.rename(this.dirtyPath(row.fileId), target);
        this.forgetDirty(row);
        this.addClean(objectId, sealed.length, ino);
        return true;
      }
      await this.dropDirtyLocked(ino, idx, gen);
      return false;
    });
    if (!adopted) await this.writeClean(objectId, sealed, ino);
  }

  /** Shortens a dirty block; bytes past the new end read as zeros if it grows again. */
  truncateDirty(ino: number, idx: number, length: number): Promise<void> {
    return this.blockLocks.run(key(ino, idx), () => this.truncateDirtyLocked(ino, idx, length));
  }

  private async truncateDirtyLocked(ino: number, idx: number, length: number): Promise<void> {
    let row = this.dirtyRow(ino, idx);
    if (!row || length >= row.length) return;
    if (row.sealedId) row = await this.unsealLocked(row);
    const fileId = Buffer.from(row.fileId, 'hex');
    const fh = this.openFiles.open(row.fileId);
    try {
      if (length % SECTOR !== 0) {
        const s = Math.floor(length / SECTOR);
        const enc = Buffer.alloc(SECTOR);
        await fh.read(enc, 0, SECTOR, s * SECTOR);
        const plain = this.sectors.decrypt(fileId, s, enc);
        plain.fill(0, length % SECTOR);
        await fh.write(this.sectors.encrypt(fileId, s, plain), 0, SECTOR, s * SECTOR);
      }
      await fh.truncate(allocated(length));
    } finally {
      await fh.close();
    }
    const next = { ...row, length, gen: this.nextGen++ };
    this.dirtyBytes += bytesOf(next) - bytesOf(row);
    this.recordDirty(next);
    this.wake();
  }

  /** Forgets a dirty block (uploaded, or discarded); with `ifGen`, only if unchanged since. */
  dropDirty(ino: number, idx: number, ifGen?: number): Promise<boolean> {
    return this.blockLocks.run(key(ino, idx), () => this.dropDirtyLocked(ino, idx, ifGen));
  }

  private async dropDirtyLocked(ino: number, idx: number, ifGen?: number): Promise<boolean> {
    const row = this.dirtyRow(ino, idx);
    if (!row || (ifGen !== undefined && row.gen !== ifGen)) return false;
    this.forgetDirty(row);
    await this.removeDirtyFile(row);
    return true;
  }

  private forgetDirty(row: DirtyRow): void {
    this.deleteDirtyRow(row);
    this.dirtyBytes -= bytesOf(row);
    this.index.deleteDirty(row.ino, row.idx);
    this.wake();
  }

  mayHoldBack(): boolean {
    return this.dirtyBytes + this.reservedBytes < this.limit / 2;
  }

  // ---- pending sizes --------------------------------------------------------------------

  pending(ino: number): PendingRow | undefined {
    return this.pendingRows.get(ino);
  }

  allPending(): PendingRow[] {
    return [...this.pendingRows.values()];
  }

  setPending(row: PendingRow): void {
    this.index.putPending(row);
    this.pendingRows.set(row.ino, row);
  }

  clearPending(ino: number): void {
    this.index.deletePending(ino);
    this.pendingRows.delete(ino);
  }

  // ---- space ----------------------------------------------------------------------------

  get usedBytes(): number {
    return this.cleanBytes + this.pinnedBytes + this.dirtyBytes;
  }

  get limitBytes(): number {
    return this.limit;
  }

  setLimit(bytes: number): void {
    this.limit = bytes;
    this.makeRoom(0);
    this.wake();
  }

  /**
   * Waits until `bytes` more fit under the limit (evicting clean blocks first), then holds
   * them for the caller until `release(bytes)`.
   */
  async reserve(bytes: number): Promise<void> {
    while (!this.makeRoom(bytes)) {
      // Nothing left to evict: only uploads can make room. Never wait for more than the
      // whole limit (a block larger than the cache proceeds once the cache holds nothing else).
      if (this.dirtyBytes === 0 && this.pinnedBytes === 0 && this.reservedBytes === 0) break;
      this.pressure.emit();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.reservedBytes += bytes;
  }

  release(bytes: number): void {
    this.reservedBytes -= bytes;
    this.wake();
  }

  /** Evicts least recently used clean blocks until `bytes` more fit (their files' removals into `removals`); false if they cannot. */
  private makeRoom(bytes: number, removals?: Promise<void>[]): boolean {
    while (this.usedBytes + this.reservedBytes + bytes > this.limit && this.lru.size > 0) {
      const { removed } = this.evictOldest();
      removals?.push(removed);
    }
    return this.usedBytes + this.reservedBytes + bytes <= this.limit;
  }

  /** Evicts the least recently used clean block: its size, and the removal of its file. */
  private evictOldest(): { size: number; removed: Promise<void> } {
    const victim = this.lru.rkeys().next().value as string;
    const entry = this.lru.get(victim, { updateAgeOnGet: false })!;
    this.lru.delete(victim);
    this.cleanBytes -= entry.size;
    this.evictions++;
    this.index.deleteClean(victim);
    return { size: entry.size, removed: fs.rm(this.objectPath(victim), { force: true }).catch(() => {}) };
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  stats(): CacheStats {
    let uploadBytes = 0;
    for (const rows of this.dirty.values()) for (const r of rows.values()) uploadBytes += r.length;
    return {
      limitBytes: this.limit, usedBytes: this.usedBytes, cleanBytes: this.cleanBytes, pinnedBytes: this.pinnedBytes,
      dirtyBytes: this.dirtyBytes, uploadBytes, dirtyBlocks: this.dirtyCount, cleanObjects: this.lru.size + this.pinnedClean.size,
      hits: this.hits, misses: this.misses, evictions: this.evictions, waitingWriters: this.waiters.length,
    };
  }

  /** Recency into the index (kept for the next time if the index cannot take it now: a full disk). */
  private persistTouches(): void {
    if (this.touched.size === 0) return;
    try {
      this.index.touchClean(this.touched);
      this.touched.clear();
    } catch { /* tried again in 5 s */ }
  }

  async close(): Promise<void> {
    clearInterval(this.touchTimer);
    this.spares.close();
    this.openFiles.closeAll();
    await Promise.allSettled([...this.keeping]);
    await this.files.close();
    this.persistTouches();
    this.wake();
    this.index.close();
  }

  private objectPath(objectId: string): string {
    return path.join(this.dir, 'objects', objectId.slice(0, 2), objectId);
  }

  /** Removes a dirty block's file (closed first if it was kept open). */
  private async removeDirtyFile(row: DirtyRow): Promise<void> {
    this.openFiles.forget(row.fileId);
    await removeDirty(this.dirtyPath(row.fileId), bytesOf(row));
  }

  private dirtyPath(fileId: string): string {
    return path.join(this.dir, 'dirty', fileId);
  }
}

/** ENOSPC from the file system, or SQLite's "database or disk is full". */
function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}
