/**
 * The write-back namespace (the eventual mode): changes to names and attributes that the
 * mount can decide locally return without a round trip and reach the service in order, in
 * batches; other mounts then see them in that order; a name two mounts made at once keeps
 * both files (one as a conflict copy, counted and logged); a file someone holds a lock on is
 * changed synchronously; a folder reached only by path takes new files while the service is
 * away. Checked through real engines and a second mount, byte for byte.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ROOT_INO, type MetaEngine } from '../../src/meta/types.js';
import type { Vfs } from '../../src/fs/vfs.js';
import { mountVfs, readPath, sharedFilespace, watchingCalls, Switch, writeFile } from '../helpers/shared.js';

const ME = { uid: 0, gid: 0 };
const O_RDWR = 2;

const names = async (vfs: Vfs, p: string) => (await vfs.list((await vfs.resolve(p)).ino)).map((e) => e.name).sort();

/** A meta engine whose calls are recorded by name, in order, each batch taking `batchMs` (a service some way off). */
function recording(engine: MetaEngine, batchMs: number): { meta: MetaEngine; calls: string[] } {
  const calls: string[] = [];
  const watched = watchingCalls(engine, ['lookup', 'getAttr', 'create', 'setAttr', 'unlink', 'rename', 'rmdir', 'readdir', 'applyBatch', 'commitBlocks'], (m) => calls.push(m));
  const meta = new Proxy(watched, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop !== 'applyBatch' || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        await new Promise((r) => setTimeout(r, batchMs));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { meta, calls };
}

t.test('a folder of small files made with no round trip per change, sent in batches, seen in order by another mount', async (t) => {
  const shared = await sharedFilespace(t);
  const rec = recording(shared.engine, 50);
  // No change feed between these mounts: a listing is trusted for the staleness bound, here a minute.
  const a = await mountVfs(t, shared, 'a', { meta: rec.meta, attrTtlMs: 60_000 });
  const b = await mountVfs(t, shared, 'b');
  await a.reserveInodes();
  const proj = (await a.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  const before = rec.calls.length;
  const files = new Map<string, Buffer>();
  let absent = 0;
  for (let i = 0; i < 200; i++) {
    const name = `f${String(i).padStart(3, '0')}.bin`;
    await a.lookup(proj, name).catch((e: { code?: string }) => { if (e.code === 'NoEntry') absent++; });
    const data = randomBytes(1000 + i);
    const ino = await writeFile(a, proj, name, data);
    await a.setattr(ino, { mode: 0o600, uid: 1000, gid: 1000, mtimeMs: 1_000_000 + i });
    files.set(name, data);
  }
  await a.mkdir(proj, 'sub', 0o755, ME);
  await a.rename(proj, 'f000.bin', proj, 'renamed.bin');
  files.set('renamed.bin', files.get('f000.bin')!);
  files.delete('f000.bin');
  await a.unlink(proj, 'f001.bin');
  files.delete('f001.bin');
  t.equal(absent, 200, 'every name was looked up first and found absent');
  const during = rec.calls.slice(before);
  const synchronous = during.filter((c) => c !== 'applyBatch' && c !== 'commitBlocks' && c !== 'readdir');
  t.same(synchronous, [], 'no call waited on the service: lookups, creates, setattrs, renames and unlinks were decided locally');
  t.ok(a.journal.size > 0 || a.journal.batches > 0, 'the changes went to the journal');

  await a.journal.flush();
  await a.uploader.flushAll();
  t.equal(a.journal.size, 0, 'the journal is empty once flushed');
  t.ok(a.journal.batchedOps >= 403, `${a.journal.batchedOps} changes reached the service`);
  t.ok(a.journal.batches < a.journal.batchedOps / 5, `in ${a.journal.batches} requests (many changes each)`);

  t.same(await names(b, 'proj'), [...files.keys(), 'sub'].sort(), 'the second mount lists every file');
  for (const [name, data] of files) {
    const got = await readPath(b, `proj/${name}`);
    if (!got.equals(data)) t.fail(`${name} reads back wrong on the second mount`);
  }
  const attr = await b.resolve('proj/f100.bin');
  t.same([attr.mode & 0o7777, attr.uid, attr.gid, attr.mtimeMs], [0o600, 1000, 1000, 1_000_100], 'chmod, chown and utimens arrived');

  const changes = await shared.engine.changesSince(0, 100_000);
  const madeAt = (ino: number) => changes.commits.find((c) => c.inos.includes(ino))?.csn ?? Infinity;
  const child = (await b.resolve('proj/f150.bin')).ino;
  t.ok(madeAt(proj) < madeAt(child), 'the folder was committed before the file in it');
});

t.test('fsync waits for the file\'s creation and data; a lock makes a file\'s changes synchronous', async (t) => {
  const shared = await sharedFilespace(t);
  const a = await mountVfs(t, shared, 'a');
  const b = await mountVfs(t, shared, 'b');
  await a.reserveInodes();
  const proj = (await a.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  const { attr, fh } = await a.create(proj, 'doc.txt', 0o644, O_RDWR, ME);
  const data = randomBytes(5000);
  await a.write(fh, 0, data);
  await a.fsync(fh);
  t.ok((await readPath(b, 'proj/doc.txt')).equals(data), 'after fsync, the other mount reads the file');

  await a.setlk(attr.ino, 'owner-1', { kind: 'posix', type: 'write', start: 0, end: -1, pid: 1 });
  const waiting = a.journal.size;
  await a.setattr(attr.ino, { mode: 0o640 });
  t.equal(a.journal.size, waiting, 'a change to a locked file is not journaled');
  t.equal((await shared.engine.getAttr(attr.ino)).mode & 0o7777, 0o640, 'it is at the service when the call returns');
  await a.setlk(attr.ino, 'owner-1', { kind: 'posix', type: 'unlock', start: 0, end: -1, pid: 1 });
  await a.release(fh);
});

t.test('a chmod and a utimens written back keep the change time the mount showed', async (t) => {
  // `tar c` right after `tar x` reads a folder, then stats it again: its ctime must not jump
  // when the folder's last change reaches the service meanwhile.
  const shared = await sharedFilespace(t);
  const a = await mountVfs(t, shared, 'a');
  const dir = (await a.mkdir(ROOT_INO, 'tree', 0o755, ME)).ino;
  await new Promise((r) => setTimeout(r, 30));
  const chmod = await a.setattr(dir, { mode: 0o750 });
  await new Promise((r) => setTimeout(r, 30));
  const touched = await a.setattr(dir, { atimeMs: 1_700_000_000_000, mtimeMs: 1_700_000_000_000 });
  t.ok(touched.ctimeMs >= chmod.ctimeMs, 'the mount shows the last change\'s ctime');
  await new Promise((r) => setTimeout(r, 30));
  await a.journal.flush();
  const there = await shared.engine.getAttr(dir);
  t.equal(there.ctimeMs, touched.ctimeMs, 'the service keeps the ctime the mount showed, not the time the change arrived');
  t.equal((await a.getattr(dir)).ctimeMs, touched.ctimeMs, 'and the mount shows it still');
});

t.test('while a utimens waits, an answer from the service about the folder shows the local times', async (t) => {
  // `tar x` restores a folder's times last; a lookup of the folder answered by the service
  // before that change arrived showed the old mtime, and `tar c` then saw the folder change.
  const shared = await sharedFilespace(t);
  const { meta } = recording(shared.engine, 200);
  const a = await mountVfs(t, shared, 'a', { meta });
  const dir = (await a.mkdir(ROOT_INO, 'tree', 0o755, ME)).ino;
  await a.journal.flush();
  const before = await shared.engine.getAttr(dir);
  const touched = await a.setattr(dir, { atimeMs: 1_700_000_000_000, mtimeMs: 1_700_000_000_000 });
  t.ok(a.journal.size > 0, 'the utimens waits in the journal');
  const shown = a.view.remember(before);
  t.equal(shown.mtimeMs, 1_700_000_000_000, 'the service\'s older answer is not what the mount shows');
  t.equal(shown.ctimeMs, touched.ctimeMs);
  t.equal((await a.getattr(dir)).mtimeMs, 1_700_000_000_000, 'nor what getattr answers');
  await a.journal.flush();
  t.equal((await shared.engine.getAttr(dir)).mtimeMs, 1_700_000_000_000, 'the change arrives');
});

t.test('two mounts make the same name at once: both files survive, one as a conflict copy, counted and logged', async (t) => {
  const shared = await sharedFilespace(t);
  const linesA: string[] = [];
  const linesB: string[] = [];
  const a = await mountVfs(t, shared, 'a', { log: (l) => linesA.push(l) });
  const b = await mountVfs(t, shared, 'b', { log: (l) => linesB.push(l) });
  await a.reserveInodes();
  await b.reserveInodes();
  const proj = (await a.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  await a.journal.flush();
  t.same(await names(b, 'proj'), [], 'B has listed the empty folder');
  const mine = randomBytes(3000);
  const theirs = randomBytes(4000);
  await writeFile(a, proj, 'cut.edl', mine);
  await writeFile(b, proj, 'cut.edl', theirs);
  await Promise.all([a.journal.flush(), b.journal.flush()]);
  await a.uploader.flushAll();
  await b.uploader.flushAll();
  const c = await mountVfs(t, shared, 'c');
  t.same(await names(c, 'proj'), ['cut (conflict copy).edl', 'cut.edl'], 'both names are there');
  const first = await readPath(c, 'proj/cut.edl');
  const copy = await readPath(c, 'proj/cut (conflict copy).edl');
  t.ok((first.equals(mine) && copy.equals(theirs)) || (first.equals(theirs) && copy.equals(mine)), 'each file under one of them, byte for byte');
  t.equal(a.journal.conflicts + b.journal.conflicts, 1, 'one conflict counted');
  t.ok([...linesA, ...linesB].some((l) => l.startsWith('conflict:') && l.includes('conflict name')), 'and logged');
});

t.test('a folder reached only by path takes a new file while the service is away, and the file arrives when it is back', async (t) => {
  const shared = await sharedFilespace(t);
  const maker = await mountVfs(t, shared, 'maker');
  const deep = (await maker.mkdir(ROOT_INO, 'deep', 0o755, ME)).ino;
  const inner = (await maker.mkdir(deep, 'inner', 0o755, ME)).ino;
  await writeFile(maker, inner, 'old.txt', Buffer.from('old'));
  await maker.journal.flush();
  await maker.uploader.flushAll();

  const sw = new Switch(shared.engine);
  const a = await mountVfs(t, shared, 'a', { meta: sw.meta });
  await a.reserveInodes();
  const dir = await a.resolve('deep/inner'); // reached by path: never listed by this mount
  await a.journal.flush();
  for (let i = 0; i < 50 && !a.view.lastKnown.listing(dir.ino); i++) await new Promise((r) => setTimeout(r, 20));
  sw.down = true;
  const data = randomBytes(10_000);
  await t.rejects(a.lookup(dir.ino, 'NEW'), { code: 'NoEntry' }, 'offline, the destination is known absent (not EIO)');
  await writeFile(a, dir.ino, 'NEW', data);
  t.ok((await readPath(a, 'deep/inner/NEW')).equals(data), 'shown at once');
  sw.down = false;
  await a.journal.flush();
  await a.uploader.flushAll();
  const fresh = await mountVfs(t, shared, 'fresh');
  t.ok((await readPath(fresh, 'deep/inner/NEW')).equals(data), 'arrived at the service with its data');
});

t.test('a file written, then renamed over another (a lock file saved into place), reads back its bytes every time', async (t) => {
  const shared = await sharedFilespace(t);
  const a = await mountVfs(t, shared, 'a', { idleMs: 0 });
  await a.reserveInodes();
  const dir = (await a.mkdir(ROOT_INO, 'repo', 0o755, ME)).ino;
  await writeFile(a, dir, 'config', Buffer.from('first'));
  let wrong = 0;
  for (let i = 0; i < 60; i++) {
    const data = randomBytes(10 + i * 7);
    await writeFile(a, dir, 'config.lock', data);
    // The upload of the new file races the rename's journaling: both orders are tried.
    if (i % 3 === 1) await new Promise((r) => setTimeout(r, i % 5));
    if (i % 3 === 2) await a.fsyncInode((await a.resolve('repo/config.lock')).ino);
    await a.rename(dir, 'config.lock', dir, 'config');
    for (let k = 0; k < 3; k++) {
      const got = await readPath(a, 'repo/config');
      if (!got.equals(data)) wrong++;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  t.equal(wrong, 0, 'no read of the renamed file saw a wrong size or bytes');
  await a.journal.flush();
  await a.uploader.flushAll();
  const b = await mountVfs(t, shared, 'b');
  t.same(await (async () => (await b.list(dir)).map((e) => e.name))(), ['config'], 'one name left at the service');
});

t.test('hard links and extended attributes are written back (no round trip), offline too, and arrive as made', async (t) => {
  const shared = await sharedFilespace(t);
  const rec = recording(shared.engine, 5);
  const sw = new Switch(rec.meta);
  const a = await mountVfs(t, shared, 'a', { meta: sw.meta, attrTtlMs: 60_000 });
  await a.reserveInodes();
  const dir = (await a.mkdir(ROOT_INO, 'media', 0o755, ME)).ino;
  const data = randomBytes(5000);
  const ino = await writeFile(a, dir, 'clip.mov', data);
  const before = rec.calls.length;
  await a.xattrs.setxattr(ino, 'user.reel', Buffer.from('A001'), 0);
  await a.xattrs.setxattr(ino, 'user.scene', Buffer.from('12'), 1 /* XATTR_CREATE */);
  await t.rejects(a.xattrs.setxattr(ino, 'user.scene', Buffer.from('13'), 1), { code: 'EntryExists' }, 'XATTR_CREATE of one that waits: EEXIST, decided locally');
  await t.rejects(a.xattrs.setxattr(ino, 'user.take', Buffer.from('1'), 2), { code: 'NoAttribute' }, 'XATTR_REPLACE of one this new file lacks: ENODATA');
  t.same((await a.xattrs.getxattr(ino, 'user.reel')).toString(), 'A001', 'read back before the service has it');
  t.same((await a.xattrs.listxattr(ino)).sort(), ['user.reel', 'user.scene']);
  const linked = await a.link(ino, dir, 'clip-link.mov');
  t.equal(linked.nlink, 2, 'two names');
  await t.rejects(a.link(ino, dir, 'clip.mov'), { code: 'EntryExists' });
  await t.rejects(a.link(dir, ROOT_INO, 'dirlink'), { code: 'NotPermitted' }, 'no hard link to a folder');
  t.same(rec.calls.slice(before).filter((c) => c !== 'applyBatch' && c !== 'commitBlocks' && c !== 'readdir'), [], 'none of it waited on the service');

  await a.list(ROOT_INO); // the top folder's listing, so a name there is decided offline
  await a.journal.flush();
  sw.down = true;
  // Offline, what needs the file's attribute set decides only where the mount knows it.
  await t.rejects(a.xattrs.removexattr(ino, 'user.reel'), { code: 'ServiceUnavailable' }, 'offline, removing an attribute of a file whose attributes only the service knows: EIO, nothing journaled');
  await a.xattrs.setxattr(ino, 'user.scene', Buffer.from('14'), 0);
  await a.link(ino, ROOT_INO, 'clip-top.mov');
  const made = await writeFile(a, dir, 'notes.txt', Buffer.from('made offline'));
  await a.xattrs.setxattr(made, 'user.tmp', Buffer.from('x'), 1);
  await a.xattrs.setxattr(made, 'user.keep', Buffer.from('y'), 0);
  await a.xattrs.removexattr(made, 'user.tmp');
  await t.rejects(a.xattrs.removexattr(made, 'user.tmp'), { code: 'NoAttribute' }, 'a file made here has just the attributes this mount gave it');
  t.same((await a.xattrs.getxattr(ino, 'user.scene')).toString(), '14', 'set offline, read back');
  t.ok((await readPath(a, 'clip-top.mov')).equals(data), 'the new name reads the file offline');
  sw.down = false;
  await a.journal.flush();
  await a.uploader.flushAll();

  const b = await mountVfs(t, shared, 'b');
  for (const p of ['media/clip.mov', 'media/clip-link.mov', 'clip-top.mov']) {
    const at = await b.resolve(p);
    t.equal(at.ino, ino, `${p} is the same inode`);
    t.equal(at.nlink, 3, `${p}: three names`);
    t.ok((await readPath(b, p)).equals(data), `${p} byte for byte`);
  }
  t.same((await b.xattrs.listxattr(ino)).sort(), ['user.reel', 'user.scene'], 'the second mount sees the attributes as left');
  t.same((await b.xattrs.getxattr(ino, 'user.scene')).toString(), '14');
  const notes = await b.resolve('media/notes.txt');
  t.same(await b.xattrs.listxattr(notes.ino), ['user.keep'], 'the offline file\'s attributes arrived with it');
  t.same((await b.xattrs.getxattr(notes.ino, 'user.keep')).toString(), 'y');
  await a.unlink(dir, 'clip-link.mov');
  await a.journal.flush();
  const c = await mountVfs(t, shared, 'c');
  t.equal((await c.resolve('media/clip.mov')).nlink, 2, 'an unlink of one name arrives too');
});

t.test('RENAME_EXCHANGE swaps two names locally, offline too, and the service ends up the same', async (t) => {
  const shared = await sharedFilespace(t);
  const sw = new Switch(shared.engine);
  const a = await mountVfs(t, shared, 'a', { meta: sw.meta, attrTtlMs: 60_000 });
  await a.reserveInodes();
  const left = (await a.mkdir(ROOT_INO, 'left', 0o755, ME)).ino;
  const right = (await a.mkdir(ROOT_INO, 'right', 0o755, ME)).ino;
  const one = randomBytes(3000);
  const two = randomBytes(4000);
  const file = await writeFile(a, left, 'cut.edl', one);
  const sub = (await a.mkdir(right, 'cut.edl', 0o755, ME)).ino;
  await writeFile(a, sub, 'inside', two);
  await a.rename(left, 'cut.edl', right, 'cut.edl', { exchange: true });
  t.equal((await a.resolve('left/cut.edl')).ino, sub, 'the folder is on the left');
  t.ok((await readPath(a, 'right/cut.edl')).equals(one), 'the file on the right, byte for byte');
  t.equal((await a.resolve('left')).nlink, 3, 'the left folder gained the moved folder\'s ".."');
  await t.rejects(a.rename(left, 'cut.edl', right, 'nothing', { exchange: true }), { code: 'NoEntry' }, 'both names must exist');
  await a.journal.flush();
  sw.down = true;
  await a.rename(right, 'cut.edl', left, 'cut.edl', { exchange: true });
  t.equal((await a.resolve('left/cut.edl')).ino, file, 'offline, swapped back');
  t.equal((await a.resolve('right/cut.edl')).ino, sub);
  sw.down = false;
  await a.journal.flush();
  await a.uploader.flushAll();
  const b = await mountVfs(t, shared, 'b');
  t.ok((await readPath(b, 'left/cut.edl')).equals(one), 'the second mount reads the file where it ended');
  t.ok((await readPath(b, 'right/cut.edl/inside')).equals(two), 'and the folder with its contents');
  t.equal((await b.resolve('right')).nlink, 3);
  t.equal((await b.resolve('left')).nlink, 2);
});
