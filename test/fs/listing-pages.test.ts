/**
 * A large folder's listing in pipelined pages (src/fs/namespace/listing-pages.ts), over a
 * real SQLite engine: every entry exactly once in hash order, the first page handed on
 * before the rest is asked for, then several ranges in flight at once; a range larger than
 * estimated is paged through; a failed request fails the listing where its range comes. And
 * through a mount: a listing of such a folder is whole and names open to what was made.
 */
import t from 'tap';
import { NameCipher } from '../../src/crypto/names.js';
import { listingPages } from '../../src/fs/namespace/listing-pages.js';
import { S_IFDIR, S_IFREG, type BatchOp, type DirEntry, type MetaEngine } from '../../src/meta/types.js';
import { mountVfs, sharedFilespace } from '../helpers/shared.js';

async function folderOf(engine: MetaEngine, names: NameCipher, n: number): Promise<number> {
  const dir = (await engine.create(1, names.seal(1, `big-${n}`), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 })).ino;
  for (let i = 0; i < n; i += 1000) {
    const ops: BatchOp[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) ops.push({ op: 'create', parent: dir, name: names.seal(dir, `f${j}`), node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 } });
    const r = await engine.applyBatch(ops);
    t.notOk(r.failed);
  }
  return dir;
}

t.test('every entry once, in hash order; the first page first, then ranges in parallel', async (t) => {
  const shared = await sharedFilespace(t);
  const dir = await folderOf(shared.engine, new NameCipher(shared.u.keys), 2600);
  let active = 0;
  let most = 0;
  const asked: { cursor?: string; until?: string }[] = [];
  const meta = new Proxy(shared.engine, {
    get(target, prop) {
      if (prop !== 'readdir') return (Reflect.get(target, prop) as (...a: unknown[]) => unknown).bind(target);
      return async (ino: number, o: { cursor?: string; until?: string }) => {
        asked.push({ cursor: o.cursor, until: o.until });
        most = Math.max(most, ++active);
        try {
          await new Promise((r) => setTimeout(r, 5));
          return await target.readdir(ino, o);
        } finally {
          active--;
        }
      };
    },
  }) as MetaEngine;
  const pages = listingPages(meta, dir, { pageSize: 100, parallel: 4 });
  const first = await pages.next();
  t.equal(asked.length, 1, 'the first page is handed on before any other is asked for');
  t.equal(first.value!.entries.length, 100);
  t.ok(first.value!.estimate > 1000 && first.value!.estimate < 10_000, `estimated from the first page (${first.value!.estimate})`);
  const hashes = first.value!.entries.map((e: DirEntry) => e.hash.toString('hex'));
  let last = first.value!.last;
  for await (const p of pages) {
    hashes.push(...p.entries.map((e) => e.hash.toString('hex')));
    last = p.last;
  }
  t.ok(last, 'the final page says so');
  t.equal(hashes.length, 2600, 'every entry');
  t.equal(new Set(hashes).size, 2600, 'each once');
  t.same(hashes, [...hashes].sort(), 'in hash order');
  t.ok(most > 1 && most <= 4, `ranges in flight together, within the bound (${most})`);
  t.ok(asked.some((a) => a.until !== undefined), 'ranges are bounded');
});

t.test('a range larger than estimated is paged through; a failure fails the listing', async (t) => {
  const shared = await sharedFilespace(t);
  const dir = await folderOf(shared.engine, new NameCipher(shared.u.keys), 700);
  // The service gives ranges 50 entries a page where 300 were asked for: each range of ~200 is paged through.
  let calls = 0;
  const meta = new Proxy(shared.engine, {
    get(target, prop) {
      if (prop !== 'readdir') return (Reflect.get(target, prop) as (...a: unknown[]) => unknown).bind(target);
      return (ino: number, o: { cursor?: string; limit?: number }) => {
        calls++;
        return target.readdir(ino, o.cursor === undefined ? o : { ...o, limit: 50 });
      };
    },
  }) as MetaEngine;
  const all: string[] = [];
  for await (const p of listingPages(meta, dir, { pageSize: 300 })) all.push(...p.entries.map((e) => e.hash.toString('hex')));
  t.equal(all.length, 700, 'every entry');
  t.equal(new Set(all).size, 700, 'each once');
  t.same(all, [...all].sort(), 'in hash order');
  t.ok(calls >= 9, `ranges paged through (${calls} requests for 400 entries after the first page)`);

  let n = 0;
  const failing = new Proxy(shared.engine, {
    get(target, prop) {
      if (prop !== 'readdir') return (Reflect.get(target, prop) as (...a: unknown[]) => unknown).bind(target);
      return async (ino: number, o: object) => {
        if (++n === 3) throw new Error('the service went away');
        return target.readdir(ino, o);
      };
    },
  }) as MetaEngine;
  const got: number[] = [];
  await t.rejects((async () => { for await (const p of listingPages(failing, dir, { pageSize: 100, parallel: 2 })) got.push(p.entries.length); })(), /went away/);
  t.ok(got.length >= 1, 'pages before the failed range were handed on');
});

t.test('through a mount: a folder of 3 000 lists whole, names as made', async (t) => {
  const shared = await sharedFilespace(t);
  const dir = await folderOf(shared.engine, new NameCipher(shared.u.keys), 3000);
  const vfs = await mountVfs(t, shared, 'a');
  const fh = await vfs.opendir(dir);
  const names: string[] = [];
  for (let off = 0; ;) {
    const page = await vfs.readdir(fh, off, 400);
    if (page.length === 0) break;
    names.push(...page.map((e) => e.name));
    off = page[page.length - 1].next;
  }
  vfs.releasedir(fh);
  t.equal(names.length, 3002, 'every entry, with . and ..');
  t.same(names.filter((x) => x.startsWith('f')).sort(), Array.from({ length: 3000 }, (_, i) => `f${i}`).sort());
});
