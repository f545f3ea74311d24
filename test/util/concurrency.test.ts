/**
 * forEachAhead: every item of a stream handled once, at most `limit` at a time, the stream
 * read at most `ahead` items beyond the handling (so a walk of millions holds a bounded
 * number), and the first error, from the stream or from a call, stops it and is thrown.
 */
import t from 'tap';
import { forEachAhead, mapLimit } from '../../src/util/concurrency.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

async function* counting(n: number, state: { read: number }, failAt = -1): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    if (i === failAt) throw new Error(`source failed at ${i}`);
    state.read++;
    yield i;
  }
}

t.test('every item once, at most `limit` in flight, at most `ahead` read beyond', async (t) => {
  const state = { read: 0 };
  let inFlight = 0;
  let maxInFlight = 0;
  let handled = 0;
  let maxBeyond = 0;
  const seen: number[] = [];
  const done: number[] = [];
  await forEachAhead(counting(5000, state), 4, 100, async (i) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    maxBeyond = Math.max(maxBeyond, state.read - handled);
    if (i % 7 === 0) await tick();
    await Promise.resolve();
    done.push(i);
    handled++;
    inFlight--;
  }, (i) => seen.push(i));
  t.same(seen, Array.from({ length: 5000 }, (_, i) => i), 'seen in order, each once');
  t.same([...done].sort((a, b) => a - b), seen, 'each handled once');
  t.equal(maxInFlight, 4, 'four at a time');
  t.ok(maxBeyond <= 100 + 4 + 1, `the stream read at most ahead + limit beyond what was handled (${maxBeyond})`);
});

t.test('an empty stream, and a stream shorter than the limit', async (t) => {
  const state = { read: 0 };
  const got: number[] = [];
  await forEachAhead(counting(0, state), 4, 10, async (i) => { got.push(i); });
  await forEachAhead(counting(2, state), 8, 10, async (i) => { got.push(i); });
  t.same(got.sort(), [0, 1]);
});

t.test('a failing call stops the reading and is thrown; so is a failing stream', async (t) => {
  const state = { read: 0 };
  const started: number[] = [];
  await t.rejects(forEachAhead(counting(100_000, state), 2, 50, async (i) => {
    started.push(i);
    await tick();
    if (i === 10) throw new Error('call 10 failed');
  }), /call 10 failed/);
  t.ok(state.read < 200, `reading stopped soon after (${state.read} read)`);
  t.ok(Math.max(...started) < 20, 'no call started long after the failure');
  const handled: number[] = [];
  await t.rejects(forEachAhead(counting(100, { read: 0 }, 30), 3, 5, async (i) => { handled.push(i); }), /source failed at 30/);
  t.ok(handled.every((i) => i < 30), 'nothing past the failure');
});

t.test('mapLimit keeps input order', async (t) => {
  t.same(await mapLimit([3, 1, 2], 2, async (x) => { await new Promise((r) => setTimeout(r, x)); return x * 2; }), [6, 2, 4]);
});
