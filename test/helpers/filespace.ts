/** Builds a real Filespace for tests: a store, a new descriptor, and a SQL engine (SQLite unless a driver is given; direct or behind the service). */
import path from 'node:path';
import { acceptedVerifiers, createDescriptor, unlockDescriptor } from '../../src/crypto/descriptor.js';
import { loadDescriptor, saveNewDescriptor } from '../../src/fs/descriptor-store.js';
import { Filespace } from '../../src/fs/filespace.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import type { SqlDriver } from '../../src/meta/sql/driver.js';
import { startService } from '../../src/meta/service.js';
import { MetaClient } from '../../src/meta/client.js';
import type { ObjectStore } from '../../src/store/types.js';
import type { MetaEngine } from '../../src/meta/types.js';

export interface FilespaceFixture {
  fs: Filespace;
  engine: SqlMetaEngine;
  close(): Promise<void>;
}

export async function makeFilespace(store: ObjectStore, dbFile: string, options: { password?: string; blockSize?: number; viaService?: boolean; driver?: () => Promise<SqlDriver> } = {}): Promise<FilespaceFixture> {
  const password = options.password ?? 'test password';
  const created = await createDescriptor({ password, blockSize: options.blockSize ?? 65536, kdf: 'interactive' });
  await saveNewDescriptor(store, created.descriptor);
  const unlocked = await unlockDescriptor(await loadDescriptor(store), password);
  const engine = await SqlMetaEngine.open(await (options.driver ?? (() => SqliteDriver.open(dbFile)))(), { filespaceId: unlocked.descriptor.filespaceId, blockSize: unlocked.descriptor.blockSize });
  let meta: MetaEngine = engine;
  let stopService = async () => {};
  if (options.viaService) {
    const service = await startService({ engine, verifiers: acceptedVerifiers(unlocked.descriptor) });
    const client = new MetaClient(service.url, unlocked.keys.serviceToken.toString('hex'));
    meta = client;
    stopService = async () => { await client.close(); await service.close(); };
  }
  return {
    fs: new Filespace(unlocked, store, meta),
    engine,
    close: async () => { await stopService(); await engine.close(); },
  };
}

export function dbPathIn(dir: string): string {
  return path.join(dir, '.lucid', 'meta.sqlite');
}
