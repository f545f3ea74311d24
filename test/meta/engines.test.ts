/** MetaEngine conformance: SQLite directly, and through `lucid serve`'s HTTP API. */
import t from 'tap';
import path from 'node:path';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { startService } from '../../src/meta/service.js';
import { MetaClient } from '../../src/meta/client.js';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { startPostgres, tempDir } from '../helpers/servers.js';
import { PostgresDriver } from '../../src/meta/sql/postgres.js';
import { BLOCK, metaConformance } from './conformance.js';

const FILESPACE = 'f'.repeat(32);

metaConformance(t, 'sqlite', async () => {
  const tmp = tempDir();
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: FILESPACE, blockSize: BLOCK });
  return { engine, close: async () => { await engine.close(); tmp.remove(); } };
});

metaConformance(t, 'service over HTTP (sqlite)', async () => {
  const tmp = tempDir();
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'meta.sqlite')), { filespaceId: FILESPACE, blockSize: BLOCK });
  const token = 'ab'.repeat(32);
  const service = await startService({ engine, verifiers: [serviceVerifierOf(token)], scheduleTickMs: 0 });
  const client = new MetaClient(service.url, token);
  return { engine: client, close: async () => { await client.close(); await service.close(); await engine.close(); tmp.remove(); } };
});

// PostgreSQL: the same suite, then through the service, on a private server.
const pgServer = startPostgres();
t.teardown(async () => (await pgServer).close());

metaConformance(t, 'postgres', async () => {
  const url = await (await pgServer).createDatabase();
  const engine = await SqlMetaEngine.open(await PostgresDriver.open(url), { filespaceId: FILESPACE, blockSize: BLOCK });
  return { engine, close: async () => { await engine.close(); } };
});

metaConformance(t, 'service over HTTP (postgres)', async () => {
  const url = await (await pgServer).createDatabase();
  const engine = await SqlMetaEngine.open(await PostgresDriver.open(url), { filespaceId: FILESPACE, blockSize: BLOCK });
  const token = 'cd'.repeat(32);
  const service = await startService({ engine, verifiers: [serviceVerifierOf(token)], scheduleTickMs: 0 });
  const client = new MetaClient(service.url, token);
  return { engine: client, close: async () => { await client.close(); await service.close(); await engine.close(); } };
});
