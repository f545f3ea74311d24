/**
 * Locks held on this machine only (a mount without a metadata service, and the service's own
 * table): the POSIX rules of LockTable plus blocking waits, woken when a lock on the same
 * inode is released (no polling).
 */
import { InterruptedError, LockConflictError } from '../errors.js';
import { LockTable } from './table.js';
import { KeyedWaiters } from '../util/waiters.js';
import type { HeldLock, LockKind, LockManager, LockRange } from './types.js';

export class LocalLocks implements LockManager {
  readonly table = new LockTable();
  private readonly waiters = new KeyedWaiters<number>();

  async test(ino: number, owner: string, want: LockRange): Promise<HeldLock | undefined> {
    return this.table.conflict(ino, owner, want);
  }

  async set(ino: number, owner: string, want: LockRange, options: { wait?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    for (;;) {
      const hit = this.table.apply(ino, owner, want);
      if (!hit) {
        this.wake(ino);
        return;
      }
      if (!options.wait) throw new LockConflictError(`inode ${ino} bytes ${hit.start}-${hit.end < 0 ? 'EOF' : hit.end} are locked by another owner`);
      await this.waitForChange(ino, options.signal);
    }
  }

  async release(ino: number, owner: string, kind: LockKind): Promise<void> {
    for (const i of this.table.release(owner, kind, ino)) this.wake(i);
  }

  /** Drops every lock whose owner matches; wakes their waiters. */
  releaseWhere(match: (owner: string) => boolean): number[] {
    const touched = this.table.releaseWhere(match);
    for (const i of touched) this.wake(i);
    return touched;
  }

  isLocked(ino: number): boolean {
    return this.table.locksOn(ino).length > 0;
  }

  /** Resolves at the next change of locks on `ino` (or rejects when `signal` aborts). */
  waitForChange(ino: number, signal?: AbortSignal): Promise<void> {
    return this.waiters.wait(ino, { signal, aborted: () => new InterruptedError('lock wait interrupted') }).promise;
  }

  wake(ino: number): void {
    this.waiters.wake(ino);
  }

  async close(): Promise<void> {}
}
