/**
 * The store unreachable while mounted (an S3 store, s3rver, behind a proxy that refuses every
 * connection), as an editor would live through it:
 * - cached files still read identically;
 * - a new file is accepted into the cache, `lucid status` says "offline, N bytes waiting …
 *   the store cannot be reached", and a file that is not cached fails with EIO, not a hang;
 * - the store back: the waiting upload goes on by itself, the mount is back online, and a
 *   fresh mount with an empty cache reads everything byte for byte from the store.
 */
import t from 'tap';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { lucid } from '../test/helpers/cli.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { startFaultProxy } from '../test/helpers/fault-proxy.js';
import { PASSWORD, sh, within, sweepOnKill } from './helpers.js';

t.test('store outage: cached files read, new writes wait in the cache, then upload', { timeout: 300_000 }, async (t) => {
  const s3 = await startS3rver();
  t.teardown(() => s3.close());
  const proxy = await startFaultProxy(Number(new URL(s3.endpoint).port));
  t.teardown(() => proxy.close());
  const root = tempDir('lucid-store-outage-');
  const dir = (n: string) => { const p = path.join(root.dir, n); mkdirSync(p, { recursive: true }); return p; };
  const store = `s3://${s3.bucket}/team?endpoint=${proxy.url}`;
  const env = { LUCID_HOME: dir('home'), LUCID_PASSWORD: PASSWORD, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const swept = sweepOnKill(env.LUCID_HOME);
  const run = (args: string[]) => lucid(args, { env, timeoutMs: 120_000 });
  const [mp, work] = [dir('mnt'), dir('work')];
  t.teardown(async () => {
    swept();
    await run(['unmount', mp, '--force']);
    await sh(`grep -q " ${mp} " /proc/mounts && umount -l ${mp}; true`);
    root.remove();
  });
  t.equal((await run(['init', '--store', store, '--kdf', 'interactive'])).code, 0);
  const mount = (cache: string) => run(['mount', mp, '--store', store, '--cache-dir', path.join(root.dir, cache)]);
  const m = await mount('cache-1');
  t.equal(m.code, 0, m.stderr);

  const w = await sh(`head -c 3M /dev/urandom > ${work}/cut.mov && head -c 1M /dev/urandom > ${work}/other.mov && head -c 2M /dev/urandom > ${work}/new.mov \\
    && mkdir ${mp}/proj && cp ${work}/cut.mov ${mp}/proj/cut.mov && cp ${work}/other.mov ${mp}/proj/other.mov && sync ${mp}/proj/* && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  // A fresh cache holding only cut.mov: other.mov is in the store alone.
  t.equal((await run(['unmount', mp])).code, 0);
  t.equal((await mount('cache-2')).code, 0);
  t.equal((await sh(`cmp ${mp}/proj/cut.mov ${work}/cut.mov && ls ${mp}/proj && echo read`)).stdout.trim().split('\n').pop(), 'read');

  proxy.always({ kind: 'refuse' });
  proxy.cutAll();
  t.equal((await sh(`cmp ${mp}/proj/cut.mov ${work}/cut.mov && echo same`)).stdout.trim(), 'same', 'a cached file reads identically with the store down');
  const unseen = await sh(`cat ${mp}/proj/other.mov > /dev/null; echo "exit $?"`, {}, 120_000);
  t.match(unseen.stdout, /exit 1/, 'a file that is not cached cannot be read: an error, not a hang');
  t.match(unseen.stderr, /Input\/output error/, 'EIO');
  const write = await sh(`cp ${work}/new.mov ${mp}/proj/new.mov && cmp ${mp}/proj/new.mov ${work}/new.mov && echo written`);
  t.equal(write.stdout.trim(), 'written', `a new file is accepted into the cache and reads back ${write.stderr}`);
  const offline = await within(30_000, async () => /offline, [\d.]+ [KMG]?i?B waiting.*the store cannot be reached/.test((await run(['status', mp])).stdout));
  const status = (await run(['status', mp])).stdout.split('\n')[0];
  t.ok(offline >= 0, `lucid status says the store cannot be reached: ${status}`);
  const json = JSON.parse((await run(['status', mp, '--json'])).stdout) as { state: string; uploadBytes: number };
  t.equal(json.state, 'offline');
  t.equal(json.uploadBytes, 2 * 1048576, 'the new file waits in the cache');

  const back = Date.now();
  proxy.clear();
  const online = await within(60_000, async () => {
    const s = JSON.parse((await run(['status', mp, '--json'])).stdout) as { state: string; uploadBytes: number };
    return s.state === 'mounted' && s.uploadBytes === 0;
  });
  t.ok(online >= 0, `uploaded and back online ${((Date.now() - back) / 1000).toFixed(1)} s after the store came back`);
  t.equal((await run(['unmount', mp])).code, 0);
  t.equal((await mount('cache-3')).code, 0, 'mounted again with an empty cache');
  t.equal((await sh(`cmp ${mp}/proj/new.mov ${work}/new.mov && cmp ${mp}/proj/cut.mov ${work}/cut.mov && cmp ${mp}/proj/other.mov ${work}/other.mov && echo same`)).stdout.trim(),
    'same', 'everything reads byte for byte from the store');
});
