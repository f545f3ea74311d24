/**
 * The collector's promises beyond reachability (the property test covers that): the grace
 * period protects uploads whose commit is on its way, a dry run changes nothing and counts
 * what the real run removes, keys under blocks/ that are not block objects are left alone,
 * and the report adds up.
 */
import t from 'tap';
import { newObjectId, sealedSize } from '../../src/block/format.js';
import { collectGarbage, type GcProgress } from '../../src/gc/collector.js';
import { blockKey } from '../../src/store/keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import { dbPathIn, makeFilespace } from '../helpers/filespace.js';
import { tempDir } from '../helpers/servers.js';

const BLOCK = 65536;
const HOUR = 3_600_000;

t.test('grace period, dry run, foreign keys, report', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const store = new MemoryStore('gc-collector');
  const fx = await makeFilespace(store, dbPathIn(tmp.dir), { blockSize: BLOCK });
  t.teardown(() => fx.close());
  const { fs } = fx;

  const first = Buffer.alloc(2 * BLOCK + 100, 1);
  await fs.writeFile('movie.mov', first);
  const second = Buffer.alloc(BLOCK, 2);
  await fs.writeFile('movie.mov', second); // the first version's 3 objects are now garbage
  // An upload whose commit has not happened yet, and a key that is not a block object.
  const inFlight = newObjectId();
  const ino = (await fs.resolve('movie.mov')).ino;
  const pending = fs.codec.seal(inFlight, Buffer.alloc(BLOCK, 3));
  await store.put(blockKey(inFlight), pending);
  await store.put('blocks/README', Buffer.from('not ours'));

  const dry = await collectGarbage(fs.meta, store, { dryRun: true });
  t.match(dry, { dryRun: true, objectsScanned: 5, objectsDeleted: 0, objectsRetained: 4, objectsYoung: 1, foreign: 1 },
    'with the default hour of grace: refs replaced within it are retained, the uncommitted upload is young');

  const later = Date.now() + 2 * HOUR;
  const seen: GcProgress[] = [];
  const dryLater = await collectGarbage(fs.meta, store, { dryRun: true, nowMs: later });
  t.match(dryLater, { objectsDeleted: 4, objectsRetained: 1, objectsYoung: 0 }, 'two hours on, the replaced and the uncommitted objects are garbage');
  t.ok(dryLater.versionsRemoved > 0, 'and the replaced versions');
  t.equal(dryLater.bytesFreed, 2 * sealedSize(BLOCK) + sealedSize(100) + sealedSize(BLOCK), 'bytes to free: the first version\'s three sealed blocks and the pending one');
  t.equal((await fs.meta.pruneVersions(later, { dryRun: true })).rows, dryLater.versionsRemoved, 'the dry run pruned nothing');
  t.ok(store.raw(blockKey(inFlight)), 'the dry run deleted nothing');

  // Within the grace period the in-flight upload commits and reads back.
  await fs.meta.commitBlocks(ino, [{ index: 1, objectId: inFlight, length: BLOCK }], { minSize: 2 * BLOCK });
  const dryNow = await collectGarbage(fs.meta, store, { dryRun: true, nowMs: later });
  const real = await collectGarbage(fs.meta, store, { nowMs: later, onProgress: (p) => seen.push({ ...p }) });
  t.match(real, { dryRun: false, objectsDeleted: 3, objectsRetained: 2, objectsYoung: 0, foreign: 1 }, 'the committed upload is retained');
  t.equal(real.versionsRemoved, dryNow.versionsRemoved, 'the real run prunes what the dry run counted');
  t.equal(real.bytesFreed, dryNow.bytesFreed, 'and frees what it said');
  t.same((await fs.readFile('movie.mov')), Buffer.concat([second, Buffer.alloc(BLOCK, 3)]), 'the file reads back whole');
  t.same(store.raw('blocks/README'), Buffer.from('not ours'), 'a foreign key is untouched');
  t.same(seen.map((p) => p.phase), ['metadata', 'objects'], 'progress: the metadata pass, then each page of objects');
  t.equal(seen[1].objectsDeleted, 3);

  const again = await collectGarbage(fs.meta, store, { nowMs: later });
  t.match(again, { versionsRemoved: 0, objectsDeleted: 0, objectsRetained: 2 }, 'a second run finds nothing');
});
