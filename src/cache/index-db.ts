/**
 * The cache's index: a SQLite database (better-sqlite3, WAL) beside the cached files. It
 * records which sealed objects are cached (and when they were last used), which blocks are
 * dirty (written but not yet in the store) and the file sizes those writes imply.
 *
 * Promises: every change is written before the call returns, so a process killed at any
 * moment finds, on restart, every dirty block and pending size that a write acknowledged.
 * (synchronous=NORMAL: what the OS has survives the process; fsync gives power-loss safety.)
 * Changes to dirty rows, pending sizes and clean rows go first to a log (`index-log.ts`: one
 * append each, folded into the tables in batches); every read of those tables folds first.
 */
import Database from 'better-sqlite3';
import { InvalidArgumentError } from '../errors.js';
import { IndexLog } from './index-log.js';

/**
 * One logged change, its parts applied in this order: a dirty row put (d) or removed (x), a
 * pending size put (p) or removed (y), a clean row put (c) or removed (e).
 */
interface IndexChange {
  d?: [ino: number, idx: number, fileId: string, length: number, gen: number, sealedId: string | null];
  x?: [ino: number, idx: number];
  p?: [ino: number, size: number, mtimeMs: number];
  y?: number;
  c?: [objectId: string, size: number, atime: number, ino: number];
  e?: string;
}

export interface DirtyRow {
  ino: number;
  idx: number;
  fileId: string;
  /** Plaintext bytes of the block. */
  length: number;
  gen: number;
  /** Set when the file holds the block already sealed as this object (a whole-block write). */
  sealedId: string | null;
}

export interface PendingRow {
  ino: number;
  size: number;
  mtimeMs: number;
}

export class CacheIndex {
  private readonly db: Database.Database;
  private readonly st: Record<string, Database.Statement>;
  private readonly log: IndexLog<IndexChange>;

  constructor(file: string, filespaceId: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS clean (object_id TEXT PRIMARY KEY, size INTEGER NOT NULL, atime INTEGER NOT NULL, ino INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS dirty (ino INTEGER NOT NULL, idx INTEGER NOT NULL, file_id TEXT NOT NULL, length INTEGER NOT NULL, gen INTEGER NOT NULL, sealed_id TEXT, PRIMARY KEY (ino, idx));
      CREATE TABLE IF NOT EXISTS pending (ino INTEGER PRIMARY KEY, size INTEGER NOT NULL, mtime_ms INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS pins (ino INTEGER PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL);
    `);
    const columns = this.db.prepare('PRAGMA table_info(dirty)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'sealed_id')) this.db.exec('ALTER TABLE dirty ADD COLUMN sealed_id TEXT');
    const owner = this.db.prepare("SELECT value FROM settings WHERE name = 'filespace_id'").get() as { value: string } | undefined;
    if (!owner) this.db.prepare("INSERT INTO settings (name, value) VALUES ('filespace_id', ?)").run(filespaceId);
    else if (owner.value !== filespaceId) {
      this.db.close();
      throw new InvalidArgumentError(`cache directory belongs to filespace ${owner.value}, not ${filespaceId}: use another --cache-dir`);
    }
    const p = (sql: string) => this.db.prepare(sql);
    this.st = {
      cleanAll: p('SELECT object_id, size, ino FROM clean ORDER BY atime'),
      cleanPut: p('INSERT OR REPLACE INTO clean (object_id, size, atime, ino) VALUES (?, ?, ?, ?)'),
      cleanDel: p('DELETE FROM clean WHERE object_id = ?'),
      cleanTouch: p('UPDATE clean SET atime = ? WHERE object_id = ?'),
      dirtyGet: p('SELECT ino, idx, file_id AS fileId, length, gen, sealed_id AS sealedId FROM dirty WHERE ino = ? AND idx = ?'),
      dirtyOfIno: p('SELECT ino, idx, file_id AS fileId, length, gen, sealed_id AS sealedId FROM dirty WHERE ino = ? ORDER BY idx'),
      dirtyAll: p('SELECT ino, idx, file_id AS fileId, length, gen, sealed_id AS sealedId FROM dirty ORDER BY ino, idx'),
      dirtyPut: p('INSERT OR REPLACE INTO dirty (ino, idx, file_id, length, gen, sealed_id) VALUES (?, ?, ?, ?, ?, ?)'),
      dirtyDel: p('DELETE FROM dirty WHERE ino = ? AND idx = ?'),
      pendingGet: p('SELECT ino, size, mtime_ms AS mtimeMs FROM pending WHERE ino = ?'),
      pendingAll: p('SELECT ino, size, mtime_ms AS mtimeMs FROM pending'),
      pendingPut: p('INSERT OR REPLACE INTO pending (ino, size, mtime_ms) VALUES (?, ?, ?)'),
      pendingDel: p('DELETE FROM pending WHERE ino = ?'),
      pinAdd: p('INSERT OR IGNORE INTO pins (ino) VALUES (?)'),
      pinDel: p('DELETE FROM pins WHERE ino = ?'),
      pinAll: p('SELECT ino FROM pins'),
      journalAll: p('SELECT seq, op FROM journal ORDER BY seq'),
      journalClear: p('DELETE FROM journal'),
    };
    const fold = this.db.transaction((changes: IndexChange[]) => {
      for (const c of changes) {
        if (c.d) this.st.dirtyPut.run(...c.d);
        if (c.x) this.st.dirtyDel.run(...c.x);
        if (c.p) this.st.pendingPut.run(...c.p);
        if (c.y !== undefined) this.st.pendingDel.run(c.y);
        if (c.c) this.st.cleanPut.run(...c.c);
        if (c.e !== undefined) this.st.cleanDel.run(c.e);
      }
    });
    this.log = new IndexLog<IndexChange>(`${file.replace(/\.sqlite$/, '')}.log`, (changes) => fold(changes));
  }

  cleanEntries(): { objectId: string; size: number; ino: number }[] {
    this.log.fold();
    return (this.st.cleanAll.all() as { object_id: string; size: number; ino: number }[]).map((r) => ({ objectId: r.object_id, size: r.size, ino: r.ino }));
  }
  addClean(objectId: string, size: number, ino: number): void { this.log.append({ c: [objectId, size, Date.now(), ino] }); }
  deleteClean(objectId: string): void { this.log.append({ e: objectId }); }
  touchClean(objectIds: Iterable<string>): void {
    this.log.fold();
    const now = Date.now();
    this.db.transaction(() => { for (const id of objectIds) this.st.cleanTouch.run(now, id); })();
  }

  dirty(ino: number, idx: number): DirtyRow | undefined { this.log.fold(); return this.st.dirtyGet.get(ino, idx) as DirtyRow | undefined; }
  dirtyOf(ino: number): DirtyRow[] { this.log.fold(); return this.st.dirtyOfIno.all(ino) as DirtyRow[]; }
  allDirty(): DirtyRow[] { this.log.fold(); return this.st.dirtyAll.all() as DirtyRow[]; }
  /** Records a dirty block, and with `pending` the size it implies, in one step. */
  putDirty(r: DirtyRow, pending?: PendingRow): void {
    this.log.append({ d: [r.ino, r.idx, r.fileId, r.length, r.gen, r.sealedId], ...(pending ? { p: [pending.ino, pending.size, pending.mtimeMs] } : {}) });
  }
  deleteDirty(ino: number, idx: number): void { this.log.append({ x: [ino, idx] }); }

  pending(ino: number): PendingRow | undefined { this.log.fold(); return this.st.pendingGet.get(ino) as PendingRow | undefined; }
  allPending(): PendingRow[] { this.log.fold(); return this.st.pendingAll.all() as PendingRow[]; }
  putPending(r: PendingRow): void { this.log.append({ p: [r.ino, r.size, r.mtimeMs] }); }
  deletePending(ino: number): void { this.log.append({ y: ino }); }

  pin(ino: number): void { this.st.pinAdd.run(ino); }
  unpin(ino: number): void { this.st.pinDel.run(ino); }
  pins(): number[] { return (this.st.pinAll.all() as { ino: number }[]).map((r) => r.ino); }

  /**
   * Metadata journal entries a cache from before the journal had a file of its own kept here
   * (src/fs/namespace/journal-store.ts takes them over once), in order.
   */
  legacyJournal(): string[] { return (this.st.journalAll.all() as { op: string }[]).map((r) => r.op); }
  forgetLegacyJournal(): void { this.st.journalClear.run(); }

  close(): void {
    this.log.close();
    this.db.close();
  }
}
