/**
 * Several mounts of one filespace (separate agent processes, separate caches), as a team
 * would use it, on both engines: one `lucid serve` over SQLite, and two `lucid serve`
 * instances over one PostgreSQL database with A on one and B on the other:
 * - a write+fsync on A reads byte-identical on B within 3 s; an overwrite on A replaces B's
 *   cached copy within 3 s (change feed → cache and kernel invalidation);
 * - flock and fcntl locks hold across mounts: conflicts refused, disjoint ranges granted, a
 *   waiter gets the lock when the holder lets go, and a kill -9'd holder's locks are free
 *   within the lease;
 * - an extended attribute set on A is read on B within 3 s, though B answered "none" before;
 * - a file growing on A is seen growing on B, and ends identical;
 * - two mounts writing one file without locks: last committer wins per block, metadata intact;
 * - `lucid serve --gc-every` collects replaced versions with no client asking;
 * - on PostgreSQL, a mount given both instances (`--service ONE,TWO`) carries on through the
 *   other when the one it uses is killed: writes, fsync, a rename, a listing, a read.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { lucid } from '../test/helpers/cli.js';
import { startPostgres, tempDir, type PostgresServer } from '../test/helpers/servers.js';
import { PASSWORD, sh, startServe, within, sweepOnKill } from './helpers.js';

interface Team {
  a: string;
  b: string;
  work: string;
  env: Record<string, string>;
  /** The file store's directory. */
  store: string;
  /** The service instances' URLs (one on SQLite, given twice) and processes. */
  services: string[];
  serves: ChildProcess[];
  mount(mp: string, cache: string, service?: string): Promise<void>;
  agentPid(mp: string): Promise<number>;
  run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

type Engine = 'sqlite' | 'postgres';
let pgServer: Promise<PostgresServer> | undefined;

async function team(t: Test, engine: Engine, serveArgs: string[] = []): Promise<Team> {
  const root = tempDir('lucid-collab-');
  const dir = (n: string) => { const p = path.join(root.dir, n); mkdirSync(p, { recursive: true }); return p; };
  const store = `file://${dir('store')}`;
  const env = { LUCID_HOME: dir('home'), LUCID_PASSWORD: PASSWORD };
  const swept = sweepOnKill(env.LUCID_HOME);
  const run = (args: string[]) => lucid(args, { env, timeoutMs: 120_000 });
  const init = await run(['init', '--store', store, '--kdf', 'interactive']);
  if (init.code !== 0) throw new Error(init.stderr);
  const serves: ChildProcess[] = [];
  let services: string[];
  if (engine === 'sqlite') {
    const one = await startServe(store, `sqlite:${root.dir}/meta.sqlite`, env, ['--lock-lease', '3s', ...serveArgs]);
    serves.push(one.child);
    services = [one.url, one.url];
  } else {
    pgServer ??= startPostgres();
    const db = await (await pgServer).createDatabase();
    const one = await startServe(store, db, env, ['--lock-lease', '3s', ...serveArgs]);
    const two = await startServe(store, db, env, ['--lock-lease', '3s', ...serveArgs]);
    serves.push(one.child, two.child);
    services = [one.url, two.url];
  }
  const mounted: string[] = [];
  t.teardown(async () => {
    swept();
    for (const mp of mounted) await run(['unmount', mp, '--force']);
    await sh(`for m in ${mounted.join(' ')}; do grep -q " $m " /proc/mounts && umount -l $m; done; true`);
    for (const s of serves) s.kill('SIGTERM');
    root.remove();
  });
  const fx: Team = {
    store: dir('store'), a: dir('a'), b: dir('b'), work: dir('work'), env, services, serves, run,
    mount: async (mp, cache, service = services[mounted.length % 2]) => {
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


for (const engine of ['sqlite', 'postgres'] as const) {
t.test(`on ${engine}`, { timeout: 300_000 }, async (t) => {
  t.test('the service collects garbage on its own (every instance at once on PostgreSQL)', async (t) => {
    // A grace of a few seconds, as in use: with none, an upload whose commit is on its way
    // can be taken (the grace period is what keeps it).
    const fx = await team(t, engine, ['--gc-every', '1s', '--gc-grace', '3s']);
    const objects = async () => Number((await sh(`find ${fx.store}/blocks -type f 2>/dev/null | wc -l`)).stdout.trim());
    const w = await sh(`head -c 3M /dev/urandom > ${fx.work}/v1 && head -c 3M /dev/urandom > ${fx.work}/v2 && dd if=${fx.work}/v1 of=${fx.a}/take.mov bs=1M conv=fsync status=none \
      && dd if=${fx.work}/v2 of=${fx.a}/take.mov bs=1M conv=fsync,notrunc status=none && echo ok`);
    t.equal(w.stdout.trim(), 'ok', w.stderr);
    const collected = await within(20_000, async () => (await objects()) === 3);
    t.ok(collected >= 0, `the first version's 3 objects went without anyone running lucid gc (after ${collected} ms; ${await objects()} objects now)`);
    t.equal((await sh(`cmp ${fx.b}/take.mov ${fx.work}/v2 && cmp ${fx.a}/take.mov ${fx.work}/v2 && echo same`)).stdout.trim(), 'same', 'the live version reads identical on both mounts');
  });

  t.test('a write+fsync on A reads identical on B within 3 s; an overwrite replaces B’s copy', async (t) => {
    const fx = await team(t, engine);
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
    await sh(`stat ${fx.b}/newdir ${fx.b}/shared.bin > /dev/null`);
    await sh(`mv ${fx.a}/shared.bin ${fx.a}/newdir/moved.bin && rmdir ${fx.a}/newdir 2>/dev/null; true`);
    const moved = await within(3000, async () => (await sh(`test ! -e ${fx.b}/shared.bin && cmp -s ${fx.b}/newdir/moved.bin ${fx.work}/v2 && echo y`)).stdout.trim() === 'y');
    t.ok(moved >= 0, `a rename on A: B's kernel forgets the old name and finds the new one (after ${moved} ms)`);
    await sh(`rm ${fx.a}/newdir/moved.bin`);
    const gone = await within(3000, async () => (await sh(`test ! -e ${fx.b}/newdir/moved.bin && echo y`)).stdout.trim() === 'y');
    t.ok(gone >= 0, `a delete on A is gone on B (after ${gone} ms)`);
  });

  t.test('an extended attribute set on A is read on B within 3 s, though B had answered "none"', async (t) => {
    // B made the file: its binding answers getxattr of it with ENODATA without asking (the
    // attributes said it has none) until the change feed tells it otherwise.
    const fx = await team(t, engine);
    await sh(`echo clip > ${fx.b}/take.mov`);
    t.match((await sh(`getfattr -n user.tag ${fx.b}/take.mov 2>&1`)).stdout, /No such attribute/, 'B: none yet');
    await within(3000, async () => (await sh(`test -e ${fx.a}/take.mov && echo y`)).stdout.trim() === 'y');
    t.equal((await sh(`setfattr -n user.tag -v take2 ${fx.a}/take.mov && getfattr --only-values -n user.tag ${fx.a}/take.mov`)).stdout, 'take2', 'A reads its own set at once');
    const seen = await within(3000, async () => (await sh(`getfattr --only-values -n user.tag ${fx.b}/take.mov 2>/dev/null`)).stdout === 'take2');
    t.ok(seen >= 0, `B reads A's attribute (after ${seen} ms)`);
    await sh(`setfattr -x user.tag ${fx.b}/take.mov`);
    t.match((await sh(`getfattr -n user.tag ${fx.b}/take.mov 2>&1`)).stdout, /No such attribute/, 'B: gone after its own remove');
  });

  t.test('flock and fcntl locks hold across mounts', async (t) => {
    const fx = await team(t, engine);
    await sh(`head -c 1000 /dev/zero > ${fx.a}/project.db`);
    await within(3000, async () => (await sh(`test -e ${fx.b}/project.db && echo y`)).stdout.trim() === 'y');
    const holder = spawn('flock', ['-x', path.join(fx.a, 'project.db'), '-c', 'echo held; sleep 3'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
    const refused = await sh(`flock -n ${fx.b}/project.db -c 'echo got'; echo "exit $?"`);
    t.equal(refused.stdout.trim(), 'exit 1', 'flock -n on B fails while A holds the lock');
    const gaveUp = await sh(`start=$(date +%s%N); flock -w 0.3 ${fx.b}/project.db -c 'echo got'; echo "exit $? after $(( ($(date +%s%N) - start) / 1000000 ))"`);
    const [, code, ms0] = /exit (\d+) after (\d+)/.exec(gaveUp.stdout) ?? [];
    t.equal(code, '1', 'a waiter that gives up (flock -w: a signal) gets its wait interrupted');
    t.ok(Number(ms0) < 1500, `at once, not when A lets go (${ms0} ms)`);
    const waited = await sh(`start=$(date +%s%N); flock -w 10 ${fx.b}/project.db -c 'echo got'; echo $(( ($(date +%s%N) - start) / 1000000 ))`);
    const [got, ms] = waited.stdout.trim().split('\n');
    t.equal(got, 'got', 'B gets the lock once A lets go');
    t.ok(Number(ms) > 500 && Number(ms) < 8000, `B waited for A (${ms} ms), woken by the release`);

    // Python's fcntl module, the script dedented (this file's indentation is not Python's).
    const py = (mp: string, body: string) => `python3 - <<'PY'
import fcntl, os, struct, sys, time
fd = os.open('${mp}/project.db', os.O_RDWR)
${body.split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n')}
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

    // Strong mode: a holder's writes are committed when it unlocks, and the next holder
    // reads them at once (no fsync, well inside the staleness bound).
    await new Promise((r) => setTimeout(r, 300));
    const writer = await sh(py(fx.a, `
  fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
  os.pwrite(fd, b'record-from-A', 300)
  fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
  print('written')`));
    t.equal(writer.stdout.trim(), 'written', writer.stderr);
    const reader = await sh(py(fx.b, `
  fcntl.lockf(fd, fcntl.LOCK_SH, 0, 0)
  print(os.pread(fd, 13, 300).decode())`));
    t.equal(reader.stdout.trim(), 'record-from-A', 'the next holder reads the previous holder’s write');
  });

  t.test("kill -9 of a lock holder's agent frees its locks within the lease", async (t) => {
    const fx = await team(t, engine);
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

  t.test('two mounts writing one file without locks: last committer wins per block', async (t) => {
    const fx = await team(t, engine);
    const w = await sh(`cd ${fx.work} && head -c 1M /dev/urandom > a0 && head -c 1M /dev/urandom > a1 && head -c 1M /dev/urandom > b1 && head -c 1M /dev/urandom > b2 \
      && cat a0 a1 > ${fx.a}/cut.edl && sync ${fx.a}/cut.edl && echo ok`);
    t.equal(w.stdout.trim(), 'ok', w.stderr);
    t.ok(await within(3000, async () => Number((await sh(`stat -c %s ${fx.b}/cut.edl`)).stdout) === 2 * 1048576) >= 0, 'B sees A’s file');
    // B overwrites block 1 and appends block 2, then A rewrites block 0: each commit replaces the blocks it wrote.
    await sh(`dd if=${fx.work}/b1 of=${fx.b}/cut.edl bs=1M seek=1 conv=notrunc,fsync status=none && dd if=${fx.work}/b2 of=${fx.b}/cut.edl bs=1M seek=2 conv=notrunc,fsync status=none`);
    await sh(`head -c 1M /dev/urandom > ${fx.work}/a0new && dd if=${fx.work}/a0new of=${fx.a}/cut.edl bs=1M conv=notrunc,fsync status=none`);
    await sh(`cd ${fx.work} && cat a0new b1 b2 > expected`);
    for (const [name, mp] of [['A', fx.a], ['B', fx.b]] as const) {
      const same = await within(3000, async () => (await sh(`cmp -s ${mp}/cut.edl ${fx.work}/expected && echo same`)).stdout.trim() === 'same');
      t.ok(same >= 0, `${name} reads A’s block 0 and B’s blocks 1 and 2, 3 MiB`);
    }
    const ls = await sh(`ls -l ${fx.a} | grep -c cut.edl; ls ${fx.b} | grep -c cut.edl`);
    t.equal(ls.stdout.trim(), '1\n1', 'one entry on each side');
  });

  if (engine === 'postgres') {
    t.test('a mount given both instances carries on when the one it uses is killed', async (t) => {
      const fx = await team(t, engine);
      const c = path.join(fx.work, '..', 'c');
      mkdirSync(c, { recursive: true });
      await fx.mount(c, 'cache-c', `${fx.services[0]},${fx.services[1]}`);
      const w = await sh(`head -c 2M /dev/urandom > ${fx.work}/one && head -c 2M /dev/urandom > ${fx.work}/two && cp ${fx.work}/one ${c}/one.bin && sync ${c}/one.bin && echo ok`);
      t.equal(w.stdout.trim(), 'ok', w.stderr);
      fx.serves[0].kill('SIGKILL');
      await new Promise((r) => fx.serves[0].once('exit', r));
      const after = await sh(`set -e; cp ${fx.work}/two ${c}/two.bin; sync ${c}/two.bin; mkdir ${c}/later; mv ${c}/one.bin ${c}/later/one.bin; cmp ${c}/later/one.bin ${fx.work}/one; ls ${c}/later; echo ok`);
      t.equal(after.stdout.trim().split('\n').pop(), 'ok', `writes, a rename, a listing and a read go on through the other instance: ${after.stderr}`);
      const seen = await within(10_000, async () => (await sh(`cmp -s ${fx.b}/two.bin ${fx.work}/two && cmp -s ${fx.b}/later/one.bin ${fx.work}/one && echo same`)).stdout.trim() === 'same');
      t.ok(seen >= 0, `B (on the surviving instance) reads what C did after the kill, byte for byte (after ${seen} ms)`);
      const status = JSON.parse((await fx.run(['status', c, '--json'])).stdout) as { state: string; changesWaiting?: number };
      t.not(status.state, 'offline', 'C is not offline');
    });
  }

  t.test('a file growing on A is seen growing on B and ends identical', async (t) => {
    const fx = await team(t, engine);
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
});
}
t.teardown(async () => { if (pgServer) await (await pgServer).close(); });
