/**
 * `lucid snapshot …` and `lucid gc` with no mount: straight on a filespace with `--store`
 * (its embedded engine) and with `--store --service` (a running `lucid serve`). The files
 * are written and read back with the library, byte for byte.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { unlockDescriptor } from '../../src/crypto/descriptor.js';
import { loadDescriptor } from '../../src/fs/descriptor-store.js';
import { Filespace } from '../../src/fs/filespace.js';
import { MetaClient } from '../../src/meta/client.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import type { MetaEngine } from '../../src/meta/types.js';
import { FileStore } from '../../src/store/file.js';
import { lucid, serveLucid } from '../helpers/cli.js';
import { dbPathIn } from '../helpers/filespace.js';
import { tempDir } from '../helpers/servers.js';

const PASSWORD = 'direct snapshot password';

async function filespaceAt(dir: string, serviceUrl?: string): Promise<{ fs: Filespace; close(): Promise<void> }> {
  const store = new FileStore(dir);
  const unlocked = await unlockDescriptor(await loadDescriptor(store), PASSWORD);
  let meta: MetaEngine;
  if (serviceUrl) meta = new MetaClient(serviceUrl, unlocked.keys.serviceToken.toString('hex'));
  else meta = await SqlMetaEngine.open(await SqliteDriver.open(dbPathIn(dir)), { filespaceId: unlocked.descriptor.filespaceId, blockSize: unlocked.descriptor.blockSize });
  return { fs: new Filespace(unlocked, store, meta), close: async () => { await meta.close(); await store.close(); } };
}

async function scenario(t: Test, dir: string, where: string[], env: Record<string, string>, serviceUrl?: string): Promise<void> {
  const run = (args: string[]) => lucid([...args, ...where], { env, timeoutMs: 120_000 });
  const v1 = randomBytes(300_000);
  const clip = randomBytes(70_000);
  let fx = await filespaceAt(dir, serviceUrl);
  await fx.fs.mkdir('proj');
  await fx.fs.mkdir('proj/shots');
  await fx.fs.writeFile('proj/cut.edl', v1);
  await fx.fs.writeFile('proj/shots/a.mov', clip);
  await fx.close();

  const created = await run(['snapshot', 'create', 'before']);
  t.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  t.match(id, /^\d+$/);
  t.match(JSON.parse((await run(['snapshot', 'list', '--json'])).stdout), [{ id: Number(id), name: 'before' }]);

  fx = await filespaceAt(dir, serviceUrl);
  await fx.fs.writeFile('proj/cut.edl', randomBytes(1000));
  await fx.fs.unlink('proj/shots/a.mov');
  await fx.close();

  const diff = await run(['snapshot', 'diff', id]);
  t.equal(diff.code, 0, diff.stderr);
  t.same(diff.stdout.trim().split('\n'), ['M proj/cut.edl', '- proj/shots/a.mov']);
  const out = path.join(dir, '..', `out-${path.basename(dir)}`);
  await fs.mkdir(out);
  const copy = await run(['snapshot', 'restore', id, 'proj', '--to', out]);
  t.equal(copy.code, 0, copy.stderr);
  t.same(await fs.readFile(path.join(out, 'proj', 'cut.edl')), v1, '--to copies the old version out');
  const restore = await run(['snapshot', 'restore', id, '/proj/cut.edl']);
  t.equal(restore.code, 0, restore.stderr);
  t.match(restore.stdout, /Restored \/proj\/cut\.edl from snapshot \d+/);
  const folder = await run(['snapshot', 'restore', id, 'proj/shots']);
  t.equal(folder.code, 0, folder.stderr);

  fx = await filespaceAt(dir, serviceUrl);
  t.same(await fx.fs.readFile('proj/cut.edl'), v1, 'the file is back in place, byte for byte');
  t.same(await fx.fs.readFile('proj/shots/a.mov'), clip, 'and the deleted file');
  await fx.close();

  const missing = await run(['snapshot', 'delete', '999']);
  t.equal(missing.code, 2, 'an unknown id is exit 2');
  t.equal(missing.stderr.trim().split('\n').length, 1, 'in one line');
  t.equal((await run(['snapshot', 'schedule', 'create', 'nightly', '--every', '1d', '--keep', '3'])).code, 0);
  t.match((await run(['snapshot', 'schedule', 'list'])).stdout, /nightly\s+every 1d\s+keep 3/);
  // A new schedule is due at once (a running service may take its first snapshot now): once
  // it is deleted, no more come.
  t.equal((await run(['snapshot', 'schedule', 'delete', 'nightly'])).code, 0);
  t.equal((await run(['snapshot', 'delete', id])).code, 0);
  const left = JSON.parse((await run(['snapshot', 'list', '--json'])).stdout) as { id: number; schedule: string | null }[];
  t.ok(left.every((s) => s.schedule === 'nightly'), 'only the new schedule’s snapshot, if any, is left');
  for (const s of left) t.equal((await run(['snapshot', 'delete', String(s.id)])).code, 0);
  t.equal((await run(['snapshot', 'list'])).stdout.trim(), 'no snapshots');
}

/** A new filespace in a file store of its own, and the environment to use it. */
async function newFilespace(t: Test): Promise<{ dir: string; env: Record<string, string> }> {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const dir = path.join(tmp.dir, 'store');
  await fs.mkdir(dir);
  const env = { LUCID_HOME: path.join(tmp.dir, 'home'), LUCID_PASSWORD: PASSWORD };
  t.equal((await lucid(['init', '--store', `file://${dir}`, '--kdf', 'interactive'], { env })).code, 0);
  return { dir, env };
}

t.test('on --store (the embedded engine), then lucid gc --store', async (t) => {
  const { dir, env } = await newFilespace(t);
  await scenario(t, dir, ['--store', `file://${dir}`], env);
  const objects = async () => (await fs.readdir(path.join(dir, 'blocks'), { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).length;
  const before = await objects();
  const gc = await lucid(['gc', '--store', `file://${dir}`, '--grace', '0s', '--json'], { env: { LUCID_HOME: env.LUCID_HOME } });
  t.equal(gc.code, 0, gc.stderr);
  const report = JSON.parse(gc.stdout) as { objectsDeleted: number; objectsRetained: number };
  t.ok(report.objectsDeleted > 0, `the overwritten version went (${report.objectsDeleted} objects); GC needs no password`);
  t.equal(await objects(), before - report.objectsDeleted);
  const fx = await filespaceAt(dir);
  t.equal((await fx.fs.readFile('proj/shots/a.mov')).length, 70_000, 'the live tree still reads');
  await fx.close();
});

t.test('on --store --service (a running lucid serve)', async (t) => {
  const { dir, env } = await newFilespace(t);
  const { url, child } = await serveLucid(['--store', `file://${dir}`, '--listen', '127.0.0.1:0'], env);
  t.teardown(() => { child.kill('SIGTERM'); });
  await scenario(t, dir, ['--store', `file://${dir}`, '--service', url], env, url);
  const wrong = await lucid(['snapshot', 'list', '--store', `file://${dir}`, '--service', url], { env: { ...env, LUCID_PASSWORD: 'not it' } });
  t.equal(wrong.code, 2, 'a wrong password is a usage error');
  t.match(wrong.stderr, /password/i);
});
