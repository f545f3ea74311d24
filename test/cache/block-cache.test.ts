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

t.test('dirty writes of every shape into 1 MiB blocks read back byte for byte, also after a reopen', async (t) => {
  // With the block size known, a long first piece starts in sector form and small or whole
  // writes are sealed whole; files in sector form stay open between writes.
  const MIB = 1024 * 1024;
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const u = await createDescriptor({ password: 'pw', blockSize: MIB, kdf: 'interactive' });
  const opened = () => BlockCache.open({ dir: path.join(tmp.dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: 1 << 30, sealer: new BlockCodec(u.keys, 1), blockSize: MIB });
  let cache = await opened();
  const model = new Map<number, Buffer>();
  const lengths = new Map<number, number>();
  const write = async (idx: number, offset: number, data: Buffer) => {
    await cache.writeDirty(1, idx, offset, data, async () => undefined, 0);
    const m = model.get(idx) ?? Buffer.alloc(MIB);
    data.copy(m, offset);
    model.set(idx, m);
    lengths.set(idx, Math.max(lengths.get(idx) ?? 0, offset + data.length));
  };
  // dd bs=128k into block 0: the first piece is long, so sector form from the start.
  for (let off = 0; off < MIB; off += 128 * 1024) await write(0, off, randomBytes(128 * 1024));
  t.equal(cache.dirtyRow(1, 0)?.sealedId, null, 'a block written in 128 KiB pieces is in sector form');
  // A small file written at once: sealed whole; a small first piece of a later block is not.
  const small = randomBytes(4096);
  await cache.writeDirty(2, 0, 0, small, async () => undefined, 0);
  t.ok(cache.dirtyRow(2, 0)?.sealedId, 'a small file written at once is sealed whole');
  t.ok((await cache.readDirty(2, 0, 0, 4096))?.equals(small), 'and reads back');
  // More pieces of it (tar x writes a file in two when it spans a record), up to 64 KiB: still
  // sealed whole, a gap reading as zeros; past 64 KiB, sector form.
  const grown = Buffer.alloc(70_000);
  small.copy(grown);
  for (const [offset, length] of [[4096, 3000], [10_000, 100], [2000, 50]]) {
    const piece = randomBytes(length);
    piece.copy(grown, offset);
    await cache.writeDirty(2, 0, offset, piece, async () => undefined, 0);
  }
  t.ok(cache.dirtyRow(2, 0)?.sealedId, 'a small file written in pieces stays sealed whole');
  t.equal(cache.dirtyRow(2, 0)?.length, 10_100);
  t.ok((await cache.readDirty(2, 0, 0, 10_100))?.equals(grown.subarray(0, 10_100)), 'and reads back byte for byte, the gap as zeros');
  const tail = randomBytes(70_000 - 60_000);
  tail.copy(grown, 60_000);
  await cache.writeDirty(2, 0, 60_000, tail, async () => undefined, 0);
  t.equal(cache.dirtyRow(2, 0)?.sealedId, null, 'past 64 KiB it is in sector form');
  t.ok((await cache.readDirty(2, 0, 0, 70_000))?.equals(grown), 'and reads back byte for byte');
  await write(1, 0, randomBytes(4096));
  t.equal(cache.dirtyRow(1, 1)?.sealedId, null, 'a small first piece of a later block starts in sector form');
  // A whole block: sealed whole; then overwritten in part (unsealed into sector form).
  await write(2, 0, randomBytes(MIB));
  t.ok(cache.dirtyRow(1, 2)?.sealedId, 'a whole block is sealed whole');
  // Unaligned writes everywhere, past the end (a gap of zeros), across sectors.
  for (let i = 0; i < 200; i++) {
    const idx = i % 4;
    const offset = Math.floor(Math.random() * (MIB - 1));
    const length = 1 + Math.floor(Math.random() * Math.min(MIB - offset, [10, 5000, 70_000, 300_000][i % 4]));
    await write(idx, offset, randomBytes(length));
  }
  const check = async (what: string) => {
    for (const [idx, m] of model) {
      const got = await cache.readDirty(1, idx, 0, MIB);
      t.ok(got?.subarray(0, lengths.get(idx)).equals(m.subarray(0, lengths.get(idx))), `${what}: block ${idx} byte for byte`);
      t.equal(cache.dirtyRow(1, idx)?.length, lengths.get(idx), `${what}: block ${idx} length`);
    }
  };
  await check('written');
  await cache.close();
  cache = await opened();
  await check('after a reopen');
  await cache.close();
});

t.test('buffers of upload snapshots given back are reused, and no block changes with them', async (t) => {
  // Whole blocks are sealed into the cache's blockBuffers and their files read back into them
  // for the upload; a block in sector form is decrypted into one. Each buffer, given back,
  // serves the next seal or snapshot: every block still reads and snapshots as written.
  const BS = 256 * 1024; // past the 64 KiB a small file stays sealed whole up to
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const u = await createDescriptor({ password: 'pw', blockSize: BS, kdf: 'interactive' });
  const codec = new BlockCodec(u.keys, 1);
  const cache = await BlockCache.open({ dir: path.join(tmp.dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: 1 << 30, sealer: codec, blockSize: BS });
  t.teardown(() => cache.close());
  const whole = Array.from({ length: 6 }, () => randomBytes(BS));
  const pieces = randomBytes(BS - 1000);
  const check = async (when: string) => {
    for (const [idx, data] of whole.entries()) {
      const snap = await cache.snapshotDirty(1, idx);
      t.ok(snap?.pooled && snap.sealed, `${when}: block ${idx} is handed over sealed, in a pooled buffer`);
      t.ok(codec.open(snap!.sealed!.objectId, snap!.sealed!.bytes).equals(data), `${when}: block ${idx} opens to what was written`);
      t.ok((await cache.readDirty(1, idx, 0, BS))?.equals(data), `${when}: block ${idx} reads back`);
      cache.blockBuffers.give(snap!.sealed!.bytes);
    }
    const snap = await cache.snapshotDirty(2, 0);
    t.ok(snap?.pooled && snap.data?.equals(pieces), `${when}: the block in sector form is handed over as written`);
    cache.blockBuffers.give(snap!.data!);
  };
  for (const [idx, data] of whole.entries()) await cache.writeDirty(1, idx, 0, data, async () => undefined, 0);
  for (let off = 0; off < pieces.length; off += 7000) await cache.writeDirty(2, 0, off, pieces.subarray(off, off + 7000), async () => undefined, 0);
  t.equal(cache.dirtyRow(2, 0)?.sealedId, null, 'a block written in pieces is in sector form');
  await check('first');
  const reusedBefore = cache.blockBuffers.stats.reused;
  // More whole blocks sealed into the buffers given back: the earlier blocks are untouched.
  for (let i = 0; i < 4; i++) await cache.writeDirty(3, i, 0, randomBytes(BS), async () => undefined, 0);
  await check('after reuse');
  t.ok(cache.blockBuffers.stats.reused > reusedBefore, `buffers were reused (${cache.blockBuffers.stats.reused})`);
});
