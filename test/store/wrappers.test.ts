/** Retry retries only what is transient; faults fire as configured; metrics count. */
import t from 'tap';
import { AccessDeniedError, NoSuchBucketError, NotFoundError, TransientError } from '../../src/errors.js';
import { FaultyStore } from '../../src/store/faults.js';
import { MemoryStore } from '../../src/store/memory.js';
import { MeteredStore } from '../../src/store/metrics.js';
import { RetryingStore } from '../../src/store/retry.js';
import { FileStore } from '../../src/store/file.js';

const fast = { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 };

t.test('transient failures are retried until success', async (t) => {
  const faulty = new FaultyStore(new MemoryStore());
  const retries: number[] = [];
  const store = new RetryingStore(faulty, { ...fast, onRetry: (_op, attempt) => retries.push(attempt) });
  await store.put('k', Buffer.from('v'));
  faulty.inject({ op: 'get', times: 3, fault: { kind: 'transient' } });
  t.equal((await store.get('k')).toString(), 'v');
  t.same(retries, [1, 2, 3]);
  t.equal(faulty.fired, 3);
});

t.test('retries stop after the policy and surface the transient error', async (t) => {
  const faulty = new FaultyStore(new MemoryStore()).inject({ op: 'put', fault: { kind: 'transient' } });
  await t.rejects(new RetryingStore(faulty, fast).put('k', Buffer.from('v')), TransientError);
  t.equal(faulty.fired, 5);
});

t.test('auth, missing objects and missing buckets are never retried', async (t) => {
  const faulty = new FaultyStore(new MemoryStore()).inject({ op: 'get', fault: { kind: 'accessDenied' } });
  await t.rejects(new RetryingStore(faulty, fast).get('k'), AccessDeniedError);
  t.equal(faulty.fired, 1);
  const inner = new MemoryStore();
  const metered = new MeteredStore(inner);
  await t.rejects(new RetryingStore(metered, fast).get('missing'), NotFoundError);
  t.equal(metered.stats.get.requests, 1);
  const noBucket = new MeteredStore(new FileStore('/nonexistent/lucid'));
  await t.rejects(new RetryingStore(noBucket, fast).get('x'), NoSuchBucketError);
  t.equal(noBucket.stats.get.requests, 1);
});

t.test('data faults: truncation and flipped bits reach the caller as bytes', async (t) => {
  const faulty = new FaultyStore(new MemoryStore());
  await faulty.put('k', Buffer.from('hello world'));
  faulty.inject({ op: 'get', times: 1, fault: { kind: 'truncate', keep: 5 } });
  t.equal((await faulty.get('k')).toString(), 'hello');
  faulty.inject({ op: 'get', times: 1, fault: { kind: 'flipBit', byte: 0 } });
  t.equal((await faulty.get('k')).toString(), 'iello world');
  t.equal((await faulty.get('k')).toString(), 'hello world', 'rules retire after their count');
  faulty.inject({ keyPrefix: 'other/', fault: { kind: 'notFound' } });
  t.equal((await faulty.get('k')).toString(), 'hello world', 'key prefix filters');
});

t.test('metrics count requests, errors, bytes and latency', async (t) => {
  const faulty = new FaultyStore(new MemoryStore());
  const metered = new MeteredStore(faulty);
  await metered.put('a', Buffer.alloc(1000));
  await metered.get('a');
  await metered.get('a', { offset: 0, length: 10 });
  faulty.inject({ op: 'get', times: 1, fault: { kind: 'latency', ms: 30 } });
  await metered.get('a');
  await t.rejects(metered.get('missing'));
  t.equal(metered.stats.put.requests, 1);
  t.equal(metered.stats.put.bytes, 1000);
  t.equal(metered.stats.get.requests, 4);
  t.equal(metered.stats.get.errors, 1);
  t.equal(metered.stats.get.bytes, 2010);
  t.ok(metered.stats.get.maxMs >= 29, 'latency spike recorded');
  t.ok(metered.percentile('get', 0.99) >= 16, 'p99 reflects the spike');
});
