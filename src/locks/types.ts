/**
 * The lock seam: POSIX byte-range (fcntl) locks and flock locks on inodes, held per owner.
 *
 * An owner is what the kernel names a lock owner (one per process for fcntl locks, one per
 * open file description for flock), made unique across machines by the client's id. fcntl
 * and flock locks live in separate namespaces and never conflict with each other, as on
 * Linux. Implementations: `LocalLocks` (one machine) and the service-backed manager
 * (src/locks/remote.ts) that makes locks hold across every mount of a filespace.
 */
export type LockKind = 'posix' | 'flock';
export type LockType = 'read' | 'write';

export interface LockRange {
  kind: LockKind;
  type: LockType | 'unlock';
  /** First byte. */
  start: number;
  /** Last byte, inclusive; -1 = to the end of the file (and beyond). */
  end: number;
  pid: number;
}

export interface HeldLock {
  ino: number;
  owner: string;
  kind: LockKind;
  type: LockType;
  start: number;
  end: number;
  pid: number;
}

export interface LockManager {
  /** The first lock another owner holds that conflicts with `want`, if any. */
  test(ino: number, owner: string, want: LockRange): Promise<HeldLock | undefined>;
  /**
   * Sets (or, with type 'unlock', clears) a lock. A conflict throws LockConflictError, or
   * with `wait` waits until the lock can be granted; `signal` aborts the wait
   * (InterruptedError).
   */
  set(ino: number, owner: string, want: LockRange, options?: { wait?: boolean; signal?: AbortSignal }): Promise<void>;
  /** Drops every lock of `owner` of one kind on `ino` (close of a file, flock release). */
  release(ino: number, owner: string, kind: LockKind): Promise<void>;
  /** Whether any owner (on any machine) holds a lock on `ino`: the file is then in strong mode. */
  isLocked(ino: number): boolean;
  close(): Promise<void>;
}

/** A change to which inodes hold locks (the service announces these to every mount). */
export interface LockChange {
  ino: number;
  locked: boolean;
}

/** What a mount hears of locks on the change feed: one inode's change, or every locked inode. */
export type LockEvent = LockChange | { all: number[] };

/** How a mount's lock manager calls the service's lock methods (the metadata client implements it). */
export type LockMethod = 'test' | 'set' | 'release' | 'renew' | 'drop';

export interface LockRpc {
  lockCall<T>(method: LockMethod, params: Record<string, unknown>): Promise<T>;
}
