/**
 * The cache's two seams.
 *
 * The clean-block seam: where sealed block objects fetched from the store are kept so they
 * need not be fetched again. The block loader (src/fs/data/block-loader.ts) depends on this
 * interface only. Implementations: `BlockCache` (the persistent, encrypted, size-bounded
 * cache on local disk) and `NoDiskCache` (keeps nothing: the library API and admin commands
 * that run without a mount).
 *
 * Promises of every implementation: `openClean` returns authenticated plaintext or
 * undefined (a damaged copy throws IntegrityError, and `dropClean` forgets it); bytes handed
 * to `writeCleanInBackground` stay readable through `sealedBeingWritten` until the returned
 * promise settles, and not after (the caller may then reuse their buffer).
 *
 * The dirty-block seam (`DirtyBlocks`): blocks written and not yet uploaded, and the size
 * each written file will have once they are. File I/O writes into it and the uploader
 * drains it; both depend on this interface only. Implementations: `BlockCache` (on disk,
 * encrypted, durable across a kill) and `MemoryDirtyBlocks` (the library API, which
 * uploads each write before it returns).
 *
 * Promises of every implementation: a read of a dirty block sees every write that resolved
 * before it; each change to a block gives it a new generation, never reused, so
 * `settleUploaded` and `dropDirty(…, ifGen)` leave a block alone that changed since.
 */
export interface CleanBlocks {
  /** The plaintext of a kept object (opened into `buffer(size)` when given), or undefined. */
  openClean(objectId: string, buffer?: (size: number) => Buffer, urgent?: boolean): Promise<Buffer | undefined>;
  /** An open of `objectId` begun for reading ahead, that a reader now waits for, goes first. */
  hurryClean(objectId: string): void;
  /** Whether the object can be opened without the store: kept, or held while it is written. */
  holdsClean(objectId: string): boolean;
  /** Starts keeping a sealed object; the promise settles once it is kept (or refused). */
  writeCleanInBackground(objectId: string, sealed: Buffer, ino: number): Promise<void>;
  /** The sealed bytes of an object being written, as handed over, until the write settles. */
  sealedBeingWritten(objectId: string): Buffer | undefined;
  /** Whether writes waiting are past their backlog: callers then wait for their own. */
  readonly keepingBacklogged: boolean;
  dropClean(objectId: string): Promise<void>;
}

/** A block written and not yet uploaded. */
export interface DirtyBlock {
  ino: number;
  idx: number;
  /** Plaintext bytes of the block. */
  length: number;
  /** Changes with every write to the block; never reused. */
  gen: number;
}

/** A dirty block as the uploader takes it: plaintext to seal, or an object sealed at write. */
export interface DirtySnapshot {
  gen: number;
  length: number;
  data?: Buffer;
  sealed?: { objectId: string; bytes: Buffer };
  /**
   * `data` or `sealed.bytes` is a buffer of the cache's `blockBuffers`: the caller gives it
   * back there once nothing holds it (after the upload settles), or leaves it to a collection.
   */
  pooled?: boolean;
}

/** The size and mtime a file has once its dirty blocks are committed. */
export interface PendingSize {
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface DirtyBlocks {
  /** Emitted when writers wait for room: the uploader should start now. */
  readonly pressure: { on(listener: () => void): void };
  /** Whether data not yet uploaded may wait longer without crowding the cache (it holds under half its limit). */
  mayHoldBack(): boolean;
  dirtyRow(ino: number, idx: number): DirtyBlock | undefined;
  /** The inode's dirty blocks in block order. */
  dirtyRowsOf(ino: number): DirtyBlock[];
  allDirty(): DirtyBlock[];
  /**
   * Writes `data` at `offset` inside block (ino, idx). A block not yet dirty starts from
   * `base()` (its committed plaintext, or undefined for a hole) unless the write covers it.
   * `pending`, when given, is recorded as `setPending` would, in the same step as the block.
   */
  writeDirty(ino: number, idx: number, offset: number, data: Buffer, base: () => Promise<Buffer | undefined>, baseLength: number, pending?: PendingSize): Promise<void>;
  /** Plaintext [offset, offset+length) of a dirty block, zeros past its end; undefined if not dirty. */
  readDirty(ino: number, idx: number, offset: number, length: number): Promise<Buffer | undefined>;
  /** The whole dirty block as the uploader needs it, with the generation it had when read. */
  snapshotDirty(ino: number, idx: number): Promise<DirtySnapshot | undefined>;
  /** Generation `gen` was uploaded and committed as `objectId`: the block is clean unless it changed since. */
  settleUploaded(ino: number, idx: number, gen: number, objectId: string, sealed: Buffer): Promise<void>;
  /** Shortens a dirty block; bytes past the new end read as zeros if it grows again. */
  truncateDirty(ino: number, idx: number, length: number): Promise<void>;
  /** Forgets a dirty block (uploaded, or discarded); with `ifGen`, only if unchanged since. */
  dropDirty(ino: number, idx: number, ifGen?: number): Promise<boolean>;
  pending(ino: number): PendingSize | undefined;
  setPending(row: PendingSize): void;
  clearPending(ino: number): void;
}
