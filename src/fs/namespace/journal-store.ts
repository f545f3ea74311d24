/**
 * Where the metadata journal keeps its changes, in the mount's cache directory beside the
 * dirty blocks, so a restart keeps both: `FileJournalStore` (the mount's: an append-only
 * file), and `SqliteJournalStore` (a SQLite file, `journal.sqlite`: what caches before it
 * used, read once to hand their changes over).
 *
 * SqliteJournalStore:
 * Promises: an appended change is in the file (WAL, as durable as the cache's index) before
 * `append` returns, so a `kill -9` right after loses nothing; entries come back in the order
 * they were appended. A cache directory from before the journal had its own file hands its
 * waiting changes over once, in order, when the store is first opened (`legacy`).
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
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

/** Bytes of the journal file past which what reached the service is cut away. */
const COMPACT_BYTES = 8 * 1024 * 1024;
const DONE_WIDTH = 20;

/**
 * The journal as an append-only file (`journal.log` in the cache directory): one line per
 * change, `SEQ OP`, and beside it `journal.done`, the last sequence number that reached the
 * service. An append is one write(2) — a `tar x` makes four or five changes a file, and a
 * SQLite row each cost ~30 µs of the event loop where a line costs a few.
 *
 * Promises: an appended change is in the file (the OS has it) before `append` returns, so a
 * `kill -9` right after loses nothing; a line a kill cut short was never acknowledged and is
 * dropped at the next open; entries come back in the order appended; what `removeThrough`
 * forgot never comes back unless a stop came between the service's reply and the marker's
 * write (replay is idempotent). When nothing waits the file is emptied; past 8 MiB, what
 * reached the service is cut away by writing the rest to a new file and renaming it over.
 * A cache directory with a SQLite journal (`journal.sqlite`, before this file) or one kept
 * in the index (older still) hands its waiting changes over once, in order, when opened.
 */
export class FileJournalStore implements JournalStore {
  private fd: number;
  private readonly doneFd: number;
  private readonly waiting: { seq: number; op: string; line: string }[];
  private next: number;
  private bytes: number;
  private closed = false;

  private constructor(private readonly dir: string, waiting: { seq: number; op: string; line: string }[], next: number, bytes: number) {
    this.waiting = waiting;
    this.next = next;
    this.bytes = bytes;
    this.fd = openSync(path.join(dir, 'journal.log'), 'a', 0o600);
    this.doneFd = openSync(path.join(dir, 'journal.done'), existsSync(path.join(dir, 'journal.done')) ? 'r+' : 'w+', 0o600);
  }

  static open(dir: string, legacy?: { entries(): string[]; forget(): void }): FileJournalStore {
    const logFile = path.join(dir, 'journal.log');
    const doneFile = path.join(dir, 'journal.done');
    const done = existsSync(doneFile) ? Number(readFileSync(doneFile, 'utf8').trim()) || 0 : 0;
    const waiting: { seq: number; op: string; line: string }[] = [];
    let last = done;
    let bytes = 0;
    if (existsSync(logFile)) {
      const text = readFileSync(logFile, 'utf8');
      const complete = text.lastIndexOf('\n') + 1;
      // A last line without its newline was being written when the process was killed.
      if (complete < text.length) truncateSync(logFile, Buffer.byteLength(text.slice(0, complete)));
      for (const line of text.slice(0, complete).split('\n')) {
        if (!line) continue;
        const space = line.indexOf(' ');
        const seq = Number(line.slice(0, space));
        last = Math.max(last, seq);
        if (seq > done) waiting.push({ seq, op: line.slice(space + 1), line: `${line}\n` });
      }
      bytes = Buffer.byteLength(text.slice(0, complete));
    }
    const store = new FileJournalStore(dir, waiting, last + 1, bytes);
    // Older caches: their waiting changes come over, in order, then the old place is emptied.
    const sqlite = path.join(dir, 'journal.sqlite');
    const legacyEntries = legacy?.entries() ?? [];
    if (existsSync(sqlite) || legacyEntries.length > 0) {
      const old = SqliteJournalStore.open(dir, legacy && { entries: () => legacyEntries, forget: () => legacy.forget() });
      for (const e of old.entries()) store.append(e.op);
      old.close();
      for (const f of ['journal.sqlite', 'journal.sqlite-wal', 'journal.sqlite-shm']) rmSync(path.join(dir, f), { force: true });
    }
    return store;
  }

  append(op: string): number {
    const seq = this.next++;
    const line = `${seq} ${op}\n`;
    const bytes = Buffer.from(line, 'utf8');
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(this.fd, bytes, written, bytes.length - written);
    } catch (e) {
      // A full disk may take part of the line: cut it away, so the next line starts clean.
      if (written > 0) ftruncateSync(this.fd, this.bytes);
      this.next--;
      throw e;
    }
    this.bytes += bytes.length;
    this.waiting.push({ seq, op, line });
    return seq;
  }

  entries(): { seq: number; op: string }[] {
    return this.waiting.map(({ seq, op }) => ({ seq, op }));
  }

  removeThrough(seq: number): void {
    let n = 0;
    while (n < this.waiting.length && this.waiting[n].seq <= seq) n++;
    this.waiting.splice(0, n);
    if (this.waiting.length === 0) {
      ftruncateSync(this.fd, 0);
      this.bytes = 0;
    } else if (this.bytes > COMPACT_BYTES) {
      const tmp = path.join(this.dir, 'journal.log.tmp');
      writeFileSync(tmp, this.waiting.map((w) => w.line).join(''), { mode: 0o600 });
      renameSync(tmp, path.join(this.dir, 'journal.log'));
      closeSync(this.fd);
      this.fd = openSync(path.join(this.dir, 'journal.log'), 'a', 0o600);
      this.bytes = this.waiting.reduce((sum, w) => sum + Buffer.byteLength(w.line), 0);
    }
    const mark = Buffer.from(String(seq).padStart(DONE_WIDTH, ' '));
    writeSync(this.doneFd, mark, 0, mark.length, 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    closeSync(this.doneFd);
  }
}
