/**
 * The closing line CI reads ("N passed, N failed") counts tap's real results: each leaf
 * subtest once, a parent that failed with no failing child (a crash in its set-up) as one
 * failure, and a subtest that never closed (its process ended mid-test) as one failure.
 * Each failure is named on a line of its own before the closing line, so a CI log says
 * which test failed even when tap's own output is cut.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'count-tap.mjs');
const run = (tap: string) => spawnSync(process.execPath, [script], { input: tap, encoding: 'utf8' }).stdout.trim().split('\n');
/** The closing line. */
const count = (tap: string) => run(tap).at(-1);
/** The lines naming failures. */
const failures = (tap: string) => run(tap).slice(0, -1);

t.test('leaves counted once; a crashed parent and an unfinished subtest are failures', async (t) => {
  const a = `TAP version 14
# Subtest: a.test.js
    # Subtest: one
        ok 1 - an assertion
        1..1
    ok 1 - one
    # Subtest: two
        not ok 1 - an assertion
        1..1
    not ok 2 - two
    # Subtest: skipped
    ok 3 - skipped # SKIP not here
    1..3
not ok 1 - a.test.js
`;
  t.equal(count(a), '1 passed, 1 failed, 1 skipped', 'passes, fails and skips of leaves; the failed file is not counted again');
  t.same(failures(a), ['failed: a.test.js > two'], 'the failed test is named, with the file holding it');
  t.equal(count(`TAP version 14
# Subtest: b.test.js
    # Subtest: set-up
        # Subtest: inner
            ok 1 - fine
            1..1
        ok 1 - inner
        not ok 2 - Error: set-up threw
        1..2
    not ok 1 - set-up
    1..1
not ok 1 - b.test.js
`), '1 passed, 1 failed', 'a parent that failed with no failing child: one failure');
  const c = `TAP version 14
# Subtest: c.test.js
    # Subtest: waits forever
        not ok 1 - test unfinished
        1..1
    1..0 # no tests found
not ok 1 - c.test.js
`;
  t.equal(count(c), '0 passed, 1 failed', 'a subtest that never closed: one failure');
  t.same(failures(c), ['failed: c.test.js > waits forever (unfinished)'], 'and named as unfinished');
  t.equal(count(`TAP version 14
# Subtest: d.test.js
    # Subtest: quotes tap
        not ok 1 - should be equal
          ---
          source: >
            # Subtest: inside
                ok 1 - quoted
            not ok 1 - quoted too
          ...
        1..1
    not ok 1 - quotes tap
    1..1
not ok 1 - d.test.js
`), '0 passed, 1 failed', 'TAP quoted in a failure\'s diagnostics is not counted');
});
