/**
 * Runs the LockManager conformance suite against every lock manager: LocalLocks (one
 * machine), and RemoteLocks, two clients of a real metadata service over HTTP with the
 * change feed pushing lock changes — one service on SQLite, and two services over one
 * PostgreSQL database (each client on its own instance).
 */
import t from 'tap';
import path from 'node:path';
import { LocalLocks } from '../../src/locks/local.js';
import { RemoteLocks } from '../../src/locks/remote.js';
import { MetaClient } from '../../src/meta/client.js';
import { startService } from '../../src/meta/service.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { PostgresDriver } from '../../src/meta/sql/postgres.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { ROOT_INO, S_IFREG } from '../../src/meta/types.js';
import { startPostgres, tempDir } from '../helpers/servers.js';
import { BLOCK, nm } from '../meta/conformance.js';
import { lockManagerConformance, type LockFixture } from './conformance.js';

const TOKEN = 'cd'.repeat(32);
const FILESPACE = 'c'.repeat(32);

lockManagerConformance(t, 'LocalLocks', async () => {
  const locks = new LocalLocks();
  let next = 100;
  return { a: locks, b: locks, inode: async () => next++, close: () => locks.close() };
});

/** Two RemoteLocks, each a client of its own service instance (the same one when `engines` has one), each following its instance's feed. */
async function remotePair(engines: SqlMetaEngine[]): Promise<LockFixture> {
  const services = await Promise.all(engines.map((engine) => startService({ engine, verifiers: [serviceVerifierOf(TOKEN)], lockLeaseMs: 3000 })));
  const clients = [new MetaClient(services[0].url, TOKEN), new MetaClient(services[services.length - 1].url, TOKEN)];
  const managers = clients.map((c) => new RemoteLocks(c));
  const feeds: { close(): void }[] = [];
  for (const [i, c] of clients.entries()) {
    await managers[i].start();
    let ready = false;
    feeds.push(c.subscribe((await c.info()).csn, () => {}, () => { ready = true; }, (e) => managers[i].onEvent(e)));
    for (let n = 0; !ready && n < 500; n++) await new Promise((r) => setTimeout(r, 10));
    if (!ready) throw new Error('the change feed did not come up');
  }
  let n = 0;
  return {
    a: managers[0], b: managers[1],
    inode: async () => (await clients[0].create(ROOT_INO, nm(`locked-${n++}`), { mode: S_IFREG | 0o644, uid: 0, gid: 0 })).ino,
    close: async () => {
      for (const f of feeds) f.close();
      for (const m of managers) await m.close();
      for (const c of clients) await c.close();
      for (const s of services) await s.close();
      for (const e of engines) await e.close();
    },
  };
}

lockManagerConformance(t, 'RemoteLocks over one service on SQLite', async () => {
  const tmp = tempDir();
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: FILESPACE, blockSize: BLOCK });
  const fx = await remotePair([engine]);
  return { ...fx, close: async () => { await fx.close(); tmp.remove(); } };
});

lockManagerConformance(t, 'RemoteLocks over two services on one PostgreSQL database', async () => {
  const pg = await startPostgres();
  const url = await pg.createDatabase();
  const open = async () => SqlMetaEngine.open(await PostgresDriver.open(url), { filespaceId: FILESPACE, blockSize: BLOCK });
  const fx = await remotePair([await open(), await open()]);
  return { ...fx, close: async () => { await fx.close(); await pg.close(); } };
});
