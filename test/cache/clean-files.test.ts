/**
 * Clean cache files, one suite run against both implementations (on the event loop and on
 * worker threads). Opening: byte-identical plaintext for every block size, concurrently; a
 * flipped bit, a swapped file and an object of a key this user lacks are IntegrityErrors; a
 * missing or torn file is UnreadableCacheFile (and the cache drops its entry); a rotated key
 * reaches the threads when needed. Writing: byte-identical files in folders made on the way,
 * concurrently, no temporary file left; a folder that cannot be made rejects with its code.
 * A thread that dies fails only its own requests; a thread that cannot run at all is given
 * up on after three deaths and files are opened and written on the event loop. Opens are
 * handed to the threads a few at a time: an urgent one (a reader waits) or one hurried goes
 * ahead of those queued for reading ahead, and closing answers those still waiting.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BlockCache } from '../../src/cache/block-cache.js';
import { CacheWriteError, EventLoopFileIo, UnreadableCacheFile, type CleanFileIo } from '../../src/cache/clean-files.js';
import { ThreadedFileIo } from '../../src/cache/clean-files-threads.js';
import { BlockCodec } from '../../src/block/format.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { IntegrityError } from '../../src/errors.js';
import { tempDir } from '../helpers/servers.js';

const u = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
const codec = new BlockCodec(u.keys, 1);
const rotated = randomBytes(32);
u.keys.setDataKey(2, rotated);
const codec2 = new BlockCodec(u.keys, 2);

const implementations: [string, () => CleanFileIo][] = [
  ['on the event loop', () => new EventLoopFileIo(codec)],
  ['on two threads', () => new ThreadedFileIo({ threads: 2, dataKey: (keyId) => u.keys.blockDataKey(keyId), fallback: new EventLoopFileIo(codec) })],
];

async function sealedFile(dir: string, c: BlockCodec, plain: Buffer): Promise<{ id: string; file: string; size: number }> {
  const id = c.newObjectId();
  const sealed = c.seal(id, plain);
  const file = path.join(dir, id);
  await fs.writeFile(file, sealed);
  return { id, file, size: sealed.length };
}

for (const [name, make] of implementations) {
  t.test(`clean files ${name}`, async (t) => {
    const tmp = tempDir();
    const io = make();
    t.teardown(async () => { await io.close(); tmp.remove(); });

    t.test('plaintext byte for byte, sixty blocks at once', async (t) => {
      const sizes = [0, 1, 4095, 4096, 65537, 1 << 20];
      const blocks = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
        const plain = randomBytes(sizes[i % sizes.length]);
        return { plain, ...(await sealedFile(tmp.dir, codec, plain)) };
      }));
      const got = await Promise.all(blocks.map((b) => io.open(b.file, b.size, b.id)));
      t.ok(got.every((g, i) => g.equals(blocks[i].plain)), 'every block identical');
    });

    t.test('opened into memory the caller gives (its own, or shared), forty blocks at once', async (t) => {
      const BS = 1 << 20;
      const blocks = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
        const plain = randomBytes(i % 4 === 3 ? 300_001 : BS); // the last block of a file is shorter
        return { plain, ...(await sealedFile(tmp.dir, codec, plain)) };
      }));
      const memories = blocks.map(() => new ArrayBuffer(BS));
      const got = await Promise.all(blocks.map((b, i) => io.open(b.file, b.size, b.id, Buffer.from(memories[i], 0, b.plain.length))));
      t.ok(got.every((g, i) => g.equals(blocks[i].plain)), 'every block identical');
      t.ok(got.every((g) => g.byteOffset === 0 && g.buffer.byteLength === BS), "each is the start of memory of the given size (the caller's, or moved back to it)");
      // Shared memory is filled in place, views at an offset included: the caller's own memory comes back.
      const shared = new SharedArrayBuffer(8 * BS);
      const views = blocks.slice(0, 8).map((b, i) => Buffer.from(shared, i * BS, b.plain.length));
      const inPlace = await Promise.all(blocks.slice(0, 8).map((b, i) => io.open(b.file, b.size, b.id, views[i])));
      t.ok(inPlace.every((g, i) => g.equals(blocks[i].plain)), 'every block opened into shared memory identical');
      t.ok(inPlace.every((g, i) => g.buffer === shared && g.byteOffset === i * BS), 'each in the shared memory given, where it was given');
      const a = await sealedFile(tmp.dir, codec, randomBytes(5000));
      const flipped = await fs.readFile(a.file);
      flipped[200] ^= 0x01;
      await fs.writeFile(path.join(tmp.dir, 'flipped-into'), flipped);
      await t.rejects(io.open(path.join(tmp.dir, 'flipped-into'), a.size, a.id, Buffer.alloc(5000)), IntegrityError, 'a flipped bit is still an IntegrityError');
      await t.rejects(io.open(path.join(tmp.dir, 'flipped-into'), a.size, a.id, Buffer.from(new SharedArrayBuffer(5000))), IntegrityError, 'into shared memory too');
    });

    t.test('written byte for byte, forty files at once, in folders made on the way', async (t) => {
      const sizes = [0, 1, 4095, 65537, 1 << 20];
      const files = Array.from({ length: 40 }, (_, i) => ({
        file: path.join(tmp.dir, 'w', String(i % 7), `f${i}`), bytes: randomBytes(sizes[i % sizes.length]),
      }));
      await Promise.all(files.map((f) => io.write(f.file, f.bytes)));
      const back = await Promise.all(files.map((f) => fs.readFile(f.file)));
      t.ok(back.every((b, i) => b.equals(files[i].bytes)), 'every file identical');
      const names = (await Promise.all(['0', '3', '6'].map((d) => fs.readdir(path.join(tmp.dir, 'w', d))))).flat();
      t.notOk(names.some((n) => n.endsWith('.tmp')), 'no temporary file left');
      const big = randomBytes(1 << 20);
      await io.write(path.join(tmp.dir, 'w', 'view'), big.subarray(100, 5100));
      t.ok((await fs.readFile(path.join(tmp.dir, 'w', 'view'))).equals(big.subarray(100, 5100)), 'a view of a larger buffer: exactly its bytes');
      const plain = randomBytes(300_000);
      const id = codec.newObjectId();
      const sealed = codec.seal(id, plain);
      await io.write(path.join(tmp.dir, 'w', 'sealed'), sealed);
      t.ok((await io.open(path.join(tmp.dir, 'w', 'sealed'), sealed.length, id)).equals(plain), 'a written object opens to its plaintext');
    });

    t.test('a folder that cannot be made', async (t) => {
      await fs.writeFile(path.join(tmp.dir, 'plain-file'), 'x');
      const err = await io.write(path.join(tmp.dir, 'plain-file', 'sub', 'f'), randomBytes(10)).catch((e) => e);
      t.ok(err instanceof CacheWriteError, 'a CacheWriteError');
      t.equal(err.code, 'ENOTDIR', 'with the system code');
    });

    t.test('damaged, swapped, missing and torn files', async (t) => {
      const a = await sealedFile(tmp.dir, codec, randomBytes(5000));
      const b = await sealedFile(tmp.dir, codec, randomBytes(5000));
      const flipped = await fs.readFile(a.file);
      flipped[100] ^= 0x10;
      const damaged = path.join(tmp.dir, 'damaged');
      await fs.writeFile(damaged, flipped);
      await t.rejects(io.open(damaged, a.size, a.id), IntegrityError, 'a flipped bit');
      await t.rejects(io.open(b.file, b.size, a.id), IntegrityError, "another object's file");
      await t.rejects(io.open(path.join(tmp.dir, 'nothing'), a.size, a.id), UnreadableCacheFile, 'a missing file');
      const torn = path.join(tmp.dir, 'torn');
      await fs.writeFile(torn, (await fs.readFile(a.file)).subarray(0, 3000));
      await t.rejects(io.open(torn, a.size, a.id), UnreadableCacheFile, 'a torn file');
      t.ok((await io.open(a.file, a.size, a.id)).length === 5000, 'the good copy still opens afterwards');
    });

    t.test('a rotated data key, and a key this user does not have', async (t) => {
      const plain = randomBytes(70_000);
      const k2 = await sealedFile(tmp.dir, codec2, plain);
      t.ok((await io.open(k2.file, k2.size, k2.id)).equals(plain), 'opened under key 2');
      const stranger = new BlockCodec(u.keys, 1);
      const id = stranger.newObjectId();
      const sealed = stranger.seal(id, randomBytes(100));
      sealed.writeUInt32BE(7, 6); // a key id nobody gave this user
      const file = path.join(tmp.dir, `key7-${id}`);
      await fs.writeFile(file, sealed);
      await t.rejects(io.open(file, sealed.length, id), IntegrityError, 'key 7 is refused');
    });
  });
}

t.test('a thread that dies fails its own opens and is replaced; writes are not on it', async (t) => {
  const tmp = tempDir();
  const io = new ThreadedFileIo({ threads: 1, dataKey: (keyId) => u.keys.blockDataKey(keyId), fallback: new EventLoopFileIo(codec) });
  t.teardown(async () => { await io.close(); tmp.remove(); });
  const plain = randomBytes(1 << 20);
  const b = await sealedFile(tmp.dir, codec, plain);
  const inFlight = io.open(b.file, b.size, b.id);
  await (io as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads[0].worker.terminate();
  await t.rejects(inFlight, UnreadableCacheFile, 'the request in hand fails (the caller fetches from the store)');
  t.ok((await io.open(b.file, b.size, b.id)).equals(plain), 'the next request is served by a new thread');
  const writing = io.write(path.join(tmp.dir, 'w1'), plain);
  await (io as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads[0].worker.terminate();
  await writing;
  t.ok((await fs.readFile(path.join(tmp.dir, 'w1'))).equals(plain), 'a write begun as the thread dies is written whole all the same');
});

t.test('a thread that cannot run: no restart storm, blocks opened on the event loop, said once', async (t) => {
  const tmp = tempDir();
  const broken = path.join(tmp.dir, 'broken-worker.mjs');
  await fs.writeFile(broken, "throw new Error('this thread cannot start');\n");
  const lines: string[] = [];
  const io = new ThreadedFileIo({ threads: 2, dataKey: (keyId) => u.keys.blockDataKey(keyId), fallback: new EventLoopFileIo(codec), log: (l) => lines.push(l), workerUrl: pathToFileURL(broken) });
  t.teardown(async () => { await io.close(); tmp.remove(); });
  const plain = randomBytes(200_000);
  const b = await sealedFile(tmp.dir, codec, plain);
  const got: Buffer[] = [];
  for (let i = 0; i < 20; i++) got.push(await io.open(b.file, b.size, b.id).catch(() => Buffer.alloc(0)));
  await new Promise((r) => setTimeout(r, 300));
  t.ok((await io.open(b.file, b.size, b.id)).equals(plain), 'once the threads are given up on, the block opens on the event loop');
  await io.write(path.join(tmp.dir, 'w'), plain);
  t.ok((await fs.readFile(path.join(tmp.dir, 'w'))).equals(plain), 'and files are written on it');
  t.ok(io.started <= 4, `threads started: ${io.started} (two, then at most two replacements)`);
  t.equal(lines.filter((l) => /opened on the main thread from now on/.test(l)).length, 1, 'said once in the log');
  t.ok(got.every((g) => g.length === 0 || g.equals(plain)), 'no open ever returned other bytes');
});

t.test('opens wait their turn a few in hand: urgent and hurried ones go first; closing answers the rest', async (t) => {
  const tmp = tempDir();
  const io = new ThreadedFileIo({ threads: 1, inHandPerThread: 2, dataKey: (keyId) => u.keys.blockDataKey(keyId), fallback: new EventLoopFileIo(codec) });
  t.teardown(async () => { await io.close(); tmp.remove(); });
  const blocks = await Promise.all(Array.from({ length: 9 }, async () => {
    const plain = randomBytes(1 << 20);
    return { plain, ...(await sealedFile(tmp.dir, codec, plain)) };
  }));
  const done: number[] = [];
  const open = (k: number, urgent = false) => io.open(blocks[k].file, blocks[k].size, blocks[k].id, undefined, urgent).then((p) => { done.push(k); return p; });
  // Eight opens for reading ahead: two go to the thread, six wait. Then a reader wants block
  // 8 (urgent) and block 7 (queued: hurried).
  const ahead = Array.from({ length: 8 }, (_, k) => open(k));
  const urgent = open(8, true);
  io.hurry(blocks[7].id);
  const got = await Promise.all([...ahead, urgent]);
  t.ok(got.every((p, k) => p.equals(blocks[k].plain)), 'every block identical');
  t.same(done.slice(0, 2).sort(), [0, 1], 'the two in hand first');
  t.same(done.slice(2, 4), [8, 7], 'then the urgent open and the hurried one, in that order');
  t.same(done.slice(4), [2, 3, 4, 5, 6], 'then the others in order');

  const waiting = Promise.allSettled(Array.from({ length: 6 }, (_, k) => open(k)));
  await io.close();
  const settled = await waiting;
  t.ok(settled.every((r) => r.status === 'fulfilled' || r.reason instanceof UnreadableCacheFile), 'closing answers every open, those still waiting too');
  t.ok(settled.slice(2).every((r) => r.status === 'rejected'), 'the waiting ones: the cache is closed');
});

t.test('the cache drops an entry whose file is torn, through the threaded implementation', async (t) => {
  const tmp = tempDir();
  const io = new ThreadedFileIo({ threads: 2, dataKey: (keyId) => u.keys.blockDataKey(keyId), fallback: new EventLoopFileIo(codec) });
  const cache = await BlockCache.open({ dir: path.join(tmp.dir, 'cache'), filespaceId: u.descriptor.filespaceId, cacheKey: u.keys.cache, limitBytes: 1 << 30, sealer: codec, files: io });
  t.teardown(async () => { await cache.close(); tmp.remove(); });
  const good = randomBytes(300_000);
  const ids = [codec.newObjectId(), codec.newObjectId()];
  await cache.writeClean(ids[0], codec.seal(ids[0], good), 1);
  await cache.writeClean(ids[1], codec.seal(ids[1], randomBytes(300_000)), 1);
  t.ok((await cache.openClean(ids[0]))?.equals(good), 'a clean block opens to its plaintext');
  const file = path.join(tmp.dir, 'cache', 'objects', ids[1].slice(0, 2), ids[1]);
  await fs.truncate(file, 1000);
  t.equal(await cache.openClean(ids[1]), undefined, 'a torn file is a miss');
  t.notOk(cache.isCleanOnDisk(ids[1]), 'and its entry is gone');
  t.equal(await cache.openClean(codec.newObjectId()), undefined, 'an object never cached is a miss');
});
