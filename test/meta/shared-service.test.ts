/**
 * Lock calls and two service instances over one database:
 * - malformed lock calls get a clean 4xx and take nothing;
 * - on SQLite (one instance) and on PostgreSQL (two instances over one database): a commit
 *   made through one instance reaches a feed subscriber of the other (LISTEN/NOTIFY), a
 *   lock taken through one conflicts through the other, its release is pushed to the
 *   other's subscribers, and a client that stops renewing loses its locks within the lease.
 */
import t from 'tap';
import path from 'node:path';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { PostgresDriver } from '../../src/meta/sql/postgres.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { startService, type RunningService } from '../../src/meta/service.js';
import { MetaClient, type LockEvent } from '../../src/meta/client.js';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { ROOT_INO, S_IFREG, type Commit } from '../../src/meta/types.js';
import { startPostgres, tempDir } from '../helpers/servers.js';
import { BLOCK, nm } from './conformance.js';
import { until } from '../helpers/wait.js';

const TOKEN = 'ef'.repeat(32);
const FILESPACE = 'b'.repeat(32);
const CLIENT_A = 'a1'.repeat(16);
const CLIENT_B = 'b2'.repeat(16);
const range = (type: string, start: number, end: number) => ({ kind: 'posix', type, start, end, pid: 1 });

interface Pair { one: RunningService; two: RunningService; close(): Promise<void> }

async function pairOver(open: () => Promise<SqlMetaEngine>, shared: boolean): Promise<Pair> {
  const e1 = await open();
  const e2 = shared ? await open() : e1;
  const one = await startService({ engine: e1, verifiers: [serviceVerifierOf(TOKEN)], lockLeaseMs: 1000 });
  const two = shared ? await startService({ engine: e2, verifiers: [serviceVerifierOf(TOKEN)], lockLeaseMs: 1000 }) : one;
  return {
    one, two,
    close: async () => {
      await one.close();
      if (shared) await two.close();
      await e1.close();
      if (shared) await e2.close();
    },
  };
}

function suite(name: string, make: () => Promise<Pair>): void {
  t.test(name, async (t) => {
    const pair = await make();
    t.teardown(() => pair.close());
    const c1 = new MetaClient(pair.one.url, TOKEN);
    const c2 = new MetaClient(pair.two.url, TOKEN);
    t.teardown(async () => { await c1.close(); await c2.close(); });

    const commits: Commit[] = [];
    const lockEvents: LockEvent[] = [];
    let ready = false;
    const feed = c2.subscribe((await c2.info()).csn, (c) => commits.push(c), () => { ready = true; }, (e) => lockEvents.push(e));
    t.teardown(() => feed.close());
    t.ok(await until(() => ready), 'the feed on instance two is up');

    const made = await c1.create(ROOT_INO, nm('shared.txt'), { mode: S_IFREG | 0o644, uid: 0, gid: 0 });
    t.ok(await until(() => commits.some((c) => c.inos.includes(made.ino))), 'a commit through instance one reaches the feed of instance two');

    // A batch is one transaction of many commits; on PostgreSQL they are announced together
    // (several to a NOTIFY, more than one NOTIFY for 300): each applied one reaches the other
    // instance's feed, in order, with its inodes; the refused one and what follows it do not.
    const batchDir = await c1.create(ROOT_INO, nm('batch'), { mode: 0o040755, uid: 0, gid: 0 });
    commits.length = 0;
    const ops = Array.from({ length: 300 }, (_, i) => ({ op: 'create' as const, parent: batchDir.ino, name: nm(`b${i}`), node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 } }));
    const res = await c1.applyBatch([...ops, { op: 'create', parent: batchDir.ino, name: nm('b0'), node: { mode: S_IFREG | 0o644, uid: 0, gid: 0 } }, ops[0]!]);
    t.equal(res.applied.length, 300, 'the batch applies up to the refused create');
    t.match(res.failed, { index: 300, code: 'EntryExists' }, 'the create of a taken name is refused');
    const last = res.applied[299]!.csn;
    t.ok(await until(() => commits.some((c) => c.csn >= last)), 'the batch’s last commit reaches instance two');
    const heard = commits.filter((c) => c.csn >= res.applied[0]!.csn && c.csn <= last);
    t.same(heard.map((c) => c.csn), res.applied.map((a) => a.csn), 'every applied commit is heard, in order, once');
    t.ok(heard.every((c, i) => c.inos.includes(res.applied[i]!.value!.ino) && c.inos.includes(batchDir.ino)), 'each with the inode it made and its folder');
    await new Promise((r) => setTimeout(r, 200));
    t.notOk(commits.some((c) => c.csn > last), 'nothing of the refused operation is heard');

    t.same(await c1.lockCall('set', { client: CLIENT_A, ino: made.ino, owner: 'p1', range: range('write', 0, 99) }), { conflict: null }, 'A locks 0-99 through one');
    t.ok(await until(() => lockEvents.some((e) => 'ino' in e && e.ino === made.ino && e.locked)), 'the lock is pushed to two’s subscribers');
    const refused = await c2.lockCall<{ conflict: { start: number; end: number; type: string } | null }>('set', { client: CLIENT_B, ino: made.ino, owner: 'p9', range: range('read', 50, 60) });
    t.match(refused.conflict, { start: 0, end: 99, type: 'write' }, 'B is refused through two');
    t.same(await c2.lockCall('set', { client: CLIENT_B, ino: made.ino, owner: 'p9', range: range('write', 100, 199) }), { conflict: null }, 'a disjoint range is granted');
    await c1.lockCall('release', { client: CLIENT_A, ino: made.ino, owner: 'p1', kind: 'posix' });
    t.same(await c2.lockCall('set', { client: CLIENT_B, ino: made.ino, owner: 'p9', range: range('write', 0, 99) }), { conflict: null }, 'after the release B gets it');

    // B stops renewing: within the lease (1 s) and a sweep, its locks are gone.
    lockEvents.length = 0;
    t.ok(await until(() => lockEvents.some((e) => 'ino' in e && e.ino === made.ino && !e.locked), 4000), 'B’s locks expire with its lease, and the release is pushed');
    t.same(await c1.lockCall('set', { client: CLIENT_A, ino: made.ino, owner: 'p1', range: range('write', 0, -1) }), { conflict: null }, 'so A can lock the whole file');

    for (const bad of [
      { client: 'nothex', ino: made.ino, owner: 'x', range: range('write', 0, 1) },
      { client: CLIENT_A, ino: -1, owner: 'x', range: range('write', 0, 1) },
      { client: CLIENT_A, ino: made.ino, owner: 'x', range: range('write', 5, 1) },
      { client: CLIENT_A, ino: made.ino, owner: 'x', range: { kind: 'weird', type: 'write', start: 0, end: 1, pid: 1 } },
      { client: CLIENT_A, ino: made.ino, owner: '', range: range('write', 0, 1) },
    ]) {
      const res = await fetch(`${pair.one.url}/v1/locks/set`, { method: 'POST', body: JSON.stringify(bad), headers: { authorization: `Bearer ${TOKEN}` } });
      t.equal(res.status, 400, `malformed lock call refused: ${JSON.stringify(bad).slice(0, 60)}`);
    }
    for (const body of ['not json', '[1,2]', '"x"']) {
      const res = await fetch(`${pair.one.url}/v1/locks/set`, { method: 'POST', body, headers: { authorization: `Bearer ${TOKEN}` } });
      t.equal(res.status, 400, `body ${body} refused`);
    }
    t.equal((await fetch(`${pair.one.url}/v1/locks/set`, { method: 'POST', body: '{}' })).status, 401, 'lock calls need the token');
  });
}

suite('one instance over SQLite', async () => {
  const tmp = tempDir();
  const pair = await pairOver(async () => SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: FILESPACE, blockSize: BLOCK }), false);
  return { ...pair, close: async () => { await pair.close(); tmp.remove(); } };
});

suite('two instances over one PostgreSQL database', async () => {
  const pg = await startPostgres();
  const url = await pg.createDatabase();
  const pair = await pairOver(async () => SqlMetaEngine.open(await PostgresDriver.open(url), { filespaceId: FILESPACE, blockSize: BLOCK }), true);
  return { ...pair, close: async () => { await pair.close(); await pg.close(); } };
});

t.test('the service runs snapshot schedules with no client connected', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: FILESPACE, blockSize: BLOCK });
  await engine.createSchedule('often', 1000, 3);
  const service = await startService({ engine, verifiers: [serviceVerifierOf(TOKEN)], scheduleTickMs: 200 });
  t.teardown(async () => { await service.close(); await engine.close(); });
  await new Promise((r) => setTimeout(r, 4500));
  const made = (await engine.listSnapshots()).filter((s) => s.schedule === 'often');
  t.ok(made.length >= 3, `snapshots were taken (${made.length} kept)`);
  t.ok(made.length <= 3, 'no more than `keep`');
  t.ok(made[made.length - 1].id >= 4, 'older ones were deleted as new ones came');
});
