/**
 * The prefetcher against a controllable loader: the window grows geometrically on a
 * sequential stream and never beyond its maximum, a broken pattern cancels queued
 * prefetches, reverse reads prefetch backwards, and fetches in flight never exceed the budget;
 * a mount's window is two thirds of the memory it keeps for plaintexts, between 2 and 32 blocks.
 */
import t from 'tap';
import { Prefetcher, prefetchWindowBlocks, type PrefetchLoader } from '../../src/prefetch/prefetcher.js';

const BS = 1024 * 1024;

function fakeLoader() {
  const cached = new Set<string>();
  const pending: { key: string; resolve: () => void }[] = [];
  let inflight = 0;
  let peak = 0;
  const loads: string[] = [];
  const loader: PrefetchLoader = {
    isCached: (ino, idx) => cached.has(`${ino}:${idx}`),
    load: (ino, idx) => new Promise<void>((resolve) => {
      inflight++;
      peak = Math.max(peak, inflight);
      const key = `${ino}:${idx}`;
      loads.push(key);
      pending.push({ key, resolve: () => { inflight--; cached.add(key); resolve(); } });
    }),
  };
  const finishAll = async () => {
    while (pending.length) {
      pending.shift()!.resolve();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { loader, loads, finishAll, peak: () => peak, inflight: () => inflight };
}

t.test('sequential reads grow the window geometrically up to the maximum', async (t) => {
  const ahead = async (options: { maxWindowBlocks: number; growth?: number }) => {
    const f = fakeLoader();
    const p = new Prefetcher(f.loader, { blockSize: BS, initialWindowBlocks: 2, maxInflight: 100, ...options });
    const result: number[] = [];
    for (let i = 0; i < 8; i++) {
      p.onRead(1, 7, i * BS, BS, 1000 * BS);
      const furthest = Math.max(...f.loads.map((k) => Number(k.split(':')[1])));
      result.push(furthest - i);
      await f.finishAll();
    }
    t.equal(new Set(f.loads).size, f.loads.length, 'no block fetched twice');
    t.notOk(f.loads.includes('7:0'), 'the demand block itself is not prefetched');
    return result;
  };
  t.same(await ahead({ maxWindowBlocks: 16 }), [2, 8, 16, 16, 16, 16, 16, 16], 'blocks ahead of the reader: four times more per read, then capped');
  t.same(await ahead({ maxWindowBlocks: 8, growth: 2 }), [2, 4, 8, 8, 8, 8, 8, 8], 'growth 2: doubling, then capped');
});

t.test('in-flight prefetches never exceed the budget', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, initialWindowBlocks: 4, maxWindowBlocks: 64, maxInflight: 3 });
  for (let i = 0; i < 20; i++) p.onRead(1, 1, i * BS, BS, 1000 * BS);
  t.equal(f.inflight(), 3);
  await f.finishAll();
  t.ok(f.peak() <= 3, `peak ${f.peak()}`);
  t.equal(p.stats().inflight, 0);
});

t.test('a random jump cancels queued prefetches; reverse reads prefetch backwards', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, initialWindowBlocks: 8, maxWindowBlocks: 8, maxInflight: 1 });
  p.onRead(1, 1, 0, BS, 1000 * BS); // queues 1..8, one starts
  p.onRead(1, 1, 500 * BS, BS, 1000 * BS); // random: the rest is cancelled
  await f.finishAll();
  t.same(f.loads, ['1:1'], 'only the prefetch already in flight ran');
  t.equal(p.stats().cancelled, 7);
  const g = fakeLoader();
  const q = new Prefetcher(g.loader, { blockSize: BS, initialWindowBlocks: 2, maxWindowBlocks: 4, maxInflight: 10 });
  for (const blk of [100, 99, 98]) {
    q.onRead(2, 3, blk * BS, BS, 1000 * BS);
    await g.finishAll();
  }
  t.ok(g.loads.includes('3:97') && g.loads.includes('3:96'), `backwards: ${g.loads.join(' ')}`);
  t.notOk(g.loads.some((k) => Number(k.split(':')[1]) > 100), 'nothing ahead of a reverse reader');
});

t.test('cached blocks are skipped, the end of the file bounds the window, accuracy counts use', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, initialWindowBlocks: 4, maxWindowBlocks: 4, maxInflight: 10 });
  p.onRead(1, 5, 0, BS, 3 * BS);
  await f.finishAll();
  t.same(f.loads.sort(), ['5:1', '5:2'], 'only up to the last block');
  p.onRead(1, 5, BS, BS, 3 * BS);
  p.onRead(1, 5, 2 * BS, BS, 3 * BS);
  t.equal(p.stats().used, 2, 'both prefetched blocks were read');
  t.equal(p.stats().issued, 2);
  p.close(1);
});

t.test('strided reads prefetch the next reads of the stride, not the blocks between', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, initialWindowBlocks: 2, maxWindowBlocks: 4, maxInflight: 100 });
  const size = 100 * BS;
  // Read 64 KiB every 10 blocks (every Nth frame of a file of frames).
  for (const k of [0, 10, 20]) p.onRead(1, 5, k * BS + 100, 65536, size);
  t.equal(p.patternOf(1), 'strided');
  t.ok(f.loads.includes('5:30') && f.loads.includes('5:40'), 'the next stride targets are fetched');
  t.notOk(f.loads.some((k) => ['5:21', '5:25', '5:29'].includes(k)), 'blocks between them are not');
  p.onRead(1, 5, 77 * BS, 4096, size);
  t.equal(p.patternOf(1), 'random', 'a jump off the stride ends the pattern');
  await f.finishAll();
});

t.test('whole-file prefetch for a predicted file can be dropped before it starts', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, maxInflight: 2 });
  t.equal(p.prefetchFile(9, 6), 6, 'six blocks queued');
  t.same(f.loads, ['9:0', '9:1'], 'only the in-flight budget started');
  p.forgetFile(9);
  await f.finishAll();
  t.same(f.loads, ['9:0', '9:1'], 'the rest were dropped');
  t.equal(p.stats().cancelled, 4);
});

t.test('small whole files count their own bytes: many more in flight, within the request cap and the byte budget', async (t) => {
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: BS, maxInflight: 4, maxRequests: 10 });
  for (let ino = 100; ino < 120; ino++) p.prefetchFile(ino, 1, false, 4096);
  t.equal(f.inflight(), 10, '4 KiB files: the request cap (10), not the block budget (4)');
  await f.finishAll();
  t.equal(f.loads.length, 20, 'every file fetched once');
  t.equal(f.peak(), 10);

  const g = fakeLoader();
  const q = new Prefetcher(g.loader, { blockSize: BS, maxInflight: 4, maxRequests: 10 });
  for (let ino = 200; ino < 210; ino++) q.prefetchFile(ino, 1, false, BS / 2);
  t.equal(g.inflight(), 8, 'half-block files: the byte budget (4 blocks) holds 8');
  for (let ino = 300; ino < 305; ino++) q.prefetchFile(ino, 1, false);
  await g.finishAll();
  t.ok(g.peak() <= 8, `peak ${g.peak()}`);
  t.equal(new Set(g.loads).size, 15, 'each fetched once');
  t.equal(q.stats().inflight, 0);
});

t.test('the window fits in the memory kept for plaintexts', async (t) => {
  const MiB = 1024 * 1024;
  t.equal(prefetchWindowBlocks(24 * MiB, MiB), 16, 'the default 24 MiB: 16 blocks of 1 MiB');
  t.equal(prefetchWindowBlocks(2 * MiB, MiB), 2, 'never below 2');
  t.equal(prefetchWindowBlocks(1024 * MiB, MiB), 32, 'never above 32');
  t.equal(prefetchWindowBlocks(24 * MiB, 4 * MiB), 4, '4 MiB blocks: 4');
  // Read at 16 blocks ahead, a reader never finds more blocks fetched and unread than that.
  const f = fakeLoader();
  const p = new Prefetcher(f.loader, { blockSize: MiB, maxWindowBlocks: prefetchWindowBlocks(24 * MiB, MiB), maxInflight: 100 });
  let most = 0;
  for (let i = 0; i < 64; i++) {
    p.onRead(1, 3, i * MiB, MiB, 1000 * MiB);
    await f.finishAll();
    most = Math.max(most, Math.max(...f.loads.map((k) => Number(k.split(':')[1]))) - i);
  }
  t.equal(most, 16, 'at most 16 blocks ahead');
});
