/**
 * A reader never waits a round trip for a block map it could have asked for sooner: a
 * lookup brings the first 256 block refs, opening a file asks for the first window of its
 * map, and a sequential reader asks for the next window half a window ahead. Each window is
 * asked for once, and the bytes read are the file's.
 */
import t from 'tap';
import type { MetaEngine } from '../../src/meta/types.js';
import { randomBytes } from 'node:crypto';
import { committedFile, mountVfs, sharedFilespace, watchingCalls, writeFile } from '../helpers/shared.js';

const BS = 65536;
const O_RDONLY = 0;
const WINDOW = 128;

/** `engine` with its getBlocks calls recorded: the first block asked for, and `at()` when asked. */
function recordingMaps(engine: MetaEngine, at: () => number): { meta: MetaEngine; calls: { first: number; at: number }[] } {
  const calls: { first: number; at: number }[] = [];
  const meta = watchingCalls(engine, ['getBlocks'], (_, args) => { calls.push({ first: args[1] as number, at: at() }); });
  return { meta, calls };
}

t.test('a sequential reader has each window of the map asked for half a window ahead', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const blocks = 400;
  const { ino, data } = await committedFile(t, shared, 'take.mov', blocks * BS);
  let served = 0;
  const maps = recordingMaps(shared.engine, () => served);
  // Memory for 8 blocks: the network prefetcher looks only a few blocks ahead (at 2 GB/s
  // from the disk cache, a few ms), so only the map's own read-ahead is half a window ahead.
  const reader = await mountVfs(t, shared, 'reader', { meta: maps.meta, mapWindowBlocks: WINDOW, memoryCacheBytes: 8 * BS });

  t.equal((await reader.lookup(1, 'take.mov')).ino, ino);
  const fh = await reader.open(ino, O_RDONLY);
  t.same(maps.calls, [], 'the lookup brought the first 256 refs: opening asks for no map');
  const parts: Buffer[] = [];
  for (let i = 0; i < blocks; i++) {
    parts.push(await reader.read(fh, i * BS, BS));
    served++;
  }
  await reader.release(fh);
  t.ok(Buffer.concat(parts).equals(data), 'the bytes read are the file\'s');
  t.same(maps.calls.map((c) => c.first), [256, 384], 'each window past the lookup\'s refs asked for once');
  for (const c of maps.calls) t.ok(c.at <= c.first - WINDOW / 2, `the window at block ${c.first} was asked for when ${c.at} blocks were read`);
});

t.test('opening a file whose map is not known asks for its first window before any read', async (t) => {
  const shared = await sharedFilespace(t, BS);
  const big = await committedFile(t, shared, 'plate.exr', (WINDOW + 8) * BS);
  const maps = recordingMaps(shared.engine, () => 0);
  // No lookup: the inode is opened by number, as after the kernel kept the name.
  const reader = await mountVfs(t, shared, 'reader', { meta: maps.meta, mapWindowBlocks: WINDOW });
  const fh = await reader.open(big.ino, O_RDONLY);
  t.same(maps.calls.map((c) => c.first), [0], 'the first window is asked for at open');
  t.ok((await reader.read(fh, (WINDOW + 1) * BS, BS)).equals(big.block(WINDOW + 1)), 'a block of the second window, identical');
  t.same(maps.calls.map((c) => c.first), [0, WINDOW], 'the second window once, by the read that needed it');
  await reader.release(fh);

  const again = await reader.open(big.ino, O_RDONLY);
  t.same(maps.calls.length, 2, 'a second open of the same version asks for nothing');
  await reader.release(again);
});

t.test('reading back what this mount wrote, once uploaded and chmod-ed, asks for no map', async (t) => {
  // `git clone` reads the objects it has just written: each read asked the service for the
  // map (574 round trips in a 500-file clone through 50 ms) until the mount kept what it committed.
  const shared = await sharedFilespace(t, BS);
  const maps = recordingMaps(shared.engine, () => 0);
  const vfs = await mountVfs(t, shared, 'writer', { meta: maps.meta });
  const data = randomBytes(3 * BS + 100);
  const ino = await writeFile(vfs, 1, 'pack-1.pack', data);
  await vfs.fsyncInode(ino);
  t.equal((await shared.engine.getBlocks(ino, 0, 8)).length, 4, 'its four blocks are committed');
  maps.calls.length = 0;
  await vfs.setattr(ino, { mode: 0o444 });
  await vfs.journal.flush();
  t.ok((await vfs.readInode(ino, 0, data.length)).equals(data), 'the bytes read back are the ones written');
  t.same(maps.calls, [], 'and no map was asked for');
});
