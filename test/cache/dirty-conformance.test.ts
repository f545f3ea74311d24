/**
 * One suite for every DirtyBlocks implementation (src/cache/types.ts): the block cache on
 * disk and the memory one the library API writes through. Partial writes start from the
 * committed base, reads see every write byte for byte, generations guard the uploader's
 * settling and drops, truncates zero what they cut, and pending sizes are kept per inode.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { BlockCache } from '../../src/cache/block-cache.js';
import { MemoryDirtyBlocks } from '../../src/cache/memory-dirty.js';
import type { DirtyBlocks } from '../../src/cache/types.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { BlockCodec } from '../../src/block/format.js';
import { tempDir } from '../helpers/servers.js';

const BLOCK = 64 * 1024;

const implementations: [string, () => Promise<{ dirty: DirtyBlocks; close(): Promise<void> }>][] = [
  ['BlockCache', async () => {
    const tmp = tempDir();
    const u = await createDescriptor({ password: 'pw', blockSize: BLOCK, kdf: 'interactive' });
    const cache = await BlockCache.open({ dir: path.join(tmp.dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: 64 * BLOCK, sealer: new BlockCodec(u.keys, 1) });
    return { dirty: cache, close: async () => { await cache.close(); tmp.remove(); } };
  }],
  ['MemoryDirtyBlocks', async () => ({ dirty: new MemoryDirtyBlocks(), close: async () => {} })],
];

for (const [name, make] of implementations) {
  t.test(`${name}: DirtyBlocks conformance`, async (t) => {
    const { dirty, close } = await make();
    t.teardown(close);
    const base = randomBytes(BLOCK);

    t.equal(await dirty.readDirty(1, 0, 0, 10), undefined, 'a block never written is not dirty');
    let asked = 0;
    await dirty.writeDirty(1, 0, 100, Buffer.from('hello'), async () => { asked++; return base; }, BLOCK);
    t.equal(asked, 1, 'a partial write of a clean block starts from its base');
    const expect = Buffer.from(base);
    Buffer.from('hello').copy(expect, 100);
    t.ok((await dirty.readDirty(1, 0, 0, BLOCK))!.equals(expect), 'base and write read back byte for byte');
    await dirty.writeDirty(1, 0, 200, Buffer.from('again'), async () => { asked++; return base; }, BLOCK);
    t.equal(asked, 1, 'a dirty block is not asked for its base again');
    Buffer.from('again').copy(expect, 200);
    t.ok((await dirty.readDirty(1, 0, 0, BLOCK))!.equals(expect), 'second write on top of the first');

    const whole = randomBytes(BLOCK);
    await dirty.writeDirty(1, 1, 0, whole, async () => { asked++; return base; }, BLOCK);
    t.equal(asked, 1, 'a write covering the block needs no base');
    const snap = await dirty.snapshotDirty(1, 1);
    t.equal(snap?.length, BLOCK);
    t.same(dirty.dirtyRowsOf(1).map((r) => r.idx), [0, 1], 'rows of an inode in block order');
    t.same(dirty.allDirty().length, 2);

    const hole = Buffer.from('in a hole');
    await dirty.writeDirty(2, 0, 1000, hole, async () => undefined, 0);
    const got = (await dirty.readDirty(2, 0, 990, 30))!;
    t.ok(got.subarray(0, 10).equals(Buffer.alloc(10)) && got.subarray(10, 19).equals(hole) && got.subarray(19).equals(Buffer.alloc(11)), 'a hole reads zeros around the write and past the end');

    const gen0 = dirty.dirtyRow(1, 0)!.gen;
    await dirty.writeDirty(1, 0, 0, Buffer.from('x'), async () => base, BLOCK);
    const gen1 = dirty.dirtyRow(1, 0)!.gen;
    t.not(gen1, gen0, 'a write gives the block a new generation');
    t.equal(await dirty.dropDirty(1, 0, gen0), false, 'a drop of an older generation leaves the block alone');
    t.ok(dirty.dirtyRow(1, 0));

    await dirty.truncateDirty(1, 0, 150);
    t.equal(dirty.dirtyRow(1, 0)!.length, 150);
    t.not(dirty.dirtyRow(1, 0)!.gen, gen1, 'a truncate gives a new generation');
    await dirty.writeDirty(1, 0, 300, Buffer.from('z'), async () => base, BLOCK);
    const cut = (await dirty.readDirty(1, 0, 0, 301))!;
    t.ok(cut.subarray(150, 300).equals(Buffer.alloc(150)), 'bytes cut by a truncate read as zeros when the block grows again');
    t.equal(cut[300], 'z'.charCodeAt(0));

    const s1 = (await dirty.snapshotDirty(1, 1))!;
    const codec = new BlockCodec((await createDescriptor({ password: 'pw', blockSize: BLOCK, kdf: 'interactive' })).keys, 1);
    const oid = codec.newObjectId();
    await dirty.writeDirty(1, 1, 5, Buffer.from('late'), async () => base, BLOCK);
    await dirty.settleUploaded(1, 1, s1.gen, oid, codec.seal(oid, s1.data ?? whole));
    t.ok(dirty.dirtyRow(1, 1), 'a block written while it was uploaded stays dirty');
    const s2 = (await dirty.snapshotDirty(1, 1))!;
    const oid2 = codec.newObjectId();
    await dirty.settleUploaded(1, 1, s2.gen, oid2, codec.seal(oid2, s2.data ?? whole));
    t.equal(dirty.dirtyRow(1, 1), undefined, 'settling the generation uploaded makes it clean');
    t.equal(await dirty.dropDirty(2, 0), true);
    t.equal(dirty.dirtyRow(2, 0), undefined);

    t.equal(dirty.pending(7), undefined);
    dirty.setPending({ ino: 7, size: 12345, mtimeMs: 1000 });
    t.same(dirty.pending(7), { ino: 7, size: 12345, mtimeMs: 1000 });
    dirty.clearPending(7);
    t.equal(dirty.pending(7), undefined);
  });
}
