/**
 * The one place that picks concrete classes: a store URL becomes a backend wrapped in
 * metrics and retry; a --db value becomes an engine over its driver.
 */
import { SqliteDriver } from '../meta/sql/sqlite.js';
import { PostgresDriver } from '../meta/sql/postgres.js';
import { SqlMetaEngine } from '../meta/sql/engine.js';
import { UsageError } from '../errors.js';
import { MeteredStore } from '../store/metrics.js';
import { openStore as openBackend } from '../store/registry.js';
import { RetryingStore } from '../store/retry.js';
import type { ObjectStore } from '../store/types.js';

export function openStore(url: string): { store: ObjectStore; metrics: MeteredStore } {
  const metrics = new MeteredStore(openBackend(url));
  return { store: new RetryingStore(metrics), metrics };
}

export async function openEngine(db: string, init: { filespaceId: string; blockSize: number }): Promise<SqlMetaEngine> {
  if (db.startsWith('sqlite:')) {
    const file = db.slice('sqlite:'.length);
    if (!file) throw new UsageError('--db sqlite: needs a path, e.g. --db sqlite:/var/lib/lucid/meta.sqlite');
    return SqlMetaEngine.open(await SqliteDriver.open(file), init);
  }
  if (db.startsWith('postgres://') || db.startsWith('postgresql://')) {
    const driver = await PostgresDriver.open(db);
    try {
      return await SqlMetaEngine.open(driver, init);
    } catch (e) {
      await driver.close().catch(() => {});
      throw e;
    }
  }
  throw new UsageError(`--db "${db}" is not understood: use sqlite:PATH or postgres://USER@HOST/DATABASE`);
}
