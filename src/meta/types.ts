/**
 * The metadata model and the MetaEngine seam. Engines (SQLite, PostgreSQL) and the HTTP
 * client of `lucid serve` all implement MetaEngine, and one conformance suite checks them.
 *
 * What an engine holds is opaque where it matters: names arrive as a keyed lookup hash and
 * a sealed blob, symlink targets and xattrs as sealed blobs. Engines never see plaintext.
 *
 * Promises of every implementation:
 * - every mutation is one transaction and gets the next commit sequence number (CSN);
 * - rows keep their history, so any read can be made "as of" a retained CSN;
 * - `expectVersion` makes a mutation fail with VersionConflictError if the inode changed;
 * - errors are typed (NoEntry, EntryExists, NotDirectory, IsDirectory, NotEmpty, …).
 */

export const ROOT_INO = 1;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export const isDir = (mode: number) => (mode & S_IFMT) === S_IFDIR;
export const isSymlink = (mode: number) => (mode & S_IFMT) === S_IFLNK;

export interface Attr {
  ino: number;
  /** st_mode: type bits and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  crtimeMs: number;
  /** CSN of the inode's last change: what `expectVersion` compares against. */
  version: number;
  /** Whether the inode has extended attributes (set by getAttr, lookup and readdir plus). */
  hasXattrs?: boolean;
}

/** A directory entry's name as the engine sees it. */
export interface EntryName {
  /** Keyed hash of (parent inode, name): the lookup key. */
  hash: Buffer;
  /** The name, sealed. */
  enc: Buffer;
}

export interface DirEntry extends EntryName {
  ino: number;
  mode: number;
  /** Present when readdir was asked for attributes (`plus`). */
  attr?: Attr;
  /** A regular file's first block ref, when readdir was asked for it (`firstBlock`) and it has one. */
  first?: BlockRef;
}

export interface NewNode {
  mode: number;
  uid: number;
  gid: number;
  rdev?: number;
  /** Sealed symlink target, for symlinks. */
  target?: Buffer;
  /** Initial size: a symlink's is its target's length in bytes. */
  size?: number;
  timeMs?: number;
  /**
   * An inode number this client reserved with `reserveInodes`: the create is then
   * idempotent (a retry that finds its own inode under the name returns it), so a mount can
   * make files while the service is away and replay the creates when it is back.
   */
  ino?: number;
}

export interface BlockRef {
  index: number;
  objectId: string;
  /** Valid plaintext bytes of the object from the block's start (a truncate can shorten it). */
  length: number;
}

export interface AttrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeMs?: number;
  mtimeMs?: number;
  ctimeMs?: number;
}

export interface ReadOptions {
  /** Read the state as of this CSN instead of the live state. */
  asOf?: number;
}

/**
 * The most block refs a lookup brings with its answer (256 MiB of 1 MiB blocks): what a mount
 * asks for, and the engine's cap, so the two cannot drift apart.
 */
export const LOOKUP_BLOCKS_MAX = 256;

export interface LookupOptions extends ReadOptions {
  /** Also return the first `blocks` block refs (at most LOOKUP_BLOCKS_MAX) of a regular file. */
  blocks?: number;
}

export interface MutateOptions {
  /** Fail with VersionConflictError unless the inode's version is still this. */
  expectVersion?: number;
}

export interface ReaddirOptions extends ReadOptions {
  /** Hex of the last hash already returned: entries after it. */
  cursor?: string;
  /**
   * Hex of a hash: only entries up to and including it. With `cursor`, a range of the hash
   * space, so a large folder's listing can be fetched as several ranges at once.
   */
  until?: string;
  limit?: number;
  /** Include each entry's attributes. */
  plus?: boolean;
  /** With `plus`: each regular file's first block ref too (a folder of small files reads with no map round trips). */
  firstBlock?: boolean;
}

export interface ReaddirPage {
  entries: DirEntry[];
  cursor?: string;
  /**
   * The newest commit when the page was read (live listings): a listing kept from these pages
   * is brought up to date by `listingChanges` since the first page's.
   */
  csn?: number;
}

/** What changed in a folder's listing after a commit (`listingChanges`). */
export interface ListingChanges {
  /** Entries made, renamed in, or whose attributes (or first block) changed: as listed now, with attributes. */
  entries: DirEntry[];
  /** Lookup hashes of names gone since (unless listed in `entries` again). */
  removed: Buffer[];
  /** The newest commit when the changes were read: the listing is now current as of it. */
  csn: number;
}

/** The most inodes changed since a listing for `listingChanges` to answer (beyond, a folder is listed whole). */
export const LISTING_CHANGES_MAX = 10_000;

export interface CommitBlocksOptions extends MutateOptions {
  /** The file grows to at least this size. */
  minSize?: number;
  mtimeMs?: number;
}

export interface XattrEntry {
  hash: Buffer;
  nameEnc: Buffer;
  valueEnc: Buffer;
}

export interface XattrSetFlags {
  /** Fail with EntryExists if present (XATTR_CREATE). */
  create?: boolean;
  /** Fail with NoAttribute if absent (XATTR_REPLACE). */
  replace?: boolean;
}

export interface Commit {
  csn: number;
  timeMs: number;
  inos: number[];
}

export interface ChangesPage {
  commits: Commit[];
  /** The newest CSN the engine has; a reader is caught up once it reaches it. */
  csn: number;
}

export interface Snapshot {
  id: number;
  name: string;
  /** The commit the snapshot shows the filespace at. */
  csn: number;
  createdMs: number;
  /** The schedule that made it, if one did. */
  schedule?: string;
}

export interface SnapshotSchedule {
  name: string;
  everyMs: number;
  /** How many of this schedule's snapshots are kept (older ones are deleted). */
  keep: number;
  /** When it last made a snapshot (ms since the epoch; 0 never). */
  lastMs: number;
}

export interface RestoreResult {
  csn: number;
  /** Inodes restored (the entry's tree as it was). */
  restored: number;
  /** Entries and inodes that changed: every client drops what it cached of them. */
  inos: number[];
}

/** What one pass of `pruneVersions` did (or, dry, would do). */
export interface PruneResult {
  /** Row versions removed (or removable): attributes, names, block refs, xattrs; and the
   * change history's rows (commits and the inodes each changed) older than the cut-off and
   * than the oldest snapshot. */
  rows: number;
  /** The newest commit whose replaced rows were considered (commits after the cut-off stay). */
  upToCsn: number;
}

export interface MetaInfo {
  filespaceId: string;
  blockSize: number;
  csn: number;
  inodes: number;
  /** Sum of live file sizes. */
  bytes: number;
  /** The change history starts after this commit (`changesSince` an older one is refused:
   * `pruneVersions` removed what came before; 0 while nothing was pruned). */
  historyCsn?: number;
}

/** The most operations one batch may carry. */
export const BATCH_MAX = 1000;

/**
 * One change in a batch (`applyBatch`): a mutation as its own call would make it, with the
 * preconditions a write-back replay needs. `expectIno`: the name must still hold that inode
 * (VersionConflict otherwise); `replaces`: the rename may replace only that inode
 * (EntryExists if the new name holds another).
 */
export interface RenameFlags {
  noReplace?: boolean;
  exchange?: boolean;
}

export type BatchOp =
  | { op: 'create'; parent: number; name: EntryName; node: NewNode }
  | { op: 'link'; ino: number; parent: number; name: EntryName }
  | { op: 'unlink'; parent: number; hash: Buffer; expectIno?: number }
  | { op: 'rmdir'; parent: number; hash: Buffer; expectIno?: number }
  | { op: 'rename'; parent: number; hash: Buffer; newParent: number; newName: EntryName; noReplace?: boolean; exchange?: boolean; expectIno?: number; replaces?: number }
  | { op: 'setAttr'; ino: number; changes: AttrChanges; options?: MutateOptions }
  | { op: 'commitBlocks'; ino: number; blocks: BlockRef[]; options?: CommitBlocksOptions }
  | { op: 'reclaim'; ino: number }
  | { op: 'setXattr'; ino: number; entry: XattrEntry; flags?: XattrSetFlags }
  | { op: 'removeXattr'; ino: number; hash: Buffer };

export interface BatchResult {
  /** One per operation applied, in order: its commit's CSN and what its own call returns (null for nothing). */
  applied: { csn: number; value: Attr | null }[];
  /** The first operation that did not apply (none after it was tried): its index and typed error. */
  failed?: { index: number; code: string; message: string };
}

export interface MetaEngine {
  info(): Promise<MetaInfo>;
  getAttr(ino: number, options?: ReadOptions): Promise<Attr>;
  /** With `blocks`, a regular file's first block refs come along (one round trip to open and read). */
  lookup(parent: number, hash: Buffer, options?: LookupOptions): Promise<Attr & { blocks?: BlockRef[] }>;
  readdir(parent: number, options?: ReaddirOptions): Promise<ReaddirPage>;
  /**
   * What changed in `parent`'s listing after commit `since` (a page's `csn`), so a listing
   * kept across a remount is brought up to date without listing the folder again. Fails
   * with OutOfRangeError when that history is no longer kept (pruned) or more than
   * LISTING_CHANGES_MAX inodes changed since: the folder is then listed whole.
   */
  listingChanges(parent: number, since: number): Promise<ListingChanges>;
  /** The entries naming inode `ino` (a hard link has several; the root none): a path is walked up from them. */
  namesOf(ino: number, options?: ReadOptions): Promise<({ parent: number } & EntryName)[]>;
  create(parent: number, name: EntryName, node: NewNode): Promise<Attr>;
  /** Sets aside `count` (1–1000) inode numbers no one else will get, for `create` with `ino`. */
  reserveInodes(count: number): Promise<{ first: number; count: number }>;
  link(ino: number, parent: number, name: EntryName): Promise<Attr>;
  /** Removes a non-directory entry; returns the inode after (nlink 0: an orphan until `reclaim`). */
  unlink(parent: number, hash: Buffer): Promise<Attr>;
  rmdir(parent: number, hash: Buffer): Promise<void>;
  /**
   * Atomic rename; returns the attributes of an inode it replaced (nlink after), if any.
   * `exchange` (RENAME_EXCHANGE): both names must exist, and swap what they hold.
   */
  rename(parent: number, hash: Buffer, newParent: number, newName: EntryName, flags?: RenameFlags): Promise<Attr | undefined>;
  setAttr(ino: number, changes: AttrChanges, options?: MutateOptions): Promise<Attr>;
  readlink(ino: number, options?: ReadOptions): Promise<Buffer>;
  getBlocks(ino: number, first: number, count: number, options?: ReadOptions): Promise<BlockRef[]>;
  commitBlocks(ino: number, blocks: BlockRef[], options?: CommitBlocksOptions): Promise<Attr>;
  /** Drops an inode whose link count is 0 (after its last open handle closed). */
  reclaim(ino: number): Promise<void>;
  getXattr(ino: number, hash: Buffer, options?: ReadOptions): Promise<XattrEntry>;
  listXattr(ino: number, options?: ReadOptions): Promise<XattrEntry[]>;
  setXattr(ino: number, entry: XattrEntry, flags?: XattrSetFlags): Promise<void>;
  removeXattr(ino: number, hash: Buffer): Promise<void>;
  /**
   * Applies many changes in one request and one transaction, in order, each its own commit;
   * stops at the first that fails (see BatchResult). What a write-back mount sends.
   */
  applyBatch(ops: BatchOp[]): Promise<BatchResult>;
  changesSince(csn: number, limit?: number): Promise<ChangesPage>;
  /** A named view of the filespace as of the last commit: metadata only, instant. */
  createSnapshot(name?: string): Promise<Snapshot>;
  listSnapshots(): Promise<Snapshot[]>;
  deleteSnapshot(id: number): Promise<void>;
  createSchedule(name: string, everyMs: number, keep: number): Promise<SnapshotSchedule>;
  listSchedules(): Promise<SnapshotSchedule[]>;
  deleteSchedule(name: string): Promise<void>;
  /**
   * Takes the snapshots that are due at `nowMs` and deletes the ones past each schedule's
   * `keep`; safe to call from several service instances at once (each due snapshot is taken
   * once). Returns the snapshots taken.
   */
  runSchedules(nowMs: number): Promise<Snapshot[]>;
  /**
   * Puts the entry `hash` of directory `parent` back as it was at snapshot `id`, in one
   * commit: a file's contents and attributes, or a folder's whole tree (deleted entries come
   * back, entries created since go away, inodes moved away since move back). No data is
   * copied: the restored block refs point at the same objects. `parent` 0 restores the
   * whole filespace.
   */
  restore(id: number, parent: number, hash: Buffer): Promise<RestoreResult>;
  /**
   * Garbage collection of metadata: removes row versions that neither the live tree nor any
   * snapshot shows, among those replaced by commits made at or before `beforeMs` (later ones
   * stay, so readers a little behind still find what they were reading). `dryRun` counts
   * without removing.
   */
  pruneVersions(beforeMs: number, options?: { dryRun?: boolean }): Promise<PruneResult>;
  /**
   * Of `objectIds`, those a retained block ref still points at: the live tree's, a
   * snapshot's, or one replaced after `beforeMs`. Every other block object is garbage.
   */
  retainedObjects(objectIds: string[], beforeMs: number): Promise<string[]>;
  close(): Promise<void>;
}
