/**
 * Disk faults under the cache, through a real mount:
 * - the cache's disk fills up (a 24 MiB tmpfs under a 1 GiB --cache-size): the writer gets
 *   ENOSPC, what was written before is intact, and once there is room again writes go on
 *   and everything reads back identical, also from the store with an empty cache;
 * - a torn cache file (cut short, as by a power loss) and a damaged one (a flipped bit) are
 *   found on read and fetched again from the store: the reader sees the right bytes.
 */
import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sh, withMount } from './helpers.js';

t.test('a full cache disk: ENOSPC to the writer, nothing corrupted, recovers when space returns', async (t) => {
  const fx = await withMount(t, { mount: false, cacheSize: '1G' });
  await fs.mkdir(fx.cacheDir, { recursive: true });
  t.equal((await sh(`mount -t tmpfs -o size=24M lucid-test-cache ${fx.cacheDir} && echo ok`)).stdout.trim(), 'ok', 'a small disk for the cache');
  t.teardown(() => sh(`umount -l ${fx.cacheDir}; true`));
  t.equal((await fx.mount()).code, 0);

  const w = await sh(`head -c 10M /dev/urandom > ${fx.work}/ok && head -c 60M /dev/urandom > ${fx.work}/big && cp ${fx.work}/ok ${fx.mp}/ok.bin && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  const full = await sh(`dd if=${fx.work}/big of=${fx.mp}/big.bin bs=1M status=none; echo "exit $?"`);
  t.match(full.stdout, /exit 1/, 'a write the disk cannot hold fails');
  t.match(full.stderr, /No space left on device/, 'with ENOSPC');
  t.equal((await sh(`cmp ${fx.mp}/ok.bin ${fx.work}/ok && echo same`)).stdout.trim(), 'same', 'the file written before is intact');
  const written = Number((await sh(`stat -c %s ${fx.mp}/big.bin`)).stdout.trim());
  t.ok(written > 0 && written < 60 * 1048576, `${written} bytes of the big file were accepted`);
  t.equal((await sh(`cmp -n ${written} ${fx.mp}/big.bin ${fx.work}/big && echo same`)).stdout.trim(), 'same', 'and they are the right bytes');

  t.equal((await sh(`mount -o remount,size=300M ${fx.cacheDir} && echo ok`)).stdout.trim(), 'ok', 'space returns');
  const again = await sh(`dd if=${fx.work}/big of=${fx.mp}/big.bin bs=1M conv=fsync status=none && echo written`);
  t.equal(again.stdout.trim(), 'written', `the same write now succeeds ${again.stderr}`);
  t.equal((await fx.unmount()).code, 0, 'everything uploads');
  await sh(`rm -rf ${fx.cacheDir}/*`);
  t.equal((await fx.mount()).code, 0);
  t.equal((await sh(`cmp ${fx.mp}/big.bin ${fx.work}/big && cmp ${fx.mp}/ok.bin ${fx.work}/ok && echo same`)).stdout.trim(), 'same', 'both read back identical from the store');
});

t.test('torn and damaged cache files are detected and fetched again', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`head -c 8M /dev/urandom > ${fx.work}/clip && cp ${fx.work}/clip ${fx.mp}/clip.mov && sync && cat ${fx.mp}/clip.mov > /dev/null && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  t.equal((await fx.unmount()).code, 0);
  const files = (await sh(`find ${fx.cacheDir}/objects -type f | sort`)).stdout.trim().split('\n').filter(Boolean);
  t.ok(files.length >= 8, `${files.length} blocks in the cache`);
  const torn = await fs.readFile(files[0]);
  await fs.writeFile(files[0], torn.subarray(0, torn.length >> 1));
  const damaged = await fs.readFile(files[1]);
  damaged[damaged.length >> 1] ^= 0x01;
  await fs.writeFile(files[1], damaged);
  t.equal((await fx.mount()).code, 0);
  t.equal((await sh(`cmp ${fx.mp}/clip.mov ${fx.work}/clip && echo same`)).stdout.trim(), 'same', 'the file reads right');
  const st = JSON.parse((await fx.lucid(['status', fx.mp, '--json'])).stdout) as { store_requests: { get: number } };
  t.ok(st.store_requests.get >= 2 && st.store_requests.get < files.length, `the two bad blocks were fetched again (${st.store_requests.get} GETs), the rest came from the cache`);
  const log = (await sh(`cat ${path.join(fx.home, 'logs')}/*.log`)).stdout;
  t.match(log, /cached copy of block object [0-9a-f]{32} is damaged; fetching it again/, 'the damaged copy is named in the log');
});
