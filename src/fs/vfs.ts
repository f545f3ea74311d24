/**
 * The VFS: inode-level POSIX operations over a Filespace, its block cache and the writeback
 * uploader. It imports nothing from FUSE; the FUSE adapter calls it and turns its errors
 * into errno (src/fs/errno.ts). docs/SEMANTICS.md says what is POSIX and what is relaxed.
 *
 * Data path: write() lands in the cache as a dirty block and returns; the uploader seals,
 * uploads and then commits it. A read (readReply for FUSE: the bytes go to a callback in the
 * turn they are ready, often a view of a block in memory; read() for a copy to keep) serves
 * dirty blocks from the cache, then plaintexts in memory, then the bytes held while a block's
 * cache write is going, then clean cached objects, then the store (one fetch per object
 * however many readers want it). Fetched objects and plaintexts live in reused buffers, each
 * back in its pool only once nothing can read it. A file's size and mtime as seen here
 * include writes not yet committed.
 * Permission checks are the kernel's (mounted with default_permissions), against the owner,
 * group and mode this layer reports; new inodes belong to the calling process's user.
 */
import { LRUCache } from 'lru-cache';
import { LastKnown, type ListedEntry } from './offline.js';
import {
  EntryExistsError, IntegrityError, InvalidArgumentError, NoAttributeError, IsDirectoryError, NameTooLongError, NoEntryError, NotDirectoryError,
  NotEmptyError, NotSupportedError, OutOfRangeError, ServiceUnavailableError, TooBigError,
} from '../errors.js';
import { MetaJournal } from './journal.js';
import { NameCipher } from '../crypto/names.js';
import { spans } from '../chunker/layout.js';
import type { Writeback } from '../chunker/writeback.js';
import type { BlockCache } from '../cache/block-cache.js';
import { blockKey } from '../store/keys.js';
import { LOOKUP_BLOCKS_MAX, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, isDir, type Attr, type AttrChanges, type BlockRef, type NewNode, type ReaddirPage } from '../meta/types.js';
import type { Filespace } from './filespace.js';
import { KeyedMutex } from '../util/mutex.js';
import { mapLimit } from '../util/concurrency.js';
import { BufferPool } from '../util/buffer-pool.js';
import { plainSize, sealedSize } from '../chunker/format.js';
import { Prefetcher, prefetchWindowBlocks } from '../prefetch/prefetcher.js';
import { DirectoryPredictor } from '../prefetch/directory.js';
import { traced, type TraceSink } from '../util/trace.js';
import { LocalLocks } from '../locks/local.js';
import type { HeldLock, LockKind, LockManager, LockRange } from '../locks/types.js';

export interface Caller {
  uid: number;
  gid: number;
  pid?: number;
}

export interface SetAttrRequest {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeMs?: number | 'now';
  mtimeMs?: number | 'now';
}

/** A directory entry as listed (attributes absent for "." and ".."). */
export type DirEntryOut = ListedEntry;

export interface StatFs {
  blockSize: number;
  blocks: number;
  blocksFree: number;
  files: number;
  filesFree: number;
  nameMax: number;
}

const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const S_ISGID = 0o2000;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const VIRTUAL_CAPACITY = 2 ** 50; // 1 PiB: the store has no fixed size

interface FileHandle {
  ino: number;
  append: boolean;
  writable: boolean;
}

interface DirHandle {
  ino: number;
  /** The directory's version when it was opened: its listing has every change up to it. */
  version: number;
  entries: DirEntryOut[];
  cursor?: string;
  complete: boolean;
}

export interface VfsOptions {
  /** Plaintext of recently read blocks kept in memory (bytes). */
  memoryCacheBytes?: number;
  /**
   * How long attributes fetched from the metadata service are trusted (ms): the bound on how
   * stale another client's change can look. This mount's own changes update them at once.
   */
  attrTtlMs?: number;
  /**
   * How long attributes and names are trusted while the change feed is connected (ms,
   * default 60 s): every change is then pushed, so the TTL only bounds memory.
   */
  feedTtlMs?: number;
  /** Where locks are held: this machine only by default, the service for shared filespaces. */
  locks?: LockManager;
  /** Tells the kernel to drop what it caches of an inode (attributes and pages). */
  invalidate?: (ino: number) => void;
  /** Tells the kernel to forget one name in a directory. */
  invalidateEntry?: (parent: number, name: string) => void;
  log?: (line: string) => void;
  /** Told the bytes of each block object fetched (its body came in chunks that are garbage now), for pacing garbage collection. */
  allocated?: (bytes: number) => void;
  /** LUCID_TRACE: each block brought into memory (from disk or store), and each prefetch, timed. */
  trace?: TraceSink;
  /** Block refs asked of the service at a time (default 1024). */
  mapWindowBlocks?: number;
}

export class Vfs {
  readonly blockSize: number;
  private readonly names: NameCipher;
  private readonly files = new Map<number, FileHandle>();
  private readonly dirs = new Map<number, DirHandle>();
  private readonly openCount = new Map<number, number>();
  /** Inodes whose last name is gone while handles are open: dropped at last close. */
  private readonly orphans = new Set<number>();
  /**
   * Block map entries per inode, kept current by this mount's own commits (`committed`) and
   * dropped on truncate; a newer committed version (another writer) starts afresh. `gen`
   * counts updates, so a fetch that raced one is retried instead of overwriting it.
   */
  private readonly refs = new LRUCache<number, { version: number; gen: number; map: Map<number, BlockRef | null> }>({ max: 256 });
  private readonly plain: LRUCache<string, Buffer>;
  /**
   * Buffers blocks are decrypted into, in shared memory: the cache-file thread decrypts a
   * cached block into one in place. A plaintext evicted from memory comes back
   * here once no reader is waiting for it (`plainUsers`: how many wait, and the plaintexts
   * of that block set aside meanwhile), so a reader always gets the bytes it asked for.
   */
  private readonly plainBuffers: BufferPool;
  private readonly plainUsers = new Map<string, { count: number; evicted?: Buffer[] }>();
  /**
   * Buffers block objects are fetched into (a fetch into memory), reused once the object is
   * on disk: as many as can be in flight and waiting for the disk, so GETs do not allocate.
   */
  private readonly sealedBuffers: BufferPool;
  /** Bytes of opened block plaintexts kept in memory (the `plain` LRU's size). */
  private readonly plainBudget: number;
  /** Set when a block could not be written to the disk cache (said once), cleared when one is. */
  private cacheWritesFailing = false;
  private readonly attrs: LRUCache<number, Attr>;
  /**
   * Names seen in listings and lookups ("parent/name" → inode), trusted for the attribute TTL
   * like the attributes themselves: a listed directory's entries are then looked up and
   * stat'ed without a round trip each (metadata prefetch). This mount's own changes to a
   * name drop it at once.
   */
  private readonly dentries: LRUCache<string, { ino: number; gen: number }>;
  /** The commit of this mount's last change to each folder's entries: the feed's word of it is no news. */
  private readonly ownCommits = new LRUCache<number, number>({ max: 10_000 });
  /** Bumped when another client changes a directory: its cached names are then stale. */
  private readonly dirGen = new Map<number, number>();
  /** The newest CSN the feed announced per inode: older answers in flight are not cached. */
  private readonly announced = new LRUCache<number, number>({ max: 100_000 });
  private feedUp = false;
  /** Names handed to the kernel per directory, so a change pushed for it can make the kernel forget them. */
  private readonly kernelNames = new Map<number, Set<string>>();
  private readonly fetching = new Map<string, Promise<Buffer>>();
  /**
   * Block objects being fetched for the disk cache only (`stageBlock`), by object id, until
   * the GET is done: a read meanwhile waits for it, then opens the sealed bytes the cache
   * holds until they are written (`BlockCache.keptSealed`).
   */
  private readonly staging = new Map<string, Promise<{ kept: Promise<void> }>>();
  private readonly mapLoads = new Map<string, Promise<void>>();
  /** Block refs are loaded from the service this many at a time. */
  private readonly mapWindow: number;
  readonly prefetcher: Prefetcher;
  readonly predictor: DirectoryPredictor;
  /** The name each inode was last looked up by: directory prediction needs it at open. */
  private readonly lastName = new LRUCache<number, { parent: number; name: string }>({ max: 10_000 });
  private readonly locks = new KeyedMutex<number>();
  readonly lockManager: LockManager;
  /** The committed version each inode had when this mount last opened or wrote it: unchanged → the kernel keeps its pages. */
  private readonly seenVersion = new LRUCache<number, number>({ max: 100_000 });
  /** What was last known of the metadata: served while the service cannot be reached. */
  readonly lastKnown = new LastKnown();
  /** Changes to names and attributes made while the service could not be reached, until replayed. */
  readonly journal: MetaJournal;
  /** Inode numbers reserved at the service for new entries (so creating works offline too). */
  private readonly reservedInos: number[] = [];
  private reserving?: Promise<void>;
  private nextFh = 1;
  bytesRead = 0;
  bytesWritten = 0;

  constructor(readonly fs: Filespace, readonly cache: BlockCache, readonly writeback: Writeback, private readonly options: VfsOptions = {}) {
    this.blockSize = fs.blockSize;
    this.mapWindow = options.mapWindowBlocks ?? 1024;
    this.names = fs.names;
    this.attrs = new LRUCache<number, Attr>({ max: 100_000, ttl: options.attrTtlMs ?? 1000 });
    this.lockManager = options.locks ?? new LocalLocks();
    this.dentries = new LRUCache<string, { ino: number; gen: number }>({ max: 100_000, ttl: options.attrTtlMs ?? 1000 });
    this.plainBudget = Math.max(options.memoryCacheBytes ?? 24 * 1024 * 1024, this.blockSize);
    this.prefetcher = new Prefetcher({
      isCached: (ino, idx) => this.isCached(ino, idx),
      load: (ino, idx, toDisk) => traced(options.trace, () => `${toDisk ? 'stage' : 'prefetch'} ino ${ino} block ${idx}`, async () => {
        const { version } = await this.committedAttr(ino);
        return toDisk ? this.stageBlock(ino, idx, version) : this.fetchBlock(ino, idx, version);
      }),
    }, { blockSize: this.blockSize, maxInflight: 16, maxWindowBlocks: prefetchWindowBlocks(this.plainBudget, this.blockSize) });
    const listingTtlMs = Math.max(500, (options.attrTtlMs ?? 1000) / 2);
    // Predicted files starting within a third of the plaintext memory (the frame opened and the
    // next) come into memory; those further ahead would be evicted before they are read, so
    // they come to disk only (8 MiB frames: 87 against 73 MB/s with all of them into memory).
    this.predictor = new DirectoryPredictor({
      // A listing the application has just taken (a player lists the folder, then opens the
      // first frame) serves, unless the folder changed since: no second round trip.
      list: async (parent) => (this.lastKnown.recentListing(parent, listingTtlMs) ?? await this.list(parent)).map((e) => ({
        name: e.name, ino: e.ino, size: e.attr?.size ?? 0, regular: (e.mode & S_IFMT) === S_IFREG,
      })),
      prepare: async (ino) => {
        const a = this.attrs.get(ino);
        if (a) await this.ref(ino, 0, a.version);
      },
    }, this.prefetcher, { blockSize: this.blockSize, listingTtlMs, memoryBytes: this.plainBudget / 3 });
    this.sealedBuffers = new BufferPool(sealedSize(this.blockSize), 16);
    // Shared: as many as memory keeps plaintexts, and 8 more for those on their way in.
    this.plainBuffers = new BufferPool(this.blockSize, 8, { shared: Math.ceil(this.plainBudget / this.blockSize) + 8 });
    this.plain = new LRUCache<string, Buffer>({
      maxSize: this.plainBudget,
      sizeCalculation: (b) => Math.max(1, b.length),
      dispose: (b, id) => {
        const users = this.plainUsers.get(id);
        if (users) (users.evicted ??= []).push(b);
        else this.plainBuffers.give(b);
      },
    });
    this.journal = new MetaJournal(cache.journalStore, {
      conflictName: (parent, name, n, newParent) => {
        const plain = this.names.open(parent, name.hash, name.enc);
        const dot = plain.lastIndexOf('.');
        const [stem, ext] = dot > 0 ? [plain.slice(0, dot), plain.slice(dot)] : [plain, ''];
        return this.names.seal(newParent, `${stem.slice(0, 200)} (offline copy${n > 1 ? ` ${n}` : ''})${ext.slice(0, 30)}`);
      },
      replayed: (inos, asJournaled) => {
        this.lastKnown.noteSuccess();
        for (const ino of inos) {
          if (this.journal.affects(ino)) continue;
          // As journaled, what this mount shows is what the service now has: only attributes
          // (versions, times) are fetched again. Otherwise what it knows of them is old.
          if (asJournaled) {
            this.forget(ino);
            this.options.invalidate?.(ino);
          } else {
            this.revalidate(ino);
          }
        }
        this.writeback.resume();
      },
      log: (line) => this.options.log?.(line),
    });
    if (this.journal.size > 0) this.options.log?.(`${this.journal.size} change(s) made offline wait for the metadata service`);
    this.writeback.held = (ino) => this.journal.affects(ino);
    this.journal.start(fs.meta);
  }

  /**
   * Sets aside inode numbers for new entries while the service answers, so that files and
   * folders can be made while it does not (the agent calls this at mount).
   */
  async reserveInodes(): Promise<void> {
    this.reserving ??= (async () => {
      const r = await this.fs.meta.reserveInodes(256);
      for (let i = 0; i < r.count; i++) this.reservedInos.push(r.first + i);
    })().finally(() => { this.reserving = undefined; });
    return this.reserving;
  }

  private async newIno(): Promise<number> {
    if (this.reservedInos.length < 64) void this.reserveInodes().catch(() => {});
    if (this.reservedInos.length === 0) await this.reserveInodes();
    return this.reservedInos.shift()!;
  }

  /**
   * Makes a change to names or attributes: at the service, or — while it cannot be reached,
   * or while earlier offline changes still wait — into the journal, applied to what this
   * mount knows (`offline`, which throws when it knows too little to decide).
   */
  private async change<T>(online: () => Promise<T>, offline: () => T | Promise<T>): Promise<T> {
    if (this.journal.size === 0) return this.lastKnown.whenUnreachable(online, offline);
    void this.journal.replay();
    return offline();
  }

  private unknownOffline(what: string): ServiceUnavailableError {
    return new ServiceUnavailableError(`the metadata service cannot be reached and this mount has not seen ${what}`);
  }

  /** What this mount knows of a name while its folder has offline changes or the service is away. */
  private localEntry(parent: number, name: string): Attr | null | undefined {
    return this.lastKnown.entry(parent, name, this.dirGen.get(parent) ?? 0);
  }

  /** Attributes changed by this mount offline: kept until the service has them. */
  private localAttr(a: Attr): Attr {
    this.attrs.set(a.ino, a, { ttl: 24 * 3600_000 });
    this.lastKnown.setAttr(a);
    return a;
  }

  /** A folder's attributes after an offline change to its entries. */
  private touchLocalDir(dir: number, nlinkDelta: number, now: number): void {
    const d = this.lastKnown.attr(dir);
    if (d) this.localAttr({ ...d, nlink: d.nlink + nlinkDelta, mtimeMs: now, ctimeMs: now });
  }

  /** The inode's committed attributes: from the attribute cache unless `fresh` or expired. */
  private async committedAttr(ino: number, fresh = false): Promise<Attr> {
    if (this.journal.affects(ino)) {
      const local = this.lastKnown.attr(ino);
      if (local) return local;
    }
    const hit = fresh ? undefined : this.attrs.get(ino);
    return hit ?? this.lastKnown.orStale(async () => this.remember(await this.fs.meta.getAttr(ino)), () => this.lastKnown.attr(ino));
  }

  private remember(a: Attr): Attr {
    // Changed offline and not yet replayed: the local attributes are what this mount shows.
    if (this.journal.affects(a.ino)) return a;
    const known = this.attrs.get(a.ino);
    // Answers can arrive out of order: never replace newer attributes with older ones.
    // An answer older than a change the feed already announced is not kept (it raced the push).
    if ((!known || known.version <= a.version) && a.version >= (this.announced.get(a.ino) ?? 0)) {
      this.attrs.set(a.ino, a, { ttl: this.ttl() });
      this.lastKnown.keepAttr(a);
    }
    return a;
  }

  /** How long what is fetched now may be trusted. */
  private ttl(): number {
    return this.feedUp ? this.options.feedTtlMs ?? 60_000 : this.options.attrTtlMs ?? 1000;
  }

  /** Seconds the kernel may cache attributes (names stay at the staleness bound: see SEMANTICS). */
  attrTimeoutSec(): number {
    return this.ttl() / 1000;
  }

  /**
   * The change feed is connected (and caught up) or lost. While it is up, cached attributes
   * and names are trusted until a push says otherwise; when it drops, everything cached is
   * forgotten and the staleness bound applies again until it is back.
   */
  setFeed(up: boolean): void {
    if (up) this.lastKnown.noteSuccess();
    if (this.feedUp && !up) {
      this.attrs.clear();
      this.dentries.clear();
    }
    this.feedUp = up;
  }

  private forget(...inos: number[]): void {
    for (const ino of inos) {
      // What this mount changed offline stays known until the service has it.
      if (this.journal.affects(ino)) continue;
      // What was last known stays for outages: a little old (times) after this mount's own
      // change, it still says what the inode is; another client's change drops it (revalidate).
      this.attrs.delete(ino);
    }
  }

  /** The writeback uploader calls this after each commit. */
  committed(ino: number, refs: BlockRef[], attr: Attr): void {
    this.remember(attr);
    // Our own writes are already in the kernel's pages: they stay valid.
    if (this.seenVersion.has(ino)) this.seenVersion.set(ino, attr.version);
    const c = this.refs.get(ino);
    if (!c) return;
    c.gen++;
    c.version = Math.max(c.version, attr.version);
    for (const r of refs) c.map.set(r.index, r);
  }

  // ---- attributes and names -------------------------------------------------------------

  /** The inode's attributes, with writes not yet committed applied. */
  async getattr(ino: number): Promise<Attr> {
    return this.overlay(await this.committedAttr(ino));
  }

  private overlay(a: Attr): Attr {
    const p = this.cache.pending(a.ino);
    return p ? { ...a, size: p.size, mtimeMs: Math.max(a.mtimeMs, p.mtimeMs), ctimeMs: Math.max(a.ctimeMs, p.mtimeMs) } : a;
  }

  async lookup(parent: number, name: string): Promise<Attr> {
    const key = `${parent}/${name}`;
    const known = this.dentries.get(key);
    const hit = known !== undefined && known.gen === (this.dirGen.get(parent) ?? 0) ? this.attrs.get(known.ino) : undefined;
    this.gaveName(parent, name);
    if (hit) {
      this.lastName.set(hit.ino, { parent, name });
      return this.overlay(hit);
    }
    const gen = this.dirGen.get(parent) ?? 0;
    if (this.journal.affects(parent)) {
      const local = this.localEntry(parent, name);
      if (local === null) throw new NoEntryError(`no entry ${name}`);
      if (local) {
        this.lastName.set(local.ino, { parent, name });
        return this.overlay(local);
      }
    }
    // The first block refs come with the answer (256 MiB of 1 MiB blocks): a read from the disk
    // cache gets that far in ~130 ms, time for the rest of the map to arrive (see openFile).
    const { blocks, ...attr } = await this.lastKnown.whenUnreachable<Attr & { blocks?: BlockRef[] }>(
      () => this.fs.meta.lookup(parent, this.names.hash(parent, name), { blocks: LOOKUP_BLOCKS_MAX }), (e) => {
        // Offline, a name missing from a folder's last full listing does not exist (so it can be made).
        const known = this.localEntry(parent, name);
        if (known === null) throw new NoEntryError(`no entry ${name}`);
        if (!known) throw e;
        return known;
      });
    const a = this.remember(attr);
    if (blocks) this.primeRefs(a, blocks);
    if ((this.dirGen.get(parent) ?? 0) === gen) {
      this.dentries.set(key, { ino: a.ino, gen }, { ttl: this.ttl() });
      this.lastKnown.keepName(parent, name, a.ino, gen);
    }
    this.lastName.set(a.ino, { parent, name });
    return this.overlay(a);
  }

  private gaveName(parent: number, name: string): void {
    if (!this.options.invalidateEntry) return;
    let set = this.kernelNames.get(parent);
    if (!set) this.kernelNames.set(parent, (set = new Set()));
    if (set.size < 100_000) set.add(name);
  }

  /** This mount changes a name: what it knew of it is old (offline, the change itself says what is new). */
  private forgetName(parent: number, name: string): void {
    this.dentries.delete(`${parent}/${name}`);
  }

  /**
   * This mount's change to a name reached the service: what it knows for outages follows it
   * exactly (`attr` is what the name holds now, or undefined if it holds nothing or this mount
   * does not know), so a folder listed before stays listed. `csn` is the change's commit: the
   * change feed's word of it is then not taken for another client's change.
   */
  private changedName(parent: number, name: string, attr: Attr | undefined, options: { csn?: number; fresh?: boolean; removed?: boolean } = {}): void {
    if (attr) this.lastKnown.addEntry(parent, name, attr, this.dirGen.get(parent) ?? 0, options.fresh ?? false);
    else if (options.removed) this.lastKnown.removeEntry(parent, name);
    else this.lastKnown.forgetName(parent, name);
    if (options.csn !== undefined) this.ownCommits.set(parent, options.csn);
  }

  async setattr(ino: number, req: SetAttrRequest): Promise<Attr> {
    const now = Date.now();
    if (req.size !== undefined) await this.truncate(ino, req.size);
    const changes: AttrChanges = {};
    if (req.mode !== undefined) changes.mode = req.mode & 0o7777;
    if (req.uid !== undefined) changes.uid = req.uid;
    if (req.gid !== undefined) changes.gid = req.gid;
    if (req.atimeMs !== undefined) changes.atimeMs = Math.round(req.atimeMs === 'now' ? now : req.atimeMs);
    if (req.mtimeMs !== undefined) {
      changes.mtimeMs = Math.round(req.mtimeMs === 'now' ? now : req.mtimeMs);
      const p = this.cache.pending(ino);
      if (p) this.cache.setPending({ ...p, mtimeMs: changes.mtimeMs });
    }
    if (Object.keys(changes).length === 0) return this.getattr(ino);
    return this.overlay(await this.setAttrOrJournal(ino, changes));
  }

  /** Changes attributes at the service, or offline into the journal. */
  private setAttrOrJournal(ino: number, changes: AttrChanges): Promise<Attr> {
    return this.change(async () => this.remember(await this.fs.meta.setAttr(ino, changes)), () => {
      const a = this.lastKnown.attr(ino) ?? this.attrs.get(ino);
      if (!a) throw this.unknownOffline(`inode ${ino}`);
      this.journal.append({ kind: 'setAttr', ino, changes });
      const { mode, ...rest } = changes;
      return this.localAttr({ ...a, ...rest, ...(mode === undefined ? {} : { mode: (a.mode & S_IFMT) | (mode & 0o7777) }), ctimeMs: changes.ctimeMs ?? Date.now() });
    });
  }

  // ---- creating and removing names ------------------------------------------------------

  private async newOwner(parent: number, caller: Caller, mode: number): Promise<{ gid: number; mode: number }> {
    const p = await this.committedAttr(parent);
    if (p.mode & S_ISGID) return { gid: p.gid, mode: isDir(mode) ? mode | S_ISGID : mode };
    return { gid: caller.gid, mode };
  }

  async mkdir(parent: number, name: string, mode: number, caller: Caller): Promise<Attr> {
    const owner = await this.newOwner(parent, caller, S_IFDIR | (mode & 0o7777));
    return this.makeNode(parent, name, { mode: owner.mode, uid: caller.uid, gid: owner.gid });
  }

  async mknod(parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    if ((mode & S_IFMT) === 0) mode |= S_IFREG;
    const owner = await this.newOwner(parent, caller, mode);
    return this.makeNode(parent, name, { mode: owner.mode, uid: caller.uid, gid: owner.gid, rdev });
  }

  /** Makes a new entry under a reserved inode number: at the service, or offline into the journal. */
  private async makeNode(parent: number, name: string, node: NewNode): Promise<Attr> {
    this.forgetName(parent, name);
    const sealed = this.names.seal(parent, name);
    const ino = await this.newIno();
    return this.change(async () => {
      const a = await this.fs.meta.create(parent, sealed, { ...node, ino });
      this.forget(parent);
      this.changedName(parent, name, this.remember(a), { csn: a.version, fresh: true });
      return a;
    }, () => {
      const there = this.localEntry(parent, name);
      if (there) throw new EntryExistsError('an entry with that name already exists');
      if (there === undefined) throw this.unknownOffline(`the folder's entries`);
      const now = Date.now();
      this.journal.append({ kind: 'create', parent, name: sealed, node: { ...node, ino, timeMs: now } });
      const attr: Attr = {
        ino, mode: node.mode, uid: node.uid, gid: node.gid, size: node.size ?? 0, nlink: isDir(node.mode) ? 2 : 1, rdev: node.rdev ?? 0,
        atimeMs: now, mtimeMs: now, ctimeMs: now, crtimeMs: now, version: 0, hasXattrs: false,
      };
      this.joinLocally(parent, name, this.localAttr(attr), now, true);
      return attr;
    });
  }

  async create(parent: number, name: string, mode: number, flags: number, caller: Caller): Promise<{ attr: Attr; fh: number }> {
    const attr = await this.mknod(parent, name, S_IFREG | (mode & 0o7777), 0, caller);
    return { attr, fh: this.openHandle(attr.ino, flags) };
  }

  async symlink(parent: number, name: string, target: string, caller: Caller): Promise<Attr> {
    if (Buffer.byteLength(target) > 4095) throw new NameTooLongError('symlink target is longer than 4095 bytes');
    if (target.length === 0) throw new NoEntryError('empty symlink target');
    const owner = await this.newOwner(parent, caller, S_IFLNK | 0o777);
    return this.makeNode(parent, name, {
      mode: S_IFLNK | 0o777, uid: caller.uid, gid: owner.gid, size: Buffer.byteLength(target),
      target: this.names.sealBlob(0, 'symlink', Buffer.from(target, 'utf8')),
    });
  }

  async readlink(ino: number): Promise<string> {
    const made = this.journal.pendingCreate(ino)?.node.target;
    return this.names.openBlob(0, 'symlink', made ?? await this.fs.meta.readlink(ino)).toString('utf8');
  }

  async link(ino: number, newParent: number, newName: string): Promise<Attr> {
    this.forget(newParent);
    this.forgetName(newParent, newName);
    const a = this.remember(await this.fs.meta.link(ino, newParent, this.names.seal(newParent, newName)));
    this.changedName(newParent, newName, a, { csn: a.version });
    return this.overlay(a);
  }

  async unlink(parent: number, name: string): Promise<void> {
    this.forgetName(parent, name);
    const hash = this.names.hash(parent, name);
    const after = await this.change(async () => {
      const a = await this.fs.meta.unlink(parent, hash);
      this.changedName(parent, name, undefined, { removed: true, csn: a.version });
      this.forget(parent);
      return this.remember(a);
    }, () => {
      const a = this.knownOffline(parent, name);
      if (isDir(a.mode)) throw new IsDirectoryError('is a directory');
      this.journal.append({ kind: 'unlink', parent, hash, ino: a.ino });
      return this.removedLocally(parent, name, a);
    });
    if (after.nlink === 0) await this.dropOrOrphan(after.ino);
  }

  /** The entry under a name as this mount knows it offline (ENOENT if known absent). */
  private knownOffline(parent: number, name: string): Attr {
    const a = this.localEntry(parent, name);
    if (a === null) throw new NoEntryError(`no entry ${name}`);
    if (!a) throw this.unknownOffline(`the folder's entries`);
    return a;
  }

  /** An entry joins a folder offline (made or moved there): the listing and the folder's times and links follow. */
  private joinLocally(parent: number, name: string, a: Attr, now: number, fresh: boolean): void {
    this.lastKnown.addEntry(parent, name, a, this.dirGen.get(parent) ?? 0, fresh);
    this.touchLocalDir(parent, isDir(a.mode) ? 1 : 0, now);
    this.lastName.set(a.ino, { parent, name });
  }

  /** An entry leaves a folder offline (removed or moved away): the listing and the folder's times and links follow. */
  private leaveLocally(parent: number, name: string, a: Attr, now: number): void {
    this.lastKnown.removeEntry(parent, name);
    this.touchLocalDir(parent, isDir(a.mode) ? -1 : 0, now);
  }

  /** A name removed offline: gone from its folder; the inode has one link less. */
  private removedLocally(parent: number, name: string, a: Attr): Attr {
    const now = Date.now();
    this.leaveLocally(parent, name, a, now);
    return this.localAttr({ ...a, nlink: isDir(a.mode) ? 0 : a.nlink - 1, ctimeMs: now });
  }

  /** Offline, a folder may go only if this mount knows it is empty. */
  private emptyOffline(dir: Attr): void {
    if (!isDir(dir.mode)) throw new NotDirectoryError('not a directory');
    const listing = this.lastKnown.listing(dir.ino);
    if (!listing) throw this.unknownOffline(`the folder's entries`);
    if (listing.length > 0) throw new NotEmptyError('directory not empty');
  }

  async rmdir(parent: number, name: string): Promise<void> {
    this.forgetName(parent, name);
    const hash = this.names.hash(parent, name);
    await this.change(async () => {
      await this.fs.meta.rmdir(parent, hash);
      this.changedName(parent, name, undefined, { removed: true });
      this.forget(parent);
    }, () => {
      const a = this.knownOffline(parent, name);
      this.emptyOffline(a);
      this.journal.append({ kind: 'rmdir', parent, hash, ino: a.ino });
      this.removedLocally(parent, name, a);
    });
  }

  async rename(parent: number, name: string, newParent: number, newName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}): Promise<void> {
    if (flags.exchange) throw new InvalidArgumentError('RENAME_EXCHANGE is not supported');
    this.forgetName(parent, name);
    this.forgetName(newParent, newName);
    const hash = this.names.hash(parent, name);
    const sealed = this.names.seal(newParent, newName);
    const moving = this.localEntry(parent, name);
    const replaced = await this.change(async () => {
      const r = await this.fs.meta.rename(parent, hash, newParent, sealed, { noReplace: flags.noReplace });
      this.changedName(parent, name, undefined, { removed: true });
      this.changedName(newParent, newName, moving ?? undefined);
      this.forget(parent, newParent);
      if (r) this.forget(r.ino);
      return r;
    }, () => {
      const a = this.knownOffline(parent, name);
      const target = this.localEntry(newParent, newName);
      if (target === undefined) throw this.unknownOffline(`the folder's entries`);
      if (target?.ino === a.ino) return undefined;
      if (target) {
        if (flags.noReplace) throw new EntryExistsError('an entry with that name already exists');
        if (isDir(target.mode) && !isDir(a.mode)) throw new IsDirectoryError('is a directory');
        if (isDir(target.mode)) this.emptyOffline(target);
        else if (isDir(a.mode)) throw new NotDirectoryError('not a directory');
      }
      this.journal.append({ kind: 'rename', parent, hash, newParent, newName: sealed, ino: a.ino, ...(target ? { replaces: target.ino } : {}) });
      const gone = target ? this.removedLocally(newParent, newName, target) : undefined;
      const now = Date.now();
      this.leaveLocally(parent, name, a, now);
      this.joinLocally(newParent, newName, this.localAttr({ ...a, ctimeMs: now }), now, false);
      return gone;
    });
    if (replaced && replaced.nlink === 0 && !isDir(replaced.mode)) await this.dropOrOrphan(replaced.ino);
  }

  /** An inode lost its last name: drop it now, or at its last close if it is open. */
  private async dropOrOrphan(ino: number): Promise<void> {
    if ((this.openCount.get(ino) ?? 0) > 0) {
      this.orphans.add(ino);
      return;
    }
    await this.discard(ino);
  }

  private async discard(ino: number): Promise<void> {
    await this.locks.run(ino, async () => {
      const release = await this.writeback.freeze(ino);
      try {
        for (const r of this.cache.dirtyRowsOf(ino)) await this.cache.dropDirty(ino, r.idx);
        this.cache.clearPending(ino);
        this.refs.delete(ino);
        this.forget(ino);
        await this.change(() => this.fs.meta.reclaim(ino).catch((e) => { if (!(e instanceof NoEntryError)) throw e; }),
          () => this.journal.append({ kind: 'reclaim', ino }));
      } finally {
        release();
      }
    });
  }

  // ---- files ----------------------------------------------------------------------------

  private openHandle(ino: number, flags: number): number {
    const fh = this.nextFh++;
    const acc = flags & O_ACCMODE;
    this.files.set(fh, { ino, append: (flags & O_APPEND) !== 0, writable: acc === O_WRONLY || acc === O_RDWR });
    this.openCount.set(ino, (this.openCount.get(ino) ?? 0) + 1);
    return fh;
  }

  async open(ino: number, flags: number): Promise<number> {
    return (await this.openFile(ino, flags)).fh;
  }

  /**
   * Opens a file. `keepCache` says the kernel may keep the pages it has of the file: it is
   * true when the committed version is the one this mount saw at its last open (or wrote
   * itself), and never while the file is locked (strong mode revalidates).
   */
  async openFile(ino: number, flags: number): Promise<{ fh: number; keepCache: boolean }> {
    const strong = this.lockManager.isLocked(ino);
    // Attributes younger than the TTL are trusted: staleness is bounded by it.
    const attr = await this.committedAttr(ino, strong);
    // The first window of the block map, asked for now: a read from the disk cache does 2 GB/s,
    // a round trip to the service takes 50 ms or more (the lookup brought the first 256 refs).
    if (!isDir(attr.mode)) this.loadMapAt(ino, Math.min(this.mapWindow - 1, Math.ceil(attr.size / this.blockSize) - 1), attr.version, attr.size);
    if (isDir(attr.mode)) throw new IsDirectoryError('is a directory');
    const acc = flags & O_ACCMODE;
    if ((flags & O_TRUNC) && (acc === O_WRONLY || acc === O_RDWR)) await this.truncate(ino, 0);
    const keepCache = !strong && this.seenVersion.get(ino) === attr.version;
    const named = this.lastName.get(ino);
    if (named && acc !== O_WRONLY) void this.predictor.onOpen(named.parent, named.name, ino).catch(() => {});
    this.seenVersion.set(ino, attr.version);
    return { fh: this.openHandle(ino, flags), keepCache };
  }

  private handle(fh: number): FileHandle {
    const h = this.files.get(fh);
    if (!h) throw new InvalidArgumentError(`bad file handle ${fh}`);
    return h;
  }

  /**
   * Reads for a reply: `reply` is called once with the bytes, in the turn they are ready. They
   * may be a view of a block in memory, valid only during the call (the FUSE reply copies
   * them to the kernel at once): a caller that keeps them uses `read`.
   */
  async readReply(fh: number, offset: number, length: number, reply: (data: Buffer) => void): Promise<void> {
    const { ino } = this.handle(fh);
    // Strong mode (someone holds a lock on the file): the version is checked on every read.
    const committed = await this.committedAttr(ino, this.lockManager.isLocked(ino));
    const size = this.overlay(committed).size;
    // The demand read goes first; the prefetches it calls for, and the opens of the blocks
    // after it from disk, start once it is served (on a fresh mount the first MiB waited
    // behind a dozen such opens).
    const served = this.readAt(ino, committed.version, size, offset, length, reply);
    this.prefetcher.onRead(fh, ino, offset, length, size, served);
    if (this.prefetcher.patternOf(fh) === 'sequential') {
      // The next window of the map, asked for half a window ahead.
      this.loadMapAt(ino, Math.floor((offset + length) / this.blockSize) + (this.mapWindow >> 1), committed.version, size);
      void served.then(() => this.readAheadFromDisk(ino, offset + length, size), () => {});
    }
    return served;
  }

  /** Reads bytes the caller keeps (a copy). */
  read(fh: number, offset: number, length: number): Promise<Buffer> {
    return copyOfReply((reply) => this.readReply(fh, offset, length, reply));
  }

  /**
   * Sequential reads of blocks already in the disk cache: the next few are read and opened
   * into memory ahead of time, so disk and decryption overlap with serving (the network
   * prefetcher skips blocks that are on disk).
   */
  private readAheadFromDisk(ino: number, from: number, size: number): void {
    const c = this.refs.get(ino);
    if (!c) return;
    const first = Math.floor(from / this.blockSize);
    const ahead = Math.max(1, Math.floor(this.plainBudget / 2 / this.blockSize));
    const last = Math.min(first + ahead, Math.floor((size - 1) / this.blockSize));
    for (let i = first; i <= last; i++) {
      const ref = c.map.get(i);
      if (ref && !this.plain.has(ref.objectId) && !this.fetching.has(ref.objectId) && this.cache.holds(ref.objectId)) void this.plaintext(ref, ino).catch(() => {});
    }
  }

  /** Brings one block into memory and the cache (a hole or a dirty block needs nothing). */
  private async fetchBlock(ino: number, idx: number, version: number): Promise<void> {
    if (this.cache.dirtyRow(ino, idx)) return;
    const ref = await this.ref(ino, idx, version);
    if (ref) await this.plaintext(ref, ino);
  }

  /**
   * Brings one block to the disk cache only, sealed as fetched (authenticated when it is
   * opened): a predicted file further ahead than memory would keep it costs no decryption
   * and no plaintext until it is read. The fetch slot is free once the object is here; its
   * write goes on in the background (behind a backlog of writes, the slot waits for it).
   */
  private async stageBlock(ino: number, idx: number, version: number): Promise<void> {
    if (this.cache.dirtyRow(ino, idx)) return;
    const ref = await this.ref(ino, idx, version);
    if (!ref) return;
    const id = ref.objectId;
    if (this.plain.has(id) || this.fetching.has(id) || this.cache.holds(id)) return;
    let staging = this.staging.get(id);
    if (!staging) {
      staging = (async () => ({ kept: this.keepSealed(id, await this.getSealed(id), ino) }))().finally(() => this.staging.delete(id));
      this.staging.set(id, staging);
    }
    const { kept } = await staging;
    if (this.cache.keepingBacklogged) await kept;
  }

  /** Whether a block can be read without the store. */
  private isCached(ino: number, idx: number): boolean {
    if (this.cache.dirtyRow(ino, idx)) return true;
    const ref = this.refs.get(ino)?.map.get(idx);
    if (ref === null) return true; // a hole
    return ref !== undefined && (this.plain.has(ref.objectId) || this.cache.holds(ref.objectId));
  }

  async readInode(ino: number, offset: number, length: number): Promise<Buffer> {
    const committed = await this.committedAttr(ino);
    return copyOfReply((reply) => this.readAt(ino, committed.version, this.overlay(committed).size, offset, length, reply));
  }

  /** Reads with the inode's committed version and its size as this mount sees it; `reply` as in readReply. */
  private async readAt(ino: number, version: number, size: number, offset: number, length: number, reply: (data: Buffer) => void): Promise<void> {
    const parts = spans(this.blockSize, offset, length, size);
    const total = parts.reduce((n, s) => n + s.length, 0);
    if (parts.length === 1 && !this.cache.dirtyRow(ino, parts[0].index)) {
      // One clean block: reply with a view of its plaintext, no copy. A write landing
      // meanwhile makes it dirty: checked again once it is here.
      const s = parts[0];
      const ref = await this.ref(ino, s.index, version);
      if (ref && s.start + s.length <= ref.length) {
        const served = await this.withPlaintext(ref, ino, (plain) => {
          if (plain.length < s.start + s.length || this.cache.dirtyRow(ino, s.index)) return false;
          reply(plain.subarray(s.start, s.start + s.length));
          return true;
        });
        if (served) {
          this.bytesRead += total;
          return;
        }
      }
    }
    const out = Buffer.alloc(total);
    await Promise.all(parts.map(async (s) => {
      const dirty = await this.cache.readDirty(ino, s.index, s.start, s.length);
      if (dirty) {
        dirty.copy(out, s.outOffset);
        return;
      }
      const ref = await this.ref(ino, s.index, version);
      if (!ref || s.start >= ref.length) return; // a hole, or past the block's valid bytes
      await this.withPlaintext(ref, ino, (plain) => plain.copy(out, s.outOffset, s.start, Math.min(ref.length, plain.length, s.start + s.length)));
    }));
    this.bytesRead += total;
    reply(out);
  }

  async write(fh: number, offset: number, data: Buffer): Promise<number> {
    const h = this.handle(fh);
    return this.locks.run(h.ino, async () => {
      const attr = await this.getattr(h.ino);
      const at = h.append ? attr.size : offset;
      const full: number[] = [];
      for (const s of spans(this.blockSize, at, data.length)) {
        const blockStart = s.index * this.blockSize;
        const baseLength = Math.max(0, Math.min(this.blockSize, attr.size - blockStart));
        await this.cache.writeDirty(h.ino, s.index, s.start, data.subarray(s.outOffset, s.outOffset + s.length),
          () => this.committedBlock(h.ino, s.index, baseLength), baseLength);
        if (s.start + s.length === this.blockSize) full.push(s.index);
      }
      const now = Date.now();
      this.cache.setPending({ ino: h.ino, size: Math.max(attr.size, at + data.length), mtimeMs: now });
      this.writeback.noteWrite(h.ino, full);
      this.bytesWritten += data.length;
      return data.length;
    });
  }

  /** Starts uploading the inode's dirty blocks (on close). */
  flush(fh: number): void {
    this.writeback.enqueueInode(this.handle(fh).ino);
  }

  /** Waits until the inode's data and size are in the store and committed. */
  async fsync(fh: number): Promise<void> {
    await this.fsyncInode(this.handle(fh).ino);
  }

  async fsyncInode(ino: number): Promise<void> {
    if (this.journal.affects(ino)) {
      await this.journal.replay();
      if (this.journal.affects(ino)) throw new ServiceUnavailableError('the metadata service cannot be reached: the file is kept in the cache and its changes are journaled until it is back');
    }
    await this.writeback.flush(ino);
  }

  async release(fh: number): Promise<void> {
    const h = this.files.get(fh);
    if (!h) return;
    this.files.delete(fh);
    this.prefetcher.close(fh);
    const left = (this.openCount.get(h.ino) ?? 1) - 1;
    if (left > 0) {
      this.openCount.set(h.ino, left);
      return;
    }
    this.openCount.delete(h.ino);
    if (this.orphans.delete(h.ino)) await this.discard(h.ino);
    else if (h.writable) this.writeback.enqueueInode(h.ino);
  }

  /** Truncates to `size`: dirty blocks past it go, the one it cuts is shortened, then the map. */
  async truncate(ino: number, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('bad size');
    await this.locks.run(ino, async () => {
      const attr = await this.committedAttr(ino);
      if (isDir(attr.mode)) throw new IsDirectoryError('is a directory');
      const release = await this.writeback.freeze(ino);
      try {
        const cut = Math.ceil(size / this.blockSize);
        for (const r of this.cache.dirtyRowsOf(ino)) {
          if (r.idx >= cut) await this.cache.dropDirty(ino, r.idx);
          else if (r.idx === cut - 1 && size % this.blockSize !== 0) await this.cache.truncateDirty(ino, r.idx, size % this.blockSize);
        }
        const now = Date.now();
        await this.setAttrOrJournal(ino, { size, mtimeMs: now });
        if (this.journal.affects(ino)) this.trimRefs(ino, size);
        else this.refs.delete(ino);
        if (this.cache.dirtyRowsOf(ino).length > 0) this.cache.setPending({ ino, size, mtimeMs: now });
        else this.cache.clearPending(ino);
      } finally {
        release();
      }
    });
  }

  /** A truncate made offline: the block map this mount knows ends at `size` (the service's is cut on replay). */
  private trimRefs(ino: number, size: number): void {
    const c = this.refs.get(ino);
    if (!c) return;
    const cut = Math.ceil(size / this.blockSize);
    c.gen++;
    for (const [idx, r] of c.map) {
      if (idx >= cut) c.map.set(idx, null);
      else if (r && idx === cut - 1 && size % this.blockSize !== 0) c.map.set(idx, { ...r, length: Math.min(r.length, size % this.blockSize) });
    }
  }

  /** Block refs that came with a lookup: the first `blocks.length`-or-more indexes are now known. */
  private primeRefs(a: Attr, blocks: BlockRef[]): void {
    const known = this.refs.get(a.ino);
    if (known && known.version >= a.version) return;
    const map = new Map<number, BlockRef | null>();
    const count = Math.min(Math.ceil(a.size / this.blockSize), Math.max(16, blocks.length ? blocks[blocks.length - 1].index + 1 : 0));
    for (let i = 0; i < count; i++) map.set(i, null);
    for (const r of blocks) map.set(r.index, r);
    this.refs.set(a.ino, { version: a.version, gen: (known?.gen ?? 0) + 1, map });
  }

  /**
   * Starts loading the window of the block map that holds block `idx`, unless the file ends
   * before it or it is known: a reader should not wait a round trip for a map.
   */
  private loadMapAt(ino: number, idx: number, version: number, size: number): void {
    if (idx < 0 || idx * this.blockSize >= size) return;
    const c = this.refs.get(ino);
    if (c && c.version >= version && c.map.has(idx)) return;
    void this.ref(ino, idx, version).catch(() => {});
  }

  private async ref(ino: number, idx: number, version: number): Promise<BlockRef | undefined> {
    // Made offline: nothing of it is committed yet (its data is all dirty, the rest holes).
    if (this.journal.pendingCreate(ino)) return undefined;
    const window = this.mapWindow;
    for (;;) {
      let c = this.refs.get(ino);
      if (!c || version > c.version) {
        c = { version, gen: 0, map: new Map() };
        this.refs.set(ino, c);
      }
      if (c.map.has(idx)) return c.map.get(idx) ?? undefined;
      // One load per window of the map at a time, shared by every reader that needs it.
      const first = Math.floor(idx / window) * window;
      const loadKey = `${ino}:${first}:${c.gen}:${c.version}`;
      let load = this.mapLoads.get(loadKey);
      if (!load) {
        const cache = c;
        const gen = c.gen;
        load = (async () => {
          const got = await this.fs.meta.getBlocks(ino, first, window);
          if (this.refs.get(ino) !== cache || cache.gen !== gen) return; // a commit or truncate came in between
          for (let i = first; i < first + window; i++) if (!cache.map.has(i)) cache.map.set(i, null);
          for (const r of got) cache.map.set(r.index, r);
        })().finally(() => this.mapLoads.delete(loadKey));
        this.mapLoads.set(loadKey, load);
      }
      await load;
      if (this.refs.get(ino) === c && c.map.has(idx)) return c.map.get(idx) ?? undefined;
    }
  }

  /** The committed plaintext of a block, exactly `length` bytes (zeros past its end), or undefined for a hole. */
  private async committedBlock(ino: number, idx: number, length: number): Promise<Buffer | undefined> {
    const attr = await this.committedAttr(ino);
    const ref = await this.ref(ino, idx, attr.version);
    if (!ref) return undefined;
    const out = Buffer.alloc(length);
    await this.withPlaintext(ref, ino, (plain) => plain.copy(out, 0, 0, Math.min(length, ref.length, plain.length)));
    return out;
  }

  /**
   * Calls `use` with a block's plaintext in the turn it is here, and returns what it returns.
   * `use` must not wait: from the call until it returns the plaintext's buffer is not reused,
   * even if the block leaves memory meanwhile.
   */
  private async withPlaintext<T>(ref: BlockRef, ino: number, use: (plain: Buffer) => T): Promise<T> {
    const id = ref.objectId;
    let users = this.plainUsers.get(id);
    if (!users) this.plainUsers.set(id, users = { count: 0 });
    users.count++;
    try {
      return use(await this.plaintext(ref, ino, true));
    } finally {
      if (--users.count === 0) {
        this.plainUsers.delete(id);
        for (const b of users.evicted ?? []) this.plainBuffers.give(b);
      }
    }
  }

  /**
   * Brings a block's plaintext into memory: memory, then the disk cache, then the store (one
   * fetch per object). Its bytes are safe to read only through `withPlaintext`. `urgent`: a
   * reader waits for it, so its open from disk goes ahead of those for reading ahead (and
   * one begun for reading ahead is hurried).
   */
  private async plaintext(ref: BlockRef, ino: number, urgent = false): Promise<Buffer> {
    const hot = this.plain.get(ref.objectId);
    if (hot) return hot;
    let pending = this.fetching.get(ref.objectId);
    if (!pending) {
      pending = traced(this.options.trace, () => `load ino ${ino} block ${ref.index}`, () => this.load(ref.objectId, ino, urgent)).finally(() => this.fetching.delete(ref.objectId));
      this.fetching.set(ref.objectId, pending);
    } else if (urgent) {
      this.cache.hurryClean(ref.objectId);
    }
    return pending;
  }

  private async load(objectId: string, ino: number, urgent: boolean): Promise<Buffer> {
    // Being fetched for the disk cache: waited for (a failed fetch is tried again below).
    // Fetched and not written yet: opened from the bytes the cache holds, at once (their
    // buffer is reused once the write settles).
    const staging = this.staging.get(objectId);
    if (staging) await staging.catch(() => undefined);
    const held = this.cache.keptSealed(objectId);
    if (held) {
      const plain = this.openFetched(objectId, held, ino);
      this.plain.set(objectId, plain);
      return plain;
    }
    try {
      const cached = await this.openCached(objectId, urgent);
      if (cached) {
        this.plain.set(objectId, cached);
        return cached;
      }
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      this.options.log?.(`cached copy of block object ${objectId} is damaged; fetching it again`);
      await this.cache.dropClean(objectId);
    }
    const { plain, kept } = await this.fetchObject(objectId, ino);
    this.plain.set(objectId, plain);
    // The reader is served while the sealed copy goes to disk; behind a backlog of such
    // writes (a slow cache disk) it waits, so the sealed copies in memory stay bounded.
    if (this.cache.keepingBacklogged) await kept.catch(() => {});
    return plain;
  }

  /**
   * Opens a block from the disk cache into a buffer of the pool. A buffer the plaintext did
   * not end up in (no cache file, a torn or damaged one) goes back: the pool's shared
   * buffers are never made again, so one not given back is lost to it for good.
   */
  private async openCached(objectId: string, urgent: boolean): Promise<Buffer | undefined> {
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
  private async fetchObject(objectId: string, ino: number): Promise<{ plain: Buffer; kept: Promise<void> }> {
    const sealed = await this.getSealed(objectId);
    const plain = this.openFetched(objectId, sealed, ino);
    return { plain, kept: this.keepSealed(objectId, sealed, ino) };
  }

  /**
   * GETs a block object into a buffer of the pool (given back by keepSealed). Its body came
   * in chunks that are garbage now: the collector's pacer is told.
   */
  private async getSealed(objectId: string): Promise<Buffer> {
    const sealed = await this.fs.store.get(blockKey(objectId), undefined, { buffer: (n) => this.sealedBuffers.take(n) });
    this.options.allocated?.(sealed.length);
    return sealed;
  }

  /** Authenticates and opens an object as fetched from the store; a failure is logged, naming the inode. */
  private openFetched(objectId: string, sealed: Buffer, ino: number): Buffer {
    const into = this.plainBuffers.take(plainSize(sealed.length));
    try {
      return this.fs.codec.open(objectId, sealed, into);
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
  private keepSealed(objectId: string, sealed: Buffer, ino: number): Promise<void> {
    const kept = this.cache.keepClean(objectId, sealed, ino);
    void kept.finally(() => this.sealedBuffers.give(sealed)).catch(() => {});
    void kept.then(() => { this.cacheWritesFailing = false; }, (e: Error) => {
      if (this.cacheWritesFailing) return;
      this.cacheWritesFailing = true;
      this.options.log?.(`could not keep block object ${objectId} in the disk cache (${e.message}); reads are served from the store until it works again`);
    });
    return kept;
  }

  // ---- locks ----------------------------------------------------------------------------

  async getlk(ino: number, owner: string, want: LockRange): Promise<HeldLock | undefined> {
    return this.lockManager.test(ino, owner, want);
  }

  /**
   * Sets or clears a lock. Unlocking first commits this mount's writes to the file, so the
   * next holder reads them; a granted lock drops what this mount and the kernel cached of
   * the file, so the holder reads the previous holder's committed writes.
   */
  async setlk(ino: number, owner: string, want: LockRange, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    if (want.type === 'unlock') {
      await this.writeback.flush(ino);
      await this.lockManager.set(ino, owner, want);
      return;
    }
    await this.lockManager.set(ino, owner, want, options);
    this.revalidate(ino);
  }

  /** Drops an owner's locks of one kind (close of a file: fcntl locks; last close: flock). */
  async releaseLocks(ino: number, owner: string, kind: LockKind): Promise<void> {
    if (!this.lockManager.isLocked(ino)) return;
    await this.writeback.flush(ino);
    await this.lockManager.release(ino, owner, kind);
  }

  /**
   * A commit from the change feed. Inodes whose cached version is older (another client
   * changed them) are revalidated here and in the kernel; our own commits, already known,
   * are skipped, so the kernel keeps the pages we wrote.
   */
  onRemoteCommit(c: { csn: number; inos: number[] }): void {
    for (const ino of c.inos) {
      this.announced.set(ino, Math.max(c.csn, this.announced.get(ino) ?? 0));
      const known = this.attrs.get(ino);
      if (known && known.version >= c.csn) continue;
      if (this.ownCommits.get(ino) === c.csn) {
        // This mount's own change to the folder: its names and listing already follow it.
        this.forget(ino);
        this.options.invalidate?.(ino);
        continue;
      }
      this.revalidate(ino, c.csn);
    }
  }

  /**
   * Forgets cached metadata of an inode (another client changed it, in commit `csn` if known)
   * and tells the kernel. What is kept for outages goes only if it is older than that commit.
   */
  revalidate(ino: number, csn?: number): void {
    if (this.journal.affects(ino)) {
      // This mount's offline changes to it are not at the service yet: they stay what it shows.
      this.options.invalidate?.(ino);
      return;
    }
    this.dirGen.set(ino, (this.dirGen.get(ino) ?? 0) + 1);
    const names = this.kernelNames.get(ino);
    if (names) {
      this.kernelNames.delete(ino);
      for (const n of names) this.options.invalidateEntry?.(ino, n);
    }
    this.forget(ino);
    this.lastKnown.forget(ino, csn);
    this.refs.delete(ino);
    this.seenVersion.delete(ino);
    this.options.invalidate?.(ino);
  }

  // ---- directories ----------------------------------------------------------------------

  async opendir(ino: number): Promise<number> {
    const attr = await this.committedAttr(ino);
    if (!isDir(attr.mode)) throw new InvalidArgumentError('not a directory');
    const fh = this.nextFh++;
    this.dirs.set(fh, {
      ino,
      version: attr.version,
      entries: [{ name: '.', ino, mode: S_IFDIR }, { name: '..', ino: ROOT_INO, mode: S_IFDIR }],
      complete: false,
    });
    return fh;
  }

  /**
   * Entries from position `offset` on (at most `max`), each with the offset of the next one.
   * Offsets index a listing taken when the directory was opened, so they stay stable.
   */
  async readdir(fh: number, offset: number, max: number): Promise<(DirEntryOut & { next: number })[]> {
    const d = this.dirs.get(fh);
    if (!d) throw new InvalidArgumentError(`bad directory handle ${fh}`);
    while (!d.complete && d.entries.length < offset + max) {
      const listGen = this.dirGen.get(d.ino) ?? 0;
      const first = d.cursor === undefined;
      // Offline, a listing starts from the last full one (a listing cut off midway cannot be).
      const local = first && this.journal.affects(d.ino) ? this.lastKnown.listing(d.ino) : undefined;
      const page = local ?? await this.lastKnown.orStale<ReaddirPage | ListedEntry[]>(() => this.fs.meta.readdir(d.ino, { cursor: d.cursor, limit: 1000, plus: true }), () => (first ? this.lastKnown.listing(d.ino) : undefined));
      if (Array.isArray(page)) {
        d.entries.push(...page);
        d.complete = true;
        break;
      }
      for (const e of page.entries) {
        const name = this.names.open(d.ino, e.hash, e.enc);
        if (e.attr) {
          this.remember(e.attr);
          if ((this.dirGen.get(d.ino) ?? 0) === listGen) {
            this.dentries.set(`${d.ino}/${name}`, { ino: e.ino, gen: listGen }, { ttl: this.ttl() });
            this.lastKnown.keepName(d.ino, name, e.ino, listGen);
          }
          this.lastName.set(e.ino, { parent: d.ino, name });
        }
        d.entries.push({ name, ino: e.ino, mode: e.mode, attr: e.attr });
        this.gaveName(d.ino, name);
      }
      d.cursor = page.cursor;
      d.complete = page.cursor === undefined;
      if (d.complete && (this.dirGen.get(d.ino) ?? 0) === listGen) this.lastKnown.keepListing(d.ino, d.entries.slice(2), d.version);
    }
    return d.entries.slice(offset, offset + max).map((e, i) => ({ ...e, attr: e.attr && this.overlay(this.attrs.get(e.ino) ?? e.attr), next: offset + i + 1 }));
  }

  releasedir(fh: number): void {
    this.dirs.delete(fh);
  }

  /** All names in a directory (for tools and tests). */
  async list(ino: number): Promise<DirEntryOut[]> {
    const fh = await this.opendir(ino);
    try {
      return (await this.readdir(fh, 2, Number.MAX_SAFE_INTEGER)).map(({ next: _n, ...e }) => e);
    } finally {
      this.releasedir(fh);
    }
  }

  async statfs(): Promise<StatFs> {
    const info = await this.lastKnown.orStale(async () => {
      const fresh = await this.fs.meta.info();
      this.lastKnown.keepInfo(fresh);
      return fresh;
    }, () => this.lastKnown.lastInfo());
    const unit = 4096;
    const total = Math.max(VIRTUAL_CAPACITY, info.bytes * 2);
    return {
      blockSize: unit, blocks: Math.floor(total / unit), blocksFree: Math.floor((total - info.bytes) / unit),
      files: 2 ** 32, filesFree: 2 ** 32 - info.inodes, nameMax: 255,
    };
  }

  // ---- extended attributes --------------------------------------------------------------

  private checkXattrName(name: string): void {
    if (Buffer.byteLength(name) > XATTR_NAME_MAX || name.length === 0) throw new OutOfRangeError('xattr name too long');
    if (!/^(user|trusted|security)\./.test(name)) throw new NotSupportedError(`xattr namespace of "${name}" is not supported`);
  }

  async setxattr(ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    this.checkXattrName(name);
    if (value.length > XATTR_SIZE_MAX) throw new TooBigError('xattr value over 64 KiB');
    await this.fs.meta.setXattr(ino, {
      hash: this.names.xattrHash(ino, name),
      nameEnc: this.names.sealBlob(ino, 'xattr-name', Buffer.from(name, 'utf8')),
      valueEnc: this.names.sealBlob(ino, 'xattr-value', value),
    }, { create: (flags & XATTR_CREATE) !== 0, replace: (flags & XATTR_REPLACE) !== 0 });
    this.forget(ino);
  }

  async getxattr(ino: number, name: string): Promise<Buffer> {
    if (!/^(user|trusted|security|system)\./.test(name)) throw new NotSupportedError('unsupported xattr namespace');
    // `ls -l` asks every file for security.selinux: answered from the attributes when they say there are none.
    if (this.attrs.get(ino)?.hasXattrs === false) throw new NoAttributeError(`no attribute ${name}`);
    const e = await this.fs.meta.getXattr(ino, this.names.xattrHash(ino, name));
    return this.names.openBlob(ino, 'xattr-value', e.valueEnc);
  }

  async listxattr(ino: number): Promise<string[]> {
    if (this.attrs.get(ino)?.hasXattrs === false) return [];
    const entries = await this.fs.meta.listXattr(ino);
    return entries.map((e) => this.names.openBlob(ino, 'xattr-name', e.nameEnc).toString('utf8'));
  }

  async removexattr(ino: number, name: string): Promise<void> {
    await this.fs.meta.removeXattr(ino, this.names.xattrHash(ino, name));
    this.forget(ino);
  }

  // ---- whole-tree helpers (pin, warm, status) -------------------------------------------

  /** Resolves a path relative to the root to an inode. */
  async resolve(path: string): Promise<Attr> {
    let attr = await this.getattr(ROOT_INO);
    for (const part of path.split('/').filter((p) => p && p !== '.')) attr = await this.lookup(attr.ino, part);
    return attr;
  }

  /** Every regular file at or under `ino`. */
  async *filesUnder(ino: number): AsyncGenerator<Attr> {
    const attr = await this.getattr(ino);
    if (!isDir(attr.mode)) {
      if ((attr.mode & S_IFMT) === S_IFREG) yield attr;
      return;
    }
    for (const e of await this.list(ino)) yield* this.filesUnder(e.ino);
  }

  /**
   * Brings every block of a file into the disk cache, `parallel` fetches at a time (so its
   * memory stays bounded); `onBytes` hears of each block as it is fetched or found cached.
   */
  async hydrate(ino: number, onBytes?: (bytes: number, fetched: boolean) => void, parallel = 8): Promise<{ bytes: number; fetched: number }> {
    const attr = await this.fs.meta.getAttr(ino);
    const count = Math.ceil(attr.size / this.blockSize);
    let bytes = 0;
    let fetched = 0;
    for (let first = 0; first < count; first += 256) {
      await mapLimit(await this.fs.meta.getBlocks(ino, first, 256), parallel, async (r) => {
        // A block held while its cache write goes on is as good as on disk: not fetched again.
        const got = !this.cache.holds(r.objectId);
        if (got) {
          const { plain, kept } = await this.fetchObject(r.objectId, ino);
          // Opened only to authenticate it: its buffer goes straight back to the pool.
          this.plainBuffers.give(plain);
          await kept;
          fetched += r.length;
        }
        bytes += r.length;
        onBytes?.(r.length, got);
      });
    }
    return { bytes, fetched };
  }

  openFiles(): number {
    return this.files.size;
  }
}

/** A copy, to keep, of the bytes a read hands its reply (valid only during that call). */
async function copyOfReply(read: (reply: (data: Buffer) => void) => Promise<void>): Promise<Buffer> {
  let out = Buffer.alloc(0);
  await read((data) => { out = Buffer.from(data); });
  return out;
}
