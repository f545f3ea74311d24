/**
 * RateMeter (lucid status's upload rate): growth over the window per second, counted from the
 * sample before the window; zero once nothing moves for a window.
 */
import t from 'tap';
import { RateMeter } from '../../src/util/rate.js';

t.test('the rate of a growing total, and zero once it stops', async (t) => {
  const r = new RateMeter(5000);
  t.equal(r.perSecond(0), 0, 'no samples: nothing moves');
  r.note(0, 0);
  for (let s = 1; s <= 10; s++) r.note(s * 100, s * 1000);
  t.equal(r.perSecond(10_000), 100, '100 a second');
  r.note(2000, 11_000);
  t.ok(r.perSecond(11_000) > 100, 'a burst raises it');
  t.equal(r.perSecond(30_000), 0, 'nothing for a whole window: zero');
});
