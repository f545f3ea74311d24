/**
 * Where the metadata journal keeps its changes: a SQLite file of its own in the mount's
 * cache directory (`journal.sqlite`), beside the dirty blocks, so a restart keeps both.
 *
 * Promises: an appended change is in the file (WAL, as durable as the cache's index) before
 * `append` returns, so a `kill -9` right after loses nothing; entries come back in the order
 * they were appended. A cache directory from before the journal had its own file hands its
 * waiting changes over once, in order, when the store is first opened (`legacy`).
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import type { JournalStore } from './journal.js';

export class SqliteJournalStore implements JournalStore {
  private readonly add: Database.Statement;
  private readonly all: Database.Statement;
  private readonly del: Database.Statement;

  private constructor(private readonly db: Database.Database) {
    this.add = db.prepare('INSERT INTO journal (op) VALUES (?)');
    this.all = db.prepare('SELECT seq, op FROM journal ORDER BY seq');
    this.del = db.prepare('DELETE FROM journal WHERE seq <= ?');
  }

  /**
   * Opens (or makes) the journal in `dir`. `legacy` hands over changes an older cache kept
   * in its index: appended here, in their order, and only then forgotten there (a stop in
   * between replays them twice, which replay allows: it is idempotent).
   */
  static open(dir: string, legacy?: { entries(): string[]; forget(): void }): SqliteJournalStore {
    const db = new Database(path.join(dir, 'journal.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL)');
    const store = new SqliteJournalStore(db);
    const old = legacy?.entries() ?? [];
    if (old.length > 0) {
      db.transaction(() => { for (const op of old) store.append(op); })();
      legacy!.forget();
    }
    return store;
  }

  append(op: string): number {
    return Number(this.add.run(op).lastInsertRowid);
  }

  entries(): { seq: number; op: string }[] {
    return this.all.all() as { seq: number; op: string }[];
  }

  removeThrough(seq: number): void {
    this.del.run(seq);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
