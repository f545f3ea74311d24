/**
 * BufferPool: a buffer given back is the memory the next take gets (no allocation); takes
 * are exactly the size asked; a buffer given twice is pooled once (two takers never share
 * memory); buffers of another size, views inside another buffer and takes larger than the
 * pool's size are never pooled, nor (with `minPooled`) takes smaller than that; at most `keep` wait. A shared pool makes its first N buffers
 * in shared memory and keeps every one of them, whatever `keep` says; past N, ordinary ones.
 */
import t from 'tap';
import { BufferPool } from '../../src/util/buffer-pool.js';

t.test('reuse, sizes and what is never pooled', async (t) => {
  const pool = new BufferPool(1000, 2);
  const a = pool.take(1000);
  const b = pool.take(10);
  t.equal(a.length, 1000, 'a take is exactly the size asked');
  t.equal(b.length, 10);
  t.not(a.buffer, b.buffer, 'two takes in use never share memory');
  t.same(pool.stats, { made: 2, reused: 0, free: 0 });
  pool.give(b);
  pool.give(b);
  t.equal(pool.stats.free, 1, 'given twice, pooled once');
  const c = pool.take(700);
  t.equal(c.buffer, b.buffer, 'the next take gets the memory given back');
  t.equal(c.length, 700);
  const d = pool.take(700);
  t.not(d.buffer, c.buffer, 'and the one after that does not share it');
  t.same(pool.stats, { made: 3, reused: 1, free: 0 });

  const big = pool.take(5000);
  t.equal(big.length, 5000, 'a take larger than the pool is a buffer of its own');
  pool.give(big);
  pool.give(Buffer.alloc(999));
  pool.give(Buffer.from(new ArrayBuffer(1000), 1, 999));
  t.equal(pool.stats.free, 0, 'other sizes and offset views are not pooled');

  pool.give(a);
  pool.give(c);
  pool.give(d);
  t.equal(pool.stats.free, 2, 'at most `keep` wait');
});

t.test('takes under minPooled are buffers of their own size', async (t) => {
  const pool = new BufferPool(1000, 2, { minPooled: 100 });
  const small = pool.take(99);
  t.equal(small.buffer.byteLength < 1000 || small.byteOffset !== 0, true, 'a small take does not hold a pooled buffer');
  pool.give(small);
  t.same(pool.stats, { made: 0, reused: 0, free: 0 }, 'nothing made, nothing pooled');
  const large = pool.take(100);
  t.equal(large.buffer.byteLength, 1000, 'a take of minPooled bytes is a pooled buffer');
  pool.give(large);
  t.equal(pool.take(500).buffer, large.buffer, 'and is reused');
});

t.test('shared: the first N buffers are SharedArrayBuffers, never dropped; then ordinary ones', async (t) => {
  const pool = new BufferPool(1000, 1, { shared: 3 });
  const taken = Array.from({ length: 5 }, () => pool.take(1000));
  t.same(taken.map((b) => b.buffer instanceof SharedArrayBuffer), [true, true, true, false, false], 'three shared, then ordinary');
  t.equal(new Set(taken.map((b) => b.buffer)).size, 5, 'five takes in use, five memories');
  for (const b of taken) pool.give(b);
  t.equal(pool.stats.free, 4, 'all three shared kept (keep is 1), and one ordinary');
  pool.give(taken[0]);
  pool.give(Buffer.from(new SharedArrayBuffer(1000)));
  t.equal(pool.stats.free, 4, 'a shared buffer given twice, or one the pool did not make, is not pooled');
  const again = Array.from({ length: 4 }, () => pool.take(600));
  t.same(again.map((b) => b.buffer instanceof SharedArrayBuffer), [true, true, true, false], 'shared memory is handed out first');
  t.ok(again.every((b) => taken.some((x) => x.buffer === b.buffer)), 'every take reused memory given back');
  t.same(pool.stats, { made: 5, reused: 4, free: 0 });
});
