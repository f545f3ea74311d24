/**
 * Streaming features through a real mount (correctness; speed is the benchmark's job):
 * - files read in name order with an empty cache are predicted ahead and read back
 *   byte-identical;
 * - `lucid warm` fetches a folder (with --recursive; without it, a clear usage error), after
 *   which reading it needs no store request;
 * - `ls -l` (readdirplus) reports every entry's size and mode; a file rewritten in the same
 *   mount reads back new after a reopen (the kernel keeps pages only of unchanged files);
 * - every mount gets the same 2 MiB kernel read-ahead, and a cold 1 MiB read at an unaligned
 *   offset fetches the two blocks it spans and nothing more.
 */
import t, { type Test } from 'tap';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { sh, withMount, type MountFixture } from './helpers.js';

interface Status { prefetch: { predictedFiles: number }; store_requests: { get: number } }

async function status(fx: MountFixture): Promise<Status> {
  const r = await fx.lucid(['status', fx.mp, '--json']);
  return JSON.parse(r.stdout) as Status;
}

async function remountEmpty(t: Test, fx: MountFixture): Promise<void> {
  t.equal((await fx.unmount()).code, 0, 'unmounted');
  await sh(`rm -rf ${fx.cacheDir}`);
  t.equal((await fx.mount()).code, 0, 'mounted again with an empty cache');
}

t.test('a frame sequence read in name order is predicted and byte-identical', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`mkdir -p ${fx.work}/ref ${fx.mp}/shot && for i in $(seq -w 1 12); do head -c 3M /dev/urandom > ${fx.work}/ref/frame_$i.dpx; done && cp ${fx.work}/ref/* ${fx.mp}/shot/ && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  await remountEmpty(t, fx);
  const r = await sh(`cd ${fx.mp}/shot && for f in $(ls); do sha256sum "$f"; done > ${fx.work}/mount.sum && cd ${fx.work}/ref && sha256sum * > ${fx.work}/ref.sum && diff ${fx.work}/ref.sum ${fx.work}/mount.sum && echo same`);
  t.equal(r.stdout.trim(), 'same', r.stderr);
  t.ok((await status(fx)).prefetch.predictedFiles > 0, 'later frames were predicted from the name order');
});

t.test('lucid warm fetches a folder; reading it afterwards asks the store for nothing', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`mkdir -p ${fx.mp}/assets/sub ${fx.work}/ref && head -c 5M /dev/urandom > ${fx.work}/ref/a && head -c 2M /dev/urandom > ${fx.work}/ref/b && cp ${fx.work}/ref/a ${fx.mp}/assets/ && cp ${fx.work}/ref/b ${fx.mp}/assets/sub/ && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  await remountEmpty(t, fx);
  const bad = await fx.lucid(['warm', path.join(fx.mp, 'assets')]);
  t.equal(bad.code, 2, 'a folder without --recursive is a usage error');
  t.match(bad.stderr, /--recursive/);
  t.equal(bad.stderr.trim().split('\n').length, 1, 'in one line');
  const warm = await fx.lucid(['warm', '--recursive', path.join(fx.mp, 'assets')]);
  t.equal(warm.code, 0, warm.stderr);
  t.match(warm.stdout, /Warmed 2 file\(s\), 7 MiB: 7 MiB fetched, 0 B already cached/);
  const before = (await status(fx)).store_requests.get;
  const r = await sh(`cmp ${fx.work}/ref/a ${fx.mp}/assets/a && cmp ${fx.work}/ref/b ${fx.mp}/assets/sub/b && echo same`);
  t.equal(r.stdout.trim(), 'same', r.stderr);
  t.equal((await status(fx)).store_requests.get, before, 'no store GET after warming');
  const again = await fx.lucid(['warm', '-r', path.join(fx.mp, 'assets')]);
  t.match(again.stdout, /0 B fetched, 7 MiB already cached/, 'a second warm fetches nothing');
});

t.test('ls -l lists sizes and modes; a rewritten file reads back new after reopening', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`mkdir ${fx.mp}/d && for i in $(seq 1 300); do head -c $i /dev/zero > ${fx.mp}/d/f$i; done && chmod 640 ${fx.mp}/d/f7 && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  await remountEmpty(t, fx);
  const ls = await sh(`ls -l ${fx.mp}/d | awk 'NR>1 {print $1, $5, $9}'`);
  const rows = ls.stdout.trim().split('\n');
  t.equal(rows.length, 300, 'every entry listed');
  t.ok(rows.every((row) => { const [, size, name] = row.split(' '); return Number(size) === Number(name.slice(1)); }), 'every size right');
  t.ok(rows.includes('-rw-r----- 7 f7'), 'modes right');
  const r = await sh(`f=${fx.mp}/d/f5; cat $f > /dev/null; cat $f > /dev/null; printf 'fresh' > $f; cat $f; echo; printf 'XY' | dd of=$f bs=1 seek=1 conv=notrunc status=none; cat $f`);
  t.equal(r.stdout, 'fresh\nfXYsh', r.stderr);
});

/** The mount's read-ahead in KiB, from its BDI (the device is in /proc/self/mountinfo). */
function readaheadKb(mp: string): number {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mp);
  return Number(readFileSync(`/sys/class/bdi/${line!.split(' ')[2]}/read_ahead_kb`, 'utf8').trim());
}

t.test('every mount reads ahead 2 MiB; a cold unaligned 1 MiB read fetches just its two blocks', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`head -c 8M /dev/urandom > ${fx.work}/ref.bin && cp ${fx.work}/ref.bin ${fx.mp}/clip.bin && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  const seen: number[] = [readaheadKb(fx.mp)];
  for (let i = 0; i < 4; i++) {
    await remountEmpty(t, fx);
    seen.push(readaheadKb(fx.mp));
  }
  t.same(seen, [2048, 2048, 2048, 2048, 2048], 'the same read-ahead on every mount');
  const before = (await status(fx)).store_requests.get;
  // 1 500 000 is in block 1 (of 1 MiB); the read ends in block 2.
  const r = await sh(`dd if=${fx.mp}/clip.bin bs=1048576 count=1 iflag=skip_bytes skip=1500000 status=none | cmp - <(dd if=${fx.work}/ref.bin bs=1048576 count=1 iflag=skip_bytes skip=1500000 status=none) && echo same`);
  t.equal(r.stdout.trim(), 'same', r.stderr);
  await new Promise((resolve) => setTimeout(resolve, 500)); // anything fetched on the side would be under way by now
  t.equal((await status(fx)).store_requests.get - before, 2, 'blocks 1 and 2 fetched, no more');
});
