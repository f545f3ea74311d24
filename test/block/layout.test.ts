/** Block arithmetic and range assembly: holes read as zeros, short blocks are padded. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { UsageError } from '../../src/errors.js';
import { assembleRange, checkBlockSize, spans } from '../../src/block/layout.js';

t.test('block sizes: powers of two from 64 KiB to 16 MiB', async (t) => {
  t.equal(checkBlockSize(65536), 65536);
  t.equal(checkBlockSize(16 << 20), 16 << 20);
  for (const bad of [0, 1000, 32768, 3 << 20, 32 << 20]) t.throws(() => checkBlockSize(bad), UsageError, String(bad));
});

t.test('spans cover a range exactly', async (t) => {
  t.same(spans(100, 250, 120), [
    { index: 2, start: 50, length: 50, outOffset: 0 },
    { index: 3, start: 0, length: 70, outOffset: 50 },
  ]);
  t.same(spans(100, 0, 50, 30), [{ index: 0, start: 0, length: 30, outOffset: 0 }], 'clipped at file size');
  t.same(spans(100, 500, 10, 100), [], 'past end');
});

t.test('assembly across blocks with holes and short blocks matches a reference', async (t) => {
  const bs = 64;
  const size = 64 * 10 + 13;
  const reference = Buffer.alloc(size);
  const blocks = new Map<number, Buffer>();
  for (const i of [0, 1, 3, 7, 10]) {
    const len = i === 3 ? 20 : i === 10 ? 13 : bs; // block 3 is short: the rest reads as zeros
    const b = randomBytes(len);
    blocks.set(i, b);
    b.copy(reference, i * bs);
  }
  for (let trial = 0; trial < 300; trial++) {
    const off = Math.floor(Math.random() * (size + 20));
    const len = Math.floor(Math.random() * 300);
    const got = await assembleRange(bs, size, off, len, async (i) => blocks.get(i));
    t.ok(got.equals(reference.subarray(off, Math.min(size, off + len))), `range ${off}+${len}`);
  }
});
