/**
 * The lock table's POSIX rules: conflicts between owners, merge, split, upgrade and
 * downgrade of one owner's locks, unlock of a middle part, flock conversion, separate
 * namespaces for fcntl and flock; and LocalLocks' blocking waits, woken by a release and
 * ended by an abort.
 */
import t from 'tap';
import { LockTable } from '../../src/locks/table.js';
import { LocalLocks } from '../../src/locks/local.js';
import { InterruptedError, LockConflictError } from '../../src/errors.js';
import type { LockRange } from '../../src/locks/types.js';

const posix = (type: LockRange['type'], start: number, end: number): LockRange => ({ kind: 'posix', type, start, end, pid: 1 });
const flock = (type: LockRange['type']): LockRange => ({ kind: 'flock', type, start: 0, end: -1, pid: 1 });
const ranges = (tb: LockTable, ino = 1) => tb.locksOn(ino).map((l) => `${l.owner}:${l.type[0]}${l.start}-${l.end}`);

t.test('owners conflict on overlapping ranges when one is a write lock', async (t) => {
  const tb = new LockTable();
  t.equal(tb.apply(1, 'A', posix('write', 0, 99)), undefined);
  t.equal(tb.conflict(1, 'B', posix('read', 50, 60))?.owner, 'A', 'read inside a write range conflicts');
  t.equal(tb.conflict(1, 'B', posix('write', 100, 200)), undefined, 'a disjoint range does not');
  t.equal(tb.conflict(1, 'A', posix('write', 0, 10)), undefined, 'an owner never conflicts with itself');
  t.equal(tb.conflict(2, 'B', posix('write', 0, 10)), undefined, 'another inode does not');
  t.ok(tb.apply(1, 'B', posix('write', 99, 99)), 'a conflicting request is refused …');
  t.same(ranges(tb), ['A:w0-99'], '… and changes nothing');
  const reads = new LockTable();
  reads.apply(1, 'A', posix('read', 0, -1));
  t.equal(reads.apply(1, 'B', posix('read', 10, 20)), undefined, 'shared read locks coexist');
  t.ok(reads.conflict(1, 'C', posix('write', 1000, 1000)), 'a lock to EOF covers every later byte');
});

t.test("one owner's locks merge, split, upgrade and downgrade", async (t) => {
  const tb = new LockTable();
  tb.apply(1, 'A', posix('read', 0, 9));
  tb.apply(1, 'A', posix('read', 10, 19));
  t.same(ranges(tb), ['A:r0-19'], 'adjacent locks of one type merge');
  tb.apply(1, 'A', posix('write', 5, 9));
  t.same(ranges(tb), ['A:r0-4', 'A:w5-9', 'A:r10-19'], 'an upgrade of a middle part splits the lock');
  tb.apply(1, 'A', posix('read', 5, 9));
  t.same(ranges(tb), ['A:r0-19'], 'downgrading it back merges into one again');
  tb.apply(1, 'A', posix('unlock', 8, 11));
  t.same(ranges(tb), ['A:r0-7', 'A:r12-19'], 'unlocking a middle part leaves two pieces');
  tb.apply(1, 'A', posix('write', 0, -1));
  t.same(ranges(tb), ['A:w0--1'], 'a write lock to EOF replaces them all');
  tb.apply(1, 'A', posix('unlock', 100, -1));
  t.same(ranges(tb), ['A:w0-99'], 'unlocking the tail shortens it');
  tb.apply(1, 'A', posix('unlock', 0, -1));
  t.same(ranges(tb), [], 'unlocking everything leaves nothing');
  t.same(tb.lockedInodes(), [], 'and the inode is no longer locked');
});

t.test('flock is whole-file, converts in place, and is separate from fcntl locks', async (t) => {
  const tb = new LockTable();
  tb.apply(1, 'A', flock('read'));
  t.equal(tb.apply(1, 'B', flock('read')), undefined, 'two shared flocks');
  t.ok(tb.apply(1, 'B', flock('write')), 'an exclusive one conflicts with the other holder');
  tb.apply(1, 'A', flock('unlock'));
  t.equal(tb.apply(1, 'B', flock('write')), undefined, 'after A lets go, B converts to exclusive');
  t.same(ranges(tb).filter((r) => r.startsWith('B')), ['B:w0--1'], 'one lock per owner after the conversion');
  t.equal(tb.apply(1, 'C', posix('write', 0, -1)), undefined, 'fcntl locks do not see flock locks');
  tb.release('B', 'flock', 1);
  t.same(ranges(tb), ['C:w0--1'], "releasing B's flock leaves C's fcntl lock");
});

t.test('LocalLocks: a blocked request waits for the release, an abort ends the wait', async (t) => {
  const locks = new LocalLocks();
  await locks.set(7, 'A', posix('write', 0, -1));
  await t.rejects(locks.set(7, 'B', posix('write', 0, 0)), LockConflictError, 'without wait: a conflict error');
  let granted = false;
  const waiting = locks.set(7, 'B', posix('write', 0, 0), { wait: true }).then(() => { granted = true; });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(granted, false, 'still waiting while A holds it');
  await locks.release(7, 'A', 'posix');
  await waiting;
  t.equal(granted, true, 'granted once A released');
  t.ok(locks.isLocked(7));
  const abort = new AbortController();
  const blocked = locks.set(7, 'C', posix('read', 0, 0), { wait: true, signal: abort.signal });
  abort.abort();
  await t.rejects(blocked, InterruptedError, 'an aborted wait ends with InterruptedError');
  t.same(locks.table.locksOn(7).map((l) => l.owner), ['B'], 'and took nothing');
});
