/**
 * The block cache's limit under concurrency: many clean inserts at once (what a prefetcher
 * does) and dirty growth never push accounted use past the limit; eviction is LRU; blocks
 * handed over to be kept in the background are all on disk after close, byte for byte.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { BlockCache } from '../../src/cache/block-cache.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { BlockCodec } from '../../src/block/format.js';
import { tempDir } from '../helpers/servers.js';

const BLOCK = 64 * 1024;

type Unlocked = Awaited<ReturnType<typeof createDescriptor>>;

/** A cache in `dir` for a new filespace, or for `u` again. */
async function open(dir: string, limitBytes: number, u?: Unlocked) {
  u ??= await createDescriptor({ password: 'pw', blockSize: BLOCK, kdf: 'interactive' });
  const codec = new BlockCodec(u.keys, 1);
  const cache = await BlockCache.open({ dir: path.join(dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes, sealer: codec });
  return { cache, codec, u };
}

t.test('forty concurrent clean inserts stay within an eight-block limit', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const limit = 8 * (BLOCK + 54);
  const { cache, codec } = await open(tmp.dir, limit);
  let peak = 0;
  const ids = Array.from({ length: 40 }, () => codec.newObjectId());
  await Promise.all(ids.map(async (id) => {
    const p = cache.writeClean(id, codec.seal(id, randomBytes(BLOCK)), 1);
    peak = Math.max(peak, cache.stats().usedBytes);
    await p;
    peak = Math.max(peak, cache.stats().usedBytes);
  }));
  t.ok(peak <= limit, `peak ${peak} ≤ ${limit}`);
  t.ok(cache.stats().usedBytes <= limit, 'after all inserts');
  t.ok(cache.stats().cleanObjects <= 8);
  await cache.close();
});

t.test('least recently used blocks go first; a read refreshes a block', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const { cache, codec } = await open(tmp.dir, 3 * (BLOCK + 54));
  const ids = Array.from({ length: 4 }, () => codec.newObjectId());
  for (const id of ids.slice(0, 3)) await cache.writeClean(id, codec.seal(id, randomBytes(BLOCK)), 1);
  t.ok(await cache.openClean(ids[0]), 'the oldest is read, so it is now the newest');
  await cache.writeClean(ids[3], codec.seal(ids[3], randomBytes(BLOCK)), 1);
  t.ok(cache.isCleanOnDisk(ids[0]), 'refreshed block kept');
  t.notOk(cache.isCleanOnDisk(ids[1]), 'least recently used block evicted');
  t.ok(cache.isCleanOnDisk(ids[2]) && cache.isCleanOnDisk(ids[3]));
  await cache.close();
});

t.test('blocks kept in the background are counted until written, and close waits for them', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const first = await open(tmp.dir, 64 * (BLOCK + 54));
  const ids = Array.from({ length: 20 }, () => first.codec.newObjectId());
  const plains = ids.map(() => randomBytes(BLOCK));
  const writes = ids.map((id, i) => first.cache.writeCleanInBackground(id, first.codec.seal(id, plains[i]), 1));
  t.equal(first.cache.keepingBytes, 20 * (BLOCK + 54), 'every handed-over block counted at once');
  await first.cache.close();
  t.equal(first.cache.keepingBytes, 0, 'nothing left to write after close');
  t.same((await Promise.allSettled(writes)).map((w) => w.status), ids.map(() => 'fulfilled'));
  // A write a killed agent left half done, under its temporary name.
  const stray = path.join(tmp.dir, 'cache', 'objects', ids[0].slice(0, 2), `${first.codec.newObjectId()}.abcd1234.tmp`);
  await fs.writeFile(stray, randomBytes(1000));
  // Reopened with the same keys: every block is there and opens to its plaintext.
  const { cache: again } = await open(tmp.dir, 64 * (BLOCK + 54), first.u);
  for (let i = 0; i < ids.length; i++) t.same(await again.openClean(ids[i]), plains[i], `block ${i} kept byte for byte`);
  t.notOk(existsSync(stray), 'the half-written temporary file is gone');
  await again.close();
});
