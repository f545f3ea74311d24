/**
 * The one place that picks concrete classes: a store URL becomes a backend wrapped in
 * metrics and retry; a --db value becomes an engine over its driver.
 */
import { SqliteDriver } from '../meta/sql/sqlite.js';
import { SqlMetaEngine } from '../meta/sql/engine.js';
import { UsageError } from '../errors.js';
import { unlockDescriptor, type Descriptor, type UnlockedFilespace } from '../crypto/descriptor.js';
import { loadDescriptor } from '../fs/descriptor-store.js';
import { MetaClient } from '../meta/client.js';
import type { MetaEngine } from '../meta/types.js';
import { defaultDbPath, defaultStorePassword, isDefaultStore } from './home.js';
import { getPassword } from './password.js';
import { MeteredStore } from '../store/metrics.js';
import { openStore as openBackend } from '../store/registry.js';
import { RetryingStore } from '../store/retry.js';
import type { ObjectStore } from '../store/types.js';

/** `trace`: every store call logged with its timing (LUCID_TRACE=1). */
export async function openStore(url: string, trace?: (line: string) => void): Promise<{ store: ObjectStore; metrics: MeteredStore }> {
  const metrics = new MeteredStore(await openBackend(url), { trace });
  return { store: new RetryingStore(metrics), metrics };
}

export async function openEngine(db: string, init: { filespaceId: string; blockSize: number }): Promise<SqlMetaEngine> {
  if (db.startsWith('sqlite:')) {
    const file = db.slice('sqlite:'.length);
    if (!file) throw new UsageError('--db sqlite: needs a path, e.g. --db sqlite:/var/lib/lucid/meta.sqlite');
    return SqlMetaEngine.open(await SqliteDriver.open(file), init);
  }
  if (db.startsWith('postgres://') || db.startsWith('postgresql://')) {
    const { PostgresDriver } = await import('../meta/sql/postgres.js'); // pg only when asked for
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

/** The filespace's own metadata database: `db` if given, else its default (see home.ts). */
export function openFilespaceEngine(storeUrl: string, descriptor: Descriptor, db?: string): Promise<SqlMetaEngine> {
  return openEngine(db ?? `sqlite:${defaultDbPath(storeUrl, descriptor.filespaceId)}`, { filespaceId: descriptor.filespaceId, blockSize: descriptor.blockSize });
}

/**
 * Opens the store at `storeUrl` and unlocks its filespace with the caller's password (the
 * embedded default's own password when that is the store). The store is the caller's to close.
 */
export async function openUnlocked(storeUrl: string, options: { passwordStdin?: boolean; user?: string }): Promise<{ store: ObjectStore; unlocked: UnlockedFilespace }> {
  const { store } = await openStore(storeUrl);
  try {
    const descriptor = await loadDescriptor(store);
    const password = await getPassword({ passwordStdin: options.passwordStdin, fallback: isDefaultStore(storeUrl) ? () => defaultStorePassword(false) : undefined });
    return { store, unlocked: await unlockDescriptor(descriptor, password, options.user) };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/**
 * `--service` as given (once, several times, or URLs joined by commas: instances of one
 * service) as one comma-separated string; each must be an http(s) URL.
 */
export function serviceUrls(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const urls = [v].flat().flatMap((x) => String(x).split(',')).map((x) => x.trim()).filter(Boolean);
  for (const u of urls) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(u).protocol);
    } catch { /* not a URL */ }
    if (!ok) throw new UsageError(`--service "${u}" is not an http:// or https:// URL of a lucid serve`);
  }
  if (urls.length === 0) throw new UsageError('--service needs a URL');
  return urls.join(',');
}

/**
 * The filespace's metadata engine as a client uses it: the service at `serviceUrl` (checked
 * to serve this filespace; several instances joined by commas), else the embedded engine on `db` or the store's default database.
 * `trace`: every service call logged with its timing (LUCID_TRACE=1).
 */
export async function connectMeta(storeUrl: string, unlocked: UnlockedFilespace, serviceUrl?: string, db?: string, trace?: (line: string) => void): Promise<{ meta: MetaEngine; client?: MetaClient; engine?: SqlMetaEngine; csn: number }> {
  const id = unlocked.descriptor.filespaceId;
  if (serviceUrl) {
    const client = new MetaClient(serviceUrl, unlocked.keys.serviceToken.toString('hex'), { trace });
    try {
      const info = await client.info();
      if (info.filespaceId !== id) throw new UsageError(`the service at ${serviceUrl} serves filespace ${info.filespaceId}, not ${id}`);
      return { meta: client, client, csn: info.csn };
    } catch (e) {
      await client.close();
      throw e;
    }
  }
  const engine = await openFilespaceEngine(storeUrl, unlocked.descriptor, db);
  return { meta: engine, engine, csn: 0 };
}
