/**
 * The LockManager conformance suite: every lock manager runs exactly these checks. A fixture
 * gives two managers that share one lock space as two machines would (for LocalLocks, the
 * same manager twice: one machine), and an inode to lock.
 */
import type { Test } from 'tap';
import { InterruptedError, LockConflictError } from '../../src/errors.js';
import type { LockKind, LockManager, LockRange } from '../../src/locks/types.js';
import { until } from '../helpers/wait.js';

export interface LockFixture {
  a: LockManager;
  b: LockManager;
  /** An inode both may lock (a fresh one per call). */
  inode(): Promise<number>;
  close(): Promise<void>;
}

export const range = (type: LockRange['type'], start: number, end: number, kind: LockKind = 'posix'): LockRange => ({ kind, type, start, end, pid: 7 });

export function lockManagerConformance(t: Test, name: string, open: () => Promise<LockFixture>): void {
  t.test(`${name}: LockManager conformance`, async (t) => {
    const fx = await open();
    t.teardown(() => fx.close());
    const { a, b } = fx;

    t.test('a write lock excludes every other owner on the bytes it covers, and only those', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('write', 0, 99));
      await t.rejects(b.set(ino, 'B:1', range('read', 50, 60)), LockConflictError, 'an overlapping read is refused');
      t.match(await b.test(ino, 'B:1', range('write', 99, 200)), { ino, owner: 'A:1', type: 'write', start: 0, end: 99 }, 'test names the holder');
      await t.resolves(b.set(ino, 'B:1', range('write', 100, 199)), 'a disjoint range is granted');
      t.equal(await a.test(ino, 'A:1', range('write', 0, 99)), undefined, 'an owner never conflicts with itself');
    });

    t.test('read locks share; a write waits for all of them', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('read', 0, -1));
      await b.set(ino, 'B:1', range('read', 10, 20));
      await t.rejects(b.set(ino, 'B:2', range('write', 0, 0)), LockConflictError, 'a write over a read is refused');
      await a.set(ino, 'A:1', range('unlock', 0, -1));
      await t.rejects(a.set(ino, 'A:2', range('write', 15, 15)), LockConflictError, 'the other read still holds');
      await b.release(ino, 'B:1', 'posix');
      await t.resolves(a.set(ino, 'A:2', range('write', 0, -1)), 'once every read is gone the write is granted');
    });

    t.test('unlocking part of a range keeps the rest', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('write', 0, 99));
      await a.set(ino, 'A:1', range('unlock', 0, 49));
      await t.resolves(b.set(ino, 'B:1', range('write', 0, 49)), 'the unlocked half is free');
      await t.rejects(b.set(ino, 'B:1', range('write', 50, 50)), LockConflictError, 'the rest is still held');
    });

    t.test('fcntl and flock locks never conflict with each other', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('write', 0, -1, 'flock'));
      await t.resolves(b.set(ino, 'B:1', range('write', 0, -1, 'posix')), 'a posix lock beside a flock');
      await t.rejects(b.set(ino, 'B:2', range('read', 0, -1, 'flock')), LockConflictError, 'flock against flock conflicts');
      await a.release(ino, 'A:1', 'posix');
      await t.rejects(b.set(ino, 'B:2', range('read', 0, -1, 'flock')), LockConflictError, 'releasing posix locks leaves the flock');
      await a.release(ino, 'A:1', 'flock');
      await t.resolves(b.set(ino, 'B:2', range('read', 0, -1, 'flock')), 'releasing the flock frees it');
    });

    t.test('a waiting request is granted when the holder lets go', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('write', 0, -1));
      let granted = false;
      const waiting = b.set(ino, 'B:1', range('write', 0, 10), { wait: true }).then(() => { granted = true; });
      await new Promise((r) => setTimeout(r, 100));
      t.notOk(granted, 'it waits while the lock is held');
      await a.release(ino, 'A:1', 'posix');
      await waiting;
      t.ok(granted, 'granted after the release');
      await t.rejects(a.set(ino, 'A:1', range('read', 5, 5)), LockConflictError, 'and it is now the holder');
    });

    t.test('a wait can be interrupted', async (t) => {
      const ino = await fx.inode();
      await a.set(ino, 'A:1', range('write', 0, -1));
      const abort = new AbortController();
      const waiting = b.set(ino, 'B:1', range('write', 0, -1), { wait: true, signal: abort.signal });
      setTimeout(() => abort.abort(), 50);
      await t.rejects(waiting, InterruptedError, 'the interrupted wait ends with InterruptedError');
      await a.release(ino, 'A:1', 'posix');
      await t.resolves(b.set(ino, 'B:1', range('write', 0, -1)), 'and took nothing');
    });

    t.test('every manager knows which inodes are locked (strong mode)', async (t) => {
      const ino = await fx.inode();
      t.notOk(a.isLocked(ino), 'nothing locked yet');
      await a.set(ino, 'A:1', range('write', 0, 0));
      t.ok(a.isLocked(ino), 'the holder knows at once');
      t.ok(await until(() => b.isLocked(ino)), 'the other learns of it');
      await a.release(ino, 'A:1', 'posix');
      t.ok(await until(() => !a.isLocked(ino) && !b.isLocked(ino)), 'and of the release');
    });
  });
}
