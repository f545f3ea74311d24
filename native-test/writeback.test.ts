/**
 * The write-back namespace through real mounts and real tools, with `lucid serve`:
 * - `tar x` of many small files returns while the service is frozen (SIGSTOP): every change
 *   is decided and journaled locally; `lucid status` counts what waits; a `kill -9` of the
 *   agent right then loses nothing: the next mount with the same cache sends it all, and a
 *   mount with an empty cache elsewhere reads every file byte for byte;
 * - two mounts make the same name at once: both files survive, one as a conflict copy, and
 *   `lucid status` and the log say so.
 */
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { initFilespace, killAgent, sh, startServe, within } from './helpers.js';

t.test('write-back through real mounts', { timeout: 400_000 }, async (t) => {
  const fx = await initFilespace(t, 'lucid-writeback-');
  const { dir, store, env, swept, run } = fx;
  const root = { dir: fx.root, remove: fx.remove };
  const serve = await startServe(store, `sqlite:${fx.root}/meta.sqlite`, env);
  const [a, b, c, work] = [dir('a'), dir('b'), dir('c'), dir('work')];
  t.teardown(async () => {
    swept();
    serve.child.kill('SIGCONT');
    for (const mp of [a, b, c]) await run(['unmount', mp, '--force']);
    await sh(`for m in ${a} ${b} ${c}; do grep -q " $m " /proc/mounts && umount -l $m; done; true`);
    serve.child.kill('SIGKILL');
    root.remove();
  });
  const mount = async (mp: string, cache: string) => {
    const m = await run(['mount', mp, '--store', store, '--service', serve.url, '--cache-dir', path.join(root.dir, cache)]);
    t.equal(m.code, 0, m.stderr);
  };
  const status = async (mp: string) => JSON.parse((await run(['status', mp, '--json'])).stdout) as { pid: number; changesWaiting: number; conflicts: number; uploadBytes: number };

  t.test('tar x with the service frozen, then kill -9: nothing lost', async (t) => {
    const made = await sh(`set -e; mkdir -p ${work}/tree; for d in 0 1 2 3 4; do mkdir ${work}/tree/d$d; for i in $(seq 1 60); do head -c 4096 /dev/urandom > ${work}/tree/d$d/f$i.bin; done; done
      tar cf ${work}/tree.tar -C ${work} tree && echo made`);
    t.equal(made.stdout.trim(), 'made', made.stderr);
    await mount(a, 'cache-a');
    t.equal((await sh(`mkdir ${a}/dest && ls ${a}/dest && echo ok`)).stdout.trim(), 'ok', 'a folder made with the service up');
    serve.child.kill('SIGSTOP');
    const started = Date.now();
    const untar = await sh(`tar xf ${work}/tree.tar -C ${a}/dest && echo done`, {}, 120_000);
    t.equal(untar.stdout.trim(), 'done', `tar x returned with the service frozen (${Date.now() - started} ms): ${untar.stderr}`);
    t.equal((await sh(`diff -r ${work}/tree ${a}/dest/tree && echo same`)).stdout.trim(), 'same', 'the mount shows every file at once, byte for byte');
    const waiting = await status(a);
    t.ok(waiting.changesWaiting >= 300, `lucid status counts ${waiting.changesWaiting} changes waiting`);
    await killAgent(waiting.pid);
    serve.child.kill('SIGCONT');
    await sh(`umount -l ${a}; true`);

    await mount(a, 'cache-a');
    const sent = await within(60_000, async () => {
      const s = await status(a);
      return s.changesWaiting === 0 && s.uploadBytes === 0;
    });
    t.ok(sent >= 0, 'the same cache sends every change and upload after the restart');
    t.equal((await run(['unmount', a])).code, 0);
    await mount(b, 'cache-b-empty');
    t.equal((await sh(`diff -r ${work}/tree ${b}/dest/tree && echo same`)).stdout.trim(), 'same', 'a mount with an empty cache reads every file byte for byte');
    t.equal((await run(['unmount', b])).code, 0);
  });

  t.test('the same name made on two mounts at once: both kept, one as a conflict copy', async (t) => {
    await mount(a, 'cache-a');
    await mount(c, 'cache-c');
    t.equal((await sh(`mkdir ${a}/shared && ls ${a}/shared && echo ok`)).stdout.trim(), 'ok');
    const listed = await within(10_000, async () => (await sh(`ls -d ${c}/shared && ls ${c}/shared && echo ok`)).stdout.includes('ok'));
    t.ok(listed >= 0, 'the other mount has listed the folder');
    // "At once": each mount decides the name is free before it can hear of the other's file.
    // With the service frozen meanwhile, neither can (else a busy machine may let one mount
    // hear of the other's create first and open that file instead, as it should).
    serve.child.kill('SIGSTOP');
    const both = await sh(`echo from-a > ${a}/shared/cut.edl & echo from-c > ${c}/shared/cut.edl & wait; echo written`);
    serve.child.kill('SIGCONT');
    t.equal(both.stdout.trim(), 'written', both.stderr);
    // sync(1) does not reach a FUSE file system: `lucid sync` waits for what the mount holds.
    for (const mp of [a, c]) {
      const synced = await run(['sync', mp]);
      t.match(synced.stdout, /^Synced .*change\(s\)/, synced.stderr);
      const s = await status(mp);
      t.same([s.changesWaiting, s.uploadBytes], [0, 0], `after lucid sync ${path.basename(mp)}, nothing waits`);
    }
    const seen = await within(10_000, async () => (await sh(`ls ${a}/shared`)).stdout.trim().split('\n').length === 2);
    t.ok(seen >= 0, 'two names');
    t.same((await sh(`ls ${a}/shared`)).stdout.trim().split('\n'), ['cut (conflict copy).edl', 'cut.edl']);
    const contents = (await sh(`cat ${a}/shared/cut.edl ${a}/shared/'cut (conflict copy).edl'`)).stdout.trim().split('\n').sort();
    t.same(contents, ['from-a', 'from-c'], 'each mount\'s file under one of them');
    const [sa, sc] = [await status(a), await status(c)];
    t.equal(sa.conflicts + sc.conflicts, 1, 'lucid status counts one conflict');
    const text = (await run(['status', sa.conflicts ? a : c])).stdout;
    t.match(text, /conflicts\s+1 change/, 'and says so');
    const logs = readdirSync(path.join(env.LUCID_HOME, 'logs')).map((f) => readFileSync(path.join(env.LUCID_HOME, 'logs', f), 'utf8')).join('\n');
    t.match(logs, /conflict: .*conflict name/, 'the log says what happened');
  });
});
