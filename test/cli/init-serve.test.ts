/** `lucid init` and `lucid serve` as a user runs them: exit codes, one-line errors, nothing lost. */
import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { startS3rver, tempDir } from '../helpers/servers.js';
import { ROOT, lucid, spawnLucid } from '../helpers/cli.js';
import { DESCRIPTOR_KEY } from '../../src/store/keys.js';

const home = tempDir('lucid-home-');
t.teardown(() => home.remove());
const env = { LUCID_HOME: home.dir, LUCID_PASSWORD: 'cli test password' };
const oneLine = (s: string) => s.trim().split('\n').length === 1 && s.startsWith('lucid: ');

t.test('help, version and unknown commands', async (t) => {
  const help = await lucid(['--help'], { env });
  t.equal(help.code, 0);
  t.match(help.stdout, /init/);
  t.match(help.stdout, /serve/);
  const version = await lucid(['--version'], { env });
  t.equal(version.code, 0);
  t.equal(version.stdout.trim(), JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  const bad = await lucid(['frobnicate'], { env });
  t.equal(bad.code, 2);
  t.ok(oneLine(bad.stderr), bad.stderr);
  t.match(bad.stderr, /frobnicate/);
  const none = await lucid([], { env });
  t.equal(none.code, 2);
});

t.test('init on file://, then a second init exits 2 and leaves the first intact', async (t) => {
  const dir = tempDir();
  t.teardown(() => dir.remove());
  const url = `file://${dir.dir}`;
  const first = await lucid(['init', '--store', url, '--kdf', 'interactive'], { env });
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /Created filespace [0-9a-f]{32}/);
  t.equal(first.stderr, '');
  const before = await fs.readFile(path.join(dir.dir, DESCRIPTOR_KEY));
  const second = await lucid(['init', '--store', url, '--kdf', 'interactive', '--block-size', '4M'], { env });
  t.equal(second.code, 2);
  t.ok(oneLine(second.stderr), second.stderr);
  t.match(second.stderr, /already holds a Lucid filespace/);
  t.ok((await fs.readFile(path.join(dir.dir, DESCRIPTOR_KEY))).equals(before), 'descriptor byte-identical');
});

t.test('init reads --password-stdin and honours --block-size', async (t) => {
  const dir = tempDir();
  t.teardown(() => dir.remove());
  const r = await lucid(['init', '--store', `file://${dir.dir}`, '--password-stdin', '--kdf', 'interactive', '--block-size', '256KiB'], { env: { LUCID_HOME: home.dir }, input: 'from stdin\n' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /block size 256 KiB/);
  const d = JSON.parse(await fs.readFile(path.join(dir.dir, DESCRIPTOR_KEY), 'utf8'));
  t.equal(d.blockSize, 262144);
});

t.test('bad input: each is exit 2 with one line naming what to fix', async (t) => {
  const dir = tempDir();
  t.teardown(() => dir.remove());
  const cases: [string[], RegExp][] = [
    [['init', '--store', 'ftp://x/y'], /scheme "ftp:" is not supported/],
    [['init', '--store', `file://${dir.dir}/missing`], /does not exist.*mkdir/],
    [['init', '--store', `file://${dir.dir}`, '--block-size', '3M'], /power of two/],
    [['init', '--store', `file://${dir.dir}`, '--block-size', 'lots'], /not a size/],
    [['serve', '--store', `file://${dir.dir}`], /no Lucid filespace.*lucid init/],
    [['serve', '--listen', 'nonsense'], /HOST:PORT/],
  ];
  for (const [args, pattern] of cases) {
    const r = await lucid(args, { env });
    t.equal(r.code, 2, args.join(' '));
    t.ok(oneLine(r.stderr), r.stderr);
    t.match(r.stderr, pattern);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const noPassword = await lucid(['init', '--store', `file://${dir.dir}`], { env: { LUCID_HOME: home.dir } });
  t.equal(noPassword.code, 2);
  t.match(noPassword.stderr, /no password given/);
  const debug = await lucid(['init', '--store', 'ftp://x', '--debug'], { env });
  t.match(debug.stderr, /\n\s+at /, '--debug shows the stack');
});

t.test('init on s3:// (s3rver), twice, and on a missing bucket', async (t) => {
  const s3 = await startS3rver();
  t.teardown(() => s3.close());
  const s3env = { ...env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const url = `s3://${s3.bucket}/studio?endpoint=${s3.endpoint}`;
  const first = await lucid(['init', '--store', url, '--kdf', 'interactive'], { env: s3env });
  t.equal(first.code, 0, first.stderr);
  t.equal(first.stderr, '', 'no SDK warnings in the output');
  const second = await lucid(['init', '--store', url, '--kdf', 'interactive'], { env: s3env });
  t.equal(second.code, 2);
  t.ok(oneLine(second.stderr), second.stderr);
  const missing = await lucid(['init', '--store', `s3://no-such-bucket-here/x?endpoint=${s3.endpoint}`, '--kdf', 'interactive'], { env: s3env });
  t.equal(missing.code, 2);
  t.ok(oneLine(missing.stderr), missing.stderr);
  t.match(missing.stderr, /no-such-bucket-here/);
});

t.test('serve answers /v1/health once up (the time it took is reported) and stops cleanly on SIGTERM', async (t) => {
  const dir = tempDir();
  t.teardown(() => dir.remove());
  const url = `file://${dir.dir}`;
  t.equal((await lucid(['init', '--store', url, '--kdf', 'interactive'], { env })).code, 0);
  const started = Date.now();
  const child = spawnLucid(['serve', '--store', url, '--listen', '127.0.0.1:0'], env);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  let healthyAt = 0;
  // A generous bound: on a loaded machine start-up has taken 2.4 s; the time is reported, not asserted.
  while (Date.now() - started < 60_000) {
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) {
      const res = await fetch(`${m[1]}/v1/health`).catch(() => undefined);
      if (res?.status === 200) { healthyAt = Date.now(); break; }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(healthyAt > 0, `health answered 200 (${healthyAt - started} ms after start)`);
  t.ok(await fs.stat(path.join(dir.dir, '.lucid', 'meta.sqlite')), 'metadata database inside the file store');
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});

t.test('the embedded default: init without --store makes ~/.lucid/default with its own password', async (t) => {
  const own = tempDir('lucid-home-');
  t.teardown(() => own.remove());
  const r = await lucid(['init', '--kdf', 'interactive'], { env: { LUCID_HOME: own.dir } });
  t.equal(r.code, 0, r.stderr);
  const pw = await fs.stat(path.join(own.dir, 'default', 'password'));
  t.equal(pw.mode & 0o777, 0o600, 'password file readable by the owner only');
  t.ok(await fs.stat(path.join(own.dir, 'default', 'store', DESCRIPTOR_KEY)));
});
