/**
 * Garbage collection, property-tested: random writes, partial overwrites, truncates,
 * renames, deletes, snapshots taken and deleted, whole-tree restores, and GC runs with no
 * grace period in between. After every GC run: no object that the live tree or a retained
 * snapshot reached before the run is gone (from the store or from the metadata), the live
 * tree and every retained snapshot read back byte for byte as the model says. At the end,
 * with every snapshot deleted, the store holds exactly the objects the live tree reaches.
 *
 * Runs on the in-memory store with SQLite (many steps), and on s3rver with PostgreSQL behind
 * the service over HTTP (fewer steps: real servers, same properties).
 */
import t from 'tap';
import type { Test } from 'tap';
import { Filespace } from '../../src/fs/filespace.js';
import { collectGarbage } from '../../src/gc/collector.js';
import { AsOfMeta } from '../../src/meta/as-of.js';
import { PostgresDriver } from '../../src/meta/sql/postgres.js';
import { isDir } from '../../src/meta/types.js';
import { BLOCK_PREFIX } from '../../src/store/keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RetryingStore } from '../../src/store/retry.js';
import { S3Store } from '../../src/store/s3.js';
import { listAll, type ObjectStore } from '../../src/store/types.js';
import { dbPathIn, makeFilespace } from '../helpers/filespace.js';
import { startPostgres, startS3rver, tempDir } from '../helpers/servers.js';
import { seededRandom } from '../helpers/random.js';

const BLOCK = 65536;
const FAR_FUTURE = Date.now() + 10 * 365 * 86_400_000;
const PATHS = ['f0', 'f1', 'f2', 'a/f3', 'a/f4', 'b/f5', 'b/f6'];


type Tree = Map<string, Buffer>;

async function readTree(fs: Filespace): Promise<Tree> {
  const out: Tree = new Map();
  const walk = async (dir: string) => {
    for (const e of await fs.readdir(dir)) {
      const p = dir ? `${dir}/${e.name}` : e.name;
      if (isDir(e.attr.mode)) await walk(p);
      else out.set(p, await fs.readFile(p));
    }
  };
  await walk('');
  return out;
}

function sameTree(t: Test, got: Tree, want: Tree, what: string): boolean {
  const names = (m: Tree) => [...m.keys()].sort().join(',');
  if (names(got) !== names(want)) return t.fail(`${what}: files ${names(got)}, expected ${names(want)}`);
  for (const [p, bytes] of want) if (!got.get(p)!.equals(bytes)) return t.fail(`${what}: ${p} differs (${got.get(p)!.length} bytes, expected ${bytes.length})`);
  return true;
}

async function blockIds(store: ObjectStore): Promise<string[]> {
  const ids: string[] = [];
  for await (const o of listAll(store, BLOCK_PREFIX)) ids.push(o.key.slice(o.key.lastIndexOf('/') + 1));
  return ids;
}

async function gcProperty(t: Test, store: ObjectStore, fs: Filespace, seed: number, steps: number): Promise<void> {
  const rand = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const meta = fs.meta;
  const live: Tree = new Map();
  const snaps = new Map<number, { csn: number; tree: Tree }>();
  const view = (csn: number) => new Filespace(fs.unlocked, store, new AsOfMeta(meta, csn));
  await fs.mkdir('a');
  await fs.mkdir('b');
  let gcRuns = 0;
  let deletedTotal = 0;

  const checkAll = async (what: string) => {
    sameTree(t, await readTree(fs), live, `${what}: live tree`);
    for (const [id, s] of snaps) sameTree(t, await readTree(view(s.csn)), s.tree, `${what}: snapshot ${id}`);
  };

  const runGc = async (step: number) => {
    const before = await blockIds(store);
    const reachable = await meta.retainedObjects(before, FAR_FUTURE);
    const report = await collectGarbage(meta, store, { graceMs: 0 });
    gcRuns++;
    deletedTotal += report.objectsDeleted;
    const after = new Set(await blockIds(store));
    const lost = reachable.filter((id) => !after.has(id));
    t.same(lost, [], `step ${step}: no reachable object deleted from the store`);
    t.same(await meta.retainedObjects(reachable, FAR_FUTURE), reachable, `step ${step}: every reachable object still referenced`);
    t.equal(report.objectsDeleted, before.length - after.size, `step ${step}: the report counts what went`);
    await checkAll(`after GC at step ${step}`);
  };

  for (let step = 0; step < steps; step++) {
    const present = [...live.keys()];
    const r = rand();
    if (r < 0.3 || present.length === 0) {
      const p = pick(PATHS);
      const data = bytes(Math.floor(rand() * 3.5 * BLOCK));
      await fs.writeFile(p, data);
      live.set(p, data);
    } else if (r < 0.45) {
      const p = pick(present);
      const old = live.get(p)!;
      const offset = Math.floor(rand() * (old.length + BLOCK));
      const data = bytes(1 + Math.floor(rand() * BLOCK * 1.5));
      await fs.write((await fs.resolve(p)).ino, offset, data);
      const next = Buffer.alloc(Math.max(old.length, offset + data.length));
      old.copy(next);
      data.copy(next, offset);
      live.set(p, next);
    } else if (r < 0.55) {
      const p = pick(present);
      const size = Math.floor(rand() * (live.get(p)!.length + 1));
      await meta.setAttr((await fs.resolve(p)).ino, { size });
      live.set(p, live.get(p)!.subarray(0, size));
    } else if (r < 0.63) {
      const p = pick(present);
      await fs.unlink(p);
      live.delete(p);
    } else if (r < 0.71) {
      const from = pick(present);
      const to = pick(PATHS.filter((x) => x !== from));
      await fs.rename(from, to);
      live.set(to, live.get(from)!);
      live.delete(from);
    } else if (r < 0.81) {
      const s = await meta.createSnapshot(`s${step}`);
      snaps.set(s.id, { csn: s.csn, tree: new Map(live) });
    } else if (r < 0.87 && snaps.size > 0) {
      const id = pick([...snaps.keys()]);
      await meta.deleteSnapshot(id);
      snaps.delete(id);
    } else if (r < 0.9 && snaps.size > 0) {
      const id = pick([...snaps.keys()]);
      await meta.restore(id, 0, Buffer.alloc(32));
      live.clear();
      for (const [p, b] of snaps.get(id)!.tree) live.set(p, b);
    } else {
      await runGc(step);
    }
  }
  await runGc(steps);

  // Every snapshot deleted, then GC: only what the live tree reaches is left.
  for (const id of snaps.keys()) await meta.deleteSnapshot(id);
  snaps.clear();
  await runGc(steps + 1);
  const liveIds = new Set<string>();
  const walk = async (dir: string) => {
    for (const e of await fs.readdir(dir)) {
      const p = dir ? `${dir}/${e.name}` : e.name;
      if (isDir(e.attr.mode)) await walk(p);
      else for (const ref of await meta.getBlocks(e.attr.ino, 0, Math.ceil(e.attr.size / BLOCK) + 1)) liveIds.add(ref.objectId);
    }
  };
  await walk('');
  t.same((await blockIds(store)).sort(), [...liveIds].sort(), 'with no snapshots left, the store holds exactly the live tree\'s objects');
  t.same((await collectGarbage(meta, store, { graceMs: 0, dryRun: true })).objectsDeleted, 0, 'a second run finds nothing');
  t.ok(gcRuns >= 3 && deletedTotal > 0, `GC ran ${gcRuns} times and deleted ${deletedTotal} objects`);
}

t.test('memory store + SQLite: random operations, snapshots and GC', async (t) => {
  for (const seed of [1, 2, 3]) {
    await t.test(`seed ${seed}`, async (t) => {
      const tmp = tempDir();
      t.teardown(() => tmp.remove());
      const store = new MemoryStore(`gc-${seed}`);
      const fx = await makeFilespace(store, dbPathIn(tmp.dir), { blockSize: BLOCK });
      t.teardown(() => fx.close());
      await gcProperty(t, store, fx.fs, seed, 250);
    });
  }
});

t.test('s3rver + PostgreSQL behind the service: the same properties', async (t) => {
  const s3 = await startS3rver(['gc']);
  t.teardown(() => s3.close());
  const pg = await startPostgres();
  t.teardown(() => pg.close());
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  // As the CLI opens it: s3rver answers some concurrent deletes with a 500, which is retried.
  const store = new RetryingStore(new S3Store({ bucket: 'gc', prefix: 'fs/', endpoint: s3.endpoint }));
  t.teardown(() => store.close());
  const url = await pg.createDatabase();
  const fx = await makeFilespace(store, dbPathIn(tmp.dir), { blockSize: BLOCK, viaService: true, driver: () => PostgresDriver.open(url) });
  t.teardown(() => fx.close());
  await gcProperty(t, store, fx.fs, 7, 80);
});
