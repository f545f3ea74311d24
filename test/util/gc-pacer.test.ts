/**
 * The GC pacer asks for one background collection per `everyBytes` of block buffers, never
 * a second while one runs, and does nothing where the process has no exposed gc.
 */
import t from 'tap';
import { GcPacer, type GcFunction } from '../../src/util/gc-pacer.js';

const MiB = 1024 * 1024;

t.test('one collection per 64 MiB read, none while one runs', async (t) => {
  const asked: string[] = [];
  let finish!: () => void;
  const gc: GcFunction = (o) => {
    asked.push(`${o.type}/${o.execution}`);
    return new Promise<void>((r) => { finish = r; });
  };
  const pacer = new GcPacer(64 * MiB, gc);
  t.ok(pacer.enabled);
  for (let i = 0; i < 63; i++) pacer.allocated(MiB);
  t.same(asked, [], 'not before 64 MiB');
  pacer.allocated(MiB);
  t.same(asked, ['major/async'], 'a background major collection at 64 MiB');
  for (let i = 0; i < 200; i++) pacer.allocated(MiB);
  t.equal(asked.length, 1, 'none more while it runs');
  finish();
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 64; i++) pacer.allocated(MiB);
  t.equal(asked.length, 2, 'the next 64 MiB ask again');
  t.equal(pacer.collections, 2);
});

t.test('without an exposed gc it does nothing', async (t) => {
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'tests run without --expose-gc');
  const pacer = new GcPacer(MiB);
  t.notOk(pacer.enabled);
  for (let i = 0; i < 10; i++) pacer.allocated(MiB);
  t.equal(pacer.collections, 0);
});
