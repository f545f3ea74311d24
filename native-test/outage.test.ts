/**
 * The metadata service killed while two mounts use it, as an editor would live through it:
 * - cached files still read identically, folders still list, stat still answers;
 * - a write during the outage is accepted into the cache, `lucid status` says "offline,
 *   N bytes waiting", and an uncached file fails with EIO rather than hanging;
 * - names change during the outage too (journaled): a new folder with a new file in it, an
 *   editor's save (a temporary file renamed over the old one), a delete, a chmod — shown at
 *   once on the mount that made them, `lucid status` counts them;
 * - the service restarted on the same database: the waiting write reaches the other mount
 *   within 30 s, and so do the changes to names, both mounts are back online, and
 *   everything reads identical.
 */
import t from 'tap';
import path from 'node:path';
import { freePort } from '../test/helpers/servers.js';
import { initFilespace, sh, startServe, within } from './helpers.js';


t.test('service outage: cached work goes on, writes wait, then arrive', { timeout: 300_000 }, async (t) => {
  const fx = await initFilespace(t, 'lucid-outage-');
  const { dir, store, env, swept, run } = fx;
  const db = `sqlite:${fx.root}/meta.sqlite`;
  const listen = `127.0.0.1:${await freePort()}`;
  let serve = await startServe(store, db, env, ['--listen', listen]);
  const [a, b, work] = [dir('a'), dir('b'), dir('work')];
  t.teardown(async () => {
    swept();
    for (const mp of [a, b]) await run(['unmount', mp, '--force']);
    await sh(`for m in ${a} ${b}; do grep -q " $m " /proc/mounts && umount -l $m; done; true`);
    serve.child.kill('SIGKILL');
    fx.remove();
  });
  for (const [mp, cache] of [[a, 'cache-a'], [b, 'cache-b']]) {
    const m = await run(['mount', mp, '--store', store, '--service', serve.url, '--cache-dir', path.join(fx.root, cache)]);
    t.equal(m.code, 0, m.stderr);
  }

  const w = await sh(`mkdir ${a}/proj && head -c 3M /dev/urandom > ${work}/cut.mov && head -c 200K /dev/urandom > ${work}/notes.v1 \\
    && head -c 200K /dev/urandom > ${work}/notes.v2 && head -c 1M /dev/urandom > ${work}/uncached.bin \\
    && cp ${work}/cut.mov ${a}/proj/cut.mov && cp ${work}/notes.v1 ${a}/proj/notes.txt && mkdir ${a}/other && cp ${work}/uncached.bin ${a}/other/unseen.bin \\
    && head -c 300K /dev/urandom > ${work}/edl.v1 && head -c 310K /dev/urandom > ${work}/edl.v2 && head -c 2M /dev/urandom > ${work}/frame.exr \\
    && cp ${work}/edl.v1 ${a}/proj/cut.edl && echo old > ${a}/proj/old.txt \\
    && sync ${a}/proj/* ${a}/other/* && ls ${a}/proj > /dev/null && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  const seen = await within(5000, async () => (await sh(`ls ${b}/proj > /dev/null && cmp -s ${b}/proj/cut.mov ${work}/cut.mov && cmp -s ${b}/proj/notes.txt ${work}/notes.v1 && echo same`)).stdout.trim() === 'same');
  // B has listed proj/ and read its files, and never looked at other/.
  t.ok(seen >= 0, 'B has read (and cached) the files');

  serve.child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 1500)); // past the 1 s staleness bound: every answer now comes from what was kept

  const cached = await sh(`cmp ${b}/proj/cut.mov ${work}/cut.mov && cmp ${a}/proj/cut.mov ${work}/cut.mov && echo same`);
  t.equal(cached.stdout.trim(), 'same', 'cached files read identically on both mounts with the service down');
  const ls = await sh(`ls ${b}/proj && stat -c %s ${b}/proj/cut.mov`);
  t.same(ls.stdout.trim().split('\n'), ['cut.edl', 'cut.mov', 'notes.txt', 'old.txt', String(3 * 1048576)], 'the folder lists and stat answers');
  const unseen = await sh(`cat ${b}/other/unseen.bin > /dev/null; echo "exit $?"`, {}, 120_000);
  t.match(unseen.stdout, /exit 1/, 'a folder B never saw cannot be reached: an error, not a hang');
  t.match(unseen.stderr, /Input\/output error/, 'EIO');

  const write = await sh(`dd if=${work}/notes.v2 of=${a}/proj/notes.txt bs=64K conv=notrunc status=none && echo written`);
  t.equal(write.stdout.trim(), 'written', `a write to an existing file is accepted during the outage ${write.stderr}`);
  t.equal((await sh(`cmp ${a}/proj/notes.txt ${work}/notes.v2 && echo same`)).stdout.trim(), 'same', 'and reads back on A');
  const offline = await within(10_000, async () => /offline, [\d.]+ [KMG]?i?B waiting/.test((await run(['status', a])).stdout));
  const status = await run(['status', a]);
  t.ok(offline >= 0, `lucid status says offline with bytes waiting: ${status.stdout.split('\n')[0]}`);
  const json = JSON.parse((await run(['status', a, '--json'])).stdout) as { state: string; uploadBytes: number; offline?: { reason: string } };
  t.equal(json.state, 'offline');
  t.ok(json.uploadBytes > 0, `${json.uploadBytes} bytes waiting`);
  t.match(json.offline?.reason ?? '', /service/);

  const renamed = await sh(`mkdir ${a}/proj/renders && cp ${work}/frame.exr ${a}/proj/renders/frame-0001.exr \\
    && cp ${work}/edl.v2 ${a}/proj/.cut.edl.tmp && mv ${a}/proj/.cut.edl.tmp ${a}/proj/cut.edl \\
    && rm ${a}/proj/old.txt && chmod 600 ${a}/proj/cut.edl && echo changed`);
  t.equal(renamed.stdout.trim(), 'changed', `a new folder and file, a save by rename, a delete and a chmod during the outage ${renamed.stderr}`);
  t.same((await sh(`ls ${a}/proj`)).stdout.trim().split('\n'), ['cut.edl', 'cut.mov', 'notes.txt', 'renders'], 'A shows its changes at once');
  t.equal((await sh(`cmp ${a}/proj/renders/frame-0001.exr ${work}/frame.exr && cmp ${a}/proj/cut.edl ${work}/edl.v2 && stat -c %a ${a}/proj/cut.edl`)).stdout.trim(), '600', 'and reads them back');
  const counted = (await run(['status', a])).stdout.split('\n')[0];
  t.match(counted, /offline, [\d.]+ [KMG]?i?B and \d+ change\(s\) waiting/, `lucid status counts the changes: ${counted}`);

  const back = Date.now();
  serve = await startServe(store, db, env, ['--listen', listen]);
  const arrived = await within(30_000, async () => (await sh(`cmp -s ${b}/proj/notes.txt ${work}/notes.v2 && echo same`)).stdout.trim() === 'same');
  t.ok(arrived >= 0, `the write made during the outage reached B ${((Date.now() - back) / 1000).toFixed(1)} s after the service came back`);
  const followed = await within(30_000, async () => (await sh(`cmp -s ${b}/proj/renders/frame-0001.exr ${work}/frame.exr && cmp -s ${b}/proj/cut.edl ${work}/edl.v2 && echo same`)).stdout.trim() === 'same');
  t.ok(followed >= 0, `the new file and the save reached B ${((Date.now() - back) / 1000).toFixed(1)} s after the service came back`);
  t.same((await sh(`ls ${b}/proj; stat -c %a ${b}/proj/cut.edl`)).stdout.trim().split('\n'), ['cut.edl', 'cut.mov', 'notes.txt', 'renders', '600'], 'the delete and the chmod too');
  const online = await within(10_000, async () => {
    const s = JSON.parse((await run(['status', a, '--json'])).stdout) as { state: string };
    return s.state === 'mounted';
  });
  t.ok(online >= 0, 'A is back online with nothing waiting');
  t.equal((await sh(`cmp ${b}/other/unseen.bin ${work}/uncached.bin && cmp ${a}/proj/cut.mov ${work}/cut.mov && echo same`)).stdout.trim(), 'same', 'everything reads identical');
});
