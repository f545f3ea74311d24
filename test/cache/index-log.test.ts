/**
 * The cache index's write-ahead log (src/cache/index-log.ts): a change recorded and never
 * folded (the process killed) is in the tables when the index opens again; a torn last line
 * is dropped; lines folded once already fold again to the same tables; reads fold first.
 */
import t from 'tap';
import { appendFileSync, copyFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CacheIndex } from '../../src/cache/index-db.js';
import { tempDir } from '../helpers/servers.js';

const FS = 'f'.repeat(32);
const row = (ino: number, idx: number, length: number) => ({ ino, idx, fileId: `file${ino}-${idx}`, length, gen: ino * 100 + idx, sealedId: null });

t.test('changes in the log of a killed process are there on reopen; reads fold first', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const db = path.join(tmp.dir, 'index.sqlite');
  const a = new CacheIndex(db, FS);
  a.putDirty(row(1, 0, 4096), { ino: 1, size: 4096, mtimeMs: 5 });
  a.putDirty(row(1, 1, 100));
  a.putDirty(row(2, 0, 7), { ino: 2, size: 7, mtimeMs: 6 });
  a.deleteDirty(1, 1);
  a.addClean('obj1', 1000, 3);
  a.addClean('obj2', 2000, 3);
  a.deleteClean('obj1');
  a.deletePending(2);
  t.ok(statSync(path.join(tmp.dir, 'index.log')).size > 0, 'the changes are in the log');
  // Killed: never closed. A copy of the files as they are now is what the next start finds.
  const killed = path.join(tmp.dir, 'killed');
  const copy = (name: string) => { try { copyFileSync(path.join(tmp.dir, name), `${killed}-${name}`); } catch { /* absent */ } };
  for (const n of ['index.sqlite', 'index.sqlite-wal', 'index.sqlite-shm', 'index.log']) copy(n);
  t.same(a.allDirty().map((r) => [r.ino, r.idx, r.length]), [[1, 0, 4096], [2, 0, 7]], 'a read folds the log first');
  a.close();
  t.equal(statSync(path.join(tmp.dir, 'index.log')).size, 0, 'close folds and empties the log');

  const b = new CacheIndex(`${killed}-index.sqlite`, FS);
  t.same(b.allDirty().map((r) => [r.ino, r.idx, r.length, r.fileId]), [[1, 0, 4096, 'file1-0'], [2, 0, 7, 'file2-0']], 'dirty rows of the killed process');
  t.same(b.allPending(), [{ ino: 1, size: 4096, mtimeMs: 5 }], 'pending sizes of the killed process');
  t.same(b.cleanEntries().map((e) => e.objectId), ['obj2'], 'clean rows of the killed process');
  t.equal(readFileSync(`${killed}-index.log`, 'utf8'), '', 'the replayed log is emptied');
  b.close();
});

t.test('a torn last line is dropped, and lines folded twice give the same tables', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const db = path.join(tmp.dir, 'index.sqlite');
  const a = new CacheIndex(db, FS);
  a.putDirty(row(1, 0, 10), { ino: 1, size: 10, mtimeMs: 1 });
  a.putDirty(row(1, 0, 20), { ino: 1, size: 20, mtimeMs: 2 });
  a.deleteDirty(1, 0);
  a.putDirty(row(1, 0, 30));
  const lines = readFileSync(path.join(tmp.dir, 'index.log'), 'utf8');
  a.close(); // folded: the tables hold the result
  // As if killed between a fold's commit and the log's truncation, with a torn line after.
  appendFileSync(path.join(tmp.dir, 'index.log'), `${lines}{"d":[9,9,"torn`);
  const b = new CacheIndex(db, FS);
  t.same(b.allDirty().map((r) => [r.ino, r.idx, r.length]), [[1, 0, 30]], 'the same rows as one fold gave; the torn line is not applied');
  t.same(b.allPending(), [{ ino: 1, size: 20, mtimeMs: 2 }], 'the same pending size');
  b.close();
});
