/**
 * Several mounts of one filespace through one `lucid serve` (separate agent processes,
 * separate caches), as a team would use it:
 * - a write+fsync on A reads byte-identical on B within 3 s; an overwrite on A replaces B's
 *   cached copy within 3 s (change feed → cache and kernel invalidation);
 * - flock and fcntl locks hold across mounts: conflicts refused, disjoint ranges granted, a
 *   waiter gets the lock when the holder lets go, and a kill -9'd holder's locks are free
 *   within the lease;
 * - a file growing on A is seen growing on B, and ends identical.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CLI, lucid } from '../test/helpers/cli.js';
import { tempDir } from '../test/helpers/servers.js';
import { PASSWORD, sh } from './helpers.js';

interface Team {
  a: string;
  b: string;
  work: string;
  env: Record<string, string>;
  mount(mp: string, cache: string): Promise<void>;
  agentPid(mp: string): Promise<number>;
}

async function team(t: Test): Promise<Team> {
  const root = tempDir('lucid-collab-');
  const dir = (n: string) => { const p = path.join(root.dir, n); mkdirSync(p, { recursive: true }); return p; };
  const store = `file://${dir('store')}`;
  const env = { LUCID_HOME: dir('home'), LUCID_PASSWORD: PASSWORD };
  const run = (args: string[]) => lucid(args, { env, timeoutMs: 120_000 });
  const init = await run(['init', '--store', store, '--kdf', 'interactive']);
  if (init.code !== 0) throw new Error(init.stderr);
  const serve: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--store', store, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0', '--lock-lease', '3s'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  serve.stdout!.on('data', (d) => { out += d; });
  for (let i = 0; i < 400 && !/listening on/.test(out); i++) await new Promise((r) => setTimeout(r, 25));
  const service = /listening on (\S+)/.exec(out)?.[1];
  if (!service) throw new Error(`lucid serve did not start: ${out}`);
  const mounted: string[] = [];
  t.teardown(async () => {
    for (const mp of mounted) await run(['unmount', mp, '--force']);
    await sh(`for m in ${mounted.join(' ')}; do grep -q " $m " /proc/mounts && umount -l $m; done; true`);
    serve.kill('SIGTERM');
    root.remove();
  });
  const fx: Team = {
    a: dir('a'), b: dir('b'), work: dir('work'), env,
    mount: async (mp, cache) => {
      const r = await run(['mount', mp, '--store', store, '--service', service, '--cache-dir', path.join(root.dir, cache)]);
      if (r.code !== 0) throw new Error(`mount failed: ${r.stderr}`);
      mounted.push(mp);
    },
    agentPid: async (mp) => (JSON.parse((await run(['status', mp, '--json'])).stdout) as { pid: number }).pid,
  };
  await fx.mount(fx.a, 'cache-a');
  await fx.mount(fx.b, 'cache-b');
  return fx;
}

/** Runs `check` every 100 ms until it passes or `ms` elapse; resolves with the time it took (or -1). */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  return -1;
}

t.test('a write+fsync on A reads identical on B within 3 s; an overwrite replaces B’s copy', async (t) => {
  const fx = await team(t);
  const w = await sh(`head -c 3M /dev/urandom > ${fx.work}/v1 && head -c 3M /dev/urandom > ${fx.work}/v2 && dd if=${fx.work}/v1 of=${fx.a}/shared.bin bs=1M conv=fsync status=none && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  const seen = await within(3000, async () => (await sh(`cmp -s ${fx.b}/shared.bin ${fx.work}/v1 && echo same`)).stdout.trim() === 'same');
  t.ok(seen >= 0, `B reads A's bytes (after ${seen} ms)`);
  t.equal((await sh(`cat ${fx.b}/shared.bin > /dev/null && echo read`)).stdout.trim(), 'read', 'B has it cached and in its page cache');
  await sh(`dd if=${fx.work}/v2 of=${fx.a}/shared.bin bs=1M conv=fsync,notrunc status=none`);
  const replaced = await within(3000, async () => (await sh(`cmp -s ${fx.b}/shared.bin ${fx.work}/v2 && echo same`)).stdout.trim() === 'same');
  t.ok(replaced >= 0, `B's cached copy was replaced (after ${replaced} ms)`);
  const ls = await within(3000, async () => (await sh(`mkdir -p ${fx.a}/newdir 2>/dev/null; ls ${fx.b}`)).stdout.includes('newdir'));
  t.ok(ls >= 0, 'a folder made on A shows in a listing on B');
});

t.test('flock and fcntl locks hold across mounts', async (t) => {
  const fx = await team(t);
  await sh(`head -c 1000 /dev/zero > ${fx.a}/project.db`);
  await within(3000, async () => (await sh(`test -e ${fx.b}/project.db && echo y`)).stdout.trim() === 'y');
  const holder = spawn('flock', ['-x', path.join(fx.a, 'project.db'), '-c', 'echo held; sleep 2'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
  const refused = await sh(`flock -n ${fx.b}/project.db -c 'echo got'; echo "exit $?"`);
  t.equal(refused.stdout.trim(), 'exit 1', 'flock -n on B fails while A holds the lock');
  const waited = await sh(`start=$(date +%s%N); flock -w 10 ${fx.b}/project.db -c 'echo got'; echo $(( ($(date +%s%N) - start) / 1000000 ))`);
  const [got, ms] = waited.stdout.trim().split('\n');
  t.equal(got, 'got', 'B gets the lock once A lets go');
  t.ok(Number(ms) > 500 && Number(ms) < 8000, `B waited for A (${ms} ms), woken by the release`);

  const py = (mp: string, body: string) => `python3 - <<'PY'
import fcntl, os, struct, sys, time
fd = os.open('${mp}/project.db', os.O_RDWR)
${body}
PY`;
  const a = spawn('bash', ['-c', py(fx.a, "fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)\nprint('locked', flush=True)\ntime.sleep(3)")], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => a.stdout!.once('data', () => r()));
  const b = await sh(py(fx.b, `
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
    print('overlap granted')
except OSError as e:
    print('overlap refused', e.errno)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 200)
print('disjoint granted')
lk = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 10, 0)
r = struct.unpack('hhqqi', fcntl.fcntl(fd, fcntl.F_GETLK, lk))
print('getlk', 'write' if r[0] == fcntl.F_WRLCK else r[0], r[2], r[3])`));
  t.same(b.stdout.trim().split('\n'), ['overlap refused 11', 'disjoint granted', 'getlk write 0 100'], b.stderr);
  a.kill();
});

t.test("kill -9 of a lock holder's agent frees its locks within the lease", async (t) => {
  const fx = await team(t);
  await sh(`echo x > ${fx.a}/held`);
  await within(3000, async () => (await sh(`test -e ${fx.b}/held && echo y`)).stdout.trim() === 'y');
  const holder = spawn('flock', ['-x', path.join(fx.a, 'held'), '-c', 'echo held; sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
  t.equal((await sh(`flock -n ${fx.b}/held -c true; echo $?`)).stdout.trim(), '1', 'held by A');
  process.kill(await fx.agentPid(fx.a), 'SIGKILL');
  const start = Date.now();
  const r = await sh(`flock -w 20 ${fx.b}/held -c 'echo got'`);
  t.equal(r.stdout.trim(), 'got', 'B gets the lock');
  t.ok(Date.now() - start < 3000 + 3000, `within the 3 s lease and a heartbeat (${Date.now() - start} ms)`);
  holder.kill('SIGKILL');
});

t.test('a file growing on A is seen growing on B and ends identical', async (t) => {
  const fx = await team(t);
  await sh(`: > ${fx.a}/growing.mxf`);
  await within(3000, async () => (await sh(`test -e ${fx.b}/growing.mxf && echo y`)).stdout.trim() === 'y');
  const writer = sh(`for i in $(seq 1 12); do head -c 1M /dev/urandom >> ${fx.work}/ref; tail -c 1M ${fx.work}/ref >> ${fx.a}/growing.mxf; sleep 0.2; done; sync ${fx.a}/growing.mxf; echo done`);
  const sizes: number[] = [];
  let writing = true;
  void writer.then(() => { writing = false; });
  while (writing) {
    const s = Number((await sh(`stat -c %s ${fx.b}/growing.mxf`)).stdout.trim());
    if (sizes.length === 0 || s !== sizes[sizes.length - 1]) sizes.push(s);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal((await writer).stdout.trim(), 'done');
  t.ok(sizes.length >= 3, `B saw ${sizes.length} sizes while A wrote: ${sizes.join(', ')}`);
  t.same(sizes, [...sizes].sort((x, y) => x - y), 'sizes only grew');
  const same = await within(3000, async () => (await sh(`cmp -s ${fx.b}/growing.mxf ${fx.work}/ref && echo same`)).stdout.trim() === 'same');
  t.ok(same >= 0, 'and the bytes end identical');
});
