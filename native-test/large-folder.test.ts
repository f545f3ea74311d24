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
    # Four writers, one create each per file (touch would add a utimens per file).
    for w in 0 1 2 3; do
      python3 -c "import os, sys; w = int(sys.argv[1]); [os.close(os.open('entry-%06d' % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)) for i in range(1 + w, 100001, 4)]" $w &
    done
    wait
    ls -f | grep -c '^entry-'
    ls | sort | uniq | wc -l
    find . -type f | wc -l
  `, {}, 900_000);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['100000', '100000', '100000']);
});

