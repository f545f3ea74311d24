/**
 * The ObjectStore conformance suite: every backend runs exactly these checks.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { AlreadyExistsError, InvalidArgumentError, NoSuchBucketError, NotFoundError } from '../../src/errors.js';
import { listAll, type ObjectStore } from '../../src/store/types.js';

export interface StoreFixture {
  store: ObjectStore;
  /** The same backend pointed at a bucket/container/directory that does not exist. */
  missing: ObjectStore;
  /** Text the NoSuchBucket message must contain (the bucket's name). */
  missingName: string;
  close(): Promise<void>;
}

export function storeConformance(t: Test, name: string, open: () => Promise<StoreFixture>): void {
  t.test(`${name}: ObjectStore conformance`, async (t) => {
    const fx = await open();
    t.teardown(() => fx.close());
    const { store } = fx;

    t.test('probe succeeds on an existing bucket', async (t) => {
      await t.resolves(store.probe());
    });

    t.test('put then get returns the same bytes', async (t) => {
      const body = randomBytes(3 * 1024 * 1024 + 17);
      await store.put('conf/a/big.bin', body);
      const got = await store.get('conf/a/big.bin');
      t.equal(got.length, body.length);
      t.ok(got.equals(body), 'bytes identical');
    });

    t.test("get into the caller's buffer", async (t) => {
      const body = randomBytes(200_000);
      await store.put('conf/into.bin', body);
      const given: Buffer[] = [];
      const buffer = (n: number) => {
        const b = Buffer.alloc(n + 1000, 0xee);
        given.push(b);
        return b;
      };
      const whole = await store.get('conf/into.bin', undefined, { buffer });
      t.ok(whole.equals(body), 'bytes identical');
      t.equal(whole.buffer, given[given.length - 1].buffer, "read into the caller's buffer");
      const part = await store.get('conf/into.bin', { offset: 5000, length: 3000 }, { buffer });
      t.ok(part.equals(body.subarray(5000, 8000)), 'a range, exactly');
      const short = await store.get('conf/into.bin', undefined, { buffer: (n) => Buffer.alloc(n - 1) });
      t.ok(short.equals(body), 'a buffer too short is not used: still the whole body');
    });

    t.test('ranged get returns exactly the range, clipped at the end', async (t) => {
      const body = randomBytes(10_000);
      await store.put('conf/range.bin', body);
      t.ok((await store.get('conf/range.bin', { offset: 0, length: 100 })).equals(body.subarray(0, 100)), 'head of object');
      t.ok((await store.get('conf/range.bin', { offset: 4321, length: 1234 })).equals(body.subarray(4321, 5555)), 'middle');
      t.ok((await store.get('conf/range.bin', { offset: 9_990, length: 100 })).equals(body.subarray(9_990)), 'clipped at end');
      t.equal((await store.get('conf/range.bin', { offset: 20_000, length: 10 })).length, 0, 'past the end is empty');
    });

    t.test('put replaces, idempotently', async (t) => {
      await store.put('conf/replace', Buffer.from('one'));
      await store.put('conf/replace', Buffer.from('two!'));
      await store.put('conf/replace', Buffer.from('two!'));
      t.equal((await store.get('conf/replace')).toString(), 'two!');
    });

    t.test('put with ifAbsent refuses to replace', async (t) => {
      await store.put('conf/once', Buffer.from('first'), { ifAbsent: true });
      await t.rejects(store.put('conf/once', Buffer.from('second'), { ifAbsent: true }), AlreadyExistsError);
      t.equal((await store.get('conf/once')).toString(), 'first', 'first write intact');
    });

    t.test('empty objects', async (t) => {
      await store.put('conf/empty', Buffer.alloc(0));
      t.equal((await store.get('conf/empty')).length, 0);
      t.match(await store.head('conf/empty'), { key: 'conf/empty', size: 0 });
    });

    t.test('head gives size or undefined', async (t) => {
      const before = Date.now();
      await store.put('conf/head', Buffer.alloc(1234, 7));
      const after = Date.now();
      const info = await store.head('conf/head');
      t.same({ key: info?.key, size: info?.size }, { key: 'conf/head', size: 1234 });
      // Stores keep whole seconds: the write time lies within the put, give or take one.
      t.ok(info!.modifiedMs >= before - 1000 && info!.modifiedMs <= after + 1000, `modified time ${info!.modifiedMs} within the put (${before}…${after})`);
      const listed = (await store.list('conf/head')).items;
      t.equal(listed.length, 1);
      t.ok(Math.abs(listed[0].modifiedMs - info!.modifiedMs) <= 1000, 'list gives the same modified time as head');
      t.equal(await store.head('conf/nothing-here'), undefined);
    });

    t.test('get of a missing object is NotFound', async (t) => {
      await t.rejects(store.get('conf/missing'), NotFoundError);
      await t.rejects(store.get('conf/missing', { offset: 0, length: 10 }), NotFoundError);
    });

    t.test('delete is idempotent', async (t) => {
      await store.put('conf/del', Buffer.from('x'));
      await store.delete('conf/del');
      await store.delete('conf/del');
      t.equal(await store.head('conf/del'), undefined);
      await t.rejects(store.get('conf/del'), NotFoundError);
    });

    t.test('list by prefix, in byte order, across pages', async (t) => {
      const keys: string[] = [];
      for (let i = 0; i < 23; i++) keys.push(`list/${(i * 7919 % 101).toString(16).padStart(2, '0')}/obj-${i}`);
      keys.push('list/zz', 'list-other/not-me', 'lis');
      await Promise.all(keys.map((k, i) => store.put(k, Buffer.alloc(i, 1))));
      const seen: string[] = [];
      for await (const o of listAll(store, 'list/', 5)) seen.push(o.key);
      const expected = keys.filter((k) => k.startsWith('list/')).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      t.same(seen, expected, 'every key under the prefix exactly once, in order');
      const first = await store.list('list/', { limit: 5 });
      t.equal(first.items.length, 5);
      t.ok(first.cursor, 'a cursor while more follow');
      const sizes = new Map(keys.map((k, i) => [k, i]));
      t.ok(first.items.every((o) => o.size === sizes.get(o.key)), 'sizes reported');
      const all = await store.list('list/', { limit: 1000 });
      t.equal(all.items.length, expected.length);
      t.equal(all.cursor, undefined, 'no cursor on the last page');
      t.same((await store.list('nope/')).items, [], 'empty prefix lists nothing');
    });

    t.test('invalid keys are refused', async (t) => {
      await t.rejects(store.put('../escape', Buffer.from('x')), InvalidArgumentError);
      await t.rejects(store.put('a//b', Buffer.from('x')), InvalidArgumentError);
      await t.rejects(store.get('.hidden'), InvalidArgumentError);
    });

    t.test('a missing bucket is NoSuchBucket, naming it', async (t) => {
      for (const op of [() => fx.missing.probe(), () => fx.missing.get('x'), () => fx.missing.put('x', Buffer.from('y')), () => fx.missing.head('x')]) {
        const err = await op().then(() => undefined, (e: unknown) => e);
        t.type(err, NoSuchBucketError);
        t.match((err as Error).message, fx.missingName);
      }
    });
  });
}
