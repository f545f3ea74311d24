/**
 * Runs the ObjectStore conformance suite against every backend — memory, file, S3 (s3rver),
 * Azure (Azurite) — and through every wrapper (retry, metrics, fault injection with no fault
 * set): a wrapper must behave as the store it wraps.
 */
import t from 'tap';
import path from 'node:path';
import { MemoryStore } from '../../src/store/memory.js';
import { FileStore } from '../../src/store/file.js';
import { S3Store } from '../../src/store/s3.js';
import { AzureStore } from '../../src/store/azure.js';
import { openStore } from '../../src/store/registry.js';
import { BadStoreUrlError } from '../../src/errors.js';
import { RetryingStore } from '../../src/store/retry.js';
import { MeteredStore } from '../../src/store/metrics.js';
import { FaultyStore } from '../../src/store/faults.js';
import type { ObjectStore } from '../../src/store/types.js';
import { startAzurite, startS3rver, tempDir } from '../helpers/servers.js';
import { storeConformance } from './conformance.js';

storeConformance(t, 'memory', async () => {
  const store = new MemoryStore();
  // The memory backend has no buckets; a FileStore on a missing path stands in for that check.
  const missing = new FileStore('/nonexistent/lucid-memory');
  return { store, missing, missingName: '/nonexistent/lucid-memory', close: async () => {} };
});

storeConformance(t, 'file', async () => {
  const tmp = tempDir();
  const store = await openStore(`file://${tmp.dir}`);
  const gone = path.join(tmp.dir, 'does-not-exist');
  return { store, missing: await openStore(`file://${gone}`), missingName: gone, close: async () => tmp.remove() };
});

storeConformance(t, 's3 (s3rver)', async () => {
  const s3 = await startS3rver();
  const store = new S3Store({ bucket: s3.bucket, prefix: 'fs1/', endpoint: s3.endpoint });
  const missing = new S3Store({ bucket: 'no-such-bucket-lucid', prefix: '', endpoint: s3.endpoint });
  return { store, missing, missingName: 'no-such-bucket-lucid', close: async () => { await store.close(); await missing.close(); await s3.close(); } };
});

storeConformance(t, 'azure (Azurite)', async () => {
  const az = await startAzurite();
  const store = new AzureStore({ container: az.container, prefix: 'fs1/', connectionString: az.connectionString });
  const missing = new AzureStore({ container: 'no-such-container', prefix: '', connectionString: az.connectionString });
  return { store, missing, missingName: 'no-such-container', close: () => az.close() };
});

const wrappers: [string, (inner: ObjectStore) => ObjectStore][] = [
  ['RetryingStore', (inner) => new RetryingStore(inner, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })],
  ['MeteredStore', (inner) => new MeteredStore(inner)],
  ['FaultyStore (no faults)', (inner) => new FaultyStore(inner)],
];
for (const [name, wrap] of wrappers) {
  storeConformance(t, `${name} over file`, async () => {
    const tmp = tempDir();
    const gone = path.join(tmp.dir, 'does-not-exist');
    return { store: wrap(await openStore(`file://${tmp.dir}`)), missing: wrap(await openStore(`file://${gone}`)), missingName: gone, close: async () => tmp.remove() };
  });
}

t.test('store URLs', async (t) => {
  t.type(await openStore('file:///tmp/x'), FileStore);
  t.type(await openStore('s3://bucket/pre/fix?endpoint=http://127.0.0.1:9000&region=eu-west-1'), S3Store);
  t.equal((await openStore('s3://bucket/pre/fix?endpoint=http://127.0.0.1:9000')).url, 's3://bucket/pre/fix/?endpoint=http://127.0.0.1:9000');
  const saved = process.env.AZURE_STORAGE_CONNECTION_STRING;
  process.env.AZURE_STORAGE_CONNECTION_STRING = 'UseDevelopmentStorage=true';
  t.type(await openStore('azure://container/prefix'), AzureStore, 'the Azure backend loads when a URL names it');
  if (saved === undefined) delete process.env.AZURE_STORAGE_CONNECTION_STRING;
  else process.env.AZURE_STORAGE_CONNECTION_STRING = saved;
  for (const bad of ['nope', 'ftp://x/y', 'file://host/dir', 's3:///prefix', 's3://b/p?endpoint=ftp://x', 's3://b/../x']) {
    await t.rejects(openStore(bad), BadStoreUrlError, bad);
  }
});
