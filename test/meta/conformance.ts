/**
 * The MetaEngine conformance suite: every engine (SQLite, PostgreSQL) and the service's
 * HTTP client run exactly these checks. Names here are stand-ins (hash = SHA-256 of the
 * name, enc = the name's bytes); the engine treats both as opaque.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import {
  EntryExistsError, InvalidArgumentError, IsDirectoryError, NoAttributeError, NoEntryError, NotDirectoryError,
  NotEmptyError, NotPermittedError, OutOfRangeError, VersionConflictError,
} from '../../src/errors.js';
import { ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type EntryName, type MetaEngine } from '../../src/meta/types.js';

export const BLOCK = 65536;
export const nm = (name: string): EntryName => ({ hash: createHash('sha256').update(name).digest(), enc: Buffer.from(`enc:${name}`) });
const h = (name: string) => nm(name).hash;
const oid = () => randomBytes(16).toString('hex');
const file = { mode: S_IFREG | 0o644, uid: 1000, gid: 1000 };
const dir = { mode: S_IFDIR | 0o755, uid: 1000, gid: 1000 };

export interface MetaFixture {
  engine: MetaEngine;
  close(): Promise<void>;
}

export function metaConformance(t: Test, name: string, open: () => Promise<MetaFixture>): void {
  t.test(`${name}: MetaEngine conformance`, async (t) => {
    const fx = await open();
    t.teardown(() => fx.close());
    const e = fx.engine;
    let n = 0;
    /** A fresh directory under the root for each test. */
    const scratch = async () => (await e.create(ROOT_INO, nm(`t${n++}-${randomBytes(4).toString('hex')}`), dir)).ino;

    t.test('root exists and info reports it', async (t) => {
      const root = await e.getAttr(ROOT_INO);
      t.equal(root.mode & S_IFMT, S_IFDIR);
      const info = await e.info();
      t.equal(info.blockSize, BLOCK);
      t.ok(info.csn >= 1);
      t.ok(info.inodes >= 1);
    });

    t.test('create, lookup, getAttr and the errors around them', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('a.txt'), file);
      t.equal(a.mode, S_IFREG | 0o644);
      t.equal(a.nlink, 1);
      t.equal(a.size, 0);
      t.equal(a.uid, 1000);
      t.same(await e.lookup(d, h('a.txt')), { ...a, hasXattrs: false });
      t.same(await e.getAttr(a.ino), { ...a, hasXattrs: false });
      await t.rejects(e.create(d, nm('a.txt'), file), EntryExistsError);
      await t.rejects(e.create(a.ino, nm('x'), file), NotDirectoryError);
      await t.rejects(e.create(999_999, nm('x'), file), NoEntryError);
      await t.rejects(e.lookup(d, h('missing')), NoEntryError);
      await t.rejects(e.lookup(a.ino, h('x')), NotDirectoryError);
      await t.rejects(e.getAttr(999_999), NoEntryError);
      await t.rejects(e.create(d, { hash: Buffer.alloc(5), enc: Buffer.from('x') }, file), InvalidArgumentError, 'short hash');
      await t.rejects(e.create(d, nm('nomode'), { mode: 0o644, uid: 0, gid: 0 }), InvalidArgumentError, 'mode without a type');
      const sub = await e.create(d, nm('sub'), dir);
      t.equal(sub.nlink, 2);
      t.equal((await e.getAttr(d)).nlink, 3, 'parent gains a link per subdirectory');
    });

    t.test('readdir pages through many entries with stable cursors', async (t) => {
      const d = await scratch();
      const names = Array.from({ length: 2500 }, (_, i) => `file-${i}`);
      for (let i = 0; i < names.length; i += 250) await Promise.all(names.slice(i, i + 250).map((x) => e.create(d, nm(x), file)));
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await e.readdir(d, { cursor, limit: 700, plus: pages % 2 === 0 });
        for (const ent of page.entries) {
          seen.push(ent.enc.toString().slice(4));
          if (pages % 2 === 0) t.equal(ent.attr?.ino, ent.ino);
        }
        cursor = page.cursor;
        pages++;
      } while (cursor);
      t.equal(pages, 4);
      t.same(seen.sort(), [...names].sort(), 'every entry exactly once');
      await t.rejects(e.readdir((await e.lookup(d, h('file-1'))).ino), NotDirectoryError);
    });

    t.test('readdir with until lists one range of the hash space, paged', async (t) => {
      const d = await scratch();
      const names = Array.from({ length: 300 }, (_, i) => `r-${i}`);
      await Promise.all(names.map((x) => e.create(d, nm(x), file)));
      const all = (await e.readdir(d, { limit: 1000 })).entries.map((x) => x.hash.toString('hex'));
      t.equal(all.length, 300);
      const cut = all[120];
      const lower: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await e.readdir(d, { cursor, until: cut, limit: 50, plus: true });
        lower.push(...page.entries.map((x) => x.hash.toString('hex')));
        cursor = page.cursor;
      } while (cursor);
      t.same(lower, all.slice(0, 121), 'up to and including the bound, in order, across pages');
      const upper = await e.readdir(d, { cursor: cut, until: all[200], limit: 1000 });
      t.same(upper.entries.map((x) => x.hash.toString('hex')), all.slice(121, 201), 'a range between two hashes');
      t.equal(upper.cursor, undefined, 'a range read whole has no cursor');
      await t.rejects(e.readdir(d, { until: 'zz' }), InvalidArgumentError, 'a bound that is not a hash');
    });

    t.test('readdir plus brings each file\'s first block ref when asked', async (t) => {
      const d = await scratch();
      const small = await e.create(d, nm('small'), file);
      const big = await e.create(d, nm('big'), file);
      await e.create(d, nm('empty'), file);
      await e.create(d, nm('sub'), dir);
      const first = oid();
      await e.commitBlocks(small.ino, [{ index: 0, objectId: first, length: 1234 }], { minSize: 1234 });
      await e.commitBlocks(big.ino, [{ index: 0, objectId: oid(), length: BLOCK }, { index: 1, objectId: oid(), length: 10 }], { minSize: BLOCK + 10 });
      const page = await e.readdir(d, { plus: true, firstBlock: true });
      const by = new Map(page.entries.map((x) => [x.enc.toString().slice(4), x]));
      t.same(by.get('small')?.first, { index: 0, objectId: first, length: 1234 });
      t.equal(by.get('big')?.first?.index, 0);
      t.equal(by.get('empty')?.first, undefined, 'a file with no blocks has none');
      t.equal(by.get('sub')?.first, undefined, 'nor a folder');
      t.equal((await e.readdir(d, { plus: true })).entries.find((x) => x.first), undefined, 'not unless asked');
    });

    t.test('hard links count, unlink leaves an orphan until reclaim', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('a'), file);
      const linked = await e.link(a.ino, d, nm('b'));
      t.equal(linked.nlink, 2);
      t.equal((await e.lookup(d, h('b'))).ino, a.ino);
      await t.rejects(e.link(a.ino, d, nm('b')), EntryExistsError);
      await t.rejects(e.link(d, d, nm('dirlink')), NotPermittedError);
      t.equal((await e.unlink(d, h('a'))).nlink, 1);
      const after = await e.unlink(d, h('b'));
      t.equal(after.nlink, 0);
      t.equal((await e.getAttr(a.ino)).nlink, 0, 'an orphan is still there for open handles');
      await e.reclaim(a.ino);
      await t.rejects(e.getAttr(a.ino), NoEntryError);
      await t.rejects(e.unlink(d, h('a')), NoEntryError);
      const sub = await e.create(d, nm('sub'), dir);
      await t.rejects(e.unlink(d, h('sub')), IsDirectoryError);
      t.equal((await e.getAttr(sub.ino)).nlink, 2);
    });

    t.test('rmdir only removes empty directories', async (t) => {
      const d = await scratch();
      const sub = await e.create(d, nm('sub'), dir);
      await e.create(sub.ino, nm('inner'), file);
      await e.create(d, nm('f'), file);
      await t.rejects(e.rmdir(d, h('sub')), NotEmptyError);
      await t.rejects(e.rmdir(d, h('f')), NotDirectoryError);
      await e.unlink(sub.ino, h('inner'));
      t.equal((await e.getAttr(d)).nlink, 3);
      await e.rmdir(d, h('sub'));
      t.equal((await e.getAttr(d)).nlink, 2);
      await t.rejects(e.getAttr(sub.ino), NoEntryError);
      await t.rejects(e.rmdir(d, h('sub')), NoEntryError);
    });

    t.test('rename: move, replace, and every refusal POSIX makes', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('a'), file);
      t.equal(await e.rename(d, h('a'), d, nm('b')), undefined, 'plain rename replaces nothing');
      t.equal((await e.lookup(d, h('b'))).ino, a.ino);
      await t.rejects(e.lookup(d, h('a')), NoEntryError);

      const c = await e.create(d, nm('c'), file);
      const replaced = await e.rename(d, h('b'), d, nm('c'));
      t.equal(replaced?.ino, c.ino, 'reports the replaced inode');
      t.equal(replaced?.nlink, 0);
      t.equal((await e.lookup(d, h('c'))).ino, a.ino);

      const x = await e.create(d, nm('x'), dir);
      const y = await e.create(d, nm('y'), dir);
      await e.create(y.ino, nm('inside'), file);
      await t.rejects(e.rename(d, h('x'), d, nm('y')), NotEmptyError, 'onto a non-empty directory');
      await t.rejects(e.rename(d, h('c'), d, nm('x')), IsDirectoryError, 'a file onto a directory');
      await t.rejects(e.rename(d, h('x'), d, nm('c')), NotDirectoryError, 'a directory onto a file');
      await t.rejects(e.rename(d, h('y'), y.ino, nm('loop')), InvalidArgumentError, 'into itself');
      const deep = await e.create(y.ino, nm('deep'), dir);
      await t.rejects(e.rename(d, h('y'), deep.ino, nm('loop')), InvalidArgumentError, 'into its subdirectory');
      await t.rejects(e.rename(d, h('c'), d, nm('x'), { noReplace: true }), EntryExistsError);
      await t.rejects(e.rename(d, h('nothing'), d, nm('z')), NoEntryError);

      const empty = await e.create(d, nm('empty'), dir);
      const before = (await e.getAttr(d)).nlink;
      const gone = await e.rename(d, h('x'), d, nm('empty'));
      t.equal(gone?.ino, empty.ino, 'replaces an empty directory');
      await t.rejects(e.getAttr(empty.ino), NoEntryError);
      t.equal((await e.getAttr(d)).nlink, before - 1);

      const other = await scratch();
      const otherLinks = (await e.getAttr(other)).nlink;
      await e.rename(d, h('empty'), other, nm('moved'));
      t.equal((await e.lookup(other, h('moved'))).ino, x.ino, 'across directories');
      t.equal((await e.getAttr(other)).nlink, otherLinks + 1);
      t.equal((await e.getAttr(d)).nlink, before - 2);

      await e.link(a.ino, d, nm('alias'));
      t.equal(await e.rename(d, h('c'), d, nm('alias')), undefined, 'two links to one inode: nothing happens');
      t.equal((await e.getAttr(a.ino)).nlink, 2);
      t.ok(await e.lookup(d, h('c')));
    });

    t.test('rename with exchange: the two names swap what they hold, folders take their links along', async (t) => {
      const d = await scratch();
      const other = await scratch();
      const f = await e.create(d, nm('f'), file);
      const sub = await e.create(other, nm('sub'), dir);
      const [dBefore, oBefore] = [(await e.getAttr(d)).nlink, (await e.getAttr(other)).nlink];
      t.equal(await e.rename(d, h('f'), other, nm('sub'), { exchange: true }), undefined, 'nothing is replaced');
      t.equal((await e.lookup(d, h('f'))).ino, sub.ino, 'the folder is under the file\'s name');
      t.equal((await e.lookup(other, h('sub'))).ino, f.ino, 'the file under the folder\'s name');
      t.equal((await e.getAttr(d)).nlink, dBefore + 1, 'the folder\'s ".." moved to its new parent');
      t.equal((await e.getAttr(other)).nlink, oBefore - 1);
      const listed = (await e.readdir(d)).entries.find((x) => x.hash.equals(h('f')));
      t.same(listed?.enc, nm('f').enc, 'each name keeps its own sealed form');
      await t.rejects(e.rename(d, h('f'), other, nm('absent'), { exchange: true }), NoEntryError, 'both names must exist');
      await t.rejects(e.rename(d, h('f'), sub.ino, nm('x'), { exchange: true }), NoEntryError);
      const inner = await e.create(sub.ino, nm('inner'), dir);
      await t.rejects(e.rename(d, h('f'), sub.ino, nm('inner'), { exchange: true }), InvalidArgumentError, 'a folder into itself');
      t.equal((await e.lookup(sub.ino, h('inner'))).ino, inner.ino, 'a refusal changes nothing');
      await t.rejects(e.rename(d, h('f'), other, nm('sub'), { exchange: true, noReplace: true }), InvalidArgumentError, 'not with NOREPLACE');
      const res = await e.applyBatch([{ op: 'rename', parent: d, hash: h('f'), newParent: other, newName: nm('sub'), exchange: true, expectIno: sub.ino, replaces: f.ino }]);
      t.equal(res.failed, undefined, 'in a batch, with both inodes expected');
      t.equal((await e.lookup(d, h('f'))).ino, f.ino, 'and swapped back');
      const refused = await e.applyBatch([{ op: 'rename', parent: d, hash: h('f'), newParent: other, newName: nm('sub'), exchange: true, expectIno: f.ino, replaces: f.ino }]);
      t.equal(refused.failed?.code, 'VersionConflict', 'the second name no longer holds the inode seen: refused');
    });

    t.test('setAttr changes what it is asked to, and checks versions', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('a'), file);
      const b = await e.setAttr(a.ino, { mode: 0o600, uid: 7, gid: 8, atimeMs: 1000, mtimeMs: 2000 });
      t.equal(b.mode, S_IFREG | 0o600, 'type bits kept');
      t.equal(b.uid, 7);
      t.equal(b.gid, 8);
      t.equal(b.atimeMs, 1000);
      t.equal(b.mtimeMs, 2000);
      t.ok(b.version > a.version);
      await t.rejects(e.setAttr(a.ino, { mode: 0o644 }, { expectVersion: a.version }), VersionConflictError);
      const c = await e.setAttr(a.ino, { mode: 0o644 }, { expectVersion: b.version });
      t.equal(c.mode, S_IFREG | 0o644);
      await t.rejects(e.setAttr(d, { size: 10 }), IsDirectoryError);
      await t.rejects(e.setAttr(a.ino, { size: -1 }), InvalidArgumentError);
    });

    t.test('block map: commit, read back, truncate, version checks', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('data'), file);
      const refs = [0, 1, 2, 3].map((index) => ({ index, objectId: oid(), length: BLOCK }));
      const after = await e.commitBlocks(a.ino, refs, { minSize: 4 * BLOCK, expectVersion: a.version });
      t.equal(after.size, 4 * BLOCK);
      t.same(await e.getBlocks(a.ino, 0, 10), refs);
      t.same(await e.getBlocks(a.ino, 1, 2), refs.slice(1, 3));
      t.same((await e.lookup(d, h('data'), { blocks: 2 })).blocks, refs.slice(0, 2), 'a lookup can bring the first block refs');
      t.equal((await e.lookup(d, h('data'))).blocks, undefined, '… only when asked');
      await e.create(d, nm('sub'), dir);
      t.equal((await e.lookup(d, h('sub'), { blocks: 2 })).blocks, undefined, 'never for a folder');
      await t.rejects(e.commitBlocks(a.ino, [{ index: 0, objectId: oid(), length: 1 }], { expectVersion: a.version }), VersionConflictError);
      await t.rejects(e.commitBlocks(a.ino, [{ index: 0, objectId: 'nothex', length: 1 }]), InvalidArgumentError);
      await t.rejects(e.commitBlocks(a.ino, [{ index: 0, objectId: oid(), length: BLOCK + 1 }]), InvalidArgumentError);
      await t.rejects(e.commitBlocks(d, [{ index: 0, objectId: oid(), length: 1 }]), IsDirectoryError);

      const replacement = { index: 1, objectId: oid(), length: BLOCK };
      const grown = await e.commitBlocks(a.ino, [replacement], { minSize: 10 });
      t.equal(grown.size, 4 * BLOCK, 'minSize never shrinks');
      t.same((await e.getBlocks(a.ino, 1, 1))[0], replacement, 'a new object replaces the entry');

      const cut = await e.setAttr(a.ino, { size: BLOCK + 100 });
      t.equal(cut.size, BLOCK + 100);
      const left = await e.getBlocks(a.ino, 0, 10);
      t.same(left.map((r) => [r.index, r.length]), [[0, BLOCK], [1, 100]], 'blocks past the end dropped, the last shortened');
      t.equal(left[1].objectId, replacement.objectId, 'shortening keeps the object');
      const regrown = await e.setAttr(a.ino, { size: 3 * BLOCK });
      t.equal(regrown.size, 3 * BLOCK);
      t.same((await e.getBlocks(a.ino, 0, 10)).map((r) => r.length), [BLOCK, 100], 'growing adds holes, not old bytes');
    });

    t.test('reads as of an earlier CSN see the earlier state', async (t) => {
      const d = await scratch();
      const a = await e.create(d, nm('v'), file);
      const r1 = { index: 0, objectId: oid(), length: 10 };
      await e.commitBlocks(a.ino, [r1], { minSize: 10 });
      const at1 = (await e.info()).csn;
      await e.commitBlocks(a.ino, [{ index: 0, objectId: oid(), length: 20 }], { minSize: 20 });
      await e.rename(d, h('v'), d, nm('renamed'));
      await e.create(d, nm('later'), file);
      await e.setAttr(a.ino, { mode: 0o600 });
      t.same(await e.getBlocks(a.ino, 0, 1, { asOf: at1 }), [r1], 'old block map');
      t.equal((await e.getAttr(a.ino, { asOf: at1 })).size, 10, 'old size');
      t.equal((await e.getAttr(a.ino, { asOf: at1 })).mode, S_IFREG | 0o644, 'old mode');
      t.equal((await e.lookup(d, h('v'), { asOf: at1 })).ino, a.ino, 'old name');
      await t.rejects(e.lookup(d, h('renamed'), { asOf: at1 }), NoEntryError, 'new name absent then');
      const old = await e.readdir(d, { asOf: at1, plus: true });
      t.same(old.entries.map((x) => x.enc.toString()), ['enc:v']);
      t.equal(old.entries[0].attr?.size, 10);
      await e.unlink(d, h('renamed'));
      await e.reclaim(a.ino);
      t.same(await e.getBlocks(a.ino, 0, 1, { asOf: at1 }), [r1], 'still readable as of then after delete');
      await t.rejects(e.getAttr(a.ino), NoEntryError);
    });

    t.test('symlinks and xattrs', async (t) => {
      const d = await scratch();
      const target = Buffer.from('sealed-target-bytes');
      const l = await e.create(d, nm('link'), { mode: S_IFLNK | 0o777, uid: 0, gid: 0, target });
      t.ok((await e.readlink(l.ino)).equals(target));
      const f = await e.create(d, nm('f'), file);
      await t.rejects(e.readlink(f.ino), InvalidArgumentError);
      const x = { hash: h('user.a'), nameEnc: Buffer.from('n'), valueEnc: Buffer.from('v1') };
      t.equal(f.hasXattrs, false, 'a new inode\'s attributes say it has no xattrs');
      t.equal((await e.getAttr(f.ino)).hasXattrs, false, 'attributes say when there are no xattrs');
      await e.setXattr(f.ino, x, { create: true });
      t.equal((await e.getAttr(f.ino)).hasXattrs, true, '… and when there are');
      t.equal((await e.setAttr(f.ino, { mode: S_IFREG | 0o600 })).hasXattrs, true, 'so do the attributes a change returns');
      t.equal((await e.readdir(d, { plus: true })).entries.find((en) => en.ino === f.ino)?.attr?.hasXattrs, true, 'readdir plus carries the flag');
      await t.rejects(e.setXattr(f.ino, x, { create: true }), EntryExistsError);
      await t.rejects(e.setXattr(f.ino, { ...x, hash: h('user.b') }, { replace: true }), NoAttributeError);
      await e.setXattr(f.ino, { ...x, valueEnc: Buffer.from('v2') }, { replace: true });
      t.equal((await e.getXattr(f.ino, x.hash)).valueEnc.toString(), 'v2');
      await e.setXattr(f.ino, { hash: h('user.b'), nameEnc: Buffer.from('m'), valueEnc: Buffer.alloc(0) });
      t.equal((await e.listXattr(f.ino)).length, 2);
      await e.removeXattr(f.ino, x.hash);
      await t.rejects(e.getXattr(f.ino, x.hash), NoAttributeError);
      await t.rejects(e.removeXattr(f.ino, x.hash), NoAttributeError);
      t.equal((await e.listXattr(f.ino)).length, 1);
      await e.removeXattr(f.ino, h('user.b'));
      t.equal((await e.setAttr(f.ino, { mode: S_IFREG | 0o644 })).hasXattrs, false, 'the last one removed: a change says none');
    });

    t.test('snapshots: create, list, delete; restore a file and a folder in place', async (t) => {
      const d = await scratch();
      const f = await e.create(d, nm('cut.edl'), file);
      const v1 = [{ index: 0, objectId: oid(), length: 100 }];
      await e.commitBlocks(f.ino, v1, { minSize: 100 });
      const folder = await e.create(d, nm('shots'), dir);
      const inner = await e.create(folder.ino, nm('a.mov'), file);
      const innerRefs = [{ index: 0, objectId: oid(), length: 7 }];
      await e.commitBlocks(inner.ino, innerRefs, { minSize: 7 });
      await e.setXattr(inner.ino, { hash: h('user.tag'), nameEnc: Buffer.from('n'), valueEnc: Buffer.from('keep') });
      const snap = await e.createSnapshot('before the mistake');
      t.match(snap, { name: 'before the mistake' });
      t.ok(snap.id >= 1 && snap.csn >= 1);
      t.ok((await e.listSnapshots()).some((s) => s.id === snap.id && s.csn === snap.csn), 'listed');

      // The mistakes: an overwrite and a truncate of the file, the folder renamed away and
      // changed, an entry created since.
      await e.commitBlocks(f.ino, [{ index: 0, objectId: oid(), length: 50 }, { index: 1, objectId: oid(), length: 10 }], { minSize: BLOCK + 10 });
      await e.setAttr(f.ino, { mode: 0o600 });
      const elsewhere = await e.create(d, nm('elsewhere'), dir);
      await e.rename(d, h('shots'), elsewhere.ino, nm('moved'));
      await e.unlink(folder.ino, h('a.mov'));
      await e.reclaim(inner.ino);
      await e.create(folder.ino, nm('new since'), file);

      const rf = await e.restore(snap.id, d, h('cut.edl'));
      t.equal(rf.restored, 1, 'one inode restored');
      t.ok(rf.inos.includes(f.ino), 'the feed names it');
      t.same(await e.getBlocks(f.ino, 0, 10), v1, 'the file’s block map is back');
      t.match(await e.getAttr(f.ino), { size: 100, mode: S_IFREG | 0o644 }, 'and its attributes');

      const rd = await e.restore(snap.id, d, h('shots'));
      t.equal(rd.restored, 2, 'the folder and its file');
      t.equal((await e.lookup(d, h('shots'))).ino, folder.ino, 'the folder is back under its name');
      await t.rejects(e.lookup(elsewhere.ino, h('moved')), NoEntryError, 'and no longer where it was moved');
      const names = (await e.readdir(folder.ino)).entries.map((x) => x.enc.toString());
      t.same(names, ['enc:a.mov'], 'the deleted entry is back, the one created since is gone');
      t.same(await e.getBlocks(inner.ino, 0, 10), innerRefs, 'the deleted file’s blocks are back');
      t.equal((await e.getXattr(inner.ino, h('user.tag'))).valueEnc.toString(), 'keep', 'and its xattrs');
      t.equal((await e.getAttr(inner.ino)).nlink, 1);

      await t.rejects(e.restore(snap.id, d, h('elsewhere')), NoEntryError, 'an entry the snapshot does not have');
      await t.rejects(e.restore(9999, d, h('shots')), NoEntryError, 'a snapshot that does not exist');
      await e.deleteSnapshot(snap.id);
      t.notOk((await e.listSnapshots()).some((s) => s.id === snap.id), 'deleted');
      await t.rejects(e.deleteSnapshot(snap.id), NoEntryError);
      const next = await e.createSnapshot();
      t.ok(next.id > snap.id, 'ids are never reused');
      await e.create(d, nm('late'), file);
      await e.unlink(d, h('cut.edl'));
      const all = await e.restore(next.id, 0, Buffer.alloc(32));
      t.ok(all.restored > 3, 'the whole filespace (parent 0)');
      await t.rejects(e.lookup(d, h('late')), NoEntryError, 'what came since is gone');
      t.equal((await e.lookup(d, h('cut.edl'))).ino, f.ino, 'what went since is back');
      await e.deleteSnapshot(next.id);
    });

    t.test('snapshot schedules: defaults, due times, keep, one taker among racers', async (t) => {
      const defaults = await e.listSchedules();
      t.same(defaults.map((s) => [s.name, s.keep]), [['every-15m', 4], ['hourly', 6], ['daily', 7], ['weekly', 4]], 'a new filespace has the default schedules');
      await e.deleteSchedule('weekly');
      t.notOk((await e.listSchedules()).some((s) => s.name === 'weekly'), 'defaults can be removed');
      await t.rejects(e.deleteSchedule('weekly'), NoEntryError);
      await e.createSchedule('test', 1000, 2);
      await t.rejects(e.createSchedule('test', 1000, 2), EntryExistsError);
      await t.rejects(e.createSchedule('bad name!', 1000, 2), InvalidArgumentError);
      await t.rejects(e.createSchedule('fast', 10, 2), InvalidArgumentError, 'at least a second apart');
      const t0 = Date.now();
      const mine = async () => (await e.listSnapshots()).filter((s) => s.schedule === 'test');
      t.equal((await e.runSchedules(t0)).filter((s) => s.schedule === 'test').length, 1, 'due at once (never ran)');
      t.equal((await e.runSchedules(t0 + 500)).filter((s) => s.schedule === 'test').length, 0, 'not due again within its interval');
      await e.runSchedules(t0 + 1000);
      await e.runSchedules(t0 + 2000);
      const kept = await mine();
      t.equal(kept.length, 2, 'only the newest `keep` are kept');
      t.ok(kept.every((s) => s.name.startsWith('test ')), 'named after the schedule');
      const racing = await Promise.all([e.runSchedules(t0 + 3000), e.runSchedules(t0 + 3000), e.runSchedules(t0 + 3000)]);
      t.equal(racing.flat().filter((s) => s.schedule === 'test').length, 1, 'three racers, one snapshot');
      await e.deleteSchedule('test');
      for (const s of await mine()) await e.deleteSnapshot(s.id);
      for (const s of (await e.listSnapshots()).filter((x) => x.schedule)) await e.deleteSnapshot(s.id);
    });

    t.test('namesOf: the entries naming an inode, live and as of a commit', async (t) => {
      const d = await scratch();
      const other = await scratch();
      const f = await e.create(d, nm('linked'), file);
      const before = (await e.info()).csn;
      await e.link(f.ino, other, nm('second'));
      const names = await e.namesOf(f.ino);
      t.same(names.map((x) => [x.parent, x.enc.toString()]).sort(), [[d, 'enc:linked'], [other, 'enc:second']].sort(), 'both names, with their folders');
      t.same((await e.namesOf(f.ino, { asOf: before })).map((x) => x.parent), [d], 'as of before the link: one');
      t.same(await e.namesOf(ROOT_INO), [], 'the root has none');
      await e.unlink(d, h('linked'));
      t.same((await e.namesOf(f.ino)).map((x) => x.parent), [other]);
    });

    t.test('info keeps the live totals through every change (no scan)', async (t) => {
      const d = await scratch();
      const before = await e.info();
      const f = await e.create(d, nm('sized'), file);
      await e.commitBlocks(f.ino, [{ index: 0, objectId: oid(), length: 5000 }], { minSize: 5000 });
      await e.create(d, nm('sub'), dir);
      let now = await e.info();
      t.same([now.inodes - before.inodes, now.bytes - before.bytes], [2, 5000], 'a file of 5 000 bytes and a folder');
      await e.setAttr(f.ino, { size: 100 });
      now = await e.info();
      t.equal(now.bytes - before.bytes, 100, 'a truncate');
      const snap = await e.createSnapshot('totals');
      await e.unlink(d, h('sized'));
      await e.reclaim(f.ino);
      now = await e.info();
      t.same([now.inodes - before.inodes, now.bytes - before.bytes], [1, 0], 'the file went');
      await e.restore(snap.id, d, h('sized'));
      now = await e.info();
      t.same([now.inodes - before.inodes, now.bytes - before.bytes], [2, 100], 'a restore brings it back');
      const r = await e.applyBatch([{ op: 'create', parent: d, name: nm('b1'), node: file }, { op: 'unlink', parent: d, hash: h('b1') }]);
      t.notOk(r.failed);
      now = await e.info();
      t.equal(now.inodes - before.inodes, 3, 'a batch counts too (an unlinked inode lives until reclaimed)');
      await e.deleteSnapshot(snap.id);
    });

    t.test('every mutation gets the next CSN, and the feed names what changed', async (t) => {
      const d = await scratch();
      const start = (await e.info()).csn;
      const a = await e.create(d, nm('a'), file);
      await e.setAttr(a.ino, { mode: 0o600 });
      await e.unlink(d, h('a'));
      const page = await e.changesSince(start);
      t.same(page.commits.map((c) => c.csn), [start + 1, start + 2, start + 3]);
      t.same(page.commits[0].inos, [d, a.ino].sort((x, y) => x - y));
      t.same(page.commits[1].inos, [a.ino]);
      t.equal(page.csn, start + 3);
      t.same((await e.changesSince(start, 1)).commits.length, 1, 'limit');
      await t.rejects(e.setAttr(a.ino, {}, { expectVersion: 1 }), VersionConflictError);
      t.equal((await e.info()).csn, start + 3, 'a failed mutation takes no CSN');
    });

    t.test('concurrent creates all land with distinct inodes', async (t) => {
      const d = await scratch();
      const made = await Promise.all(Array.from({ length: 64 }, (_, i) => e.create(d, nm(`c${i}`), file)));
      t.equal(new Set(made.map((a) => a.ino)).size, 64);
      const racers = await Promise.allSettled(Array.from({ length: 8 }, () => e.create(d, nm('same'), file)));
      t.equal(racers.filter((r) => r.status === 'fulfilled').length, 1, 'one wins a name race');
    });

    t.test('reserved inode numbers: create with one is idempotent, and no one else gets it', async (t) => {
      const d = await scratch();
      const r = await e.reserveInodes(10);
      t.equal(r.count, 10);
      const other = await e.create(d, nm('plain'), file);
      t.ok(other.ino < r.first || other.ino >= r.first + r.count, `an ordinary create (${other.ino}) gets none of the reserved ${r.first}…${r.first + 9}`);
      const before = (await e.info()).csn;
      const made = await e.create(d, nm('mine'), { ...file, ino: r.first + 3 });
      t.equal(made.ino, r.first + 3, 'the reserved number is the inode');
      const again = await e.create(d, nm('mine'), { ...file, ino: r.first + 3 });
      t.same([again.ino, again.version], [made.ino, made.version], 'a replay finds its own inode under the name and changes nothing');
      t.equal((await e.info()).csn, before + 1, 'one commit for both');
      await t.rejects(e.create(d, nm('mine'), { ...file, ino: r.first + 4 }), EntryExistsError, 'the name holds another inode: taken');
      await t.rejects(e.create(d, nm('dup'), { ...file, ino: r.first + 3 }), InvalidArgumentError, 'an inode number in use is refused');
      await t.rejects(e.create(d, nm('future'), { ...file, ino: r.first + 1_000_000 }), InvalidArgumentError, 'a number never reserved is refused');
      await t.rejects(e.reserveInodes(0), InvalidArgumentError);
      await t.rejects(e.reserveInodes(1001), InvalidArgumentError);
      const [x, y] = await Promise.all([e.reserveInodes(5), e.reserveInodes(5)]);
      t.ok(x.first + 5 <= y.first || y.first + 5 <= x.first, 'reservations made at once do not overlap');
    });

    t.test('batches: many changes in one call, each its own commit, stopping at the first refusal', async (t) => {
      const d = await scratch();
      const r = await e.reserveInodes(10);
      const start = (await e.info()).csn;
      const sub = r.first;
      const f = r.first + 1;
      const g = r.first + 2;
      const objectId = oid();
      const res = await e.applyBatch([
        { op: 'create', parent: d, name: nm('sub'), node: { ...dir, ino: sub } },
        { op: 'create', parent: sub, name: nm('f'), node: { ...file, ino: f } },
        { op: 'setAttr', ino: f, changes: { mode: 0o600, mtimeMs: 1_000_000 } },
        { op: 'commitBlocks', ino: f, blocks: [{ index: 0, objectId, length: 100 }], options: { minSize: 100 } },
        { op: 'setXattr', ino: f, entry: { hash: h('user.x'), nameEnc: Buffer.from('n'), valueEnc: Buffer.from('v') } },
        { op: 'create', parent: sub, name: nm('g'), node: { ...file, ino: g } },
        { op: 'rename', parent: sub, hash: h('g'), newParent: d, newName: nm('g2'), expectIno: g },
        { op: 'link', ino: f, parent: d, name: nm('f-link') },
        { op: 'unlink', parent: d, hash: h('f-link'), expectIno: f },
      ]);
      t.equal(res.failed, undefined, 'every operation applied');
      t.same(res.applied.map((a) => a.csn), Array.from({ length: 9 }, (_, i) => start + 1 + i), 'each its own commit, in order');
      t.equal(res.applied[0].value?.ino, sub, 'each result is what the call returns');
      t.equal(res.applied[3].value?.size, 100);
      t.equal(res.applied[4].value, null, 'null for a call that returns nothing');
      const fa = await e.lookup(sub, h('f'));
      t.same([fa.ino, fa.mode & 0o7777, fa.size, fa.nlink, fa.hasXattrs], [f, 0o600, 100, 1, true]);
      t.same((await e.getBlocks(f, 0, 1)).map((b) => b.objectId), [objectId]);
      t.equal((await e.lookup(d, h('g2'))).ino, g);
      await t.rejects(e.lookup(d, h('f-link')), NoEntryError);
      const page = await e.changesSince(start);
      t.same(page.commits.map((c) => c.csn), res.applied.map((a) => a.csn), 'the feed has every commit of the batch');
      t.same(page.commits[1].inos, [sub, f].sort((x, y) => x - y));

      const before = (await e.info()).csn;
      const other = await e.create(d, nm('taken'), file);
      const stop = await e.applyBatch([
        { op: 'setAttr', ino: g, changes: { mode: 0o640 } },
        { op: 'create', parent: d, name: nm('taken'), node: { ...file, ino: r.first + 3 } },
        { op: 'setAttr', ino: r.first + 3, changes: { mode: 0o600 } },
      ]);
      t.equal(stop.applied.length, 1, 'what came before the refusal applied');
      t.same(stop.failed && [stop.failed.index, stop.failed.code], [1, 'EntryExists'], 'the refusal, typed');
      t.equal((await e.getAttr(g)).mode & 0o7777, 0o640);
      t.equal((await e.lookup(d, h('taken'))).ino, other.ino, 'the other client\'s entry kept');
      await t.rejects(e.getAttr(r.first + 3), NoEntryError, 'nothing after the refusal was tried');
      t.equal((await e.info()).csn, before + 2, 'a refused operation takes no CSN');

      const replay = await e.applyBatch([{ op: 'create', parent: sub, name: nm('f'), node: { ...file, ino: f } }]);
      t.equal(replay.applied[0].value?.ino, f, 'a create replayed finds its own inode');
      const wrong = await e.applyBatch([{ op: 'unlink', parent: sub, hash: h('f'), expectIno: g }]);
      t.equal(wrong.failed?.code, 'VersionConflict', 'an unlink of a name that holds another inode is refused');
      t.equal((await e.lookup(sub, h('f'))).ino, f);
      const notMine = await e.applyBatch([{ op: 'rename', parent: d, hash: h('g2'), newParent: d, newName: nm('taken'), replaces: 999_999 }]);
      t.equal(notMine.failed?.code, 'EntryExists', 'a rename replaces only the inode it saw');
      const mine = await e.applyBatch([{ op: 'rename', parent: d, hash: h('g2'), newParent: d, newName: nm('taken'), replaces: other.ino }]);
      t.equal(mine.applied[0].value?.ino, other.ino, 'and replaces the one it saw');
      const bad = await e.applyBatch([{ op: 'setAttr', ino: f, changes: { mode: 0o644 } }, { op: 'nonsense' } as never]);
      t.same([bad.applied.length, bad.failed?.index, bad.failed?.code], [1, 1, 'InvalidArgument'], 'an unknown operation is refused in place');
      await t.rejects(e.applyBatch([]), InvalidArgumentError, 'an empty batch');
      await t.rejects(e.applyBatch(Array.from({ length: 1001 }, () => ({ op: 'reclaim', ino: f }) as const)), InvalidArgumentError, 'over 1000 operations');
    });

    t.test('a batch leaves what the same changes one call at a time leave, at every commit', async (t) => {
      // Random changes to a few names (seeded, so a failure repeats), made one call at a time
      // in folder A and as one batch in folder B: the trees must match, and B listed as of
      // each of the batch's commits has every name once, as many as A had after that step.
      let seed = 7;
      const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
      const a = await scratch();
      const b = await scratch();
      const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
      const live = new Map<string, 'file' | 'dir'>();
      const steps: { op: string; name: string; to?: string; size?: number; mode?: number }[] = [];
      for (let i = 0; i < 60; i++) {
        const name = names[rnd(names.length)]!;
        const kind = live.get(name);
        const to = names[rnd(names.length)]!;
        if (!kind) {
          const d = rnd(4) === 0;
          steps.push({ op: d ? 'mkdir' : 'create', name });
          live.set(name, d ? 'dir' : 'file');
        } else {
          const pick = rnd(kind === 'file' ? 5 : 3);
          if (pick === 0 && !live.has(to)) { steps.push({ op: 'rename', name, to }); live.delete(name); live.set(to, kind); }
          else if (pick === 1) { steps.push({ op: kind === 'dir' ? 'rmdir' : 'unlink', name }); live.delete(name); }
          else if (pick === 2) steps.push({ op: 'chmod', name, mode: 0o600 + rnd(0o100) });
          else if (pick === 3) steps.push({ op: 'size', name, size: rnd(1_000_000) });
          else steps.push({ op: rnd(2) ? 'setXattr' : 'removeXattr', name });
        }
      }
      // A model of the folder after each step (names live), to check B's history against.
      const inoIn = async (parent: number, name: string) => (await e.lookup(parent, h(name))).ino;
      const counts: number[] = [];
      const said: string[] = [];
      /** What a call answered, as far as both folders must agree (not inode numbers or times). */
      const gist = (v: unknown) => {
        const x = v as { mode?: number; size?: number; nlink?: number; hasXattrs?: boolean } | null | undefined;
        return x ? [x.mode, x.size, x.nlink, x.hasXattrs ?? null].join(' ') : 'none';
      };
      for (const st of steps) {
        let v: unknown;
        const x = { hash: h('user.k'), nameEnc: Buffer.from('k'), valueEnc: Buffer.from(st.name) };
        if (st.op === 'create') v = await e.create(a, nm(st.name), file);
        else if (st.op === 'mkdir') v = await e.create(a, nm(st.name), dir);
        else if (st.op === 'rename') v = await e.rename(a, h(st.name), a, nm(st.to!));
        else if (st.op === 'unlink') v = await e.unlink(a, h(st.name));
        else if (st.op === 'rmdir') v = await e.rmdir(a, h(st.name));
        else if (st.op === 'chmod') v = await e.setAttr(await inoIn(a, st.name), { mode: S_IFREG | st.mode! });
        else if (st.op === 'size') v = await e.setAttr(await inoIn(a, st.name), { size: st.size! });
        else if (st.op === 'setXattr') v = await e.setXattr(await inoIn(a, st.name), x);
        else {
          const ino = await inoIn(a, st.name);
          if ((await e.getAttr(ino)).hasXattrs) v = await e.removeXattr(ino, x.hash);
          else st.op = 'skip';
        }
        if (st.op === 'skip') v = await e.setAttr(await inoIn(a, st.name), {});
        said.push(gist(v));
        counts.push((await e.readdir(a)).entries.length);
      }
      // The same in B as one batch, inode numbers reserved as a mount does.
      const r = await e.reserveInodes(steps.length);
      const inoB = new Map<string, number>();
      const ops = steps.map((st, i) => {
        const x = { hash: h('user.k'), nameEnc: Buffer.from('k'), valueEnc: Buffer.from(st.name) };
        switch (st.op) {
          case 'create': case 'mkdir': inoB.set(st.name, r.first + i); return { op: 'create', parent: b, name: nm(st.name), node: { ...(st.op === 'mkdir' ? dir : file), ino: r.first + i } };
          case 'rename': inoB.set(st.to!, inoB.get(st.name)!); return { op: 'rename', parent: b, hash: h(st.name), newParent: b, newName: nm(st.to!) };
          case 'unlink': return { op: 'unlink', parent: b, hash: h(st.name) };
          case 'rmdir': return { op: 'rmdir', parent: b, hash: h(st.name) };
          case 'chmod': return { op: 'setAttr', ino: inoB.get(st.name)!, changes: { mode: S_IFREG | st.mode! } };
          case 'size': return { op: 'setAttr', ino: inoB.get(st.name)!, changes: { size: st.size! } };
          case 'setXattr': return { op: 'setXattr', ino: inoB.get(st.name)!, entry: x };
          case 'removeXattr': return { op: 'removeXattr', ino: inoB.get(st.name)!, hash: x.hash };
          default: return { op: 'setAttr', ino: inoB.get(st.name)!, changes: {} };
        }
      }) as Parameters<MetaEngine['applyBatch']>[0];
      const res = await e.applyBatch(ops);
      t.equal(res.failed, undefined, 'the batch applies whole');
      const view = async (d: number, asOf?: number) => (await e.readdir(d, { plus: true, ...(asOf === undefined ? {} : { asOf }) })).entries
        .map((x) => [x.enc.toString(), x.attr!.mode, x.attr!.size, x.attr!.nlink, x.attr!.hasXattrs ?? null].join(' ')).sort();
      t.same(res.applied.map((x) => gist(x.value)), said, 'each operation answers what its own call answered');
      t.same(await view(b), await view(a), 'the same names with the same attributes');
      t.same(((await e.getAttr(b)).nlink), (await e.getAttr(a)).nlink, 'the folders\' link counts agree');
      let bad = 0;
      for (let i = 0; i < res.applied.length; i++) {
        const listed = (await e.readdir(b, { asOf: res.applied[i]!.csn })).entries;
        if (new Set(listed.map((x) => x.hash.toString('hex'))).size !== listed.length || listed.length !== counts[i]) bad++;
      }
      t.equal(bad, 0, 'as of each commit of the batch, every name once, as many as one call at a time left');
    });

    t.test('garbage collection: replaced refs go unless a snapshot shows them or they were replaced after the cut-off', async (t) => {
      const pause = () => new Promise((r) => setTimeout(r, 5));
      const d = await scratch();
      const f = await e.create(d, nm('gc'), file);
      const [a, b, c] = [oid(), oid(), oid()];
      await e.commitBlocks(f.ino, [{ index: 0, objectId: a, length: 10 }]);
      const snap = await e.createSnapshot('gc');
      await e.commitBlocks(f.ino, [{ index: 0, objectId: b, length: 10 }]);
      await pause();
      const between = Date.now();
      await pause();
      await e.commitBlocks(f.ino, [{ index: 0, objectId: c, length: 10 }]);
      await pause();
      const now = Date.now();
      t.same(await e.retainedObjects([a, b, c, oid()], now), [a, c], 'a is in the snapshot, c is live, b is in neither');
      t.same(await e.retainedObjects([a, b, c], between), [a, b, c], 'b was replaced after that cut-off: kept');
      const dry = await e.pruneVersions(now, { dryRun: true });
      t.ok(dry.rows >= 1, `a dry run finds versions to prune (${dry.rows})`);
      t.equal((await e.pruneVersions(now)).rows, dry.rows, 'the real run removes what the dry run counted');
      t.equal((await e.pruneVersions(now, { dryRun: true })).rows, 0, 'nothing is left to prune');
      t.same(await e.getBlocks(f.ino, 0, 1, { asOf: snap.csn }), [{ index: 0, objectId: a, length: 10 }], 'the snapshot still reads as it was');
      t.same(await e.getBlocks(f.ino, 0, 1), [{ index: 0, objectId: c, length: 10 }], 'the live tree too');
      t.same(await e.retainedObjects([a, b, c], now), [a, c], 'pruning changed nothing that is retained');
      await e.deleteSnapshot(snap.id);
      t.same(await e.retainedObjects([a, b, c], Date.now()), [c], 'with the snapshot gone, only the live ref');
      await e.unlink(d, h('gc'));
      await e.reclaim(f.ino);
      await pause();
      t.same(await e.retainedObjects([c], Date.now()), [], 'a deleted file keeps nothing');
      t.same(await e.retainedObjects([c], between), [c], 'unless it was deleted after the cut-off');
      await e.pruneVersions(Date.now());
      await t.rejects(e.getAttr(f.ino), NoEntryError, 'the deleted inode stays deleted after its versions are pruned');
      await t.rejects(e.retainedObjects(['not an id'], 0), InvalidArgumentError);
      await t.rejects(e.retainedObjects(Array.from({ length: 10_001 }, () => oid()), 0), InvalidArgumentError);
    });

    // Last: it prunes everything up to now, and nothing after it may lean on older history.
    t.test('listing changes since a page: made, moved in, changed, renamed, removed; refused once pruned', async (t) => {
      const d = await scratch();
      const other = await scratch();
      for (const x of ['a', 'b', 'c', 'keep']) await e.create(d, nm(x), file);
      const moved = await e.create(other, nm('x'), file);
      const first = await e.readdir(d, { plus: true });
      t.equal(first.entries.length, 4);
      const c0 = first.csn!;
      t.ok(Number.isSafeInteger(c0) && c0 >= 1, `a live page says its commit (${c0})`);
      t.equal((await e.readdir(d, { asOf: c0 })).csn, undefined, 'a page as of a commit does not');
      const none = await e.listingChanges(d, c0);
      t.same([none.entries.length, none.removed.length], [0, 0], 'nothing changed yet');
      await e.create(d, nm('new'), file);
      await e.unlink(d, h('b'));
      await e.setAttr((await e.lookup(d, h('c'))).ino, { mode: S_IFREG | 0o600 });
      await e.rename(d, h('a'), d, nm('a2'));
      await e.rename(other, h('x'), d, nm('x'));
      await e.create(other, nm('elsewhere'), file);
      const delta = await e.listingChanges(d, c0);
      const names = (xs: { enc: Buffer }[]) => xs.map((x) => x.enc.toString().slice(4)).sort();
      t.same(names(delta.entries), ['a2', 'c', 'new', 'x'], 'made, changed, renamed within, moved in');
      t.equal(delta.entries.find((x) => x.ino === moved.ino)?.attr?.ino, moved.ino, 'each with its attributes');
      t.equal(delta.entries.find((x) => x.enc.toString() === 'enc:c')?.attr?.mode, S_IFREG | 0o600, 'as they are now');
      t.same(delta.removed.map((x) => x.toString('hex')).sort(), [h('a'), h('b')].map((x) => x.toString('hex')).sort(), 'removed and renamed-away names');
      t.ok(delta.csn > c0, 'the changes say the commit they bring the listing to');
      // The kept listing with the changes applied is the listing now.
      const kept = new Map(first.entries.map((x) => [x.hash.toString('hex'), x.enc.toString()]));
      for (const r of delta.removed) kept.delete(r.toString('hex'));
      for (const x of delta.entries) kept.set(x.hash.toString('hex'), x.enc.toString());
      t.same([...kept.values()].sort(), (await e.readdir(d)).entries.map((x) => x.enc.toString()).sort(), 'applied, they give the listing now');
      t.same((await e.listingChanges(d, delta.csn)).entries, [], 'none since');
      await t.rejects(e.listingChanges(d, delta.csn + 1000), OutOfRangeError, 'a commit not made yet');
      await t.rejects(e.listingChanges((await e.lookup(d, h('c'))).ino, c0), NotDirectoryError);
      await new Promise((r) => setTimeout(r, 5));
      await e.pruneVersions(Date.now());
      await t.rejects(e.listingChanges(d, c0), OutOfRangeError, 'history pruned: the folder is listed whole');
      t.same((await e.listingChanges(d, (await e.info()).csn)).entries, [], 'changes since after the prune are answered');
    });

    t.test('the change history is pruned with the versions, back to the oldest snapshot at most; a reader from before it is refused', async (t) => {
      const pause = () => new Promise((r) => setTimeout(r, 5));
      for (const s of await e.listSnapshots()) await e.deleteSnapshot(s.id);
      const d = await scratch();
      await e.create(d, nm('h1'), file);
      const c1 = (await e.info()).csn;
      const snap = await e.createSnapshot('history');
      await e.create(d, nm('h2'), file);
      const c2 = (await e.info()).csn;
      await pause();
      const dry = await e.pruneVersions(Date.now(), { dryRun: true });
      t.equal((await e.pruneVersions(Date.now())).rows, dry.rows, 'the dry run counts the history rows too');
      t.equal((await e.info()).historyCsn, snap.csn, 'the history starts at the oldest snapshot');
      await t.rejects(e.changesSince(c1 - 1), OutOfRangeError, 'the changes from before it are refused');
      const kept = (await e.changesSince(snap.csn)).commits;
      t.ok(kept.length >= 1 && kept.every((c) => c.csn > snap.csn), 'those after it are there');
      t.ok(kept.some((c) => c.csn === c2 && c.inos.includes(d)), 'with the inodes each changed');
      await e.deleteSnapshot(snap.id);
      await pause();
      await e.pruneVersions(Date.now());
      t.equal((await e.info()).historyCsn, c2, 'with no snapshot, the history starts at the cut-off');
      await t.rejects(e.changesSince(c2 - 1), OutOfRangeError);
      t.same((await e.changesSince(c2)).commits, [], 'and is answered from there');
      await e.create(d, nm('h3'), file);
      t.same((await e.changesSince(c2)).commits.map((c) => c.csn), [(await e.info()).csn], 'new commits follow');
      t.equal((await e.pruneVersions(Date.now() - 60_000, { dryRun: true })).rows, 0, 'an older cut-off finds nothing more');
    });
  });
}
