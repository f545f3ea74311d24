/**
 * The VFS data path under races: writes, truncates and reads at random offsets while the
 * uploader commits as fast as it can, checked against a reference buffer after every step.
 * (A generation reused by a recreated dirty block once let a stale upload drop a new write.)
 */
import t from 'tap';
import { randomBytes, randomInt } from 'node:crypto';
import path from 'node:path';
import { MemoryStore } from '../../src/store/memory.js';
import { FaultyStore } from '../../src/store/faults.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { Filespace } from '../../src/fs/filespace.js';
import { BlockCache } from '../../src/cache/block-cache.js';
import { buildMount } from '../../src/fs/mount.js';
import { tempDir } from '../helpers/servers.js';

const BS = 65536;

async function makeVfs(dir: string, options: { idleMs?: number; limit?: number; latencyMs?: number } = {}) {
  const u = await createDescriptor({ password: 'pw', blockSize: BS, kdf: 'interactive' });
  const store = new FaultyStore(new MemoryStore());
  if (options.latencyMs) store.inject({ op: 'put', probability: 0.5, fault: { kind: 'latency', ms: options.latencyMs } });
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(dir, 'm.sqlite')), { filespaceId: u.descriptor.filespaceId, blockSize: BS });
  const fs = new Filespace(u, store, engine);
  const cache = await BlockCache.open({ dir: path.join(dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: options.limit ?? 1 << 30, sealer: fs.codec });
  const vfs = buildMount(fs, cache, { upload: { idleMs: options.idleMs ?? 0 } });
  const wb = vfs.uploader;
  return { vfs, cache, wb, engine, close: async () => { wb.close(); vfs.journal.close(); await cache.close(); await engine.close(); } };
}

for (const [idleMs, latencyMs] of [[0, 0], [0, 3], [5, 1]]) {
  t.test(`random writes, truncates and reads racing uploads (idle ${idleMs} ms, put latency ${latencyMs} ms)`, async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const fx = await makeVfs(tmp.dir, { idleMs, latencyMs });
    const { vfs } = fx;
    const { attr, fh } = await vfs.create(1, 'f', 0o644, 2, { uid: 0, gid: 0 });
    let ref = Buffer.alloc(0);
    let bad = '';
    for (let i = 0; i < 1500 && !bad; i++) {
      if (i % 97 === 96) {
        const size = randomInt(0, 700_000);
        await vfs.truncate(attr.ino, size);
        ref = size <= ref.length ? Buffer.from(ref.subarray(0, size)) : Buffer.concat([ref, Buffer.alloc(size - ref.length)]);
      } else {
        // One write in four replaces whole blocks (sealed at write time); the rest are partial.
        const whole = i % 4 === 0;
        const off = whole ? randomInt(0, 9) * BS : randomInt(0, 600_000);
        const data = randomBytes(whole ? randomInt(1, 3) * BS : randomInt(1, 100_000));
        await vfs.write(fh, off, data);
        if (ref.length < off + data.length) ref = Buffer.concat([ref, Buffer.alloc(off + data.length - ref.length)]);
        data.copy(ref, off);
      }
      if (i % 3 === 0) await new Promise((r) => setTimeout(r, randomInt(0, 3)));
      const got = await vfs.readInode(attr.ino, 0, ref.length + 100);
      if (!got.equals(ref)) bad = `step ${i}: read differs from the reference`;
    }
    t.equal(bad, '', 'every read matched');
    await vfs.fsync(fh);
    t.equal(fx.cache.stats().uploadBytes, 0, 'all uploaded after fsync');
    t.equal((await fx.engine.getAttr(attr.ino)).size, ref.length, 'committed size');
    await vfs.release(fh);
    t.ok((await vfs.readInode(attr.ino, 0, ref.length)).equals(ref), 'committed state reads back');
    await fx.close();
  });
}

t.test('writers wait for uploads when the cache is full of dirty data, then finish', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const fx = await makeVfs(tmp.dir, { idleMs: 1000, limit: 16 * BS, latencyMs: 5 });
  const { attr, fh } = await fx.vfs.create(1, 'big', 0o644, 2, { uid: 0, gid: 0 });
  const data = randomBytes(64 * BS);
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, fx.cache.stats().usedBytes); }, 1);
  for (let off = 0; off < data.length; off += 100_000) await fx.vfs.write(fh, off, data.subarray(off, off + 100_000));
  clearInterval(sampler);
  await fx.vfs.fsync(fh);
  t.ok(peak <= 16 * BS + fx.wb.slots * (BS + 54), `peak ${peak} within the limit plus a block per upload slot`);
  t.ok((await fx.vfs.readInode(attr.ino, 0, data.length)).equals(data), 'all bytes back');
  await fx.close();
});
