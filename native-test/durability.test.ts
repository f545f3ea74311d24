/**
 * Crash safety and the cache limit, through a real mount:
 * - kill -9 of the agent right after `dd conv=fsync`, then a mount with a fresh cache dir:
 *   byte-identical (fsync means in the store and committed);
 * - kill -9 with writes acknowledged but not fsynced, then a mount with the same cache dir:
 *   the journal uploads them, byte-identical;
 * - writing three times the cache size: the cache never exceeds its limit by more than one
 *   block per upload slot, and everything reads back;
 * - the cache is persistent: after a remount, reads are served without the store.
 */
import t from 'tap';
import path from 'node:path';
import { killAgent, sh, withMount } from './helpers.js';

t.test('kill -9 right after dd conv=fsync; a fresh cache dir reads it back identical', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`head -c 40M /dev/urandom > ${fx.work}/ref && dd if=${fx.work}/ref of=${fx.mp}/synced.bin bs=1M conv=fsync status=none && echo done`);
  t.equal(w.stdout.trim(), 'done', w.stderr);
  await killAgent(await fx.agentPid());
  const fresh = path.join(fx.work, 'fresh-cache');
  const m = await fx.lucid(['mount', fx.mp, '--store', `file://${fx.store}`, '--cache-dir', fresh]);
  t.equal(m.code, 0, `remount over the stale mount: ${m.stderr}`);
  const r = await sh(`cmp ${fx.mp}/synced.bin ${fx.work}/ref && echo identical`);
  t.equal(r.stdout.trim(), 'identical', r.stderr);
});

t.test('kill -9 before uploads finish; the same cache dir uploads the journal on restart', async (t) => {
  const fx = await withMount(t);
  // Writes are acknowledged once in the cache; stall uploads by making the store's block
  // folder immutable (root ignores permission bits, not the immutable attribute).
  const w = await sh(`
    set -e
    mkdir -p ${fx.store}/blocks && chattr +i ${fx.store}/blocks
    head -c 20M /dev/urandom > ${fx.work}/ref
    cp ${fx.work}/ref ${fx.mp}/unsynced.bin
    echo appended >> ${fx.mp}/unsynced.bin && echo appended >> ${fx.work}/ref
    echo done
  `);
  t.equal(w.stdout.trim(), 'done', w.stderr);
  const st = await fx.lucid(['status', fx.mp, '--json']);
  t.ok((JSON.parse(st.stdout) as { uploadBytes: number }).uploadBytes > 0, 'bytes are waiting to upload');
  await killAgent(await fx.agentPid());
  await sh(`chattr -i ${fx.store}/blocks`);
  const m = await fx.mount();
  t.equal(m.code, 0, m.stderr);
  const r = await sh(`cmp ${fx.mp}/unsynced.bin ${fx.work}/ref && echo identical`);
  t.equal(r.stdout.trim(), 'identical', r.stderr);
  t.equal((await fx.unmount()).code, 0, 'unmount waits for the recovered uploads');
  const again = path.join(fx.work, 'another-cache');
  t.equal((await fx.lucid(['mount', fx.mp, '--store', `file://${fx.store}`, '--cache-dir', again])).code, 0);
  const r2 = await sh(`cmp ${fx.mp}/unsynced.bin ${fx.work}/ref && echo identical`);
  t.equal(r2.stdout.trim(), 'identical', 'in the store, not only in the old cache');
});

t.test('writing three times the cache size keeps the cache within its limit', async (t) => {
  const limit = 64 * 1024 * 1024;
  const fx = await withMount(t, { cacheSize: '64M' });
  const sampler = sh(`
    max=0
    while [ ! -f ${fx.work}/stop ]; do
      used=$(du -sb --apparent-size ${fx.cacheDir}/objects ${fx.cacheDir}/dirty 2>/dev/null | awk '{s+=$1} END {print s+0}')
      [ "$used" -gt "$max" ] && max=$used
      sleep 0.05
    done
    echo $max
  `);
  const w = await sh(`
    set -e
    head -c 192M /dev/urandom > ${fx.work}/ref
    dd if=${fx.work}/ref of=${fx.mp}/big.bin bs=1M status=none
    sync ${fx.mp}/big.bin
    cmp ${fx.mp}/big.bin ${fx.work}/ref && echo identical
    touch ${fx.work}/stop
  `);
  t.equal(w.stdout.trim(), 'identical', w.stderr);
  const peak = Number((await sampler).stdout.trim());
  const slots = 8;
  const block = 1024 * 1024 + 54;
  t.ok(peak > 0, `sampled a peak of ${peak} bytes`);
  t.ok(peak <= limit + slots * block, `peak ${(peak / 1048576).toFixed(1)} MiB within 64 MiB + ${slots} blocks`);
  const st = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as { cache: { usedBytes: number; limitBytes: number; evictions: number } };
  t.ok(st.cache.usedBytes <= st.cache.limitBytes, 'accounted use within the limit');
  t.ok(st.cache.evictions > 0, 'clean blocks were evicted to make room');
});

t.test('the cache survives a remount: reads come from it, not the store', async (t) => {
  const fx = await withMount(t);
  await sh(`head -c 8M /dev/urandom > ${fx.mp}/warm.bin && sync`);
  t.equal((await fx.unmount()).code, 0);
  t.equal((await fx.mount()).code, 0);
  type S = { store_requests: { get: number }; cache: { hits: number } };
  const before = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as S;
  const r = await sh(`cat ${fx.mp}/warm.bin | wc -c`);
  t.equal(r.stdout.trim(), String(8 * 1024 * 1024));
  const st = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as S;
  t.equal(st.store_requests.get - before.store_requests.get, 0, 'no block fetched from the store');
  t.ok(st.cache.hits >= 8, `${st.cache.hits} cache hits`);
});

t.test('pin keeps a file resident; unpin lets it go', async (t) => {
  const fx = await withMount(t, { cacheSize: '32M' });
  await sh(`mkdir ${fx.mp}/keep && head -c 12M /dev/urandom > ${fx.mp}/keep/a.bin && sync`);
  const pin = await fx.lucid(['pin', `${fx.mp}/keep`]);
  t.equal(pin.code, 0, pin.stderr);
  t.match(pin.stdout, /Pinned 1 file\(s\), 12 MiB/);
  await sh(`head -c 60M /dev/urandom > ${fx.mp}/filler.bin && sync && cat ${fx.mp}/filler.bin > /dev/null`);
  const st = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as { cache: { pinnedBytes: number } };
  t.ok(st.cache.pinnedBytes >= 12 * 1024 * 1024, 'pinned bytes stay');
  const un = await fx.lucid(['unpin', `${fx.mp}/keep/a.bin`]);
  t.equal(un.code, 0, un.stderr);
  const after = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as { cache: { pinnedBytes: number } };
  t.equal(after.cache.pinnedBytes, 0);
  const outside = await fx.lucid(['pin', fx.work]);
  t.equal(outside.code, 2);
  t.match(outside.stderr, /not inside a running Lucid mount/);
});
