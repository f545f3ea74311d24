/**
 * Real network faults between Lucid and its servers, from a TCP proxy in front of s3rver and
 * in front of the metadata service: connection resets, bodies cut short, stalls (timeouts),
 * 503 throttling, latency spikes, a server that is down. Transient faults are retried and
 * the bytes come back exact; what does not pass is surfaced as one clear error, never as
 * wrong bytes and never as a hang.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { ServiceUnavailableError, TransientError } from '../../src/errors.js';
import { MetaClient } from '../../src/meta/client.js';
import { serviceVerifierOf } from '../../src/crypto/keys.js';
import { startService } from '../../src/meta/service.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { ROOT_INO } from '../../src/meta/types.js';
import { RetryingStore } from '../../src/store/retry.js';
import { S3Store } from '../../src/store/s3.js';
import { AzureStore } from '../../src/store/azure.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { startAzurite, startS3rver, tempDir } from '../helpers/servers.js';

const s3 = await startS3rver(['faults']);
t.teardown(() => s3.close());
const direct = new S3Store({ bucket: 'faults', prefix: 'p/', endpoint: s3.endpoint });
t.teardown(() => direct.close());
const body = randomBytes(3 * 1048576 + 17);
await direct.put('obj', body);
const port = Number(new URL(s3.endpoint).port);

/** A store through a fresh proxy (so the first request opens the first connection). */
async function through(t: Test, attempts = 6) {
  const proxy = await startFaultProxy(port);
  t.teardown(() => proxy.close());
  const retries: string[] = [];
  const store = new RetryingStore(new S3Store({ bucket: 'faults', prefix: 'p/', endpoint: proxy.url, requestTimeoutMs: 1500 }),
    { attempts, baseDelayMs: 20, maxDelayMs: 200, onRetry: (op, n, e) => retries.push(`${op} ${n}: ${e.message}`) });
  t.teardown(() => store.close());
  return { proxy, store, retries };
}

t.test('resets and bodies cut short are retried; the bytes come back exact', async (t) => {
  const { proxy, store, retries } = await through(t);
  proxy.inject({ kind: 'reset', afterBytes: 0 });
  proxy.inject({ kind: 'reset', afterBytes: 300 }); // inside the headers
  proxy.inject({ kind: 'reset', afterBytes: 1_000_000 }); // a third of the way into the body
  t.same(await store.get('obj'), body, 'byte for byte');
  t.equal(proxy.fired, 3);
  t.equal(retries.length, 3, `three retries: ${retries.join('; ')}`);
  proxy.inject({ kind: 'reset', afterBytes: 500 });
  const ranged = await store.get('obj', { offset: 1048576, length: 1048576 });
  t.same(ranged, body.subarray(1048576, 2 * 1048576), 'a ranged read too');
  proxy.inject({ kind: 'reset', afterBytes: 0 }, 2);
  await store.put('written', body);
  t.same(await direct.get('written'), body, 'a put retried after resets stores the exact bytes');
});

t.test('a stall times out and is retried; throttling (503 SlowDown) is retried', async (t) => {
  const { proxy, store, retries } = await through(t);
  proxy.inject({ kind: 'stall' });
  const started = Date.now();
  t.same(await store.get('obj'), body);
  t.ok(Date.now() - started < 10_000, `answered in ${Date.now() - started} ms after one stalled attempt`);
  t.match(retries[0], /get 1/);
  const throttled = await through(t);
  throttled.proxy.inject({ kind: 'http503' }, 3);
  t.same(await throttled.store.get('obj'), body, 'after three 503s');
  t.equal(throttled.retries.length, 3);
  t.match(throttled.retries.join('\n'), /SlowDown/, 'the throttling is what was retried');
  const slow = await through(t);
  slow.proxy.inject({ kind: 'latency', ms: 300 });
  t.same(await slow.store.get('obj'), body, 'a latency spike only delays');
  t.equal(slow.retries.length, 0);
});

t.test('a server that stays down: one clear transient error after the retries, no hang', async (t) => {
  const { proxy, store, retries } = await through(t, 4);
  proxy.always({ kind: 'refuse' });
  const err = await store.get('obj').then(() => undefined, (e: Error) => e);
  t.ok(err instanceof TransientError, `a TransientError: ${err?.message}`);
  t.match(err!.message, /obj/, 'naming the object');
  t.equal(retries.length, 3, 'three retries, then it gave up');
  proxy.clear();
  t.same(await store.get('obj'), body, 'and it works again once the server is back');
});

t.test('random resets on a third of the connections: every read is exact or an error, never wrong bytes', async (t) => {
  const { proxy, store } = await through(t, 8);
  proxy.always({ kind: 'reset', afterBytes: 2000 }, 0.33);
  let exact = 0;
  for (let i = 0; i < 20; i++) {
    const offset = Math.floor(Math.random() * body.length);
    const got = await store.get('obj', { offset, length: 700_000 }).catch((e: Error) => e);
    if (got instanceof Error) t.ok(got instanceof TransientError, `only transient errors surface (${got.message})`);
    else if (got.equals(body.subarray(offset, offset + 700_000))) exact++;
    else t.fail(`wrong bytes at ${offset}`);
  }
  t.ok(exact >= 18, `${exact} of 20 reads exact (the rest failed cleanly)`);
});

t.test('the metadata service behind the proxy: resets and stalls are ServiceUnavailable, quickly', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(`${tmp.dir}/meta.sqlite`), { filespaceId: 'f'.repeat(32), blockSize: 65536 });
  const token = 'ab'.repeat(32);
  const service = await startService({ engine, verifiers: [serviceVerifierOf(token)], scheduleTickMs: 0 });
  t.teardown(async () => { await service.close(); await engine.close(); });
  const proxy = await startFaultProxy(Number(new URL(service.url).port));
  t.teardown(() => proxy.close());
  const client = new MetaClient(proxy.url, token, { timeoutMs: 1000 });
  t.teardown(() => client.close());
  t.equal((await client.getAttr(ROOT_INO)).ino, ROOT_INO, 'through the proxy');
  await client.close();
  const fresh = new MetaClient(proxy.url, token, { timeoutMs: 1000 });
  t.teardown(() => fresh.close());
  proxy.inject({ kind: 'reset', afterBytes: 0 });
  await t.rejects(fresh.getAttr(ROOT_INO), ServiceUnavailableError, 'a reset');
  proxy.inject({ kind: 'stall' });
  const started = Date.now();
  await t.rejects(fresh.info(), ServiceUnavailableError, 'a stall');
  t.ok(Date.now() - started < 3000, `gave up after ${Date.now() - started} ms (timeout 1 s)`);
  proxy.inject({ kind: 'latency', ms: 200 });
  t.equal((await fresh.getAttr(ROOT_INO)).ino, ROOT_INO, 'a latency spike only delays');
});

t.test('Azure (Azurite) behind the proxy: a stall times out and is retried, resets too', async (t) => {
  const azurite = await startAzurite('faults');
  t.teardown(() => azurite.close());
  const proxy = await startFaultProxy(Number(new URL(/BlobEndpoint=([^;]+)/.exec(azurite.connectionString)![1]).port));
  t.teardown(() => proxy.close());
  const viaProxy = azurite.connectionString.replace(/BlobEndpoint=http:\/\/127\.0\.0\.1:\d+/, `BlobEndpoint=${proxy.url}`);
  const retries: string[] = [];
  const store = new RetryingStore(new AzureStore({ container: 'faults', prefix: 'p/', connectionString: viaProxy, requestTimeoutMs: 1500 }),
    { attempts: 6, baseDelayMs: 20, maxDelayMs: 200, onRetry: (op, n, e) => retries.push(`${op} ${n}: ${e.message}`) });
  t.teardown(() => store.close());
  await store.put('obj', body);
  proxy.inject({ kind: 'stall' });
  proxy.inject({ kind: 'reset', afterBytes: 100_000 });
  const started = Date.now();
  t.same(await store.get('obj'), body, 'byte for byte');
  t.ok(Date.now() - started < 10_000, `in ${Date.now() - started} ms`);
  t.equal(retries.length, 2, `a timed-out try and a reset were retried: ${retries.join('; ')}`);
});
