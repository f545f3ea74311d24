/**
 * Listings kept across remounts (src/fs/namespace/kept-listings.ts), a mount over a real
 * SQLite engine closed and opened again on the same cache directory:
 * - after a remount, listing a large folder asks the service only for what changed since
 *   (one listingChanges, no readdir), and the listing is the folder as it is now: names made,
 *   removed and renamed by another client meanwhile, attributes changed;
 * - once the service has pruned that history, the folder is listed whole, and right;
 * - the kept listing on disk is sealed: no name in the clear, and one moved onto another
 *   folder is not used.
 */
import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BlockCache } from '../../src/cache/block-cache.js';
import { NameCipher } from '../../src/crypto/names.js';
import { Filespace } from '../../src/fs/filespace.js';
import { buildMount } from '../../src/fs/mount.js';
import type { Vfs } from '../../src/fs/vfs.js';
import { S_IFDIR, S_IFREG, type BatchOp, type MetaEngine } from '../../src/meta/types.js';
import { sharedFilespace, watchingCalls, type SharedFilespace } from '../helpers/shared.js';

/** A mount on cache directory `name`, with its service calls counted by method; close() unmounts. */
async function mount(shared: SharedFilespace, name: string, calls: Map<string, number>): Promise<{ vfs: Vfs; close(): Promise<void> }> {
  const meta = watchingCalls(shared.engine, ['readdir', 'listingChanges'], (m) => calls.set(m, (calls.get(m) ?? 0) + 1));
  const fsp = new Filespace(shared.u, shared.store, meta);
  const cache = await BlockCache.open({ dir: path.join(shared.dir, name), filespaceId: shared.u.descriptor.filespaceId, cacheKey: shared.u.keys.cache, limitBytes: 1 << 30, sealer: fsp.codec, blockSize: fsp.blockSize });
  const vfs = buildMount(fsp, cache, { upload: { idleMs: 50 } });
  return { vfs, close: async () => { vfs.uploader.close(); vfs.journal.close(); await cache.close(); } };
}

async function list(vfs: Vfs, dir: number): Promise<Map<string, number>> {
  const fh = await vfs.opendir(dir);
  const out = new Map<string, number>();
  try {
    for (let off = 0; ;) {
      const page = await vfs.readdir(fh, off, 500);
      if (page.length === 0) break;
      for (const e of page) if (e.name !== '.' && e.name !== '..') out.set(e.name, e.attr?.mode ?? -1);
      off = page[page.length - 1].next;
    }
  } finally {
    vfs.releasedir(fh);
  }
  return out;
}

async function until(what: string, ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('after a remount a large folder is listed from what changed since', async (t) => {
  const shared = await sharedFilespace(t);
  const e: MetaEngine = shared.engine;
  const names = new NameCipher(shared.u.keys);
  const dir = (await e.create(1, names.seal(1, 'frames'), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 })).ino;
  const ops: BatchOp[] = [];
  for (let i = 0; i < 1500; i++) ops.push({ op: 'create', parent: dir, name: names.seal(dir, `f${i}`), node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 } });
  for (let i = 0; i < ops.length; i += 1000) t.notOk((await e.applyBatch(ops.slice(i, i + 1000))).failed);

  const calls = new Map<string, number>();
  const first = await mount(shared, 'cache', calls);
  const want = new Map<string, number>(Array.from({ length: 1500 }, (_, i) => [`f${i}`, S_IFREG | 0o644]));
  t.same(await list(first.vfs, dir), want, 'a cold listing');
  t.ok((calls.get('readdir') ?? 0) >= 2, 'taken from the service in pages');
  const keptDir = path.join(shared.dir, 'cache', 'listings');
  await until('the listing is kept', async () => (await fs.readdir(keptDir).catch(() => [] as string[])).includes(`${dir}.listing`));
  await first.close();

  const kept = await fs.readFile(path.join(keptDir, `${dir}.listing`));
  t.notOk(kept.includes(Buffer.from('f1499')), 'no name in the clear on disk');

  // Another client changes the folder while this mount is away.
  await e.create(dir, names.seal(dir, 'new-a'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  await e.create(dir, names.seal(dir, 'new-b'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  await e.unlink(dir, names.hash(dir, 'f7'));
  await e.rename(dir, names.hash(dir, 'f8'), dir, names.seal(dir, 'f8-renamed'));
  await e.setAttr((await e.lookup(dir, names.hash(dir, 'f9'))).ino, { mode: S_IFREG | 0o600 });
  want.set('new-a', S_IFREG | 0o644).set('new-b', S_IFREG | 0o644).set('f8-renamed', S_IFREG | 0o644).set('f9', S_IFREG | 0o600);
  want.delete('f7');
  want.delete('f8');

  calls.clear();
  const second = await mount(shared, 'cache', calls);
  t.same(await list(second.vfs, dir), want, 'after the remount: the folder as it is now');
  t.equal(calls.get('readdir') ?? 0, 0, 'no page of the folder was asked for');
  t.equal(calls.get('listingChanges'), 1, 'one request for what changed');
  await second.close();

  // With the history after the kept listing's commit pruned, the changes cannot be told:
  // listed whole, and right.
  await e.unlink(dir, names.hash(dir, 'f10'));
  want.delete('f10');
  await new Promise((r) => setTimeout(r, 5));
  await e.pruneVersions(Date.now());
  calls.clear();
  const third = await mount(shared, 'cache', calls);
  t.same(await list(third.vfs, dir), want, 'after a prune: listed whole');
  t.ok((calls.get('readdir') ?? 0) >= 2, `in pages (${JSON.stringify([...calls])})`);
  await third.close();

  // A kept listing moved onto another folder does not open there: that folder is listed whole.
  const other = (await e.create(1, names.seal(1, 'other'), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 })).ino;
  await e.create(other, names.seal(other, 'only'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
  await fs.copyFile(path.join(keptDir, `${dir}.listing`), path.join(keptDir, `${other}.listing`));
  calls.clear();
  const fourth = await mount(shared, 'cache', calls);
  t.same([...(await list(fourth.vfs, other)).keys()], ['only'], 'a listing that is not its own is not used');
  t.equal(calls.get('listingChanges') ?? 0, 0);
  await fourth.close();
});
