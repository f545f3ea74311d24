/**
 * The VFS: the inode-level POSIX operations the FUSE adapter calls. It holds the open file
 * handles, the locks and statfs, and hands everything else to one part per concern: names
 * and attributes to the namespace (src/fs/namespace), file contents to the data side
 * (src/fs/data), uploads to the uploader. It imports nothing from FUSE; the adapter turns
 * its errors into errno (src/fs/errno.ts). docs/SEMANTICS.md says what is POSIX and what is
 * relaxed. src/fs/mount.ts builds it.
 *
 * Promises: a file's size and mtime as seen here include writes not yet committed; an inode
 * that loses its last name while open is dropped at its last close; unlocking a file first
 * commits this mount's writes to it, and taking a lock drops what this mount cached of it.
 * Permission checks are the kernel's (mounted with default_permissions), against the owner,
 * group and mode this layer reports; new inodes belong to the calling process's user.
 */
import { InvalidArgumentError, IsDirectoryError, ServiceUnavailableError } from '../errors.js';
import type { BlockCache } from '../cache/block-cache.js';
import type { HeldLock, LockKind, LockManager, LockRange } from '../locks/types.js';
import { ROOT_INO, S_IFREG, isDir, type Attr, type MetaEngine } from '../meta/types.js';
import type { DirectoryPredictor } from '../prefetch/directory.js';
import type { Uploader } from '../upload/uploader.js';
import type { BlockMap } from './data/block-map.js';
import { copyOfReply, type FileIo } from './data/file-io.js';
import type { Caller, NamespaceChanges, SetAttrRequest } from './namespace/changes.js';
import type { XattrChanges } from './namespace/xattrs.js';
import type { MetaJournal } from './namespace/journal.js';
import type { DirEntryOut, Listings } from './namespace/listing.js';
import type { NamespaceView } from './namespace/view.js';

export type { Caller, SetAttrRequest } from './namespace/changes.js';
export { XATTR_CREATE, XATTR_REPLACE } from './namespace/xattrs.js';
export type { DirEntryOut } from './namespace/listing.js';

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
const VIRTUAL_CAPACITY = 2 ** 50; // 1 PiB: the store has no fixed size

interface FileHandle {
  ino: number;
  append: boolean;
  writable: boolean;
}

/** The parts a VFS delegates to (src/fs/mount.ts makes them). */
export interface VfsParts {
  meta: MetaEngine;
  blockSize: number;
  cache: BlockCache;
  uploader: Uploader;
  journal: MetaJournal;
  view: NamespaceView;
  changes: NamespaceChanges;
  xattrs: XattrChanges;
  listings: Listings;
  blockMap: BlockMap;
  data: FileIo;
  predictor: DirectoryPredictor;
  /** Where locks are held: this machine only, or the service for shared filespaces. */
  locks: LockManager;
}

export class Vfs {
  readonly blockSize: number;
  readonly cache: BlockCache;
  readonly uploader: Uploader;
  /** Changes to names and attributes made while the service could not be reached, until replayed. */
  readonly journal: MetaJournal;
  readonly lockManager: LockManager;
  readonly predictor: DirectoryPredictor;
  private readonly meta: MetaEngine;
  /** What the mount knows of names and attributes (the change feed and restores tell it what changed). */
  readonly view: NamespaceView;
  private readonly changes: NamespaceChanges;
  /** Extended attributes: get, set, list, remove (each decided as names and attributes are). */
  readonly xattrs: XattrChanges;
  private readonly listings: Listings;
  private readonly blockMap: BlockMap;
  /** File contents: reads, writes, truncates, hydration (and its block loader). */
  readonly data: FileIo;
  private readonly files = new Map<number, FileHandle>();
  private readonly openCount = new Map<number, number>();
  /** Inodes whose last name is gone while handles are open: dropped at last close. */
  private readonly orphans = new Set<number>();
  private nextFh = 1;

  constructor(parts: VfsParts) {
    ({ blockSize: this.blockSize, cache: this.cache, uploader: this.uploader, journal: this.journal, predictor: this.predictor, meta: this.meta } = parts);
    ({ view: this.view, changes: this.changes, xattrs: this.xattrs, listings: this.listings, blockMap: this.blockMap, data: this.data, locks: this.lockManager } = parts);
  }

  reserveInodes(): Promise<void> {
    return this.changes.reserveInodes();
  }

  /** Seconds the kernel may cache attributes (names stay at the staleness bound: see SEMANTICS). */
  attrTimeoutSec(): number {
    return this.view.ttl() / 1000;
  }

  // ---- attributes and names -------------------------------------------------------------

  /** The inode's attributes, with writes not yet committed applied. */
  async getattr(ino: number): Promise<Attr> {
    return this.view.overlay(await this.view.committedAttr(ino));
  }

  lookup(parent: number, name: string): Promise<Attr> {
    return this.changes.lookup(parent, name);
  }

  async setattr(ino: number, req: SetAttrRequest): Promise<Attr> {
    const { size, ...rest } = req;
    if (size !== undefined) await this.truncate(ino, size);
    return this.changes.setattr(ino, rest);
  }

  mkdir(parent: number, name: string, mode: number, caller: Caller): Promise<Attr> {
    return this.changes.mkdir(parent, name, mode, caller);
  }

  mknod(parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    return this.changes.mknod(parent, name, mode, rdev, caller);
  }

  async create(parent: number, name: string, mode: number, flags: number, caller: Caller): Promise<{ attr: Attr; fh: number }> {
    const attr = await this.changes.mknod(parent, name, S_IFREG | (mode & 0o7777), 0, caller);
    return { attr, fh: this.openHandle(attr.ino, flags) };
  }

  symlink(parent: number, name: string, target: string, caller: Caller): Promise<Attr> {
    return this.changes.symlink(parent, name, target, caller);
  }

  readlink(ino: number): Promise<string> {
    return this.changes.readlink(ino);
  }

  link(ino: number, newParent: number, newName: string): Promise<Attr> {
    return this.changes.link(ino, newParent, newName);
  }

  async unlink(parent: number, name: string): Promise<void> {
    const after = await this.changes.unlink(parent, name);
    if (after.nlink === 0) await this.dropOrOrphan(after.ino);
  }

  rmdir(parent: number, name: string): Promise<void> {
    return this.changes.rmdir(parent, name);
  }

  async rename(parent: number, name: string, newParent: number, newName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}): Promise<void> {
    const replaced = await this.changes.rename(parent, name, newParent, newName, flags);
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

  private discard(ino: number): Promise<void> {
    return this.data.discard(ino, () => this.changes.reclaim(ino));
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
    const attr = await this.view.committedAttr(ino, strong);
    // The first window of the block map, asked for now: a read from the disk cache does 2 GB/s,
    // a round trip to the service takes 50 ms or more (the lookup brought the first 256 refs).
    if (!isDir(attr.mode)) this.blockMap.loadAhead(ino, Math.min(this.blockMap.window - 1, Math.ceil(attr.size / this.blockSize) - 1), attr.version, attr.size);
    if (isDir(attr.mode)) throw new IsDirectoryError('is a directory');
    const acc = flags & O_ACCMODE;
    if ((flags & O_TRUNC) && (acc === O_WRONLY || acc === O_RDWR)) await this.truncate(ino, 0);
    const named = this.view.nameOf(ino);
    if (named && acc !== O_WRONLY) void this.predictor.onOpen(named.parent, named.name, ino).catch(() => {});
    const keepCache = this.view.opened(ino, attr.version) && !strong;
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
    const committed = await this.view.committedAttr(ino, this.lockManager.isLocked(ino));
    return this.data.readForHandle(fh, ino, committed.version, this.view.overlay(committed).size, offset, length, reply);
  }

  /** Reads bytes the caller keeps (a copy). */
  read(fh: number, offset: number, length: number): Promise<Buffer> {
    return copyOfReply((reply) => this.readReply(fh, offset, length, reply));
  }

  /** Reads an inode without a handle (tools and tests). */
  readInode(ino: number, offset: number, length: number): Promise<Buffer> {
    return this.data.readInode(ino, offset, length);
  }

  write(fh: number, offset: number, data: Buffer): Promise<number> {
    const h = this.handle(fh);
    return this.data.write(h.ino, offset, data, h.append);
  }

  /** Starts uploading the inode's dirty blocks (on close). */
  flush(fh: number): void {
    this.uploader.enqueueInode(this.handle(fh).ino);
  }

  /** Waits until the inode's data and size are in the store and committed. */
  async fsync(fh: number): Promise<void> {
    await this.fsyncInode(this.handle(fh).ino);
  }

  async fsyncInode(ino: number): Promise<void> {
    await this.pushChanges(ino);
    await this.uploader.flush(ino);
  }

  /** Waits until the folder's entries, as this mount changed them, are committed. */
  async fsyncDir(ino: number): Promise<void> {
    await this.pushChanges(ino);
  }

  /** Waits until the journal's changes to `ino` (and every change made before them) are at the service. */
  private async pushChanges(ino: number): Promise<void> {
    if (!this.journal.affects(ino)) return;
    await this.journal.flush().catch((e) => {
      if (e instanceof ServiceUnavailableError) throw new ServiceUnavailableError(`the metadata service cannot be reached: the changes are kept in the cache's journal until it is back (${e.message})`);
      throw e;
    });
  }

  async release(fh: number): Promise<void> {
    const h = this.files.get(fh);
    if (!h) return;
    this.files.delete(fh);
    this.data.prefetcher.close(fh);
    const left = (this.openCount.get(h.ino) ?? 1) - 1;
    if (left > 0) {
      this.openCount.set(h.ino, left);
      return;
    }
    this.openCount.delete(h.ino);
    if (this.orphans.delete(h.ino)) await this.discard(h.ino);
    else if (h.writable) this.uploader.enqueueInode(h.ino);
  }

  /** Truncates to `size`: dirty blocks past it go, the one it cuts is shortened, then the map and the size. */
  truncate(ino: number, size: number): Promise<void> {
    return this.data.truncate(ino, size, (mtimeMs) => this.changes.setSize(ino, size, mtimeMs));
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
    // This mount's changes to the file reach the service first (strong mode from here on).
    await this.pushChanges(ino);
    if (want.type === 'unlock') {
      await this.uploader.flush(ino);
      await this.lockManager.set(ino, owner, want);
      return;
    }
    await this.lockManager.set(ino, owner, want, options);
    this.view.revalidate(ino);
  }

  /** Drops an owner's locks of one kind (close of a file: fcntl locks; last close: flock). */
  async releaseLocks(ino: number, owner: string, kind: LockKind): Promise<void> {
    if (!this.lockManager.isLocked(ino)) return;
    await this.pushChanges(ino);
    await this.uploader.flush(ino);
    await this.lockManager.release(ino, owner, kind);
  }

  // ---- directories ----------------------------------------------------------------------

  opendir(ino: number): Promise<number> {
    return this.listings.opendir(ino);
  }

  readdir(fh: number, offset: number, max: number): Promise<(DirEntryOut & { next: number })[]> {
    return this.listings.readdir(fh, offset, max);
  }

  releasedir(fh: number): void {
    this.listings.releasedir(fh);
  }

  /** All names in a directory (for tools and tests). */
  list(ino: number): Promise<DirEntryOut[]> {
    return this.listings.list(ino);
  }

  async statfs(): Promise<StatFs> {
    const lastKnown = this.view.lastKnown;
    const info = await lastKnown.orStale(async () => {
      const fresh = await this.meta.info();
      lastKnown.keepInfo(fresh);
      return fresh;
    }, () => lastKnown.lastInfo());
    const unit = 4096;
    const total = Math.max(VIRTUAL_CAPACITY, info.bytes * 2);
    return {
      blockSize: unit, blocks: Math.floor(total / unit), blocksFree: Math.floor((total - info.bytes) / unit),
      files: 2 ** 32, filesFree: 2 ** 32 - info.inodes, nameMax: 255,
    };
  }

  /** Resolves a path relative to the root to an inode. */
  async resolve(path: string): Promise<Attr> {
    let attr = await this.getattr(ROOT_INO);
    for (const part of path.split('/').filter((p) => p && p !== '.')) attr = await this.lookup(attr.ino, part);
    return attr;
  }

  /** Every regular file at or under `ino` (pin, warm). */
  filesUnder(ino: number): AsyncGenerator<Attr> {
    return this.listings.filesUnder(ino);
  }

  /**
   * Brings every block of a file into the disk cache (FileIo.hydrate), from its committed map.
   * `file.size`, when the walk that found the file gave it, saves asking the service (a size
   * changed since only means fewer or more of the committed blocks are fetched).
   */
  async hydrate(file: { ino: number; size?: number }, onBytes?: (bytes: number, fetched: boolean) => void, parallel = 8): Promise<{ bytes: number; fetched: number }> {
    return this.data.hydrate(file.ino, file.size ?? (await this.meta.getAttr(file.ino)).size, onBytes, parallel);
  }

  openFiles(): number {
    return this.files.size;
  }
}
