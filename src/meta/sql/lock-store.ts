/**
 * Where the service keeps locks and leases: tables in the metadata database, so every
 * `lucid serve` instance over one PostgreSQL database shares them (on SQLite, the one
 * instance). The POSIX rules stay in LockTable: each request loads one inode's locks inside a
 * transaction that holds that inode exclusively (an advisory lock on PostgreSQL, the write
 * lock on SQLite), applies the rule, and writes the result back. Lock changes are announced
 * with the driver's notify (every instance hears them, in commit order) or locally.
 */
import type { SqlDriver, SqlRunner } from './driver.js';
import type { LockStore } from '../../locks/service.js';
import { LockTable } from '../../locks/table.js';
import type { HeldLock, LockChange } from '../../locks/types.js';

const CHANNEL = 'lucid_locks';

export class SqlLockStore implements LockStore {
  private readonly listeners = new Set<(c: LockChange) => void>();
  private unlisten?: () => void;

  constructor(private readonly db: SqlDriver) {}

  async start(): Promise<void> {
    if (this.db.shared && this.db.listen) this.unlisten = await this.db.listen(CHANNEL, (p) => this.emit(JSON.parse(p) as LockChange));
  }

  onChange(listener: (c: LockChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `fn` on the locks of `ino` alone, exclusively; when it says they changed, saves
   * them and announces the change.
   */
  async withInode<T>(ino: number, fn: (table: LockTable) => { result: T; changed: boolean }): Promise<T> {
    const changes: LockChange[] = [];
    const result = await this.db.transaction(async (tx) => {
      await this.holdInode(tx, ino);
      const table = new LockTable();
      table.load(ino, await this.rows(tx, ino));
      const r = fn(table);
      if (r.changed) changes.push(await this.save(tx, ino, table.locksOn(ino)));
      return r.result;
    });
    this.announced(changes);
    return result;
  }

  async renew(client: string, untilMs: number): Promise<void> {
    await this.db.run(`INSERT INTO lock_leases (client, expires_ms) VALUES (?, ?)
      ON CONFLICT (client) DO UPDATE SET expires_ms = excluded.expires_ms`, [client, untilMs]);
  }

  /** Clients whose lease ended before `nowMs`. */
  async expired(nowMs: number): Promise<string[]> {
    return (await this.db.all('SELECT client FROM lock_leases WHERE expires_ms < ?', [nowMs])).map((r) => String(r.client));
  }

  /** Drops a client's lease and every lock it holds; returns the inodes that changed. */
  async dropClient(client: string, onlyIfExpiredBefore?: number): Promise<number[]> {
    const changes: LockChange[] = [];
    await this.db.transaction(async (tx) => {
      if (onlyIfExpiredBefore !== undefined) {
        // Another instance may have renewed or dropped it meanwhile.
        const still = await tx.get('SELECT client FROM lock_leases WHERE client = ? AND expires_ms < ?', [client, onlyIfExpiredBefore]);
        if (!still) return;
      }
      await tx.run('DELETE FROM lock_leases WHERE client = ?', [client]);
      const inos = (await tx.all('SELECT DISTINCT ino FROM locks WHERE owner LIKE ?', [`${client}:%`])).map((r) => Number(r.ino));
      for (const ino of inos) {
        await this.holdInode(tx, ino);
        const kept = (await this.rows(tx, ino)).filter((l) => !l.owner.startsWith(`${client}:`));
        changes.push(await this.save(tx, ino, kept));
      }
    });
    this.announced(changes);
    return changes.map((c) => c.ino);
  }

  async lockedInodes(): Promise<number[]> {
    return (await this.db.all('SELECT DISTINCT ino FROM locks')).map((r) => Number(r.ino));
  }

  close(): void {
    this.unlisten?.();
    this.listeners.clear();
  }

  /** Holds `ino`'s locks exclusively until the transaction ends (SQLite: its write lock already does). */
  private async holdInode(tx: SqlRunner, ino: number): Promise<void> {
    if (this.db.dialect === 'postgres') await tx.get('SELECT pg_advisory_xact_lock(7411, ?)', [ino % 2 ** 31]);
  }

  private async rows(tx: SqlRunner, ino: number): Promise<HeldLock[]> {
    return (await tx.all('SELECT owner, kind, type, start_b, end_b, pid FROM locks WHERE ino = ?', [ino])).map((r) => ({
      ino, owner: String(r.owner), kind: r.kind as HeldLock['kind'], type: r.type as HeldLock['type'],
      start: Number(r.start_b), end: Number(r.end_b), pid: Number(r.pid),
    }));
  }

  private async save(tx: SqlRunner, ino: number, locks: HeldLock[]): Promise<LockChange> {
    await tx.run('DELETE FROM locks WHERE ino = ?', [ino]);
    for (const l of locks) {
      await tx.run('INSERT INTO locks (ino, owner, kind, type, start_b, end_b, pid) VALUES (?, ?, ?, ?, ?, ?, ?)', [ino, l.owner, l.kind, l.type, l.start, l.end, l.pid]);
    }
    const change = { ino, locked: locks.length > 0 };
    if (this.db.shared && this.db.notify) await this.db.notify(tx, CHANNEL, JSON.stringify(change));
    return change;
  }

  /** After commit: on one process, tell the listeners here (shared databases hear it through listen). */
  private announced(changes: LockChange[]): void {
    if (!this.db.shared) for (const c of changes) this.emit(c);
  }

  private emit(c: LockChange): void {
    for (const l of this.listeners) l(c);
  }
}
