/**
 * Locks held in the metadata service, so they hold across every mount of a filespace.
 *
 * Each agent is one client with a random id and a lease it renews every third of the lease
 * (the service frees the locks of a client that stops renewing: a crash or a cut cable). A
 * blocked request waits for the service's push that locks on that inode changed, then tries
 * again; a slow fallback retry covers a push lost in a reconnect. Which inodes are locked
 * (strong mode) comes from the same pushes.
 */
import { randomBytes } from 'node:crypto';
import { InterruptedError, LockConflictError } from '../errors.js';
import type { HeldLock, LockEvent, LockKind, LockManager, LockRange, LockRpc } from './types.js';
import { KeyedWaiters, type Wait } from '../util/waiters.js';

export class RemoteLocks implements LockManager {
  readonly clientId = randomBytes(16).toString('hex');
  private readonly locked = new Set<number>();
  private readonly waiters = new KeyedWaiters<number>();
  private heartbeat?: NodeJS.Timeout;
  private leaseMs = 15_000;

  constructor(private readonly client: LockRpc, private readonly log?: (line: string) => void) {}

  async start(): Promise<void> {
    const r = await this.client.lockCall<{ leaseMs: number }>('renew', { client: this.clientId });
    this.leaseMs = r.leaseMs;
    this.heartbeat = setInterval(() => {
      this.client.lockCall('renew', { client: this.clientId }).catch((e: Error) => this.log?.(`lock lease renewal failed: ${e.message}`));
    }, Math.max(200, Math.floor(this.leaseMs / 3)));
    this.heartbeat.unref();
  }

  /** A push from the feed: locks on one inode changed, or the whole set (after a reconnect). */
  onEvent(e: LockEvent): void {
    if ('all' in e) {
      this.locked.clear();
      for (const ino of e.all) this.locked.add(ino);
      this.waiters.wakeAll();
      return;
    }
    if (e.locked) this.locked.add(e.ino);
    else this.locked.delete(e.ino);
    this.waiters.wake(e.ino);
  }

  async test(ino: number, owner: string, want: LockRange): Promise<HeldLock | undefined> {
    const r = await this.client.lockCall<{ conflict: HeldLock | null }>('test', { client: this.clientId, ino, owner, range: want });
    return r.conflict ?? undefined;
  }

  async set(ino: number, owner: string, want: LockRange, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    for (;;) {
      if (options.signal?.aborted) throw new InterruptedError('lock wait interrupted');
      // Listen before asking, so a release between the answer and the wait is not missed.
      const changed = this.nextChange(ino, options.signal);
      let r: { conflict: HeldLock | null };
      try {
        r = await this.client.lockCall<{ conflict: HeldLock | null }>('set', { client: this.clientId, ino, owner, range: want });
      } catch (e) {
        changed.cancel();
        throw e;
      }
      if (!r.conflict) {
        changed.cancel();
        if (want.type !== 'unlock') this.locked.add(ino);
        return;
      }
      if (!options.wait) {
        changed.cancel();
        const c = r.conflict;
        throw new LockConflictError(`inode ${ino} bytes ${c.start}-${c.end < 0 ? 'EOF' : c.end} are locked by another owner`);
      }
      await changed.promise;
    }
  }

  async release(ino: number, owner: string, kind: LockKind): Promise<void> {
    await this.client.lockCall('release', { client: this.clientId, ino, owner, kind });
  }

  isLocked(ino: number): boolean {
    return this.locked.has(ino);
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.client.lockCall('drop', { client: this.clientId }).catch(() => {});
  }

  /** Resolves at the next push about `ino` (or after a fallback delay); rejects on abort. */
  private nextChange(ino: number, signal?: AbortSignal): Wait {
    return this.waiters.wait(ino, { signal, timeoutMs: Math.max(1000, this.leaseMs / 3), aborted: () => new InterruptedError('lock wait interrupted') });
  }
}
