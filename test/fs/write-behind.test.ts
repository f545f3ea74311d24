/**
 * Write-behind (docs/SEMANTICS.md, "Cache and upload"): with a near store, blocks of large
 * objects wait while a writer keeps writing and go once it pauses, or at once for an fsync;
 * with a far store they go while the writer writes, more than 8 at once while blocks wait; a
 * local store (file://) is near however long its PUTs take. Either way every byte reads back
 * and ends committed.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { ObjectStore } from '../../src/store/types.js';
import { mountVfs, readPath, sharedFilespace } from '../helpers/shared.js';

const BS = 512 * 1024; // above the uploader's small-object size
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The shared store with every PUT counted, each taking `delayMs`; `peak()` is the most in
 * flight at once. With `local`, it says it is on this machine's disks (as a file:// store does).
 */
function countingStore(store: ObjectStore, delayMs: number, local = false): { store: ObjectStore; puts(): number; peak(): number } {
  let puts = 0;
  let inFlight = 0;
  let peak = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'local') return local;
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop !== 'put') return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        puts++;
        peak = Math.max(peak, ++inFlight);
        try {
          await sleep(delayMs);
          return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          inFlight--;
        }
      };
    },
  }) as ObjectStore;
  return { store: wrapped, puts: () => puts, peak: () => peak };
}

/**
 * A mount writing through a store whose PUTs take `delayMs`. A near store (no delay) is told
 * apart with a generous bound, and a writer pauses only after 1 s, so that a loaded machine
 * (a PUT to local disk taking over 25 ms, a write over 200 ms) does not change what is tested.
 */
async function writer(t: Test, delayMs: number, local = false) {
  const shared = await sharedFilespace(t, BS);
  const counted = countingStore(shared.store, delayMs, local);
  const upload = delayMs === 0 ? { nearStoreMs: 1000, writerPauseMs: 1000 } : local ? { writerPauseMs: 1000 } : {};
  const vfs = await mountVfs(t, shared, 'm', { store: counted.store, idleMs: 60_000, upload });
  // One block first, written and uploaded alone: the uploader learns how near the store is.
  const first = await vfs.create(1, 'warm.bin', 0o644, 2, { uid: 0, gid: 0 });
  await vfs.write(first.fh, 0, randomBytes(BS));
  await vfs.fsync(first.fh);
  await vfs.release(first.fh);
  const { attr, fh } = await vfs.create(1, 'stream.bin', 0o644, 2, { uid: 0, gid: 0 });
  return { shared, vfs, counted, ino: attr.ino, fh };
}

/** Writes `blocks` full blocks, one every `everyMs`; returns what was written and the PUTs made meanwhile. */
async function stream(w: Awaited<ReturnType<typeof writer>>, blocks: number, everyMs: number): Promise<{ data: Buffer; putsWhileWriting: number }> {
  const data = randomBytes(blocks * BS);
  const before = w.counted.puts();
  for (let i = 0; i < blocks; i++) {
    await w.vfs.write(w.fh, i * BS, data.subarray(i * BS, (i + 1) * BS));
    await sleep(everyMs);
  }
  return { data, putsWhileWriting: w.counted.puts() - before };
}

t.test('near store: full blocks wait while the writer writes, and go once it pauses', async (t) => {
  const w = await writer(t, 0);
  const { data, putsWhileWriting } = await stream(w, 8, 40);
  t.equal(putsWhileWriting, 0, 'no PUT while the writer kept writing');
  t.ok((await w.vfs.readInode(w.ino, 0, data.length)).equals(data), 'what was written reads back meanwhile');
  for (let i = 0; i < 500 && w.vfs.uploader.pendingUploads() > 0; i++) await sleep(20);
  t.ok(w.counted.puts() - 1 >= 8, 'after the pause every full block was put');
  await w.vfs.fsync(w.fh);
  await w.vfs.release(w.fh);
  const other = await mountVfs(t, w.shared, 'other');
  t.ok((await readPath(other, '/stream.bin')).equals(data), 'another mount reads every byte');
});

t.test('near store: an fsync does not wait for the writer to pause', async (t) => {
  const w = await writer(t, 0);
  const data = randomBytes(4 * BS);
  for (let i = 0; i < 4; i++) await w.vfs.write(w.fh, i * BS, data.subarray(i * BS, (i + 1) * BS));
  // Another file keeps being written meanwhile: the mount's writer is busy.
  const busy = await w.vfs.create(1, 'busy.bin', 0o644, 2, { uid: 0, gid: 0 });
  let writing = true;
  const keepBusy = (async () => { for (let i = 0; writing; i++) { await w.vfs.write(busy.fh, (i % 64) * 4096, randomBytes(4096)); await sleep(5); } })();
  const synced = await Promise.race([w.vfs.fsync(w.fh).then(() => true), sleep(5000).then(() => false)]);
  writing = false;
  await keepBusy;
  t.ok(synced, 'fsync returned while another writer kept writing');
  const other = await mountVfs(t, w.shared, 'other');
  t.ok((await readPath(other, '/stream.bin')).equals(data), 'and what it covered is committed');
  await w.vfs.release(busy.fh);
  await w.vfs.release(w.fh);
});

t.test('far store: full blocks go while the writer writes', async (t) => {
  const w = await writer(t, 40);
  const { data, putsWhileWriting } = await stream(w, 8, 40);
  t.ok(putsWhileWriting >= 4, `PUTs overlapped the writes (${putsWhileWriting})`);
  await w.vfs.fsync(w.fh);
  await w.vfs.release(w.fh);
  const other = await mountVfs(t, w.shared, 'other');
  t.ok((await readPath(other, '/stream.bin')).equals(data), 'another mount reads every byte');
});

t.test('far store: the width of large PUTs grows past 8 while blocks wait', async (t) => {
  const w = await writer(t, 40);
  const data = randomBytes(48 * BS);
  for (let i = 0; i < 48; i++) await w.vfs.write(w.fh, i * BS, data.subarray(i * BS, (i + 1) * BS));
  await w.vfs.fsync(w.fh);
  t.ok(w.counted.peak() > 8, `${w.counted.peak()} PUTs were in flight at once`);
  await w.vfs.release(w.fh);
  const other = await mountVfs(t, w.shared, 'other');
  t.ok((await readPath(other, '/stream.bin')).equals(data), 'another mount reads every byte');
});

t.test('near store: a writer that never pauses holds blocks back for 5 s at most', async (t) => {
  const w = await writer(t, 0);
  const before = w.counted.puts();
  const started = performance.now();
  let putsBy4s = -1;
  let last = Buffer.alloc(0);
  for (let i = 0; performance.now() - started < 6500; i++) {
    last = randomBytes(BS);
    await w.vfs.write(w.fh, (i % 8) * BS, last);
    if (putsBy4s < 0 && performance.now() - started > 4000) putsBy4s = w.counted.puts() - before;
    await sleep(40);
  }
  t.equal(putsBy4s, 0, 'nothing went in the first 4 s of writing');
  t.ok(w.counted.puts() - before > 0, `after 5 s blocks went while the writer still wrote (${w.counted.puts() - before} PUTs)`);
  await w.vfs.fsync(w.fh);
  await w.vfs.release(w.fh);
});

t.test('local store: slow PUTs neither end the wait for the writer nor widen the uploads', async (t) => {
  // PUTs of 40 ms, as to a local disk busy with the writers' own work: a store timed that slow
  // is far (above), but one that says it is local stays near.
  const w = await writer(t, 40, true);
  const { data: first, putsWhileWriting } = await stream(w, 8, 40);
  t.equal(putsWhileWriting, 0, 'no PUT while the writer kept writing');
  const rest = randomBytes(40 * BS);
  for (let i = 0; i < 40; i++) await w.vfs.write(w.fh, (8 + i) * BS, rest.subarray(i * BS, (i + 1) * BS));
  await w.vfs.fsync(w.fh);
  t.ok(w.counted.peak() <= w.vfs.uploader.slots, `at most the uploader's ${w.vfs.uploader.slots} slots of PUTs at once (${w.counted.peak()})`);
  await w.vfs.release(w.fh);
  const other = await mountVfs(t, w.shared, 'other');
  t.ok((await readPath(other, '/stream.bin')).equals(Buffer.concat([first, rest])), 'another mount reads every byte');
});
