/**
 * Changes to names made while the metadata service cannot be reached: journaled, shown by
 * the mount that made them, replayed in order when the service is back — with another client
 * changing the same folder meanwhile, a reply lost after the service applied a create, and
 * the agent restarted before the service came back, and a cache from before the journal had
 * a file of its own. Checked through a second client, byte for byte.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { SqliteJournalStore } from '../../src/fs/namespace/journal-store.js';
import Database from 'better-sqlite3';
import type { UnlockedFilespace } from '../../src/crypto/descriptor.js';
import { Filespace } from '../../src/fs/filespace.js';
import { BlockCache } from '../../src/cache/block-cache.js';
import type { Uploader } from '../../src/upload/uploader.js';
import { buildMount } from '../../src/fs/mount.js';
import type { Vfs } from '../../src/fs/vfs.js';
import { NoEntryError, ServiceUnavailableError } from '../../src/errors.js';
import { ROOT_INO, type MetaEngine } from '../../src/meta/types.js';
import type { ObjectStore } from '../../src/store/types.js';
import { readPath, sharedFilespace, Switch, writeFile } from '../helpers/shared.js';

const BS = 65536;
const ME = { uid: 0, gid: 0 };

async function mountOn(u: UnlockedFilespace, store: ObjectStore, meta: MetaEngine, cacheDir: string) {
  const fs = new Filespace(u, store, meta);
  const cache = await BlockCache.open({ dir: cacheDir, filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: 1 << 30, sealer: fs.codec });
  const lines: string[] = [];
  const vfs = buildMount(fs, cache, { log: (l) => lines.push(l), upload: { idleMs: 0, retryMs: 100 } });
  const wb = vfs.uploader;
  wb.recover();
  return { vfs, wb, cache, lines, close: async () => { vfs.journal.close(); wb.close(); await cache.close(); } };
}

const names = async (vfs: Vfs, p: string) => (await vfs.list((await vfs.resolve(p)).ino)).map((e) => e.name).sort();

async function setup(t: Test) {
  const { dir, u, store, engine } = await sharedFilespace(t, BS);
  const sw = new Switch(engine);
  const a = await mountOn(u, store, sw.meta, path.join(dir, 'cache-a'));
  const b = await mountOn(u, store, engine, path.join(dir, 'cache-b'));
  t.teardown(async () => { await a.close(); await b.close(); });
  await a.vfs.reserveInodes();
  return { dir, u, store, engine, sw, a, b };
}

/**
 * Waits until the journal is replayed and every block is committed. A replay that lost a
 * reply ends with the changes still waiting (they go again later): it is tried again here.
 */
async function settle(m: { vfs: Vfs; wb: Uploader }): Promise<void> {
  await m.vfs.journal.replay();
  for (let i = 0; i < 5 && m.vfs.journal.size > 0; i++) await m.vfs.journal.replay();
  await m.wb.flushAll();
}

t.test('offline: new folders, new files, a save by rename, a delete, chmod and a symlink — shown at once, replayed in order', async (t) => {
  const { sw, a, b } = await setup(t);
  const proj = (await a.vfs.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  const keepV1 = randomBytes(100_000);
  await writeFile(a.vfs, proj, 'edit.txt', keepV1);
  await writeFile(a.vfs, proj, 'old.txt', Buffer.from('to be deleted'));
  await settle(a);
  t.same(await names(a.vfs, 'proj'), ['edit.txt', 'old.txt'], 'A has listed the folder');

  sw.down = true;
  const big = randomBytes(5 * BS + 123);
  const v2 = randomBytes(150_000);
  await t.rejects(a.vfs.lookup(proj, 'new'), NoEntryError, 'offline, a name missing from a listed folder is ENOENT (so it can be made)');
  const dir = (await a.vfs.mkdir(proj, 'new', 0o750, ME)).ino;
  const made = await writeFile(a.vfs, dir, 'frame-0001.exr', big);
  // An editor's save: write a temporary file, rename it over the old one.
  await writeFile(a.vfs, proj, '.edit.tmp', v2);
  await a.vfs.rename(proj, '.edit.tmp', proj, 'edit.txt');
  await a.vfs.unlink(proj, 'old.txt');
  await a.vfs.setattr((await a.vfs.lookup(proj, 'edit.txt')).ino, { mode: 0o600 });
  await a.vfs.symlink(proj, 'latest', 'new/frame-0001.exr', ME);
  await t.rejects(a.vfs.rmdir(ROOT_INO, 'proj'), /not empty/, 'a folder known not to be empty stays');
  await t.rejects(a.vfs.mkdir(proj, 'new', 0o755, ME), /exists/, 'a name made offline is taken');

  t.same(await names(a.vfs, 'proj'), ['edit.txt', 'latest', 'new'], 'A shows its own changes offline');
  t.ok((await readPath(a.vfs, 'proj/new/frame-0001.exr')).equals(big), 'a file made offline reads back');
  t.ok((await readPath(a.vfs, 'proj/edit.txt')).equals(v2), 'the saved file reads back');
  t.equal((await a.vfs.getattr((await a.vfs.resolve('proj/edit.txt')).ino)).mode & 0o7777, 0o600, 'chmod shows');
  t.equal(await a.vfs.readlink((await a.vfs.resolve('proj/latest')).ino), 'new/frame-0001.exr', 'the symlink reads');
  await t.rejects(a.vfs.lookup(proj, 'old.txt'), NoEntryError, 'the deleted file is gone');
  await t.rejects(a.vfs.fsyncInode(made), ServiceUnavailableError, 'fsync says the data is not at the service yet');
  t.ok(a.vfs.journal.size >= 8, `${a.vfs.journal.size} changes journaled`);
  t.same(await names(b.vfs, 'proj'), ['edit.txt', 'old.txt'], 'the other client sees nothing yet');

  sw.down = false;
  await settle(a);
  t.equal(a.vfs.journal.size, 0, 'the journal is empty once the service is back');
  t.same(await names(b.vfs, 'proj'), ['edit.txt', 'latest', 'new'], 'the other client sees the changes');
  t.ok((await readPath(b.vfs, 'proj/new/frame-0001.exr')).equals(big), 'the file made offline arrives byte for byte');
  t.ok((await readPath(b.vfs, 'proj/edit.txt')).equals(v2), 'the save arrives byte for byte');
  const edit = await b.vfs.resolve('proj/edit.txt');
  t.equal(edit.mode & 0o7777, 0o600, 'the chmod arrives');
  t.equal((await b.vfs.resolve('proj/new')).mode & 0o7777, 0o750, 'the folder keeps its mode');
  t.equal(await b.vfs.readlink((await b.vfs.resolve('proj/latest')).ino), 'new/frame-0001.exr');
  t.equal((await b.vfs.resolve('proj/new/frame-0001.exr')).ino, made, 'the inode number given offline is the one the service has');
  t.same(await names(a.vfs, 'proj'), ['edit.txt', 'latest', 'new'], 'A, now online, agrees');
  t.ok((await readPath(a.vfs, 'proj/new/frame-0001.exr')).equals(big));
});

t.test('a name another client took meanwhile: the offline file gets a conflict name, nothing is lost or replaced', async (t) => {
  const { sw, a, b } = await setup(t);
  const proj = (await a.vfs.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  const theirsOld = randomBytes(1000);
  await writeFile(a.vfs, proj, 'shared.txt', theirsOld);
  await writeFile(a.vfs, proj, 'x.txt', Buffer.from('old x'));
  const shots = (await a.vfs.mkdir(ROOT_INO, 'shots', 0o755, ME)).ino;
  await settle(a);
  await names(a.vfs, 'proj');
  await names(a.vfs, '');
  await names(a.vfs, 'shots');

  sw.down = true;
  const mine = randomBytes(70_000);
  const mine2 = randomBytes(3000);
  await writeFile(a.vfs, proj, 'cut.edl', mine);
  await writeFile(a.vfs, proj, '.s.tmp', mine2);
  await a.vfs.rename(proj, '.s.tmp', proj, 'shared.txt'); // replaces the version A saw
  await a.vfs.mkdir(ROOT_INO, 'made', 0o755, ME);
  const take = randomBytes(9000);
  await writeFile(a.vfs, shots, 'take1.mov', take);
  await a.vfs.unlink(proj, 'x.txt');
  // Meanwhile another client makes the same name, and saves its own shared.txt.
  const theirs = randomBytes(500);
  const theirs2 = randomBytes(600);
  await writeFile(b.vfs, proj, 'cut.edl', theirs);
  await writeFile(b.vfs, proj, 'shared.txt.tmp', theirs2);
  await b.vfs.rename(proj, 'shared.txt.tmp', proj, 'shared.txt');
  await b.vfs.rmdir(ROOT_INO, 'shots');
  const theirX = randomBytes(700);
  await writeFile(b.vfs, proj, 'x.new', theirX);
  await b.vfs.rename(proj, 'x.new', proj, 'x.txt');
  await settle(b);

  sw.down = false;
  await settle(a);
  t.same(await names(b.vfs, 'proj'), ['cut (conflict copy).edl', 'cut.edl', 'shared (conflict copy).txt', 'shared.txt', 'x.txt'], 'both versions of each name are there');
  t.ok((await readPath(b.vfs, 'proj/x.txt')).equals(theirX), "an offline delete of a name that now holds another client's file leaves it");
  t.ok((await readPath(b.vfs, 'take1 (conflict copy).mov')).equals(take), 'a file made offline in a folder removed meanwhile is kept at the top');
  t.ok((await readPath(b.vfs, 'proj/cut.edl')).equals(theirs), "the other client's file is untouched");
  t.ok((await readPath(b.vfs, 'proj/cut (conflict copy).edl')).equals(mine), 'the offline file is kept under a conflict name');
  t.ok((await readPath(b.vfs, 'proj/shared.txt')).equals(theirs2), "a save over a file another client changed meanwhile does not replace theirs");
  t.ok((await readPath(b.vfs, 'proj/shared (conflict copy).txt')).equals(mine2), 'the offline save is kept beside it');
  t.ok(a.lines.some((l) => /conflict name/.test(l)), 'the log says so');
  t.same(await names(b.vfs, ''), ['made', 'proj', 'take1 (conflict copy).mov'], 'the top of the filespace');
  t.same(await names(a.vfs, 'proj'), await names(b.vfs, 'proj'), 'A, back online, shows what the service has');
});

t.test('a create whose reply was lost is not made twice; the journal survives a restart before the service is back', async (t) => {
  const { dir, u, store, engine, sw, a, b } = await setup(t);
  const proj = (await a.vfs.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  await names(a.vfs, 'proj');

  sw.loseReply.add('applyBatch');
  const data = randomBytes(2 * BS + 5);
  await writeFile(a.vfs, proj, 'landed.bin', data); // journaled; the batch that carried it is applied, and its reply lost
  await settle(a);
  t.notOk(sw.loseReply.has('applyBatch'), 'a batch carried the create and its reply was lost');
  t.equal(a.vfs.journal.size, 0, 'sent again');
  t.same(await names(b.vfs, 'proj'), ['landed.bin'], 'made once');
  t.ok((await readPath(b.vfs, 'proj/landed.bin')).equals(data));

  sw.down = true;
  const later = randomBytes(BS + 77);
  await writeFile(a.vfs, proj, 'later.bin', later);
  await a.vfs.unlink(proj, 'landed.bin');
  const waiting = a.vfs.journal.size;
  await a.close();
  const again = await mountOn(u, store, sw.meta, path.join(dir, 'cache-a'));
  t.teardown(() => again.close());
  t.equal(again.vfs.journal.size, waiting, `the ${waiting} journaled changes are still there after the restart`);
  sw.down = false;
  await settle(again);
  t.same(await names(b.vfs, 'proj'), ['later.bin'], 'replayed after the restart');
  t.ok((await readPath(b.vfs, 'proj/later.bin')).equals(later), 'with its data');
  t.equal((await engine.info()).inodes, 3, 'no orphan left behind: root, proj, later.bin');
});

/**
 * A mount that made a file and renamed it while the service was away, then stopped: its
 * cache directory, the changes that wait there (as journal.log lines, taken out of the
 * file so a test can put them where an older Lucid kept them) and the file's bytes.
 */
async function waitingChangesTakenOut(t: Test, dataBytes: number, renamedTo: string) {
  const { dir, u, store, sw, a, b } = await setup(t);
  const proj = (await a.vfs.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  await names(a.vfs, 'proj');
  sw.down = true;
  const data = randomBytes(dataBytes);
  await writeFile(a.vfs, proj, 'kept.bin', data);
  await a.vfs.rename(proj, 'kept.bin', proj, renamedTo);
  const waiting = a.vfs.journal.size;
  await a.close();
  const cacheDir = path.join(dir, 'cache-a');
  const ops = journalLines(cacheDir);
  for (const f of ['journal.log', 'journal.done']) rmSync(path.join(cacheDir, f), { force: true });
  return { u, store, sw, b, data, waiting, cacheDir, ops };
}

t.test('changes an older cache kept in its index are taken over by the journal\'s own file, in order, once', async (t) => {
  const { u, store, sw, b, data, waiting, cacheDir, ops } = await waitingChangesTakenOut(t, BS + 3, 'renamed.bin');
  t.ok(waiting >= 2, `${waiting} changes journaled`);
  // As an older Lucid left it: the changes in the cache index's journal table, no journal file.
  const index = new Database(path.join(cacheDir, 'index.sqlite'));
  for (const op of ops) index.prepare('INSERT INTO journal (op) VALUES (?)').run(op);
  index.close();
  const again = await mountOn(u, store, sw.meta, cacheDir);
  t.teardown(() => again.close());
  t.equal(again.vfs.journal.size, waiting, 'every change is there after the upgrade');
  const left = new Database(path.join(cacheDir, 'index.sqlite'));
  t.equal((left.prepare('SELECT count(*) AS n FROM journal').get() as { n: number }).n, 0, 'and the index keeps none of them');
  left.close();
  sw.down = false;
  await settle(again);
  t.same(await names(b.vfs, 'proj'), ['renamed.bin'], 'replayed in order');
  t.ok((await readPath(b.vfs, 'proj/renamed.bin')).equals(data), 'with its data');
});

t.test('changes a cache kept in its SQLite journal (journal.sqlite) come over to journal.log, in order, once', async (t) => {
  const { u, store, sw, b, data, waiting, cacheDir, ops } = await waitingChangesTakenOut(t, BS + 5, 'moved.bin');
  const old = SqliteJournalStore.open(cacheDir);
  for (const op of ops) old.append(op);
  old.close();
  const again = await mountOn(u, store, sw.meta, cacheDir);
  t.teardown(() => again.close());
  t.equal(again.vfs.journal.size, waiting, 'every change is there after the upgrade');
  t.notOk(existsSync(path.join(cacheDir, 'journal.sqlite')), 'and the SQLite journal is gone');
  sw.down = false;
  await settle(again);
  t.same(await names(b.vfs, 'proj'), ['moved.bin'], 'replayed in order');
  t.ok((await readPath(b.vfs, 'proj/moved.bin')).equals(data), 'with its data');
});

/** The changes waiting in a cache directory's journal.log, oldest first. */
function journalLines(cacheDir: string): string[] {
  const done = existsSync(path.join(cacheDir, 'journal.done')) ? Number(readFileSync(path.join(cacheDir, 'journal.done'), 'utf8').trim()) : 0;
  return readFileSync(path.join(cacheDir, 'journal.log'), 'utf8').split('\n').filter(Boolean)
    .map((l) => ({ seq: Number(l.slice(0, l.indexOf(' '))), op: l.slice(l.indexOf(' ') + 1) }))
    .filter((e) => e.seq > done).map((e) => e.op);
}
