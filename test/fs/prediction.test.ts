/**
 * The VFS side of per-directory prediction, two mounts over one engine and store: a player
 * that lists a folder of frames and opens the first gets that frame and the next ones
 * fetched from the listing it has just taken (no second listing round trip), byte for byte;
 * after another client changes the folder, the listing is taken again. Frames predicted
 * further ahead than memory keeps plaintexts come to the disk cache only, each block fetched
 * once even when a read wants it while it is on its way (opened from the bytes held until
 * they are written), and are opened from disk after. A folder of small files whose listing
 * the mount learnt ahead and serves from what it holds is walked like one just fetched.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { MetaEngine } from '../../src/meta/types.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MeteredStore } from '../../src/store/metrics.js';
import { countingCalls, mountVfs, sharedFilespace, watchingCalls } from '../helpers/shared.js';

const BS = 65536;
const O_RDONLY = 0;
const O_RDWR = 2;
const caller = { uid: 0, gid: 0 };

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('the first frame opened after a listing is predicted from that listing', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const readdirs = countingCalls(shared.engine, ['readdir']);
  const mount = (name: string, meta: MetaEngine) => mountVfs(t, shared, name, { meta, attrTtlMs: 2000, idleMs: 0 });
  const writer = await mount('writer', shared.engine);
  const reader = await mount('reader', readdirs.meta);

  const shot = await writer.mkdir(1, 'shot', 0o755, caller);
  const frames: Buffer[] = [];
  for (let i = 0; i < 6; i++) {
    frames.push(randomBytes(3 * BS + 100));
    const { fh } = await writer.create(shot.ino, `frame_${String(i).padStart(4, '0')}.dpx`, 0o644, O_RDWR, caller);
    await writer.write(fh, 0, frames[i]);
    await writer.fsync(fh);
    await writer.release(fh);
  }

  const folder = await reader.lookup(1, 'shot');
  const listed = (await reader.list(folder.ino)).sort((a, b) => (a.name < b.name ? -1 : 1));
  t.equal(listed.length, 6, 'the player lists the folder');
  const before = readdirs.calls();
  const fh = await reader.open(listed[0].ino, O_RDONLY);
  await until('the first frame and the next two are fetched', () => reader.predictor.predictedFiles >= 3);
  t.equal(readdirs.calls(), before, 'no second listing: the one just taken served');
  t.ok((await reader.read(fh, 0, frames[0].length)).equals(frames[0]), 'the first frame reads back identical');
  await reader.release(fh);
  for (let i = 1; i < 6; i++) {
    const h = await reader.open(listed[i].ino, O_RDONLY);
    t.ok((await reader.read(h, 0, frames[i].length)).equals(frames[i]), `frame ${i} identical`);
    await reader.release(h);
  }

  // Another client changes the folder after a third mount listed it: told so (as the feed
  // would tell it), that mount's first open lists the folder again.
  const third = await mount('third', readdirs.meta);
  const d3 = await third.lookup(1, 'shot');
  await third.list(d3.ino);
  const first = await third.lookup(d3.ino, 'frame_0000.dpx');
  const { fh: w } = await writer.create(shot.ino, 'frame_0006.dpx', 0o644, O_RDWR, caller);
  await writer.write(w, 0, randomBytes(BS));
  await writer.fsync(w);
  third.view.revalidate(d3.ino);
  const afterList = readdirs.calls();
  const h3 = await third.open(first.ino, O_RDONLY);
  await until('a new listing', () => readdirs.calls() > afterList);
  t.ok(readdirs.calls() > afterList, 'the changed folder is listed again, not predicted from the old listing');
  await third.release(h3);
});

t.test('a listing learnt ahead and served from what the mount holds starts the walk of small files, with no map request per file', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const calls: string[] = [];
  const meta = watchingCalls(shared.engine, ['readdir', 'getBlocks', 'lookup'], (m) => calls.push(m));
  const writer = await mountVfs(t, shared, 'writer', { idleMs: 0 });
  const reader = await mountVfs(t, shared, 'reader', { meta });
  reader.view.setFeed(true); // as the agent does once the change feed is connected

  const top = await writer.mkdir(1, 'project', 0o755, caller);
  const sub = await writer.mkdir(top.ino, 'assets', 0o755, caller);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) {
    const name = `asset_${String(i).padStart(3, '0')}.json`;
    files.set(name, randomBytes(500 + i * 10));
    const { fh } = await writer.create(sub.ino, name, 0o644, O_RDWR, caller);
    await writer.write(fh, 0, files.get(name)!);
    await writer.fsync(fh);
    await writer.release(fh);
  }

  await reader.list((await reader.lookup(1, 'project')).ino);
  await until('the subfolder\'s listing is learnt ahead', () => reader.view.servesListing(sub.ino));
  const before = calls.length;
  const listed = await reader.list((await reader.lookup(top.ino, 'assets')).ino);
  t.same(listed.map((e) => e.name).sort(), [...files.keys()].sort(), 'the held listing serves every name');
  for (const e of listed.slice(0, 3)) {
    const fh = await reader.open(e.ino, O_RDONLY);
    t.ok((await reader.read(fh, 0, 4096)).equals(files.get(e.name)!), `${e.name} identical`);
    await reader.release(fh);
  }
  await until('the folder\'s other small files are walked in', () => reader.predictor.walkedFiles >= 30);
  for (const e of listed.slice(3)) {
    const fh = await reader.open(e.ino, O_RDONLY);
    if (!(await reader.read(fh, 0, 4096)).equals(files.get(e.name)!)) t.fail(`${e.name} reads back wrong`);
    await reader.release(fh);
  }
  t.same(calls.slice(before), [], 'no listing, lookup or block-map request while the folder was listed and read');
});

t.test('frames predicted beyond memory come to disk once and are opened from there', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const writer = await mountVfs(t, shared, 'writer', { idleMs: 0 });
  const shot = await writer.mkdir(1, 'shot', 0o755, caller);
  const frames: Buffer[] = [];
  for (let i = 0; i < 4; i++) {
    frames.push(randomBytes(3 * BS + 100)); // 4 blocks
    const { fh } = await writer.create(shot.ino, `frame_${i}.dpx`, 0o644, O_RDWR, caller);
    await writer.write(fh, 0, frames[i]);
    await writer.fsync(fh);
    await writer.release(fh);
  }
  // Every GET takes 100 ms, so a read can come while a block is on its way to disk.
  const slow = new FaultyStore(shared.store);
  slow.inject({ op: 'get', fault: { kind: 'latency', ms: 100 } });
  const gets = new MeteredStore(slow);
  // 6 blocks of plaintext in memory: predicted files starting 2 blocks ahead or more (frames
  // 1 and 2) come to disk only.
  const reader = await mountVfs(t, shared, 'reader', { store: gets, memoryCacheBytes: 6 * BS, attrTtlMs: 5000 });
  const folder = await reader.lookup(1, 'shot');
  const listed = (await reader.list(folder.ino)).sort((a, b) => (a.name < b.name ? -1 : 1));
  const h0 = await reader.open(listed[0].ino, O_RDONLY);
  await until('frames 0, 1 and 2 are on their way', () => reader.predictor.predictedFiles >= 3);
  const read = async (i: number) => {
    const h = i === 0 ? h0 : await reader.open(listed[i].ino, O_RDONLY);
    t.ok((await reader.read(h, 0, frames[i].length)).equals(frames[i]), `frame ${i} reads back identical`);
    await reader.release(h);
  };
  // Out of order (no further prediction): frame 2 first, while its blocks are in flight.
  await read(2);
  await until('every block fetched and written', () => reader.data.prefetcher.stats().inflight === 0 && reader.cache.keepingBytes === 0);
  const hitsBefore = reader.cache.stats().hits;
  await read(1);
  t.equal(reader.cache.stats().hits - hitsBefore, 4, 'frame 1, kept on disk only, was opened from the disk cache');
  await read(0);
  t.equal(gets.stats.get.requests, 12, 'each block of the three predicted frames fetched once');
});
