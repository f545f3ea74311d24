/**
 * `lucid mount` and friends as a user meets them: bad input gives one clear line and the
 * right exit code with no half-mounted leftovers; --foreground unmounts cleanly on SIGTERM;
 * the README's main job mounts a working drive.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, ROOT, lucid } from '../test/helpers/cli.js';
import { freePort, tempDir } from '../test/helpers/servers.js';
import { PASSWORD, sh, withMount } from './helpers.js';

const oneLine = (s: string) => s.trim().split('\n').length === 1 && s.startsWith('lucid: ');
const mountedAt = async (mp: string) => (await sh(`grep -c " ${mp} " /proc/mounts || true`)).stdout.trim() !== '0';

t.test('bad input: one line, exit code, nothing left mounted', async (t) => {
  const fx = await withMount(t, { mount: false });
  const cases: { name: string; args: string[]; env?: Record<string, string>; code: number; pattern: RegExp; prepare?: () => void }[] = [
    { name: 'missing mountpoint', args: ['mount', path.join(fx.work, 'nope'), '--store', `file://${fx.store}`], code: 2, pattern: /does not exist.*mkdir -p/ },
    {
      name: 'non-empty mountpoint', args: ['mount', path.join(fx.work, 'full'), '--store', `file://${fx.store}`], code: 2, pattern: /not empty/,
      prepare: () => { mkdirSync(path.join(fx.work, 'full')); writeFileSync(path.join(fx.work, 'full', 'x'), 'x'); },
    },
    { name: 'wrong password', args: ['mount', fx.mp, '--store', `file://${fx.store}`], env: { LUCID_PASSWORD: 'not the password' }, code: 2, pattern: /wrong password/ },
    { name: 'store without a filespace', args: ['mount', fx.mp, '--store', `file://${fx.work}`], code: 2, pattern: /no Lucid filespace.*lucid init/ },
    { name: 'missing store directory', args: ['mount', fx.mp, '--store', `file://${fx.work}/missing`], code: 2, pattern: /does not exist/ },
    { name: 'bad cache size', args: ['mount', fx.mp, '--store', `file://${fx.store}`, '--cache-size', '1M'], code: 2, pattern: /cache-size must be at least/ },
    { name: 'unmount of something not mounted', args: ['unmount', fx.mp], code: 2, pattern: /not a Lucid mount/ },
  ];
  for (const c of cases) {
    c.prepare?.();
    const withEnv = c.env ? await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...c.args], { env: { ...process.env, ...fx.env, ...c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      child.on('close', (code) => resolve({ code, stderr }));
    }) : await fx.lucid(c.args);
    t.equal(withEnv.code, c.code, `${c.name}: exit code (${withEnv.stderr.trim()})`);
    t.ok(oneLine(withEnv.stderr), `${c.name}: one line: ${withEnv.stderr}`);
    t.match(withEnv.stderr, c.pattern, c.name);
    t.notOk(await mountedAt(fx.mp), `${c.name}: nothing mounted`);
  }
});

t.test('an unreachable store: exit 1, one line naming it, nothing mounted', async (t) => {
  const fx = await withMount(t, { mount: false });
  const port = await freePort();
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'mount', fx.mp, '--store', `s3://bucket/x?endpoint=http://127.0.0.1:${port}`],
      { env: { ...process.env, ...fx.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stderr }));
  });
  t.equal(r.code, 1, r.stderr);
  t.ok(oneLine(r.stderr), r.stderr);
  t.match(r.stderr, new RegExp(`cannot reach the store at http://127.0.0.1:${port}`));
  t.notOk(await mountedAt(fx.mp));
});

t.test('a second mount of the same point is refused', async (t) => {
  const fx = await withMount(t);
  const r = await fx.mount();
  t.equal(r.code, 2);
  t.ok(oneLine(r.stderr), r.stderr);
  t.match(r.stderr, /already mounted by Lucid \(agent pid \d+\)/);
  const st = await fx.lucid(['status']);
  t.match(st.stdout, new RegExp(`${fx.mp}: (mounted|uploading)`));
});

t.test('--foreground unmounts cleanly on SIGTERM, uploads first', async (t) => {
  const fx = await withMount(t, { mount: false });
  const child = spawn(process.execPath, [CLI, 'mount', fx.mp, '--store', `file://${fx.store}`, '--cache-dir', fx.cacheDir, '--foreground'],
    { env: { ...process.env, ...fx.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  for (let i = 0; i < 200 && !/Mounted filespace/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(out, /Mounted filespace [0-9a-f]{32}/);
  const w = await sh(`head -c 5M /dev/urandom | tee ${fx.work}/ref > ${fx.mp}/f.bin && echo ok`);
  t.equal(w.stdout.trim(), 'ok');
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0');
  t.notOk(await mountedAt(fx.mp), 'unmounted');
  const fresh = path.join(fx.work, 'fresh');
  t.equal((await fx.lucid(['mount', fx.mp, '--store', `file://${fx.store}`, '--cache-dir', fresh])).code, 0);
  t.equal((await sh(`cmp ${fx.mp}/f.bin ${fx.work}/ref && echo same`)).stdout.trim(), 'same', 'everything was uploaded before exit');
});

t.test("the README's main job mounts a working drive on the embedded default", async (t) => {
  const home = tempDir('lucid-mainjob-');
  t.teardown(async () => {
    await sh(`${path.join(ROOT, 'bin', 'lucid')} unmount --force ${home.dir}/Lucid; umount -l ${home.dir}/Lucid 2>/dev/null; true`, { HOME: home.dir });
    home.remove();
  });
  const r = await sh(`bash ${path.join(ROOT, 'scripts', 'main')}`, { HOME: home.dir, LUCID_HOME: '', LUCID_PASSWORD: '' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`Mounted at ${home.dir}/Lucid`));
  const use = await sh(`cd ${home.dir}/Lucid && echo "it works" > hello.txt && cat hello.txt && ls`);
  t.same(use.stdout.trim().split('\n'), ['it works', 'hello.txt']);
  t.equal(PASSWORD.length > 0, true);
});

t.test('a mount on an S3 store (s3rver) through a separate lucid serve', async (t) => {
  const { startS3rver } = await import('../test/helpers/servers.js');
  const s3 = await startS3rver();
  const fx = await withMount(t, { mount: false });
  t.teardown(() => s3.close());
  const env = { ...fx.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const url = `s3://${s3.bucket}/team?endpoint=${s3.endpoint}`;
  const run = (args: string[]) => lucid(args, { env, timeoutMs: 120_000 });
  t.equal((await run(['init', '--store', url, '--kdf', 'interactive'])).code, 0);
  const serve = spawn(process.execPath, [CLI, 'serve', '--store', url, '--db', `sqlite:${fx.work}/meta.sqlite`, '--listen', '127.0.0.1:0'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { serve.kill('SIGTERM'); });
  let out = '';
  serve.stdout.on('data', (d) => { out += d; });
  for (let i = 0; i < 200 && !/listening on/.test(out); i++) await new Promise((r) => setTimeout(r, 25));
  const service = /listening on (\S+)/.exec(out)?.[1];
  t.ok(service, 'service is up');
  const m = await run(['mount', fx.mp, '--store', url, '--service', service!, '--cache-dir', fx.cacheDir]);
  t.equal(m.code, 0, m.stderr);
  const w = await sh(`head -c 9M /dev/urandom > ${fx.work}/ref && cp ${fx.work}/ref ${fx.mp}/clip.mov && mkdir ${fx.mp}/dir && mv ${fx.mp}/clip.mov ${fx.mp}/dir/ && sync && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  t.equal((await run(['unmount', fx.mp])).code, 0);
  const fresh = path.join(fx.work, 'fresh-cache');
  t.equal((await run(['mount', fx.mp, '--store', url, '--service', service!, '--cache-dir', fresh])).code, 0);
  t.equal((await sh(`cmp ${fx.mp}/dir/clip.mov ${fx.work}/ref && echo same`)).stdout.trim(), 'same', 'read back through S3 and the service with an empty cache');
  t.equal((await run(['unmount', fx.mp])).code, 0);
});
