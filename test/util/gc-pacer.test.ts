/**
 * The GC pacer asks for a background collection only when the resident set is above its soft
 * limit, at most once per `everyBytes` of block buffers, never a second while one runs, looks
 * at the resident set once per `lookEveryBytes`, and does nothing without an exposed gc.
 */
import t from 'tap';
import { GcPacer, type GcFunction } from '../../src/util/gc-pacer.js';

const MiB = 1024 * 1024;

t.test('above the soft limit: one collection per 64 MiB read, none while one runs', async (t) => {
  const asked: string[] = [];
  let finish!: () => void;
  const gc: GcFunction = (o) => {
    asked.push(`${o.type}/${o.execution}`);
    return new Promise<void>((r) => { finish = r; });
  };
  const pacer = new GcPacer({ gc, softLimitBytes: 200 * MiB, rss: () => 250 * MiB });
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

t.test('below the soft limit nothing is forced; the resident set is looked at once per 16 MiB', async (t) => {
  const asked: string[] = [];
  let rss = 100 * MiB;
  let looks = 0;
  const pacer = new GcPacer({ gc: (o) => { asked.push(o.type); }, softLimitBytes: 200 * MiB, rss: () => { looks++; return rss; } });
  for (let i = 0; i < 512; i++) pacer.allocated(MiB);
  t.same(asked, [], '512 MiB of blocks at 100 MiB resident: no collection');
  t.equal(looks, 512 / 16 - 3, 'looked once per 16 MiB (from 64 MiB on)');
  rss = 250 * MiB;
  for (let i = 0; i < 16; i++) pacer.allocated(MiB);
  t.same(asked, ['major'], 'above the limit: a collection at the next look');
});

t.test('without an exposed gc it does nothing', async (t) => {
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'tests run without --expose-gc');
  const pacer = new GcPacer({ softLimitBytes: 0 });
  t.notOk(pacer.enabled);
  for (let i = 0; i < 100; i++) pacer.allocated(MiB);
  t.equal(pacer.collections, 0);
});
