/**
 * A folder of 100 000 entries through a real mount: every entry is listed, once, by `ls -f`,
 * `ls` and `find` (listings are paged; offsets must stay stable across pages). It has a file
 * of its own: making 100 000 files is most of a test file's time limit on a loaded machine,
 * and it must not take the POSIX statements down with it.
 */
import t from 'tap';
import { sh, withMount } from './helpers.js';

const fx = await withMount(t);

t.test('a directory of 100 000 entries lists completely and stably', async (t) => {
  const r = await sh(`
    set -e
    mkdir ${fx.mp}/big && cd ${fx.mp}/big
    seq -f 'entry-%06g' 1 100000 | xargs touch
    ls -f | grep -c '^entry-'
    ls | sort | uniq | wc -l
    find . -type f | wc -l
  `, {}, 900_000);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['100000', '100000', '100000']);
});

