/**
 * For VFS tests with several mounts: one descriptor, one in-memory store and one SQLite
 * engine in a temporary directory, shared by every VFS made on it (as machines share a
 * filespace), all removed when the test ends.
 */
import type { Test } from 'tap';
import path from 'node:path';
import { MemoryStore } from '../../src/store/memory.js';
import { createDescriptor, type UnlockedFilespace } from '../../src/crypto/descriptor.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { tempDir } from './servers.js';

export interface SharedFilespace {
  dir: string;
  u: UnlockedFilespace;
  store: MemoryStore;
  engine: SqlMetaEngine;
}

export async function sharedFilespace(t: Test, blockSize = 65536): Promise<SharedFilespace> {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const u = await createDescriptor({ password: 'pw', blockSize, kdf: 'interactive' });
  const store = new MemoryStore();
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'm.sqlite')), { filespaceId: u.descriptor.filespaceId, blockSize });
  t.teardown(() => engine.close());
  return { dir: tmp.dir, u, store, engine };
}
