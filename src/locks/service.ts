/**
 * The service's side of distributed locks: one lock table for the filespace, owners named
 * "<client id>:<kernel lock owner>", and a lease per client. A client renews its lease with
 * every lock call and a heartbeat; one that stays silent for `leaseMs` (crashed, cut off)
 * loses all its locks. Every change to the locks on an inode is announced to `onChange`
 * listeners (the change feed pushes it to every client, which wakes their waiters).
 *
 * Promises: a request never waits here (blocking is the client's loop, woken by the push);
 * requests from a client whose lease expired start a fresh lease (its old locks are gone).
 */
import { InvalidArgumentError } from '../errors.js';
import { LocalLocks } from './local.js';
import type { HeldLock, LockKind, LockRange } from './types.js';

export interface LockChange {
  ino: number;
  locked: boolean;
}

const CLIENT_RE = /^[0-9a-f]{16,64}$/;

function checkRange(r: LockRange): LockRange {
  const ok = r && (r.kind === 'posix' || r.kind === 'flock') && ['read', 'write', 'unlock'].includes(r.type)
    && Number.isSafeInteger(r.start) && r.start >= 0 && Number.isSafeInteger(r.end) && r.end >= -1 && (r.end === -1 || r.end >= r.start)
    && Number.isSafeInteger(r.pid);
  if (!ok) throw new InvalidArgumentError('malformed lock range');
  return { kind: r.kind, type: r.type, start: r.start, end: r.end, pid: r.pid };
}

function checkIno(ino: number): number {
  if (!Number.isSafeInteger(ino) || ino < 1) throw new InvalidArgumentError('bad inode');
  return ino;
}

export class LockService {
  private readonly locks = new LocalLocks();
  private readonly leases = new Map<string, number>();
  private readonly listeners = new Set<(c: LockChange) => void>();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly leaseMs = 15_000, private readonly log?: (line: string) => void) {
    this.timer = setInterval(() => this.expire(), Math.max(250, Math.min(1000, leaseMs / 4)));
    this.timer.unref();
  }

  onChange(listener: (c: LockChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Inodes on which some client holds a lock now. */
  lockedInodes(): number[] {
    return this.locks.table.lockedInodes();
  }

  renew(client: string): void {
    if (!CLIENT_RE.test(String(client))) throw new InvalidArgumentError('bad client id');
    this.leases.set(client, Date.now() + this.leaseMs);
  }

  test(client: string, ino: number, owner: string, want: LockRange): HeldLock | null {
    this.renew(client);
    return this.locks.table.conflict(checkIno(ino), `${client}:${String(owner)}`, checkRange(want)) ?? null;
  }

  /** Applies a request; returns the conflicting lock (nothing changed) or null. */
  set(client: string, ino: number, owner: string, want: LockRange): HeldLock | null {
    this.renew(client);
    checkIno(ino);
    const was = this.locks.isLocked(ino);
    const hit = this.locks.table.apply(ino, `${client}:${String(owner)}`, checkRange(want));
    if (!hit) this.changed(ino, was);
    return hit ?? null;
  }

  release(client: string, ino: number, owner: string, kind: LockKind): void {
    this.renew(client);
    checkIno(ino);
    if (kind !== 'posix' && kind !== 'flock') throw new InvalidArgumentError('bad lock kind');
    const was = this.locks.isLocked(ino);
    if (this.locks.table.release(`${client}:${String(owner)}`, kind, ino).length) this.changed(ino, was);
  }

  /** A client said goodbye (clean unmount): its locks go now. */
  drop(client: string): void {
    this.leases.delete(client);
    this.dropLocksOf(client);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private expire(): void {
    const now = Date.now();
    for (const [client, until] of this.leases) {
      if (until > now) continue;
      this.leases.delete(client);
      const n = this.dropLocksOf(client);
      if (n > 0) this.log?.(`client ${client.slice(0, 8)} missed its lease: ${n} locked inode(s) released`);
    }
  }

  private dropLocksOf(client: string): number {
    const before = new Set(this.locks.table.lockedInodes());
    const touched = this.locks.releaseWhere((owner) => owner.startsWith(`${client}:`));
    for (const ino of touched) this.changed(ino, before.has(ino));
    return touched.length;
  }

  private changed(ino: number, _was: boolean): void {
    const c = { ino, locked: this.locks.isLocked(ino) };
    for (const l of this.listeners) l(c);
  }
}
