/**
 * Per-directory prediction: opening files in name order brings the next files in (within
 * the byte budget; those starting beyond the memory share to disk only), an open out of
 * order stops it, and a file opened again restarts nothing. Nothing the next open of a
 * streak needs waits on a round trip: block maps are loaded ahead, and an old listing
 * serves while it is re-read.
 */
import t from 'tap';
import { Prefetcher, type PrefetchLoader } from '../../src/prefetch/prefetcher.js';
import { DirectoryPredictor, type DirectoryLister, type DirectoryPredictorOptions, type ListedFile } from '../../src/prefetch/directory.js';

const BS = 1024 * 1024;

function setup(files: ListedFile[], budgetBytes = 64 * BS, memoryBytes?: number,
  more: { lister?: Partial<DirectoryLister>; options?: Partial<DirectoryPredictorOptions> } = {}) {
  const loads: string[] = [];
  const toDisk: string[] = [];
  const loader: PrefetchLoader = {
    isCached: () => false,
    load: async (ino, idx, disk) => { (disk ? toDisk : loads).push(`${ino}:${idx}`); },
  };
  const prefetcher = new Prefetcher(loader, { blockSize: BS, maxInflight: 1000 });
  let listings = 0;
  const predictor = new DirectoryPredictor({ list: async () => { listings++; return files.slice().reverse(); }, ...more.lister }, prefetcher,
    { blockSize: BS, budgetBytes, memoryBytes, ...more.options });
  return { loads, toDisk, predictor, listings: () => listings };
}

const frames = (n: number, size = 2 * BS): ListedFile[] =>
  Array.from({ length: n }, (_, i) => ({ name: `f${String(i).padStart(4, '0')}.exr`, ino: 100 + i, size, regular: true }));

t.test('two files in name order predict the next ones, up to the budget', async (t) => {
  const s = setup(frames(20), 6 * BS);
  await s.predictor.onOpen(1, 'f0000.exr', 100);
  await new Promise((r) => setImmediate(r));
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1', '102:0', '102:1'], 'the first open of a numbered name queues that file and the next two');
  await s.predictor.onOpen(1, 'f0001.exr', 101);
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1', '102:0', '102:1', '103:0', '103:1', '104:0', '104:1'], 'the next three 2 MiB files fill a 6 MiB budget (102 was guessed already)');
  await s.predictor.onOpen(1, 'f0002.exr', 102);
  t.ok(s.loads.includes('105:0') && !s.loads.includes('106:0'), 'each open slides the window by one file');
  t.equal(s.predictor.predictedFiles, 6);
});

t.test('a first open guesses only for a numbered name followed by one of its shape', async (t) => {
  const named = (names: string[]): ListedFile[] => names.map((name, i) => ({ name, ino: 10 + i, size: BS, regular: true }));
  const plain = setup(named(['alpha.mov', 'beta.mov', 'gamma.mov']));
  await plain.predictor.onOpen(1, 'alpha.mov', 10);
  t.same(plain.loads, [], 'no digits: nothing');
  const mixed = setup(named(['take1.mov', 'take1.wav', 'take2.mov']));
  await mixed.predictor.onOpen(1, 'take1.mov', 10);
  t.same(mixed.loads, [], 'the next name has another shape: nothing');
  const seq = setup(frames(10, BS));
  await seq.predictor.onOpen(1, 'f0005.exr', 105);
  await seq.predictor.onOpen(1, 'f0002.exr', 102);
  const after = seq.loads.length;
  t.equal(after, 3, 'the first open in the folder guessed it and two more files (1 MiB each)');
  await seq.predictor.onOpen(1, 'f0008.exr', 108);
  t.equal(seq.loads.length, after, 'later jumps between frames guess nothing');
});

t.test('an open out of name order stops the prediction', async (t) => {
  const s = setup(frames(20), 4 * BS);
  await s.predictor.onOpen(1, 'f0000.exr', 100);
  await s.predictor.onOpen(1, 'f0001.exr', 101);
  const before = s.loads.length;
  await s.predictor.onOpen(1, 'f0009.exr', 109);
  t.equal(s.loads.length, before, 'a skip predicts nothing');
  await s.predictor.onOpen(1, 'f0003.exr', 103);
  t.equal(s.loads.length, before, 'going backwards predicts nothing');
  await s.predictor.onOpen(2, 'a', 1);
  t.equal(s.loads.length, before, 'another directory has its own state');
});

t.test('folders and empty files are skipped', async (t) => {
  const files: ListedFile[] = [
    { name: 'a', ino: 1, size: BS, regular: true },
    { name: 'b', ino: 2, size: BS, regular: true },
    { name: 'c', ino: 3, size: 0, regular: true },
    { name: 'd', ino: 4, size: 0, regular: false },
    { name: 'e', ino: 5, size: BS, regular: true },
  ];
  const s = setup(files);
  await s.predictor.onOpen(9, 'a', 1);
  await s.predictor.onOpen(9, 'b', 2);
  t.same(s.loads, ['5:0']);
  t.equal(s.listings(), 1, 'one listing served both opens');
});

t.test('predicted files that start beyond the memory share come to disk only', async (t) => {
  const s = setup(frames(20), 64 * BS, 4 * BS);
  await s.predictor.onOpen(1, 'f0000.exr', 100);
  await new Promise((r) => setImmediate(r));
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1'], 'the opened frame and the next start within 4 MiB: into memory');
  t.same(s.toDisk, ['102:0', '102:1'], 'the third starts 4 MiB ahead: to disk');
  await s.predictor.onOpen(1, 'f0001.exr', 101);
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1', '103:0', '103:1'], 'the next open: the file starting 2 MiB after it into memory (102 was guessed already)');
  const later = Array.from({ length: 14 }, (_, i) => [`${104 + i}:0`, `${104 + i}:1`]).flat();
  t.same(s.toDisk.sort(), ['102:0', '102:1', ...later].sort(), 'the files from 4 MiB ahead on to disk, 16 files in all');
});

const tick = () => new Promise((r) => setImmediate(r));

t.test('the block maps past the queued files are loaded ahead: the next open queues its file without a round trip', async (t) => {
  // A block map store with one metadata round trip per map: a map asked for once is there
  // from then on; until `answer()`, asks wait.
  const mapped = new Set<number>();
  let waiting: { ino: number; done: () => void }[] = [];
  const asked: number[] = [];
  const prepare = (ino: number) => {
    asked.push(ino);
    if (mapped.has(ino)) return Promise.resolve();
    return new Promise<void>((done) => { waiting.push({ ino, done }); });
  };
  const answer = () => { for (const w of waiting) { mapped.add(w.ino); w.done(); } waiting = []; };
  const s = setup(frames(40), 6 * BS, undefined, { lister: { prepare }, options: { mapsAheadFiles: 4 } });
  await s.predictor.onOpen(1, 'f0000.exr', 100);
  t.same(waiting.map((w) => w.ino), [100, 101, 102, 103, 104, 105, 106], 'the first open: maps of the three files queued and of the four after them');
  answer();
  await tick();
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1', '102:0', '102:1']);
  asked.length = 0;
  await s.predictor.onOpen(1, 'f0001.exr', 101);
  await tick();
  t.same(s.loads.sort(), ['100:0', '100:1', '101:0', '101:1', '102:0', '102:1', '103:0', '103:1', '104:0', '104:1'],
    'the files the open adds are fetched with no metadata answer in between');
  t.same(waiting.map((w) => w.ino), [107, 108], 'and the window of maps moves on by the same two files');
  t.same(asked.filter((ino) => ino === 105 || ino === 106), [], 'maps asked for already are not asked again');
  answer();
  await s.predictor.onOpen(1, 'f0009.exr', 109);
  await s.predictor.onOpen(1, 'f0010.exr', 110);
  t.same(waiting.map((w) => w.ino).slice(-4), [114, 115, 116, 117], 'a new streak after a break maps ahead from where it is');
});

t.test('an old listing serves the next open while it is re-read, one re-read at a time', async (t) => {
  const files = frames(20);
  let lists = 0;
  let release: (() => void) | undefined;
  const list = async () => {
    lists++;
    if (lists > 1) await new Promise<void>((r) => { release = r; });
    return files;
  };
  const s = setup(files, 4 * BS, undefined, { lister: { list }, options: { listingTtlMs: 0 } });
  await s.predictor.onOpen(1, 'f0000.exr', 100);
  await s.predictor.onOpen(1, 'f0001.exr', 101);
  await s.predictor.onOpen(1, 'f0002.exr', 102);
  await tick();
  t.equal(lists, 2, 'the old listing was re-read once, and that re-read has not answered');
  t.ok(s.loads.includes('103:0') && s.loads.includes('104:1'), 'the opens went on with the old listing meanwhile');
  release!();
  await tick();
  await s.predictor.onOpen(1, 'f0003.exr', 103);
  t.equal(lists, 3, 'once answered, the next old listing is re-read again');
  t.ok(s.loads.includes('105:0'), 'and the streak goes on');
});

t.test('small files opened in any order: the rest of the folder\'s small files come in, within the walk\'s bounds', async (t) => {
  // Names with no digits (no frame guess): a walk is not about name order.
  const letters = (i: number) => String.fromCharCode(97 + ((i * 7) % 26), 97 + Math.floor(i / 26));
  const files: ListedFile[] = Array.from({ length: 40 }, (_, i) => ({ name: `note-${letters(i)}.txt`, ino: 500 + i, size: 4096, regular: true }));
  files.push({ name: 'big.mov', ino: 900, size: 3 * BS, regular: true }, { name: 'empty', ino: 901, size: 0, regular: true }, { name: 'sub', ino: 902, size: 0, regular: false });
  const s = setup(files, 64 * BS, undefined, { options: { walkAfterOpens: 2, walkFiles: 16 } });
  await s.predictor.onOpen(1, files[17].name, files[17].ino);
  await new Promise((r) => setImmediate(r));
  t.same(s.loads, [], 'one small file opened: nothing yet');
  await s.predictor.onOpen(1, files[3].name, files[3].ino); // not the next in any order
  await new Promise((r) => setImmediate(r));
  t.equal(s.loads.length, 16, 'the second brings 16 others in (the walk\'s bound)');
  t.ok(s.loads.every((l) => l.endsWith(':0')), 'each its one block');
  t.notOk(s.loads.some((l) => l.startsWith('900:') || l.startsWith('901:') || l.startsWith('902:')), 'not the large file, the empty one or the folder');
  t.notOk(s.loads.includes(`${files[17].ino}:0`) || s.loads.includes(`${files[3].ino}:0`), 'nor the files already opened');
  const next = s.loads.map((l) => Number(l.split(':')[0]))[0];
  const f = files.find((x) => x.ino === next)!;
  await s.predictor.onOpen(1, f.name, f.ino);
  await new Promise((r) => setImmediate(r));
  t.equal(s.predictor.walkedFiles, 32, 'the 16 brought in make room: 16 more are on their way (in any order of opens)');
  const tight = setup(files, 64 * BS, 3 * BS, { options: { walkAfterOpens: 2, walkFiles: 16 } });
  await tight.predictor.onOpen(1, files[17].name, files[17].ino);
  await tight.predictor.onOpen(1, files[3].name, files[3].ino);
  await new Promise((r) => setImmediate(r));
  t.same([tight.loads.length, tight.toDisk.length], [3, 13], 'memory counts a block\'s buffer per small file: three blocks of memory take three files, the rest go to disk');
  t.equal(new Set(s.loads).size, s.loads.length, 'no file twice (a name-order guess skips what the walk queued)');
});
