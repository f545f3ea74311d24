/**
 * Blocks fetched into reused buffers (the VFS's pool of sealed-object buffers): a buffer
 * goes back to the pool only once its object is on disk, so reusing it never changes a
 * byte a reader gets, nor a byte the disk cache keeps. A mount with room in memory for two
 * blocks reads a 48-block file cold, in waves of eight reads at once through a store that
 * answers out of order (each wave into the buffers the last gave back); then reads it again
 * with every plaintext long evicted, from the disk cache alone: no GET, no damaged cache
 * file, every byte identical. A tampered object is an error and
 * leaves the others readable.
 *
 * A block that leaves memory while its cache write is still going is opened from the bytes
 * held for that write, not fetched again; once the writes land (and their buffers are
 * reused) it is read from disk, identical.
 *
 * Plaintexts are decrypted into reused buffers too: one evicted while readers still wait
 * for it is reused only once they have their bytes (three blocks arriving in one turn with
 * memory for one: each reader gets its own block). A small file's plaintext is kept in
 * memory at its own size, not in a block's buffer.
 */
import t from 'tap';
import { IntegrityError } from '../../src/errors.js';
import { EventLoopFileIo, type CleanFileIo } from '../../src/cache/clean-files.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MeteredStore } from '../../src/store/metrics.js';
import type { ObjectStore } from '../../src/store/types.js';
import { codecOf, committedFile, mountVfs, sharedFilespace } from '../helpers/shared.js';

const BS = 65536;
const BLOCKS = 48;
const O_RDONLY = 0;

/**
 * Clean cache files on the event loop, their writes held until `open()`: every block fetched
 * meanwhile stays held for its write. `codec` is the reader's (asked for only once it exists).
 */
function gatedWrites(codec: () => { open(objectId: string, sealed: Buffer, into?: Buffer): Buffer }): { files: CleanFileIo; open: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  const inner = new EventLoopFileIo({ open: (id, sealed, into) => codec().open(id, sealed, into) });
  const files: CleanFileIo = {
    open: (file, size, id, into) => inner.open(file, size, id, into),
    write: async (file, bytes) => { await gate; await inner.write(file, bytes); },
    close: () => inner.close(),
  };
  return { files, open };
}

t.test('reused fetch buffers never change a byte read or kept', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const { ino, data } = await committedFile(t, shared, 'take.mov', BLOCKS * BS - 123);

  // Half the GETs take 20 ms longer, so fetches finish out of order.
  const faulty = new FaultyStore(shared.store).inject({ op: 'get', probability: 0.5, fault: { kind: 'latency', ms: 20 } });
  const metered = new MeteredStore(faulty);
  const lines: string[] = [];
  const reader = await mountVfs(t, shared, 'reader', { store: metered, memoryCacheBytes: 2 * BS, log: (l) => lines.push(l) });
  const pool = reader.data.loader.pools.sealed;
  const plainPool = reader.data.loader.pools.plain;

  const fh = await reader.open(ino, O_RDONLY);
  // Six waves of eight reads at once, in random order; each wave's buffers are on disk, and
  // back in the pool, before the next starts.
  const order = Array.from({ length: BLOCKS }, (_, i) => i).sort(() => Math.random() - 0.5);
  const cold: Buffer[] = [];
  for (let w = 0; w < BLOCKS; w += 8) {
    cold.push(...await Promise.all(order.slice(w, w + 8).map((i) => reader.read(fh, i * BS, BS))));
    // Prefetches too (eight random reads can look sequential): their buffers are back in the
    // pool before the next wave as well.
    while (reader.data.prefetcher.stats().inflight > 0 || reader.cache.keepingBytes > 0) await new Promise((r) => setTimeout(r, 2));
  }
  t.ok(cold.every((b, k) => b.equals(data.subarray(order[k] * BS, order[k] * BS + BS))), 'every block read cold is identical');
  const seq: Buffer[] = [];
  for (let off = 0; off < data.length; off += 100_000) seq.push(await reader.read(fh, off, 100_000));
  t.ok(Buffer.concat(seq).equals(data), 'read again in order, identical');
  const gets = metered.stats.get.requests;
  t.equal(gets, BLOCKS, `one GET per block (${gets})`);
  t.ok(pool.stats.reused >= BLOCKS - 8, `fetch buffers were reused after the first wave (${pool.stats.reused} reuses, ${pool.stats.made} made)`);
  t.ok(plainPool.stats.made <= 16 && plainPool.stats.reused >= BLOCKS - 16, `plaintext buffers were reused (${plainPool.stats.reused} reuses, ${plainPool.stats.made} made)`);

  // Every plaintext is long evicted (memory holds two blocks): the disk cache serves all.
  const again: Buffer[] = [];
  for (let i = 0; i < BLOCKS; i++) again.push(await reader.read(fh, i * BS, BS));
  t.ok(Buffer.concat(again).equals(data), 'read from the disk cache, identical');
  t.equal(metered.stats.get.requests, gets, 'no GET: every kept copy authenticated');
  t.notOk(lines.some((l) => /damaged|integrity/.test(l)), 'no cached copy was damaged');
  await reader.release(fh);

  // A tampered object: an error for its block, the others still read identical.
  const tampering = new FaultyStore(shared.store);
  const other = await mountVfs(t, shared, 'tampered', { store: tampering, memoryCacheBytes: 2 * BS, log: () => {} });
  tampering.inject({ op: 'get', times: 1, fault: { kind: 'flipBit', byte: 100 } });
  const h = await other.open(ino, O_RDONLY);
  await t.rejects(other.read(h, 0, BS), IntegrityError, 'the tampered block is an integrity error');
  const rest: Buffer[] = [];
  for (let i = 1; i < BLOCKS; i++) rest.push(await other.read(h, i * BS, BS));
  t.ok(Buffer.concat(rest).equals(data.subarray(BS)), 'the other blocks read identical');
  await other.release(h);
});

/** Counts GETs per key (a block fetched twice shows as a count of 2). */
function countingGets(store: ObjectStore): { store: ObjectStore; gets: Map<string, number> } {
  const gets = new Map<string, number>();
  const counted = new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop !== 'get') return (v as (...a: unknown[]) => unknown).bind(target);
      return (key: string, ...rest: unknown[]) => {
        gets.set(key, (gets.get(key) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).call(target, key, ...rest);
      };
    },
  });
  return { store: counted, gets };
}

t.test('a block that leaves memory while it is written is opened from the bytes held for the write', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const { ino, block } = await committedFile(t, shared, 'clip.mov', 6 * BS);
  // Cache files are written only once the gate opens.
  const { files, open } = gatedWrites(() => codecOf(shared));
  const { store, gets } = countingGets(shared.store);
  // Memory for one block: each read evicts the block read before it.
  const reader = await mountVfs(t, shared, 'reader', { store, memoryCacheBytes: BS, files });
  const fh = await reader.open(ino, O_RDONLY);
  t.ok((await reader.read(fh, 4 * BS, BS)).equals(block(4)), 'block 4 read');
  t.ok((await reader.read(fh, 1 * BS, BS)).equals(block(1)), 'block 1 read (block 4 leaves memory)');
  t.ok(reader.cache.keepingBytes >= 2 * BS, `both writes are still going (${reader.cache.keepingBytes} bytes held)`);
  t.ok((await reader.read(fh, 4 * BS, BS)).equals(block(4)), 'block 4 read again while its write is going: identical');
  t.same([...gets.values()], [1, 1], 'no block fetched twice');

  open();
  while (reader.cache.keepingBytes > 0) await new Promise((r) => setTimeout(r, 2));
  // The buffers the writes held go back to the pool and take the next GETs' bytes.
  t.ok((await reader.read(fh, 2 * BS, BS)).equals(block(2)), 'block 2 read');
  t.ok((await reader.read(fh, 5 * BS, BS)).equals(block(5)), 'block 5 read');
  while (reader.cache.keepingBytes > 0) await new Promise((r) => setTimeout(r, 2));
  // In this order (not 5, 4, 1, which reads backwards) no block is fetched ahead.
  for (const i of [1, 4]) t.ok((await reader.read(fh, i * BS, BS)).equals(block(i)), `block ${i} read from disk, identical`);
  t.equal(gets.size, 4, 'four blocks fetched');
  t.ok([...gets.values()].every((n) => n === 1), 'each once');
  await reader.release(fh);
});

t.test('lucid warm counts a block held for its write as cached and fetches it no second time', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const { ino, block } = await committedFile(t, shared, 'dailies.mov', 4 * BS);
  const { files, open } = gatedWrites(() => codecOf(shared));
  const { store, gets } = countingGets(shared.store);
  const reader = await mountVfs(t, shared, 'reader', { store, files });
  const plainPool = reader.data.loader.pools.plain;
  const fh = await reader.open(ino, O_RDONLY);
  t.ok((await reader.read(fh, 2 * BS, BS)).equals(block(2)), 'block 2 read: its cache write waits at the gate');
  t.ok(reader.cache.keepingBytes > 0, 'its sealed bytes are held for the write');
  const hydrated = reader.hydrate({ ino });
  // The writes of what warm fetches wait at the gate too: it opens once the other three are fetched.
  while ([...gets.values()].reduce((a, b) => a + b, 0) < 4) await new Promise((r) => setTimeout(r, 2));
  open();
  const { bytes, fetched } = await hydrated;
  t.equal(bytes, 4 * BS, 'warm covered the file');
  t.equal(fetched, 3 * BS, 'three blocks fetched; the held one counted as cached');
  t.equal(gets.size, 4, 'four blocks fetched');
  t.ok([...gets.values()].every((n) => n === 1), `each once (${[...gets.values()]})`);
  t.equal(plainPool.stats.free, plainPool.stats.made - 1, 'the plaintexts warm opened went back to the pool (block 2 stays in memory)');
  while (reader.cache.keepingBytes > 0) await new Promise((r) => setTimeout(r, 2));
  await reader.release(fh);
});

t.test('a plaintext evicted while readers wait for it is reused only once they have their bytes', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const { ino, block } = await committedFile(t, shared, 'plates.mov', 16 * BS);
  // Cache writes wait at a gate: every block read stays held for its write, and a read of
  // one opens it from those bytes in its own turn, so reads started together open one after
  // another, each evicting the last (memory for one block), before any of them resumes.
  const { files, open } = gatedWrites(() => codecOf(shared));
  const reader = await mountVfs(t, shared, 'reader', { memoryCacheBytes: BS, files });
  const plainPool = reader.data.loader.pools.plain;
  const fh = await reader.open(ino, O_RDONLY);
  for (let i = 15; i >= 0; i--) t.ok((await reader.read(fh, i * BS, BS)).equals(block(i)), `block ${i} read`);
  for (const picks of [[3, 9, 5], [12, 1, 7], [4, 14, 10], [8, 2, 13], [11, 6, 15]]) {
    const reads = picks.map((i) => reader.read(fh, i * BS, BS));
    reads.push(reader.read(fh, picks[0] * BS, BS)); // a second reader of the first
    const got = await Promise.all(reads);
    t.ok(picks.every((i, k) => got[k].equals(block(i))) && got[3].equals(block(picks[0])), `blocks ${picks.join(', ')} read together: each reader gets its own block`);
  }
  t.ok(plainPool.stats.reused >= 10, `plaintext buffers were reused (${plainPool.stats.reused} reuses, ${plainPool.stats.made} made)`);
  open();
  await reader.release(fh);
});

t.test('small files are kept in memory at their own size, not a block each', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const files: { ino: number; data: Buffer }[] = [];
  for (let i = 0; i < 30; i++) files.push(await committedFile(t, shared, `note-${i}.txt`, 1000 + i));
  // Memory for two blocks: 30 small files fit only at their own size.
  const reader = await mountVfs(t, shared, 'reader', { memoryCacheBytes: 2 * BS });
  for (const f of files) {
    const fh = await reader.open(f.ino, O_RDONLY);
    if (!(await reader.read(fh, 0, 4096)).equals(f.data)) t.fail(`inode ${f.ino} reads back wrong`);
    await reader.release(fh);
  }
  const held = reader.data.loader.held;
  t.equal(held.blocks, 30, 'every small file is still in memory');
  t.ok(held.bytes <= 30 * 1100, `and they take ${held.bytes} bytes (a block each would be ${30 * BS})`);
});
