/**
 * SqlMetaEngine: the metadata logic, written once over the SqlDriver primitives, for every
 * SQL database. Each mutation runs in one transaction that first takes the next CSN (which
 * also serializes writers, so CSN order is commit order), ends the live versions of the rows
 * it changes (csn_to = CSN), inserts their new versions (csn_from = CSN), and records which
 * inodes changed for the change feed.
 */
import {
  EntryExistsError, InternalError, InvalidArgumentError, LucidError, IsDirectoryError, NoAttributeError, NoEntryError,
  NotDirectoryError, NotEmptyError, NotPermittedError, OutOfRangeError, VersionConflictError,
} from '../../errors.js';
import {
  BATCH_MAX, LISTING_CHANGES_MAX, LOOKUP_BLOCKS_MAX, ROOT_INO, type BatchOp, type BatchResult, S_IFDIR, S_IFMT, S_IFREG, isDir, type Attr, type AttrChanges, type BlockRef, type ChangesPage, type Commit,
  type CommitBlocksOptions, type DirEntry, type EntryName, type MetaEngine, type MetaInfo, type MutateOptions, type PruneResult,
  type ListingChanges, type LookupOptions, type NewNode, type ReadOptions, type RestoreResult, type Snapshot, type SnapshotSchedule, type ReaddirOptions, type ReaddirPage, type RenameFlags, type XattrEntry, type XattrSetFlags,
} from '../types.js';
import { SqlLockStore } from './lock-store.js';
import { checkBatchOp } from '../rpc.js';
import { dialectSql, type Row, type SqlDriver, type SqlRunner, type SqlValue } from './driver.js';
import { LIVE, SCHEMA, SCHEMA_VERSION } from './schema.js';


/** History rows (by commit) removed per transaction when pruning. */
const HISTORY_PRUNE_SLICE = 10_000;
const INODE_COLS = 'ino, csn_from, mode, uid, gid, size, nlink, rdev, atime_ms, mtime_ms, ctime_ms, crtime_ms';
/** The same columns of the inodes table aliased `i`. */
const INODE_COLS_I = INODE_COLS.split(', ').map((c) => `i.${c}`).join(', ');
const MAX_SEALED_NAME = 1024;
const MAX_SEALED_BLOB = 70 * 1024;

/**
 * The entries of folder `parent` with their inodes' attributes (and, with `firstBlock`, each
 * one's first block ref), live or as of a commit: readdir plus and listing changes add their
 * own conditions after `sql` (which ends in the WHERE clause) and rows become `listed`.
 */
function listedEntries(parent: number, options: ReadOptions | undefined, firstBlock: boolean): { sql: string; params: SqlValue[] } {
  const v = visible(options, 'd.');
  const vi = visible(options, 'i.');
  const vb = visible(options, 'b.');
  const x = xattrFlag(options);
  return {
    sql: `SELECT d.hash, d.name_enc, d.mode AS dmode, ${INODE_COLS_I}, ${x.sql}${firstBlock ? ', b.object_id AS first_object, b.length AS first_length' : ''}
      FROM dentries d JOIN inodes i ON i.ino = d.ino AND ${vi.sql}${firstBlock ? ` LEFT JOIN blocks b ON b.ino = d.ino AND b.idx = 0 AND ${vb.sql}` : ''}
      WHERE d.parent = ? AND ${v.sql}`,
    params: [...x.params, ...vi.params, ...(firstBlock ? vb.params : []), parent, ...v.params],
  };
}

/** A listed entry from a row of dentries `d` (hash, name_enc, dmode) joined to its inode (and, if asked, its first block). */
function listed(r: Row, plus: boolean): DirEntry {
  return {
    hash: r.hash as Buffer, enc: r.name_enc as Buffer, ino: Number(r.ino), mode: Number(r.dmode),
    ...(plus ? { attr: toAttr(r) } : {}),
    ...(r.first_object ? { first: { index: 0, objectId: String(r.first_object), length: Number(r.first_length) } } : {}),
  };
}

function toAttr(r: Row): Attr {
  return {
    ino: Number(r.ino), mode: Number(r.mode), uid: Number(r.uid), gid: Number(r.gid), size: Number(r.size),
    nlink: Number(r.nlink), rdev: Number(r.rdev), atimeMs: Number(r.atime_ms), mtimeMs: Number(r.mtime_ms),
    ctimeMs: Number(r.ctime_ms), crtimeMs: Number(r.crtime_ms), version: Number(r.csn_from),
    ...(r.has_xattrs === undefined ? {} : { hasXattrs: Number(r.has_xattrs) !== 0 }),
  };
}

/** A column telling whether the inode (alias `i`) has extended attributes, as `has_xattrs`. */
function xattrFlag(options: ReadOptions | undefined): { sql: string; params: SqlValue[] } {
  const v = visible(options, 'x.');
  return { sql: `EXISTS (SELECT 1 FROM xattrs x WHERE x.ino = i.ino AND ${v.sql}) AS has_xattrs`, params: v.params };
}

/** Visibility of versioned rows: live, or as of a CSN. `p` prefixes the columns (table alias). */
function visible(options: ReadOptions | undefined, p = ''): { sql: string; params: SqlValue[] } {
  if (options?.asOf === undefined) return { sql: `${p}csn_to = ?`, params: [LIVE] };
  const csn = checkInt(options.asOf, 'asOf');
  return { sql: `${p}csn_from <= ? AND ${p}csn_to > ?`, params: [csn, csn] };
}

/** What setAttr may change. */
const ATTR_FIELDS = new Set(['mode', 'uid', 'gid', 'size', 'atimeMs', 'mtimeMs', 'ctimeMs']);

/** The file types an inode may have (the S_IFMT bits). */
const FILE_TYPES = new Set([0o010000, 0o020000, 0o040000, 0o060000, 0o100000, 0o120000, 0o140000]);

/** Tables whose rows carry a [csn_from, csn_to) lifetime. */
const VERSIONED_TABLES = ['inodes', 'dentries', 'blocks', 'xattrs'] as const;

/** SQL: some snapshot shows this row of `table` (its CSN lies in the row's lifetime). */
function retainedBySnapshot(table: string): string {
  return `EXISTS (SELECT 1 FROM snapshots WHERE snapshots.csn >= ${table}.csn_from AND snapshots.csn < ${table}.csn_to)`;
}

function checkInt(v: unknown, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(`${what} must be a whole number ≥ ${min}`);
  return v;
}

function checkBytes(v: unknown, what: string, min: number, max: number): Buffer {
  if (!Buffer.isBuffer(v) || v.length < min || v.length > max) throw new InvalidArgumentError(`${what} must be ${min}–${max} bytes`);
  return v;
}

const checkHash = (v: unknown) => checkBytes(v, 'hash', 32, 32);
const checkName = (n: EntryName) => ({ hash: checkHash(n?.hash), enc: checkBytes(n?.enc, 'sealed name', 1, MAX_SEALED_NAME) });

/** The entry under a name, which must be there and, given `expectIno`, hold that inode. */
function expectedEntry<E extends { ino: number }>(e: E | undefined, expectIno: number | undefined): E {
  if (!e) throw new NoEntryError('no such entry');
  if (expectIno !== undefined && e.ino !== checkInt(expectIno, 'expectIno', 1)) throw new VersionConflictError(`the name holds inode ${e.ino}, not ${expectIno}`);
  return e;
}

/** Counts the live inodes and their bytes (a scan: a database from before the totals were kept). */
async function countLive(tx: SqlRunner): Promise<void> {
  const r = await tx.get('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM inodes WHERE csn_to = ?', [LIVE]);
  await tx.run("DELETE FROM counters WHERE name IN ('live_inodes', 'live_bytes')");
  await tx.run("INSERT INTO counters (name, value) VALUES ('live_inodes', ?), ('live_bytes', ?)", [Number(r!.n), Number(r!.bytes)]);
}

/** What one commit did: its result, its announcement, and how it moved the live totals. */
interface Done<T> {
  value: T;
  event: Commit;
  inodesDelta: number;
  bytesDelta: number;
}

/** Rows one multi-row INSERT carries (two parameters each: well under every database's limit). */
const ROWS_PER_INSERT = 200;

/** An inode's live row as this commit knows it: read once, then kept as it writes it. */
interface KnownInode {
  attr: Attr;
  target: Buffer | null;
  /** The live row's csn_from: this commit's CSN once it wrote the inode. */
  csnFrom: number;
  /** Whether it has extended attributes (unknown once this commit changed them). */
  hasXattrs?: boolean;
}

/**
 * The writes of one commit: every versioned row it touches is stamped with its CSN.
 *
 * Each statement is a round trip to PostgreSQL, so a commit says what it already knows
 * rather than asking again: an inode read once is kept (with whether it has extended
 * attributes) and kept current as this commit writes it; a row from an earlier commit is
 * ended with one UPDATE (the DELETE of a row made by this commit is needed only for one it
 * made); a new inode has no live row to end and no extended attributes. Writes through
 * `end` and `insert` to inodes or xattrs forget what was known of that inode. What is known
 * lasts for the transaction: a batch's commits share it (a rollback to a savepoint clears it).
 */
class Mutation {
  readonly touched = new Set<number>();
  /** How the live inodes and their bytes change (kept in counters: `info` reads them, never scans). */
  inodesDelta = 0;
  bytesDelta = 0;
  /** `known`: what the transaction's commits so far know of inodes (shared by a batch's commits). */
  constructor(readonly tx: SqlRunner, readonly csn: number, readonly now: number, private readonly known: Map<number, KnownInode>) {}

  async inode(ino: number): Promise<Attr & { target: Buffer | null }> {
    let k = this.known.get(ino);
    if (!k) {
      const x = xattrFlag(undefined);
      const r = await this.tx.get(`SELECT ${INODE_COLS_I}, i.target, ${x.sql} FROM inodes i WHERE i.ino = ? AND i.csn_to = ?`, [...x.params, ino, LIVE]);
      if (!r) throw new NoEntryError(`inode ${ino} does not exist`);
      const { hasXattrs, ...attr } = toAttr(r);
      k = { attr, target: (r.target as Buffer | null) ?? null, csnFrom: attr.version, hasXattrs };
      this.known.set(ino, k);
    }
    return { ...k.attr, target: k.target };
  }

  async dir(ino: number): Promise<Attr> {
    const a = await this.inode(ino);
    if (!isDir(a.mode)) throw new NotDirectoryError(`inode ${ino} is not a directory`);
    return a;
  }

  async entry(parent: number, hash: Buffer): Promise<{ ino: number; mode: number } | undefined> {
    const r = await this.tx.get('SELECT ino, mode FROM dentries WHERE parent = ? AND hash = ? AND csn_to = ?', [parent, hash, LIVE]);
    return r ? { ino: Number(r.ino), mode: Number(r.mode) } : undefined;
  }

  /** Ends the live versions of rows matching `where` (deleting ones this transaction made); `where` starts with `ino = ?` for inodes and xattrs. */
  async end(table: string, where: string, params: SqlValue[]): Promise<void> {
    this.forget(table, params[0]);
    await this.tx.run(`DELETE FROM ${table} WHERE ${where} AND csn_from = ? AND csn_to = ?`, [...params, this.csn, LIVE]);
    await this.tx.run(`UPDATE ${table} SET csn_to = ? WHERE ${where} AND csn_to = ?`, [this.csn, ...params, LIVE]);
  }

  async insert(table: string, row: Record<string, SqlValue>): Promise<void> {
    this.forget(table, row.ino);
    await this.insertRow(table, row);
  }

  private async insertRow(table: string, row: Record<string, SqlValue>): Promise<void> {
    const cols = [...Object.keys(row), 'csn_from', 'csn_to'];
    await this.tx.run(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
      [...Object.values(row), this.csn, LIVE]);
  }

  /** A write to `table` about inode `ino` that this commit does not follow: what it knew of the inode may be stale. */
  private forget(table: string, ino: SqlValue | undefined): void {
    if (table === 'xattrs') {
      const k = this.known.get(Number(ino));
      if (k) k.hasXattrs = undefined;
    } else if (table === 'inodes') {
      this.known.delete(Number(ino));
    }
  }

  /**
   * Writes an inode's new version. `wasSize`: the live version's size, or null for a new
   * inode (the live totals `info` reports move by the difference).
   */
  async putInode(a: Attr, target: Buffer | null, wasSize: number | null): Promise<Attr> {
    if (wasSize === null) this.inodesDelta++;
    this.bytesDelta += a.size - (wasSize ?? 0);
    const k = wasSize === null ? undefined : this.known.get(a.ino);
    if (wasSize === null) {
      // A new inode: no live row to end.
    } else if (k && k.csnFrom < this.csn) {
      await this.tx.run('UPDATE inodes SET csn_to = ? WHERE ino = ? AND csn_to = ?', [this.csn, a.ino, LIVE]);
    } else if (k) {
      // The live row is this commit's own: it goes, as no other version was live beside it.
      await this.tx.run('DELETE FROM inodes WHERE ino = ? AND csn_from = ? AND csn_to = ?', [a.ino, this.csn, LIVE]);
    } else {
      await this.end('inodes', 'ino = ?', [a.ino]);
    }
    await this.insertRow('inodes', {
      ino: a.ino, mode: a.mode, uid: a.uid, gid: a.gid, size: a.size, nlink: a.nlink, rdev: a.rdev,
      atime_ms: a.atimeMs, mtime_ms: a.mtimeMs, ctime_ms: a.ctimeMs, crtime_ms: a.crtimeMs, target,
    });
    this.touched.add(a.ino);
    // The flag every answer with attributes carries: clients answer xattr questions (the
    // kernel's security.capability before each write) from it without a round trip.
    let hasXattrs = wasSize === null ? false : k?.hasXattrs;
    if (hasXattrs === undefined) hasXattrs = (await this.tx.get('SELECT 1 AS x FROM xattrs WHERE ino = ? AND csn_to = ? LIMIT 1', [a.ino, LIVE])) !== undefined;
    const { hasXattrs: _, ...attr } = a;
    this.known.set(a.ino, { attr: { ...attr, version: this.csn }, target, csnFrom: this.csn, hasXattrs });
    return { ...a, version: this.csn, hasXattrs };
  }

  /** Updates an inode's fields and stamps ctime. */
  async update(ino: number, change: (a: Attr) => Partial<Attr>): Promise<Attr> {
    const cur = await this.inode(ino);
    const { target, ...attr } = cur;
    return this.putInode({ ...attr, ctimeMs: this.now, ...change(attr) }, target, attr.size);
  }

  /** A directory's contents changed: mtime and ctime move, nlink by `nlinkDelta`. */
  async touchDir(ino: number, nlinkDelta = 0): Promise<void> {
    await this.update(ino, (a) => ({ mtimeMs: this.now, nlink: a.nlink + nlinkDelta }));
  }

  async addEntry(parent: number, name: EntryName, ino: number, mode: number): Promise<void> {
    await this.insert('dentries', { parent, hash: name.hash, name_enc: name.enc, ino, mode: mode & S_IFMT });
    this.touched.add(parent);
  }

  async removeEntry(parent: number, hash: Buffer): Promise<void> {
    await this.end('dentries', 'parent = ? AND hash = ?', [parent, hash]);
    this.touched.add(parent);
  }

  async dropInode(ino: number): Promise<void> {
    const live = await this.tx.get('SELECT size FROM inodes WHERE ino = ? AND csn_to = ?', [ino, LIVE]);
    if (live) {
      this.inodesDelta--;
      this.bytesDelta -= Number(live.size);
    }
    await this.end('inodes', 'ino = ?', [ino]);
    await this.end('blocks', 'ino = ?', [ino]);
    await this.end('xattrs', 'ino = ?', [ino]);
    this.touched.add(ino);
  }

  async isEmptyDir(ino: number): Promise<boolean> {
    return !(await this.tx.get('SELECT 1 AS x FROM dentries WHERE parent = ? AND csn_to = ? LIMIT 1', [ino, LIVE]));
  }

  /** Throws unless moving directory `dir` under `newParent` keeps the tree a tree. */
  async checkNotAncestor(dir: number, newParent: number): Promise<void> {
    for (let cur = newParent; cur !== ROOT_INO;) {
      if (cur === dir) throw new InvalidArgumentError('cannot move a directory into itself or one of its subdirectories');
      const r = await this.tx.get('SELECT parent FROM dentries WHERE ino = ? AND csn_to = ? LIMIT 1', [cur, LIVE]);
      if (!r) return;
      cur = Number(r.parent);
    }
  }
}

const MIN = 60_000;
const DEFAULT_SCHEDULES: [string, number, number][] = [
  ['every-15m', 15 * MIN, 4], ['hourly', 60 * MIN, 6], ['daily', 24 * 60 * MIN, 7], ['weekly', 7 * 24 * 60 * MIN, 4],
];

/** The NOTIFY channel on which every instance over one database announces commits. */
const COMMIT_CHANNEL = 'lucid_commits';

export class SqlMetaEngine implements MetaEngine {
  private readonly listeners = new Set<(e: Commit) => void>();

  private constructor(private readonly db: SqlDriver, readonly filespaceId: string, readonly blockSize: number) {}

  /**
   * Opens (and on first use formats) the metadata database of filespace `filespaceId`.
   * A database that belongs to another filespace is refused.
   */
  static async open(db: SqlDriver, init: { filespaceId: string; blockSize: number; rootUid?: number; rootGid?: number }): Promise<SqlMetaEngine> {
    await db.transaction(async (tx) => {
      // Instances starting together over one PostgreSQL database format it once.
      if (db.dialect === 'postgres') await tx.get('SELECT pg_advisory_xact_lock(7410)');
      for (const stmt of dialectSql(SCHEMA, db.dialect).split(';').map((s) => s.trim()).filter(Boolean)) {
        await tx.run(stmt);
      }
      const rows = await tx.all('SELECT name, value FROM settings');
      const settings = new Map(rows.map((r) => [String(r.name), String(r.value)]));
      if (settings.size > 0) {
        if (settings.get('filespace_id') !== init.filespaceId) {
          throw new InvalidArgumentError(`this metadata database belongs to filespace ${settings.get('filespace_id')}, not ${init.filespaceId}: point --db at the right database`);
        }
        if (Number(settings.get('schema_version')) > SCHEMA_VERSION) {
          throw new InvalidArgumentError(`metadata schema version ${settings.get('schema_version')} is newer than this lucid understands: upgrade lucid`);
        }
        // A database from before the live totals were kept counts them once.
        if (!(await tx.get("SELECT 1 AS x FROM counters WHERE name = 'live_inodes'"))) await countLive(tx);
        return;
      }
      const now = Date.now();
      for (const [name, value] of [['filespace_id', init.filespaceId], ['block_size', String(init.blockSize)], ['schema_version', String(SCHEMA_VERSION)]]) {
        await tx.run('INSERT INTO settings (name, value) VALUES (?, ?)', [name, value]);
      }
      await tx.run("INSERT INTO counters (name, value) VALUES ('csn', 1), ('next_ino', ?), ('live_inodes', 1), ('live_bytes', 0)", [ROOT_INO + 1]);
      await tx.run('INSERT INTO commits (csn, time_ms) VALUES (1, ?)', [now]);
      await tx.run(`INSERT INTO inodes (ino, csn_from, csn_to, mode, uid, gid, size, nlink, rdev, atime_ms, mtime_ms, ctime_ms, crtime_ms, target)
        VALUES (?, 1, ?, ?, ?, ?, 0, 2, 0, ?, ?, ?, ?, NULL)`,
      [ROOT_INO, LIVE, S_IFDIR | 0o755, init.rootUid ?? 0, init.rootGid ?? 0, now, now, now, now]);
      await tx.run('INSERT INTO changes (csn, ino) VALUES (1, ?)', [ROOT_INO]);
      // Default schedules of a new filespace (removable): 4 × 15 min, 6 hourly, 7 daily, 4 weekly.
      for (const [name, every, keep] of DEFAULT_SCHEDULES) {
        await tx.run('INSERT INTO snapshot_schedules (name, every_ms, keep, last_ms) VALUES (?, ?, ?, ?)', [name, every, keep, now]);
      }
    });
    const row = await db.get("SELECT value FROM settings WHERE name = 'block_size'");
    const engine = new SqlMetaEngine(db, init.filespaceId, Number(row!.value));
    if (db.shared && db.listen) engine.unlisten = await db.listen(COMMIT_CHANNEL, (p) => engine.heard(p));
    return engine;
  }

  private unlisten?: () => void;
  private heardQueue: Promise<void> = Promise.resolve();

  /** A commit announced through the database (any instance, this one too), in commit order. */
  private heard(payload: string): void {
    this.heardQueue = this.heardQueue.then(async () => {
      const parsed = JSON.parse(payload) as (Commit & { more?: boolean }) | (Commit & { more?: boolean })[];
      for (const e of Array.isArray(parsed) ? parsed : [parsed]) {
        if (e.more) {
          // Too many inodes for one notification: read them back.
          const page = await this.commitsAfter(e.csn - 1, 1);
          const c = page.commits.find((x) => x.csn === e.csn);
          if (c) e.inos = c.inos;
        }
        for (const l of this.listeners) l({ csn: e.csn, timeMs: e.timeMs, inos: e.inos });
      }
    }).catch(() => {});
  }

  /** The lock tables of this database, for the service (src/meta/sql/lock-store.ts). */
  async lockStore(): Promise<SqlLockStore> {
    const store = new SqlLockStore(this.db);
    await store.start();
    return store;
  }

  /** Called after each commit, in CSN order: the service's push channel listens here. */
  onCommit(listener: (e: Commit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async info(): Promise<MetaInfo> {
    const counters = new Map((await this.db.all("SELECT name, value FROM counters WHERE name IN ('csn', 'live_inodes', 'live_bytes')")).map((r) => [String(r.name), Number(r.value)]));
    return { filespaceId: this.filespaceId, blockSize: this.blockSize, csn: counters.get('csn')!, inodes: counters.get('live_inodes')!, bytes: counters.get('live_bytes')!, historyCsn: await this.historyCsn() };
  }

  async getAttr(ino: number, options?: ReadOptions): Promise<Attr> {
    const v = visible(options);
    const x = xattrFlag(options);
    const r = await this.db.get(`SELECT ${INODE_COLS_I}, ${x.sql} FROM inodes i WHERE i.ino = ? AND ${visible(options, 'i.').sql}`,
      [...x.params, checkInt(ino, 'ino', 1), ...v.params]);
    if (!r) throw new NoEntryError(`inode ${ino} does not exist`);
    return toAttr(r);
  }

  async lookup(parent: number, hash: Buffer, options?: LookupOptions): Promise<Attr & { blocks?: BlockRef[] }> {
    const v = visible(options, 'd.');
    const vi = visible(options, 'i.');
    const x = xattrFlag(options);
    const r = await this.db.get(`SELECT ${INODE_COLS_I}, ${x.sql}
      FROM dentries d JOIN inodes i ON i.ino = d.ino AND ${vi.sql}
      WHERE d.parent = ? AND d.hash = ? AND ${v.sql}`, [...x.params, ...vi.params, checkInt(parent, 'parent', 1), checkHash(hash), ...v.params]);
    if (r) {
      const a = toAttr(r);
      const want = options?.blocks === undefined ? 0 : Math.min(checkInt(options.blocks, 'blocks'), LOOKUP_BLOCKS_MAX);
      if (want === 0 || (a.mode & S_IFMT) !== S_IFREG || a.size === 0) return a;
      return { ...a, blocks: await this.getBlocks(a.ino, 0, want, options) };
    }
    const dir = await this.getAttr(parent, options);
    if (!isDir(dir.mode)) throw new NotDirectoryError(`inode ${parent} is not a directory`);
    throw new NoEntryError('no such entry');
  }

  async readdir(parent: number, options: ReaddirOptions = {}): Promise<ReaddirPage> {
    const dir = await this.getAttr(checkInt(parent, 'parent', 1), options);
    if (!isDir(dir.mode)) throw new NotDirectoryError(`inode ${parent} is not a directory`);
    const limit = Math.min(checkInt(options.limit ?? 1000, 'limit', 1), 10_000);
    if (options.cursor !== undefined && !/^[0-9a-f]{64}$/.test(String(options.cursor))) throw new InvalidArgumentError('cursor is not one readdir gave');
    if (options.until !== undefined && !/^[0-9a-f]{64}$/.test(String(options.until))) throw new InvalidArgumentError('until must be a hash: 64 hex digits');
    const after = options.cursor !== undefined ? Buffer.from(String(options.cursor), 'hex') : Buffer.alloc(0);
    // Hashes are 32 bytes: a 33-byte bound of 0xff sorts after every one of them.
    const upTo = options.until !== undefined ? Buffer.from(String(options.until), 'hex') : Buffer.alloc(33, 0xff);
    const v = visible(options, 'd.');
    // Read first: a commit after it may or may not be in the rows, and a listing kept from
    // this page asks for the changes since it (src/fs/namespace/kept-listings.ts).
    const csn = options.asOf === undefined ? await this.csnNow() : undefined;
    let rows: Row[];
    if (options.plus) {
      const q = listedEntries(parent, options, options.firstBlock === true);
      rows = await this.db.all(`${q.sql} AND d.hash > ? AND d.hash <= ? ORDER BY d.hash LIMIT ?`, [...q.params, after, upTo, limit + 1]);
    } else {
      rows = await this.db.all(`SELECT d.hash, d.name_enc, d.ino, d.mode AS dmode FROM dentries d
        WHERE d.parent = ? AND ${v.sql} AND d.hash > ? AND d.hash <= ? ORDER BY d.hash LIMIT ?`, [parent, ...v.params, after, upTo, limit + 1]);
    }
    const more = rows.length > limit;
    const entries = rows.slice(0, limit).map((r) => listed(r, options.plus === true));
    return { entries, cursor: more ? entries[entries.length - 1].hash.toString('hex') : undefined, ...(csn === undefined ? {} : { csn }) };
  }

  async listingChanges(parent: number, since: number): Promise<ListingChanges> {
    checkInt(since, 'since');
    const csn = await this.csnNow();
    const pruned = await this.numericSetting('pruned_csn');
    if (since < pruned || since > csn) throw new OutOfRangeError(`the changes since commit ${since} are not kept (history from ${pruned} to ${csn}): list the folder whole`);
    const dir = await this.getAttr(checkInt(parent, 'parent', 1));
    if (!isDir(dir.mode)) throw new NotDirectoryError(`inode ${parent} is not a directory`);
    const changed = (await this.db.all('SELECT DISTINCT ino FROM changes WHERE csn > ? LIMIT ?', [since, LISTING_CHANGES_MAX + 1])).map((r) => Number(r.ino));
    if (changed.length > LISTING_CHANGES_MAX) throw new OutOfRangeError(`more than ${LISTING_CHANGES_MAX} inodes changed since commit ${since}: list the folder whole`);
    const q = listedEntries(parent, undefined, true);
    const byHash = new Map<string, DirEntry>();
    const take = (rows: Row[]) => { for (const r of rows) byHash.set((r.hash as Buffer).toString('hex'), listed(r, true)); };
    // Names made or moved here since (their entry rows are new), and entries whose inode changed.
    take(await this.db.all(`${q.sql} AND d.csn_from > ?`, [...q.params, since]));
    for (let i = 0; i < changed.length; i += 500) {
      const inos = changed.slice(i, i + 500);
      take(await this.db.all(`${q.sql} AND d.ino IN (${inos.map(() => '?').join(', ')})`, [...q.params, ...inos]));
    }
    const removed = await this.db.all(`SELECT DISTINCT d.hash FROM dentries d WHERE d.parent = ? AND d.csn_to > ? AND d.csn_to < ?
      AND NOT EXISTS (SELECT 1 FROM dentries l WHERE l.parent = d.parent AND l.hash = d.hash AND l.csn_to = ?) LIMIT ?`, [parent, since, LIVE, LIVE, LISTING_CHANGES_MAX + 1]);
    if (removed.length > LISTING_CHANGES_MAX) throw new OutOfRangeError(`more than ${LISTING_CHANGES_MAX} names went since commit ${since}: list the folder whole`);
    return { entries: [...byHash.values()], removed: removed.map((r) => r.hash as Buffer), csn };
  }

  async namesOf(ino: number, options?: ReadOptions): Promise<({ parent: number } & EntryName)[]> {
    const v = visible(options);
    const rows = await this.db.all(`SELECT parent, hash, name_enc FROM dentries WHERE ino = ? AND ${v.sql} ORDER BY parent, hash LIMIT 1000`, [checkInt(ino, 'ino', 1), ...v.params]);
    return rows.map((r) => ({ parent: Number(r.parent), hash: r.hash as Buffer, enc: r.name_enc as Buffer }));
  }

  /** The newest commit. */
  private async csnNow(): Promise<number> {
    return Number((await this.db.get("SELECT value FROM counters WHERE name = 'csn'"))!.value);
  }

  async create(parent: number, name: EntryName, node: NewNode): Promise<Attr> {
    const n = checkName(name);
    const reserved = node?.ino === undefined ? undefined : checkInt(node.ino, 'ino', ROOT_INO + 1);
    if (reserved !== undefined) {
      // A replay of a create that already landed: the name holds this very inode.
      const there = await this.lookup(parent, n.hash).catch((e) => { if (e instanceof NoEntryError) return undefined; throw e; });
      if (there?.ino === reserved) return this.getAttr(reserved);
    }
    return this.mutate(this.createBody(parent, name, node));
  }

  private createBody(parent: number, name: EntryName, node: NewNode): (m: Mutation) => Promise<Attr> {
    const n = checkName(name);
    const mode = checkInt(node?.mode, 'mode');
    if (!FILE_TYPES.has(mode & S_IFMT) || mode > 0o177777) throw new InvalidArgumentError('mode must carry one file type (regular, folder, symlink, fifo, socket, device) and permission bits');
    const target = node.target === undefined ? null : checkBytes(node.target, 'symlink target', 1, MAX_SEALED_BLOB);
    const reserved = node.ino === undefined ? undefined : checkInt(node.ino, 'ino', ROOT_INO + 1);
    return async (m) => {
      await m.dir(checkInt(parent, 'parent', 1));
      const there = await m.entry(parent, n.hash);
      // A replay of a create that already landed: the name holds this very inode.
      if (there && there.ino === reserved) {
        const { target: _, ...attr } = await m.inode(reserved);
        return attr;
      }
      if (there) throw new EntryExistsError('an entry with that name already exists');
      let ino: number;
      if (reserved === undefined) {
        ino = Number((await m.tx.get("UPDATE counters SET value = value + 1 WHERE name = 'next_ino' RETURNING value"))!.value) - 1;
      } else {
        const r = (await m.tx.get(`SELECT (SELECT value FROM counters WHERE name = 'next_ino') AS next,
          EXISTS (SELECT 1 FROM inodes WHERE ino = ?) AS used`, [reserved]))!;
        if (reserved >= Number(r.next)) throw new InvalidArgumentError(`inode ${reserved} was never reserved`);
        if (Number(r.used)) throw new InvalidArgumentError(`inode ${reserved} is already in use`);
        ino = reserved;
      }
      const t = node.timeMs ?? m.now;
      const attr = await m.putInode({
        ino, mode, uid: checkInt(node.uid, 'uid'), gid: checkInt(node.gid, 'gid'), size: node.size === undefined ? 0 : checkInt(node.size, 'size'),
        nlink: isDir(mode) ? 2 : 1, rdev: node.rdev ?? 0, atimeMs: t, mtimeMs: t, ctimeMs: t, crtimeMs: t, version: 0,
      }, target, null);
      await m.addEntry(parent, n, ino, mode);
      await m.touchDir(parent, isDir(mode) ? 1 : 0);
      return attr;
    };
  }

  async reserveInodes(count: number): Promise<{ first: number; count: number }> {
    checkInt(count, 'count', 1);
    if (count > 1000) throw new InvalidArgumentError('reserve at most 1000 inodes at a time');
    // No commit: nothing visible changes, the counter only moves past the reserved numbers.
    return this.db.transaction(async (tx) => {
      const after = Number((await tx.get("UPDATE counters SET value = value + ? WHERE name = 'next_ino' RETURNING value", [count]))!.value);
      return { first: after - count, count };
    });
  }

  async link(ino: number, parent: number, name: EntryName): Promise<Attr> {
    return this.mutate(this.linkBody(ino, parent, name));
  }

  private linkBody(ino: number, parent: number, name: EntryName): (m: Mutation) => Promise<Attr> {
    const n = checkName(name);
    return async (m) => {
      const target = await m.inode(checkInt(ino, 'ino', 1));
      if (isDir(target.mode)) throw new NotPermittedError('hard links to directories are not allowed');
      if (target.nlink === 0) throw new NoEntryError(`inode ${ino} has been removed`);
      await m.dir(checkInt(parent, 'parent', 1));
      if (await m.entry(parent, n.hash)) throw new EntryExistsError('an entry with that name already exists');
      await m.addEntry(parent, n, ino, target.mode);
      await m.touchDir(parent);
      return m.update(ino, (a) => ({ nlink: a.nlink + 1 }));
    };
  }

  async unlink(parent: number, hash: Buffer): Promise<Attr> {
    return this.mutate(this.unlinkBody(parent, hash));
  }

  /** With `expectIno`, only if the name still holds that inode (VersionConflict otherwise). */
  private unlinkBody(parent: number, hash: Buffer, expectIno?: number): (m: Mutation) => Promise<Attr> {
    checkHash(hash);
    return async (m) => {
      await m.dir(checkInt(parent, 'parent', 1));
      const e = expectedEntry(await m.entry(parent, hash), expectIno);
      if (isDir(e.mode)) throw new IsDirectoryError('is a directory: use rmdir');
      await m.removeEntry(parent, hash);
      await m.touchDir(parent);
      return m.update(e.ino, (a) => ({ nlink: Math.max(0, a.nlink - 1) }));
    };
  }

  async rmdir(parent: number, hash: Buffer): Promise<void> {
    await this.mutate(this.rmdirBody(parent, hash));
  }

  private rmdirBody(parent: number, hash: Buffer, expectIno?: number): (m: Mutation) => Promise<undefined> {
    checkHash(hash);
    return async (m) => {
      await m.dir(checkInt(parent, 'parent', 1));
      const e = expectedEntry(await m.entry(parent, hash), expectIno);
      if (!isDir(e.mode)) throw new NotDirectoryError('not a directory');
      if (!(await m.isEmptyDir(e.ino))) throw new NotEmptyError('directory not empty');
      await m.removeEntry(parent, hash);
      await m.dropInode(e.ino);
      await m.touchDir(parent, -1);
      return undefined;
    };
  }

  async rename(parent: number, hash: Buffer, newParent: number, newName: EntryName, flags: RenameFlags = {}): Promise<Attr | undefined> {
    return this.mutate(this.renameBody(parent, hash, newParent, newName, flags));
  }

  /** RENAME_EXCHANGE: the two names swap what they hold (with `expectIno`, the first must hold that inode, and with `replaces`, the second). */
  private exchangeBody(parent: number, hash: Buffer, newParent: number, newHash: Buffer, expectIno?: number, otherIno?: number): (m: Mutation) => Promise<undefined> {
    return async (m) => {
      const src = expectedEntry(await m.entry(parent, hash), expectIno);
      const dst = expectedEntry(await m.entry(newParent, newHash), otherIno);
      if (dst.ino === src.ino) return undefined;
      if (parent !== newParent) {
        if (isDir(src.mode)) await m.checkNotAncestor(src.ino, newParent);
        if (isDir(dst.mode)) await m.checkNotAncestor(dst.ino, parent);
      }
      const names = await Promise.all([[parent, hash], [newParent, newHash]].map(async ([dir, h]) =>
        (await m.tx.get('SELECT name_enc FROM dentries WHERE parent = ? AND hash = ? AND csn_to = ?', [dir, h, LIVE]))?.name_enc as Buffer));
      await m.removeEntry(parent, hash);
      await m.removeEntry(newParent, newHash);
      await m.addEntry(parent, { hash, enc: names[0] }, dst.ino, dst.mode);
      await m.addEntry(newParent, { hash: newHash, enc: names[1] }, src.ino, src.mode);
      // A folder moved to the other parent takes its ".." link along.
      const links = parent === newParent ? 0 : (isDir(dst.mode) ? 1 : 0) - (isDir(src.mode) ? 1 : 0);
      await m.touchDir(parent, links);
      if (newParent !== parent) await m.touchDir(newParent, -links);
      await m.update(src.ino, () => ({}));
      await m.update(dst.ino, () => ({}));
      return undefined;
    };
  }

  /**
   * With `expectIno`, only if the old name still holds that inode; with `replaces`, the new
   * name may be replaced only if it holds that inode (EntryExists otherwise).
   */
  private renameBody(parent: number, hash: Buffer, newParent: number, newName: EntryName,
    flags: RenameFlags & { expectIno?: number; replaces?: number } = {}): (m: Mutation) => Promise<Attr | undefined> {
    checkHash(hash);
    const n = checkName(newName);
    const exchange = flags.exchange ? this.exchangeBody(parent, hash, newParent, n.hash, flags.expectIno, flags.replaces) : undefined;
    if (flags.exchange && flags.noReplace) throw new InvalidArgumentError('RENAME_EXCHANGE and RENAME_NOREPLACE together');
    return async (m) => {
      await m.dir(checkInt(parent, 'parent', 1));
      await m.dir(checkInt(newParent, 'newParent', 1));
      if (exchange) return exchange(m);
      const src = expectedEntry(await m.entry(parent, hash), flags.expectIno);
      const dst = await m.entry(newParent, n.hash);
      // Same inode under both names (the same entry, or two hard links): POSIX does nothing.
      if (dst && dst.ino === src.ino) return undefined;
      if (isDir(src.mode) && parent !== newParent) await m.checkNotAncestor(src.ino, newParent);
      let replaced: Attr | undefined;
      if (dst) {
        if (flags.noReplace || (flags.replaces !== undefined && flags.replaces !== dst.ino)) throw new EntryExistsError('the target name exists');
        if (isDir(src.mode)) {
          if (!isDir(dst.mode)) throw new NotDirectoryError('cannot replace a file with a directory');
          if (!(await m.isEmptyDir(dst.ino))) throw new NotEmptyError('the target directory is not empty');
          await m.removeEntry(newParent, n.hash);
          await m.dropInode(dst.ino);
          await m.touchDir(newParent, -1);
          replaced = { ...(await this.lastVersion(m, dst.ino)), nlink: 0 };
        } else {
          if (isDir(dst.mode)) throw new IsDirectoryError('cannot replace a directory with a file');
          await m.removeEntry(newParent, n.hash);
          replaced = await m.update(dst.ino, (a) => ({ nlink: Math.max(0, a.nlink - 1) }));
        }
      }
      const oldName = await m.tx.get('SELECT name_enc FROM dentries WHERE parent = ? AND hash = ? AND csn_to = ?', [parent, hash, LIVE]);
      if (!oldName) throw new InternalError('rename source vanished inside its transaction');
      await m.removeEntry(parent, hash);
      await m.addEntry(newParent, n, src.ino, src.mode);
      const moveDir = isDir(src.mode) && parent !== newParent;
      await m.touchDir(parent, moveDir ? -1 : 0);
      if (newParent !== parent) await m.touchDir(newParent, moveDir ? 1 : 0);
      await m.update(src.ino, () => ({}));
      return replaced;
    };
  }

  async setAttr(ino: number, changes: AttrChanges, options: MutateOptions = {}): Promise<Attr> {
    return this.mutate(this.setAttrBody(ino, changes, options));
  }

  private setAttrBody(ino: number, changes: AttrChanges, options: MutateOptions = {}): (m: Mutation) => Promise<Attr> {
    checkInt(ino, 'ino', 1);
    for (const [k, v] of Object.entries(changes ?? {})) {
      if (!ATTR_FIELDS.has(k)) throw new InvalidArgumentError(`${k} is not an attribute that can be set`);
      if (v !== undefined) checkInt(v, k);
    }
    return async (m) => {
      const cur = await m.inode(ino);
      this.checkVersion(cur, options);
      if (changes.size !== undefined && changes.size !== cur.size) {
        if (isDir(cur.mode)) throw new IsDirectoryError('cannot change the size of a directory');
        if (changes.size < cur.size) await this.truncateBlocks(m, ino, changes.size);
      }
      return m.update(ino, () => ({
        ...(changes.mode !== undefined ? { mode: (cur.mode & S_IFMT) | (changes.mode & ~S_IFMT) } : {}),
        ...(changes.uid !== undefined ? { uid: changes.uid } : {}),
        ...(changes.gid !== undefined ? { gid: changes.gid } : {}),
        ...(changes.size !== undefined ? { size: changes.size, mtimeMs: changes.mtimeMs ?? m.now } : {}),
        ...(changes.atimeMs !== undefined ? { atimeMs: changes.atimeMs } : {}),
        ...(changes.mtimeMs !== undefined ? { mtimeMs: changes.mtimeMs } : {}),
        ...(changes.ctimeMs !== undefined ? { ctimeMs: changes.ctimeMs } : {}),
      }));
    };
  }

  async readlink(ino: number, options?: ReadOptions): Promise<Buffer> {
    const v = visible(options);
    const r = await this.db.get(`SELECT target FROM inodes WHERE ino = ? AND ${v.sql}`, [checkInt(ino, 'ino', 1), ...v.params]);
    if (!r) throw new NoEntryError(`inode ${ino} does not exist`);
    if (!r.target) throw new InvalidArgumentError(`inode ${ino} is not a symlink`);
    return r.target as Buffer;
  }

  async getBlocks(ino: number, first: number, count: number, options?: ReadOptions): Promise<BlockRef[]> {
    const v = visible(options);
    const rows = await this.db.all(`SELECT idx, object_id, length FROM blocks WHERE ino = ? AND ${v.sql} AND idx >= ? AND idx < ? ORDER BY idx`,
      [checkInt(ino, 'ino', 1), ...v.params, checkInt(first, 'first'), checkInt(first, 'first') + Math.min(checkInt(count, 'count'), 1 << 20)]);
    return rows.map((r) => ({ index: Number(r.idx), objectId: String(r.object_id), length: Number(r.length) }));
  }

  async commitBlocks(ino: number, blocks: BlockRef[], options: CommitBlocksOptions = {}): Promise<Attr> {
    return this.mutate(this.commitBlocksBody(ino, blocks, options));
  }

  private commitBlocksBody(ino: number, blocks: BlockRef[], options: CommitBlocksOptions = {}): (m: Mutation) => Promise<Attr> {
    checkInt(ino, 'ino', 1);
    if (!Array.isArray(blocks)) throw new InvalidArgumentError('blocks must be a list');
    for (const b of blocks) {
      checkInt(b?.index, 'block index');
      checkInt(b.length, 'block length');
      if (b.length > this.blockSize) throw new InvalidArgumentError(`block length ${b.length} exceeds the block size ${this.blockSize}`);
      if (typeof b.objectId !== 'string' || !/^[0-9a-f]{32}$/.test(b.objectId)) throw new InvalidArgumentError('objectId must be 32 hex digits');
    }
    if (options.minSize !== undefined) checkInt(options.minSize, 'minSize');
    return async (m) => {
      const cur = await m.inode(ino);
      this.checkVersion(cur, options);
      if (isDir(cur.mode)) throw new IsDirectoryError('cannot write blocks to a directory');
      for (const b of blocks) {
        await m.end('blocks', 'ino = ? AND idx = ?', [ino, b.index]);
        await m.insert('blocks', { ino, idx: b.index, object_id: b.objectId, length: b.length });
      }
      // mtime and ctime are those of the write, not of this commit (which may come later).
      const writtenAt = options.mtimeMs ?? m.now;
      return m.update(ino, (a) => ({
        size: Math.max(a.size, options.minSize ?? 0),
        mtimeMs: writtenAt,
        ctimeMs: Math.max(a.ctimeMs, writtenAt),
      }));
    };
  }

  async reclaim(ino: number): Promise<void> {
    checkInt(ino, 'ino', 1);
    // Still linked (or gone): nothing to do, and no commit for nothing.
    const r = await this.db.get('SELECT nlink FROM inodes WHERE ino = ? AND csn_to = ?', [ino, LIVE]);
    if (!r || Number(r.nlink) > 0) {
      if (!r) throw new NoEntryError(`no inode ${ino}`);
      return;
    }
    await this.mutate(this.reclaimBody(ino));
  }

  private reclaimBody(ino: number): (m: Mutation) => Promise<undefined> {
    checkInt(ino, 'ino', 1);
    return async (m) => {
      const cur = await m.inode(ino);
      if (cur.nlink === 0) await m.dropInode(ino);
      return undefined;
    };
  }

  async getXattr(ino: number, hash: Buffer, options?: ReadOptions): Promise<XattrEntry> {
    const v = visible(options);
    const r = await this.db.get(`SELECT hash, name_enc, value_enc FROM xattrs WHERE ino = ? AND hash = ? AND ${v.sql}`,
      [checkInt(ino, 'ino', 1), checkHash(hash), ...v.params]);
    if (!r) {
      await this.getAttr(ino, options);
      throw new NoAttributeError('no such extended attribute');
    }
    return { hash: r.hash as Buffer, nameEnc: r.name_enc as Buffer, valueEnc: r.value_enc as Buffer };
  }

  async listXattr(ino: number, options?: ReadOptions): Promise<XattrEntry[]> {
    await this.getAttr(ino, options);
    const v = visible(options);
    const rows = await this.db.all(`SELECT hash, name_enc, value_enc FROM xattrs WHERE ino = ? AND ${v.sql} ORDER BY hash`, [ino, ...v.params]);
    return rows.map((r) => ({ hash: r.hash as Buffer, nameEnc: r.name_enc as Buffer, valueEnc: r.value_enc as Buffer }));
  }

  async setXattr(ino: number, entry: XattrEntry, flags: XattrSetFlags = {}): Promise<void> {
    await this.mutate(this.setXattrBody(ino, entry, flags));
  }

  private setXattrBody(ino: number, entry: XattrEntry, flags: XattrSetFlags = {}): (m: Mutation) => Promise<undefined> {
    checkInt(ino, 'ino', 1);
    const hash = checkHash(entry?.hash);
    const nameEnc = checkBytes(entry.nameEnc, 'sealed xattr name', 1, MAX_SEALED_NAME);
    const valueEnc = checkBytes(entry.valueEnc, 'sealed xattr value', 0, MAX_SEALED_BLOB);
    return async (m) => {
      await m.inode(ino);
      const exists = await m.tx.get('SELECT 1 AS x FROM xattrs WHERE ino = ? AND hash = ? AND csn_to = ?', [ino, hash, LIVE]);
      if (exists && flags.create) throw new EntryExistsError('the extended attribute exists');
      if (!exists && flags.replace) throw new NoAttributeError('no such extended attribute');
      await m.end('xattrs', 'ino = ? AND hash = ?', [ino, hash]);
      await m.insert('xattrs', { ino, hash, name_enc: nameEnc, value_enc: valueEnc });
      await m.update(ino, () => ({}));
      return undefined;
    };
  }

  async removeXattr(ino: number, hash: Buffer): Promise<void> {
    await this.mutate(this.removeXattrBody(ino, hash));
  }

  private removeXattrBody(ino: number, hash: Buffer): (m: Mutation) => Promise<undefined> {
    checkInt(ino, 'ino', 1);
    checkHash(hash);
    return async (m) => {
      await m.inode(ino);
      const exists = await m.tx.get('SELECT 1 AS x FROM xattrs WHERE ino = ? AND hash = ? AND csn_to = ?', [ino, hash, LIVE]);
      if (!exists) throw new NoAttributeError('no such extended attribute');
      await m.end('xattrs', 'ino = ? AND hash = ?', [ino, hash]);
      await m.update(ino, () => ({}));
      return undefined;
    };
  }

  // ---- batches --------------------------------------------------------------------------

  /**
   * Applies `ops` in order in one transaction, each its own commit (its own CSN, announced
   * on the feed as if made alone). Stops at the first that fails: the ones before it stay
   * applied, it and the ones after are not, and its typed error is in `failed`.
   */
  async applyBatch(ops: BatchOp[]): Promise<BatchResult> {
    if (!Array.isArray(ops) || ops.length === 0 || ops.length > BATCH_MAX) throw new InvalidArgumentError(`a batch is 1 to ${BATCH_MAX} operations`);
    // Nearly every batch applies whole: it is tried first in one transaction with no savepoint
    // around each operation (two statements of about ten each makes). If one is refused, that
    // try is rolled back and the batch runs again with savepoints, keeping what came before it.
    try {
      return await this.applyOps(ops, false);
    } catch (e) {
      if (!(e instanceof LucidError) || e instanceof InternalError) throw e;
      return this.applyOps(ops, true);
    }
  }

  /** Applies `ops` in one transaction, each its own commit; with `savepoints`, up to the first refused (which is reported). */
  private async applyOps(ops: BatchOp[], savepoints: boolean): Promise<BatchResult> {
    let events: Commit[] = [];
    const result = await this.db.transaction(async (tx) => {
      const dones: Done<Attr | undefined>[] = [];
      const known = new Map<number, KnownInode>();
      const applied: BatchResult['applied'] = [];
      let failed: BatchResult['failed'];
      // Tried whole, the batch takes its CSNs at once (a refusal rolls all of it back).
      const before = savepoints ? 0 : Number((await tx.get("UPDATE counters SET value = value + ? WHERE name = 'csn' RETURNING value", [ops.length]))!.value) - ops.length;
      for (let i = 0; i < ops.length && !failed; i++) {
        if (savepoints) await tx.run('SAVEPOINT batch_op');
        try {
          const done = await this.commitIn(tx, this.bodyOf(ops[i]), known, savepoints ? undefined : before + 1 + i);
          if (savepoints) await tx.run('RELEASE SAVEPOINT batch_op');
          applied.push({ csn: done.event.csn, value: done.value ?? null });
          dones.push(done);
        } catch (e) {
          if (!savepoints) throw e;
          await tx.run('ROLLBACK TO SAVEPOINT batch_op');
          await tx.run('RELEASE SAVEPOINT batch_op');
          known.clear();
          if (!(e instanceof LucidError) || e instanceof InternalError) throw e;
          failed = { index: i, code: e.code, message: e.message };
        }
      }
      await this.recordCommits(tx, dones);
      events = dones.map((d) => d.event);
      return failed ? { applied, failed } : { applied };
    });
    this.announce(events);
    return result;
  }

  /** The mutation one batch operation makes (its parameters checked first). */
  private bodyOf(unchecked: BatchOp): (m: Mutation) => Promise<Attr | undefined> {
    const op = checkBatchOp(unchecked);
    switch (op.op) {
      case 'create': return this.createBody(op.parent, op.name, op.node);
      case 'link': return this.linkBody(op.ino, op.parent, op.name);
      case 'unlink': return this.unlinkBody(op.parent, op.hash, op.expectIno ?? undefined);
      case 'rmdir': return this.rmdirBody(op.parent, op.hash, op.expectIno ?? undefined);
      case 'rename': return this.renameBody(op.parent, op.hash, op.newParent, op.newName, { noReplace: op.noReplace ?? undefined, exchange: op.exchange ?? undefined, expectIno: op.expectIno ?? undefined, replaces: op.replaces ?? undefined });
      case 'setAttr': return this.setAttrBody(op.ino, op.changes, op.options ?? undefined);
      case 'commitBlocks': return this.commitBlocksBody(op.ino, op.blocks, op.options ?? undefined);
      case 'reclaim': return this.reclaimBody(op.ino);
      case 'setXattr': return this.setXattrBody(op.ino, op.entry, op.flags ?? undefined);
      case 'removeXattr': return this.removeXattrBody(op.ino, op.hash);
      default: throw new InvalidArgumentError(`unknown batch operation ${JSON.stringify((op as { op?: unknown }).op)}`);
    }
  }

  // ---- snapshots ----------------------------------------------------------------------

  async createSnapshot(name?: string): Promise<Snapshot> {
    if (name !== undefined && (typeof name !== 'string' || name.length > 200 || /[\0\n]/.test(name))) throw new InvalidArgumentError('a snapshot name is up to 200 characters, one line');
    return this.db.transaction((tx) => this.snapshotIn(tx, name));
  }

  /** Takes a snapshot inside transaction `tx` (of a schedule, if named). */
  private async snapshotIn(tx: SqlRunner, name: string | undefined, schedule?: string): Promise<Snapshot> {
    const csn = Number((await tx.get("SELECT value FROM counters WHERE name = 'csn'"))!.value);
    // Ids are never reused, so a deleted snapshot's id can never name another.
    await tx.run(`INSERT INTO counters (name, value) VALUES ('snapshot_id', 1)
      ON CONFLICT (name) DO UPDATE SET value = counters.value + 1`);
    const id = Number((await tx.get("SELECT value FROM counters WHERE name = 'snapshot_id'"))!.value);
    const snap: Snapshot = { id, name: name ?? `snapshot-${id}`, csn, createdMs: Date.now(), ...(schedule ? { schedule } : {}) };
    await tx.run('INSERT INTO snapshots (id, name, csn, created_ms, schedule) VALUES (?, ?, ?, ?, ?)', [id, snap.name, csn, snap.createdMs, schedule ?? null]);
    return snap;
  }

  async createSchedule(name: string, everyMs: number, keep: number): Promise<SnapshotSchedule> {
    if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new InvalidArgumentError('a schedule name is 1-64 letters, digits, ".", "_" or "-"');
    checkInt(everyMs, 'every', 1000);
    checkInt(keep, 'keep', 1);
    try {
      await this.db.run('INSERT INTO snapshot_schedules (name, every_ms, keep, last_ms) VALUES (?, ?, ?, 0)', [name, everyMs, keep]);
    } catch (e) {
      if (await this.db.get('SELECT 1 AS x FROM snapshot_schedules WHERE name = ?', [name])) throw new EntryExistsError(`a schedule named ${name} exists`);
      throw e;
    }
    return { name, everyMs, keep, lastMs: 0 };
  }

  async listSchedules(): Promise<SnapshotSchedule[]> {
    return (await this.db.all('SELECT name, every_ms, keep, last_ms FROM snapshot_schedules ORDER BY every_ms, name')).map((r) => ({
      name: String(r.name), everyMs: Number(r.every_ms), keep: Number(r.keep), lastMs: Number(r.last_ms),
    }));
  }

  async deleteSchedule(name: string): Promise<void> {
    if ((await this.db.run('DELETE FROM snapshot_schedules WHERE name = ?', [String(name)])) === 0) throw new NoEntryError(`no schedule ${name}`);
  }

  async runSchedules(nowMs: number): Promise<Snapshot[]> {
    checkInt(nowMs, 'now');
    const taken: Snapshot[] = [];
    for (const s of await this.listSchedules()) {
      if (nowMs - s.lastMs < s.everyMs) continue;
      const snap = await this.db.transaction(async (tx) => {
        // Compare-and-set: of several instances running the same schedule, one takes it.
        if ((await tx.run('UPDATE snapshot_schedules SET last_ms = ? WHERE name = ? AND last_ms = ?', [nowMs, s.name, s.lastMs])) === 0) return undefined;
        const made = await this.snapshotIn(tx, `${s.name} ${new Date(nowMs).toISOString().slice(0, 16).replace('T', ' ')}`, s.name);
        const old = await tx.all('SELECT id FROM snapshots WHERE schedule = ? ORDER BY id DESC', [s.name]);
        for (const r of old.slice(s.keep)) await tx.run('DELETE FROM snapshots WHERE id = ?', [r.id]);
        return made;
      });
      if (snap) taken.push(snap);
    }
    return taken;
  }

  async listSnapshots(): Promise<Snapshot[]> {
    return (await this.db.all('SELECT id, name, csn, created_ms, schedule FROM snapshots ORDER BY id')).map((r) => ({
      id: Number(r.id), name: String(r.name), csn: Number(r.csn), createdMs: Number(r.created_ms),
      ...(r.schedule ? { schedule: String(r.schedule) } : {}),
    }));
  }

  async deleteSnapshot(id: number): Promise<void> {
    if ((await this.db.run('DELETE FROM snapshots WHERE id = ?', [checkInt(id, 'snapshot id', 1)])) === 0) throw new NoEntryError(`no snapshot ${id}`);
  }

  private async snapshotCsn(id: number): Promise<number> {
    const r = await this.db.get('SELECT csn FROM snapshots WHERE id = ?', [checkInt(id, 'snapshot id', 1)]);
    if (!r) throw new NoEntryError(`no snapshot ${id}`);
    return Number(r.csn);
  }

  async restore(id: number, parent: number, hash: Buffer): Promise<RestoreResult> {
    const at = await this.snapshotCsn(id);
    // parent 0: the whole filespace (the root has no entry of its own).
    const wholeTree = parent === 0;
    if (!wholeTree) {
      checkInt(parent, 'parent', 1);
      checkHash(hash);
    }
    const asOf = (p = '') => `${p}csn_from <= ? AND ${p}csn_to > ?`;
    return this.mutate(async (m) => {
      const old = wholeTree
        ? { ino: ROOT_INO, mode: S_IFDIR, name_enc: null }
        : await m.tx.get(`SELECT ino, mode, name_enc FROM dentries WHERE parent = ? AND hash = ? AND ${asOf()}`, [parent, hash, at, at]);
      if (!old) throw new NoEntryError('that entry did not exist in the snapshot');
      if (!wholeTree) await m.dir(parent);
      // The tree at the snapshot, and the tree under the name now.
      const then = await this.treeOf(m.tx, Number(old.ino), `${asOf()}`, [at, at]);
      const live = wholeTree ? { ino: ROOT_INO, mode: S_IFDIR } : await m.entry(parent, hash);
      // Live now: the tree under the name, and the restored root's own tree if it moved away.
      const now = new Map<number, number>();
      for (const root of new Set([...(live ? [live.ino] : []), Number(old.ino)])) {
        if (!(await m.tx.get('SELECT 1 AS x FROM inodes WHERE ino = ? AND csn_to = ?', [root, LIVE]))) continue;
        for (const [ino, mode] of await this.treeOf(m.tx, root, 'csn_to = ?', [LIVE])) now.set(ino, mode);
      }
      // Every live name under the live tree goes, and every live name of a restored inode
      // (it moved away since): the snapshot's names come back below.
      for (const [ino, mode] of now) if (isDir(mode)) {
        for (const r of await m.tx.all('SELECT hash FROM dentries WHERE parent = ? AND csn_to = ?', [ino, LIVE])) await m.removeEntry(ino, r.hash as Buffer);
      }
      for (const ino of then.keys()) {
        for (const r of await m.tx.all('SELECT parent, hash FROM dentries WHERE ino = ? AND csn_to = ?', [ino, LIVE])) await m.removeEntry(Number(r.parent), r.hash as Buffer);
      }
      if (!wholeTree) {
        if (live) await m.removeEntry(parent, hash);
        await m.addEntry(parent, { hash, enc: old.name_enc as Buffer }, Number(old.ino), Number(old.mode));
      }
      for (const ino of then.keys()) {
        for (const table of ['inodes', 'blocks', 'xattrs']) {
          if (table === 'inodes') {
            // The live totals move from the inode as it is to the inode as it was.
            const live = await m.tx.get('SELECT size FROM inodes WHERE ino = ? AND csn_to = ?', [ino, LIVE]);
            if (live) { m.inodesDelta--; m.bytesDelta -= Number(live.size); }
          }
          await m.end(table, 'ino = ?', [ino]);
          const rows = await m.tx.all(`SELECT * FROM ${table} WHERE ino = ? AND ${asOf()}`, [ino, at, at]);
          for (const r of rows) {
            const { csn_from: _f, csn_to: _t, ...row } = r;
            await m.insert(table, row);
            if (table === 'inodes') { m.inodesDelta++; m.bytesDelta += Number(row.size); }
          }
        }
        for (const r of await m.tx.all(`SELECT hash, name_enc, ino, mode FROM dentries WHERE parent = ? AND ${asOf()}`, [ino, at, at])) {
          await m.addEntry(ino, { hash: r.hash as Buffer, enc: r.name_enc as Buffer }, Number(r.ino), Number(r.mode));
        }
        m.touched.add(ino);
      }
      // Inodes created since (or no longer named anywhere) go, as an unlink of their last name would.
      for (const ino of now.keys()) {
        m.touched.add(ino);
        if (then.has(ino)) continue;
        if (!(await m.tx.get('SELECT 1 AS x FROM dentries WHERE ino = ? AND csn_to = ? LIMIT 1', [ino, LIVE]))) await m.dropInode(ino);
      }
      if (!wholeTree) await m.touchDir(parent);
      return { csn: m.csn, restored: then.size, inos: [...m.touched].sort((a, b) => a - b) };
    });
  }

  async pruneVersions(beforeMs: number, options: { dryRun?: boolean } = {}): Promise<PruneResult> {
    const upToCsn = await this.cutOff(beforeMs);
    if (!options.dryRun) {
      // First: from now on, a listing's changes since a commit before the cut-off are refused
      // (the names removed then are about to go), and the folder is listed whole.
      await this.raiseSetting('pruned_csn', upToCsn);
    }
    let rows = 0;
    for (const table of VERSIONED_TABLES) {
      const where = `${table}.csn_to <= ? AND NOT ${retainedBySnapshot(table)}`;
      if (options.dryRun) rows += Number((await this.db.get(`SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`, [upToCsn]))!.n);
      else rows += await this.db.transaction((tx) => tx.run(`DELETE FROM ${table} WHERE ${where}`, [upToCsn]));
    }
    // The change history goes too, up to the cut-off and no further back than the oldest
    // snapshot (a diff of two snapshots reads the changes between them). The cut-off commit's
    // own row stays: it maps times to commits for the next cut-off. First the history's start
    // moves, so a feed or reader from before it is told (OutOfRange) rather than given a gap.
    const oldest = (await this.db.get('SELECT MIN(csn) AS csn FROM snapshots'))?.csn ?? null;
    const historyCsn = oldest === null ? upToCsn : Math.min(upToCsn, Number(oldest));
    const history = [['changes', 'csn <= ?'], ['commits', 'csn < ?']] as const;
    if (options.dryRun) {
      for (const [table, where] of history) rows += Number((await this.db.get(`SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`, [historyCsn]))!.n);
    } else if (historyCsn > 0) {
      await this.raiseSetting('history_csn', historyCsn);
      for (const [table, where] of history) {
        // In slices, so a long history does not hold the database in one transaction.
        for (let n = 1; n > 0;) {
          n = await this.db.transaction((tx) => tx.run(`DELETE FROM ${table} WHERE csn IN (SELECT csn FROM ${table} WHERE ${where} LIMIT ${HISTORY_PRUNE_SLICE})`, [historyCsn]));
          rows += n;
        }
      }
    }
    return { rows, upToCsn };
  }

  /** Raises a numeric setting to `value` (never lowers it). */
  private async raiseSetting(name: string, value: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run("INSERT INTO settings (name, value) SELECT ?, '0' WHERE NOT EXISTS (SELECT 1 FROM settings WHERE name = ?)", [name, name]);
      await tx.run(dialectSql('UPDATE settings SET value = ? WHERE name = ? AND CAST(value AS {int}) < ?', this.db.dialect), [String(value), name, value]);
    });
  }

  /** A numeric setting (`pruned_csn`, `history_csn`), 0 when never set. */
  private async numericSetting(name: string): Promise<number> {
    return Number((await this.db.get('SELECT value FROM settings WHERE name = ?', [name]))?.value ?? 0);
  }

  /** The commit the change history starts after (0: all of it is kept). */
  private historyCsn(): Promise<number> {
    return this.numericSetting('history_csn');
  }

  async retainedObjects(objectIds: string[], beforeMs: number): Promise<string[]> {
    if (!Array.isArray(objectIds) || objectIds.length > 10_000 || objectIds.some((id) => typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id))) {
      throw new InvalidArgumentError('object ids must be up to 10 000 strings of 32 hex digits');
    }
    if (objectIds.length === 0) return [];
    const upToCsn = await this.cutOff(beforeMs);
    const kept = new Set<string>();
    for (let i = 0; i < objectIds.length; i += 500) {
      const ids = objectIds.slice(i, i + 500);
      const rows = await this.db.all(`SELECT DISTINCT object_id FROM blocks WHERE object_id IN (${ids.map(() => '?').join(', ')})
        AND (blocks.csn_to > ? OR ${retainedBySnapshot('blocks')})`, [...ids, upToCsn]);
      for (const r of rows) kept.add(String(r.object_id));
    }
    return objectIds.filter((id) => kept.has(id));
  }

  /** The newest commit made at or before `beforeMs` (0 when none): rows it or older commits replaced may go. */
  private async cutOff(beforeMs: number): Promise<number> {
    checkInt(beforeMs, 'before');
    return Number((await this.db.get('SELECT COALESCE(MAX(csn), 0) AS csn FROM commits WHERE time_ms <= ?', [beforeMs]))!.csn);
  }

  /** Every inode (→ mode) in the tree under `root` among the dentries matching `visibleSql`. */
  private async treeOf(tx: SqlRunner, root: number, visibleSql: string, params: SqlValue[]): Promise<Map<number, number>> {
    const rootRow = await tx.get(`SELECT mode FROM inodes WHERE ino = ? AND ${visibleSql}`, [root, ...params]);
    const tree = new Map<number, number>([[root, Number(rootRow?.mode ?? 0)]]);
    const queue = isDir(Number(rootRow?.mode ?? 0)) ? [root] : [];
    while (queue.length) {
      const dir = queue.shift()!;
      for (const r of await tx.all(`SELECT ino, mode FROM dentries WHERE parent = ? AND ${visibleSql}`, [dir, ...params])) {
        const ino = Number(r.ino);
        if (tree.has(ino)) continue;
        tree.set(ino, Number(r.mode));
        if (isDir(Number(r.mode))) queue.push(ino);
      }
    }
    return tree;
  }

  async changesSince(csn: number, limit = 1000): Promise<ChangesPage> {
    checkInt(csn, 'csn');
    const from = await this.historyCsn();
    if (csn < from) throw new OutOfRangeError(`the changes since commit ${csn} are no longer kept (the history starts after commit ${from})`);
    return this.commitsAfter(csn, limit);
  }

  /** The commits after `csn` (at most `limit`) with the inodes each changed. */
  private async commitsAfter(csn: number, limit: number): Promise<ChangesPage> {
    const commits = await this.db.all('SELECT csn, time_ms FROM commits WHERE csn > ? ORDER BY csn LIMIT ?', [csn, Math.min(checkInt(limit, 'limit', 1), 10_000)]);
    const byCsn = new Map(commits.map((c) => [Number(c.csn), { csn: Number(c.csn), timeMs: Number(c.time_ms), inos: [] as number[] }]));
    if (commits.length > 0) {
      const rows = await this.db.all('SELECT csn, ino FROM changes WHERE csn > ? AND csn <= ? ORDER BY csn, ino', [csn, Number(commits[commits.length - 1].csn)]);
      for (const r of rows) byCsn.get(Number(r.csn))?.inos.push(Number(r.ino));
    }
    const cur = await this.db.get("SELECT value FROM counters WHERE name = 'csn'");
    return { commits: [...byCsn.values()], csn: Number(cur!.value) };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.unlisten?.();
    await this.heardQueue;
    await this.db.close();
  }

  private checkVersion(cur: Attr, options: MutateOptions): void {
    if (options.expectVersion !== undefined && options.expectVersion !== cur.version) {
      throw new VersionConflictError(`inode ${cur.ino} changed (version ${cur.version}, expected ${options.expectVersion})`);
    }
  }

  /** Drops block map entries past `size` and shortens the block that now ends the file. */
  private async truncateBlocks(m: Mutation, ino: number, size: number): Promise<void> {
    const firstDropped = Math.ceil(size / this.blockSize);
    await m.end('blocks', 'ino = ? AND idx >= ?', [ino, firstDropped]);
    const tailLen = size % this.blockSize;
    if (tailLen === 0) return;
    const idx = firstDropped - 1;
    const r = await m.tx.get('SELECT object_id, length FROM blocks WHERE ino = ? AND idx = ? AND csn_to = ?', [ino, idx, LIVE]);
    if (r && Number(r.length) > tailLen) {
      await m.end('blocks', 'ino = ? AND idx = ?', [ino, idx]);
      await m.insert('blocks', { ino, idx, object_id: String(r.object_id), length: tailLen });
    }
  }

  private async lastVersion(m: Mutation, ino: number): Promise<Attr> {
    const r = await m.tx.get(`SELECT ${INODE_COLS} FROM inodes WHERE ino = ? ORDER BY csn_from DESC LIMIT 1`, [ino]);
    return r ? toAttr(r) : { ino, mode: S_IFDIR, uid: 0, gid: 0, size: 0, nlink: 0, rdev: 0, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, crtimeMs: 0, version: m.csn };
  }

  private async mutate<T>(fn: (m: Mutation) => Promise<T>): Promise<T> {
    let event: Commit | undefined;
    const result = await this.db.transaction(async (tx) => {
      const done = await this.commitIn(tx, fn, new Map());
      event = done.event;
      await this.recordCommits(tx, [done]);
      return done.value;
    });
    this.announce([event!]);
    return result;
  }

  /**
   * One commit inside transaction `tx`: runs `fn` at CSN `csn` (taken here if not given).
   * What it changed is written by recordCommits, with the other commits of the transaction.
   */
  private async commitIn<T>(tx: SqlRunner, fn: (m: Mutation) => Promise<T>, known: Map<number, KnownInode>, csn?: number): Promise<Done<T>> {
    const at = csn ?? Number((await tx.get("UPDATE counters SET value = value + 1 WHERE name = 'csn' RETURNING value"))!.value);
    const m = new Mutation(tx, at, Date.now(), known);
    const value = await fn(m);
    return {
      value, inodesDelta: m.inodesDelta, bytesDelta: m.bytesDelta,
      event: { csn: m.csn, timeMs: m.now, inos: [...m.touched].sort((a, b) => a - b) },
    };
  }

  /**
   * Records the commits of transaction `tx`, in a few statements however many there are: the
   * live totals move, each commit gets its row and its changed inodes theirs; then they are
   * announced.
   */
  private async recordCommits(tx: SqlRunner, dones: Done<unknown>[]): Promise<void> {
    if (dones.length === 0) return;
    const inodes = dones.reduce((n, d) => n + d.inodesDelta, 0);
    const bytes = dones.reduce((n, d) => n + d.bytesDelta, 0);
    if (inodes !== 0) await tx.run("UPDATE counters SET value = value + ? WHERE name = 'live_inodes'", [inodes]);
    if (bytes !== 0) await tx.run("UPDATE counters SET value = value + ? WHERE name = 'live_bytes'", [bytes]);
    const rows = async (table: string, pairs: SqlValue[][]) => {
      for (let i = 0; i < pairs.length; i += ROWS_PER_INSERT) {
        const some = pairs.slice(i, i + ROWS_PER_INSERT);
        await tx.run(`INSERT INTO ${table} VALUES ${some.map(() => '(?, ?)').join(', ')}`, some.flat());
      }
    };
    await rows('commits (csn, time_ms)', dones.map((d) => [d.event.csn, d.event.timeMs]));
    await rows('changes (csn, ino)', dones.flatMap((d) => d.event.inos.map((ino) => [d.event.csn, ino])));
    await this.notifyCommits(tx, dones.map((d) => d.event));
  }

  /**
   * Announces the commits of transaction `tx` to every instance over a shared database, when
   * it commits: as few NOTIFYs as fit them (a batch's commits share them; payloads stay under
   * 8 000 bytes, and a commit too big for one announces only its CSN).
   */
  private async notifyCommits(tx: SqlRunner, events: Commit[]): Promise<void> {
    if (!this.db.shared || !this.db.notify || events.length === 0) return;
    let pending: string[] = [];
    let length = 0;
    const flush = async () => {
      if (pending.length) await this.db.notify!(tx, COMMIT_CHANNEL, `[${pending.join(',')}]`);
      pending = [];
      length = 0;
    };
    for (const e of events) {
      let text = JSON.stringify(e);
      if (text.length >= 7000) text = JSON.stringify({ csn: e.csn, timeMs: e.timeMs, inos: [], more: true });
      if (length + text.length >= 7000) await flush();
      pending.push(text);
      length += text.length + 1;
    }
    await flush();
  }

  /** Tells this process's listeners of committed changes (a shared database announces through NOTIFY). */
  private announce(events: Commit[]): void {
    if (this.db.shared) return;
    for (const e of events) for (const l of this.listeners) l(e);
  }
}
