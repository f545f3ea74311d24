/**
 * Snapshots through a real mount, as an admin would use them after a mistake:
 * - a snapshot taken before an overwrite, a truncate and a folder delete restores the file
 *   and the folder in place, byte for byte; entries created since go away;
 * - a folder renamed away since comes back under its old name;
 * - `lucid snapshot mount` shows the tree as it was, read-only (EROFS); `restore --to` copies
 *   the old version out, byte for byte, with times;
 * - schedules: the defaults, create, list, delete;
 * - restoring the mountpoint puts everything back; bad ids and paths are one-line errors
 *   with exit code 2;
 * - with every snapshot deleted, `lucid gc` leaves exactly the objects the live tree reaches,
 *   and the live tree reads back identical.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { sh, withMount } from './helpers.js';

t.test('restore in place after an overwrite, a truncate, a folder delete and a rename', async (t) => {
  const fx = await withMount(t);
  const w = await sh(`cd ${fx.mp} && mkdir -p proj/shots proj/audio && head -c 3M /dev/urandom > proj/cut.edl && head -c 5M /dev/urandom > proj/shots/a.mov \\
    && head -c 100K /dev/urandom > proj/audio/mix.wav && cp -a ${fx.mp}/proj ${fx.work}/ref && sync && echo ok`);
  t.equal(w.stdout.trim(), 'ok', w.stderr);
  const snap = await fx.lucid(['snapshot', 'create', 'before the mistake']);
  t.equal(snap.code, 0, snap.stderr);
  const id = snap.stdout.trim();
  t.match(id, /^\d+$/, 'prints the new id');
  const list = await fx.lucid(['snapshot', 'list', '--json']);
  t.match(JSON.parse(list.stdout), [{ id: Number(id), name: 'before the mistake' }]);

  const m = await sh(`cd ${fx.mp}/proj && head -c 1M /dev/urandom | dd of=cut.edl bs=1M seek=1 conv=notrunc status=none && truncate -s 2M cut.edl \\
    && rm -rf shots && mv audio audio-old && touch created-since && sync && echo ok`);
  t.equal(m.stdout.trim(), 'ok', m.stderr);

  const diff = await fx.lucid(['snapshot', 'diff', id]);
  t.equal(diff.code, 0, diff.stderr);
  t.same(diff.stdout.trim().split('\n'), [
    '- proj/audio', '+ proj/audio-old', '+ proj/audio-old/mix.wav', '- proj/audio/mix.wav', '+ proj/created-since',
    'M proj/cut.edl', '- proj/shots', '- proj/shots/a.mov',
  ], 'diff against the live tree names what changed');

  // A read-only view of the snapshot, beside the live mount.
  const view = `${fx.work}/view`;
  await sh(`mkdir -p ${view}`);
  const sm = await fx.lucid(['snapshot', 'mount', id, view, '--store', `file://${fx.store}`, '--cache-dir', `${fx.work}/view-cache`]);
  t.equal(sm.code, 0, sm.stderr);
  t.equal((await sh(`diff -r ${view}/proj ${fx.work}/ref && echo identical`)).stdout.trim(), 'identical', 'the snapshot mount shows the tree as it was');
  const ro = await sh(`echo x > ${view}/proj/cut.edl; echo "exit $?"; touch ${view}/new 2>&1; true`);
  t.match(ro.stdout, /exit 1/);
  t.match(ro.stderr + ro.stdout, /Read-only file system/, 'and refuses changes (EROFS)');
  t.equal((await fx.lucid(['unmount', view])).code, 0);

  // --to copies the snapshot's version out, leaving the live tree as it is.
  await sh(`mkdir -p ${fx.work}/out`);
  const cp = await fx.lucid(['snapshot', 'restore', id, `${fx.mp}/proj`, '--to', `${fx.work}/out`]);
  t.equal(cp.code, 0, cp.stderr);
  t.match(cp.stdout, /Copied proj from snapshot \d+ into .*: 3 file\(s\)/);
  t.equal((await sh(`diff -r ${fx.work}/out/proj ${fx.work}/ref && test -e ${fx.mp}/proj/created-since && echo identical`)).stdout.trim(), 'identical', '--to copies the old version out; the live tree is untouched');
  t.equal((await sh(`stat -c %Y ${fx.work}/out/proj/cut.edl ${fx.work}/ref/cut.edl | uniq | wc -l`)).stdout.trim(), '1', 'with its modification time');
  const bad = await fx.lucid(['snapshot', 'restore', id, `${fx.mp}/proj/created-since`, '--to', `${fx.work}/out`]);
  t.equal(bad.code, 2, 'a path the snapshot does not have: exit 2');
  t.match(bad.stderr, /not in snapshot/);

  const rf = await fx.lucid(['snapshot', 'restore', id, `${fx.mp}/proj/cut.edl`]);
  t.equal(rf.code, 0, rf.stderr);
  t.equal((await sh(`cmp ${fx.mp}/proj/cut.edl ${fx.work}/ref/cut.edl && echo same`)).stdout.trim(), 'same', 'the file is back, byte for byte');
  const rd = await fx.lucid(['snapshot', 'restore', id, `${fx.mp}/proj/shots`]);
  t.equal(rd.code, 0, rd.stderr);
  t.equal((await sh(`cmp ${fx.mp}/proj/shots/a.mov ${fx.work}/ref/shots/a.mov && echo same`)).stdout.trim(), 'same', 'the deleted folder is back');
  const ra = await fx.lucid(['snapshot', 'restore', id, `${fx.mp}/proj/audio`]);
  t.equal(ra.code, 0, ra.stderr);
  t.equal((await sh(`cmp ${fx.mp}/proj/audio/mix.wav ${fx.work}/ref/audio/mix.wav && test ! -e ${fx.mp}/proj/audio-old && echo same`)).stdout.trim(), 'same', 'the folder renamed away is back under its name');

  await sh(`echo later > ${fx.mp}/proj/later.txt && rm ${fx.mp}/proj/cut.edl`);
  const all = await fx.lucid(['snapshot', 'restore', id, fx.mp]);
  t.equal(all.code, 0, all.stderr);
  const tree = await sh(`cd ${fx.mp} && find . | sort && diff -r ${fx.mp}/proj ${fx.work}/ref && echo identical`);
  t.match(tree.stdout, /identical/, 'restoring the mountpoint restores everything');
  t.notMatch(tree.stdout, /later\.txt|created-since/, 'and removes what came since');
  t.equal((await fx.lucid(['snapshot', 'diff', id])).stdout.trim(), '', 'nothing differs from the snapshot now');

  // Survives a remount with an empty cache: the restore is committed metadata.
  t.equal((await fx.unmount()).code, 0);
  await sh(`rm -rf ${fx.cacheDir}`);
  t.equal((await fx.mount()).code, 0);
  t.equal((await sh(`diff -r ${fx.mp}/proj ${fx.work}/ref && echo identical`)).stdout.trim(), 'identical', 'identical after a remount with an empty cache');

  for (const args of [['snapshot', 'restore', '999', `${fx.mp}/proj`], ['snapshot', 'restore', 'abc', `${fx.mp}/proj`], ['snapshot', 'restore', id, `${fx.mp}/no/such/dir/x`], ['snapshot', 'delete', '999']]) {
    const r = await fx.lucid(args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  const sl = await fx.lucid(['snapshot', 'schedule', 'list']);
  t.same(sl.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]), ['every-15m', 'hourly', 'daily', 'weekly'], 'a new filespace has the default schedules');
  t.equal((await fx.lucid(['snapshot', 'schedule', 'delete', 'weekly'])).code, 0, 'removable');
  const sc = await fx.lucid(['snapshot', 'schedule', 'create', 'renders', '--every', '1h', '--keep', '12']);
  t.equal(sc.stdout.trim(), 'Schedule renders: every 1h, keep 12');
  t.match((await fx.lucid(['snapshot', 'schedule', 'list'])).stdout, /renders\s+every 1h\s+keep 12/);
  const badEvery = await fx.lucid(['snapshot', 'schedule', 'create', 'x', '--every', 'often', '--keep', '1']);
  t.equal(badEvery.code, 2, 'a bad --every is a usage error');

  t.equal((await fx.lucid(['snapshot', 'delete', id])).code, 0);
  // A new schedule is due at once: the agent may already have taken its first snapshot.
  // Once the schedule is gone it takes no more (the engine's compare-and-set finds no row).
  t.equal((await fx.lucid(['snapshot', 'schedule', 'delete', 'renders'])).code, 0);
  const left = JSON.parse((await fx.lucid(['snapshot', 'list', '--json'])).stdout) as { id: number; schedule: string | null }[];
  t.ok(left.every((s) => s.schedule === 'renders'), 'only the new schedule’s snapshot, if any, is left');
  for (const s of left) await fx.lucid(['snapshot', 'delete', String(s.id)]);
  t.equal((await fx.lucid(['snapshot', 'list'])).stdout.trim(), 'no snapshots');

  // Every snapshot is gone: GC leaves exactly the objects the live tree reaches.
  const blockSize = (JSON.parse(readFileSync(path.join(fx.store, 'lucid-filespace.json'), 'utf8')) as { blockSize: number }).blockSize;
  const liveBlocks = (await sh(`find ${fx.mp} -type f -printf '%s\n'`)).stdout.trim().split('\n').filter(Boolean)
    .reduce((n, size) => n + Math.ceil(Number(size) / blockSize), 0);
  const objects = async () => Number((await sh(`find ${fx.store}/blocks -type f | wc -l`)).stdout.trim());
  const before = await objects();
  t.ok(before > liveBlocks, `the overwritten and restored versions left garbage (${before} objects, ${liveBlocks} live blocks)`);
  const dry = await fx.lucid(['gc', '--dry-run', '--grace', '0s', '--json']);
  t.equal(dry.code, 0, dry.stderr);
  t.match(JSON.parse(dry.stdout), { dryRun: true, objectsScanned: before, objectsDeleted: before - liveBlocks, objectsRetained: liveBlocks });
  t.equal(await objects(), before, 'a dry run deletes nothing');
  const gc = await fx.lucid(['gc', '--grace', '0s']);
  t.equal(gc.code, 0, gc.stderr);
  t.match(gc.stdout, new RegExp(`objects removed: ${before - liveBlocks} of ${before}, [\\d.]+ [KMG]?i?B freed`), 'reports objects and bytes freed');
  t.equal(await objects(), liveBlocks, 'the store holds only the objects the live tree reaches');
  t.equal((await fx.unmount()).code, 0);
  await sh(`rm -rf ${fx.cacheDir}`);
  t.equal((await fx.mount()).code, 0);
  t.equal((await sh(`diff -r ${fx.mp}/proj ${fx.work}/ref && echo identical`)).stdout.trim(), 'identical', 'and the live tree reads back identical with an empty cache');
  const badGrace = await fx.lucid(['gc', '--grace', 'soon']);
  t.equal(badGrace.code, 2, 'a bad --grace is a usage error');
  t.equal(badGrace.stderr.trim().split('\n').length, 1, 'in one line');
});
