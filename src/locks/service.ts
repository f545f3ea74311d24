/**
 * The service's side of distributed locks: owners named "<client id>:<kernel lock owner>",
 * and a lease per client. A client renews its lease with every lock call and a heartbeat; one
 * that stays silent for `leaseMs` (crashed, cut off) loses all its locks, whichever service
 * instance notices first. Locks and leases live in the metadata database (LockStore), so
 * every instance over one PostgreSQL database serves the same locks; every change is
 * announced to `onChange` listeners (the change feed pushes it to every client, which wakes
 * their waiters and switches the file's consistency mode).
 *
 * Promises: a request never waits here (blocking is the client's loop, woken by the push);
 * malformed requests are InvalidArgumentError and change nothing.
 */
import { InvalidArgumentError } from '../errors.js';
import type { LockTable } from './table.js';
import type { HeldLock, LockChange, LockKind, LockRange } from './types.js';

const CLIENT_RE = /^[0-9a-f]{16,64}$/;

function checkRange(r: LockRange): LockRange {
  const ok = r && typeof r === 'object' && (r.kind === 'posix' || r.kind === 'flock') && ['read', 'write', 'unlock'].includes(r.type)
    && Number.isSafeInteger(r.start) && r.start >= 0 && Number.isSafeInteger(r.end) && r.end >= -1 && (r.end === -1 || r.end >= r.start)
    && Number.isSafeInteger(r.pid);
  if (!ok) throw new InvalidArgumentError('malformed lock range');
  return { kind: r.kind, type: r.type, start: r.start, end: r.end, pid: r.pid };
}

function checkIno(ino: unknown): number {
  if (!Number.isSafeInteger(ino) || (ino as number) < 1) throw new InvalidArgumentError('bad inode');
  return ino as number;
}

function checkClient(client: unknown): string {
  if (typeof client !== 'string' || !CLIENT_RE.test(client)) throw new InvalidArgumentError('bad client id');
  return client;
}

function checkOwner(owner: unknown): string {
  if (typeof owner !== 'string' || owner.length === 0 || owner.length > 64) throw new InvalidArgumentError('bad lock owner');
  return owner;
}

/**
 * Where the lock service keeps locks and leases, shared by every service instance over one
 * database. `withInode` runs `fn` on one inode's locks alone, exclusively, and saves and
 * announces them when it says they changed. The metadata engine's SQL tables implement it
 * (src/meta/sql/lock-store.ts).
 */
export interface LockStore {
  start(): Promise<void>;
  onChange(listener: (c: LockChange) => void): () => void;
  withInode<T>(ino: number, fn: (table: LockTable) => { result: T; changed: boolean }): Promise<T>;
  renew(client: string, untilMs: number): Promise<void>;
  /** Clients whose lease ended before `nowMs`. */
  expired(nowMs: number): Promise<string[]>;
  /** Drops a client's locks (only if its lease ended before `onlyIfExpiredBefore`, when given); returns the inodes that changed. */
  dropClient(client: string, onlyIfExpiredBefore?: number): Promise<number[]>;
  lockedInodes(): Promise<number[]>;
  close(): void;
}

export class LockService {
  private readonly timer: NodeJS.Timeout;
  private sweeping = false;

  constructor(private readonly store: LockStore, readonly leaseMs = 15_000, private readonly log?: (line: string) => void) {
    this.timer = setInterval(() => void this.expire(), Math.max(250, Math.min(1000, leaseMs / 4)));
    this.timer.unref();
  }

  onChange(listener: (c: LockChange) => void): () => void {
    return this.store.onChange(listener);
  }

  /** Inodes on which some client holds a lock now. */
  lockedInodes(): Promise<number[]> {
    return this.store.lockedInodes();
  }

  async renew(client: string): Promise<void> {
    await this.store.renew(checkClient(client), Date.now() + this.leaseMs);
  }

  async test(client: string, ino: number, owner: string, want: LockRange): Promise<HeldLock | null> {
    await this.renew(client);
    const o = `${client}:${checkOwner(owner)}`;
    const r = checkRange(want);
    return this.store.withInode(checkIno(ino), (table) => ({ result: table.conflict(ino, o, r) ?? null, changed: false }));
  }

  /** Applies a request; returns the conflicting lock (nothing changed) or null. */
  async set(client: string, ino: number, owner: string, want: LockRange): Promise<HeldLock | null> {
    await this.renew(client);
    const o = `${client}:${checkOwner(owner)}`;
    const r = checkRange(want);
    return this.store.withInode(checkIno(ino), (table) => {
      const hit = table.apply(ino, o, r);
      return { result: hit ?? null, changed: !hit };
    });
  }

  async release(client: string, ino: number, owner: string, kind: LockKind): Promise<void> {
    await this.renew(client);
    if (kind !== 'posix' && kind !== 'flock') throw new InvalidArgumentError('bad lock kind');
    const o = `${client}:${checkOwner(owner)}`;
    await this.store.withInode(checkIno(ino), (table) => ({ result: undefined, changed: table.release(o, kind, ino).length > 0 }));
  }

  /** A client said goodbye (clean unmount): its locks go now. */
  async drop(client: string): Promise<void> {
    await this.store.dropClient(checkClient(client));
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async expire(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      for (const client of await this.store.expired(now)) {
        const n = await this.store.dropClient(client, now);
        if (n.length > 0) this.log?.(`client ${client.slice(0, 8)} missed its lease: ${n.length} locked inode(s) released`);
      }
    } catch (e) {
      this.log?.(`lock lease sweep failed: ${(e as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }
}
