/**
 * Warm reads from the disk cache put the reader first: the open of the block a read waits
 * for is urgent (it goes ahead of the opens a sequential read-ahead queued), and a read that
 * comes to wait for a block whose open was queued for reading ahead hurries that open. The
 * bytes are the same either way.
 */
import t from 'tap';
import { EventLoopFileIo, type CleanFileIo } from '../../src/cache/clean-files.js';
import { codecOf, committedFile, mountVfs, sharedFilespace } from '../helpers/shared.js';

const BS = 65536;
const O_RDONLY = 0;

t.test("a read's own block is opened urgently, and one queued for reading ahead is hurried", async (t) => {
  const shared = await sharedFilespace(t, BS);
  const { ino, data } = await committedFile(t, shared, 'plate.exr', 16 * BS);

  // Cache files on the event loop; opens not urgent are held while `hold` is set.
  const opens: { id: string; urgent: boolean }[] = [];
  const hurried: string[] = [];
  let hold = false;
  const held: (() => void)[] = [];
  const inner = new EventLoopFileIo({ open: (id, sealed, into) => codecOf(shared).open(id, sealed, into) });
  const files: CleanFileIo = {
    open: async (file, size, id, into, urgent) => {
      opens.push({ id, urgent: urgent === true });
      if (hold && !urgent) await new Promise<void>((r) => held.push(r));
      return inner.open(file, size, id, into);
    },
    hurry: (id) => { hurried.push(id); },
    write: (file, bytes) => inner.write(file, bytes),
    close: () => inner.close(),
  };
  // Memory for two blocks: a second pass reads from the disk cache.
  const reader = await mountVfs(t, shared, 'reader', { memoryCacheBytes: 2 * BS, files });
  const fh = await reader.open(ino, O_RDONLY);
  for (let i = 0; i < 16; i++) await reader.read(fh, i * BS, BS);
  while (reader.cache.keepingBytes > 0 || reader.data.prefetcher.stats().inflight > 0) await new Promise((r) => setTimeout(r, 2));
  await reader.release(fh);

  opens.length = 0;
  hurried.length = 0;
  hold = true;
  const again = await reader.open(ino, O_RDONLY);
  t.ok((await reader.read(again, 0, BS)).equals(data.subarray(0, BS)), 'block 0 read from disk, identical, while read-ahead opens are held');
  t.same(opens[0], { id: opens[0].id, urgent: true }, "the read's own open was urgent");
  const ahead = opens.filter((o) => !o.urgent);
  t.ok(ahead.length >= 2, `the read-ahead queued opens of the next blocks, not urgent (${ahead.length})`);
  const second = reader.read(again, BS, BS);
  await new Promise((r) => setImmediate(r));
  t.same(hurried, [ahead[0].id], 'the read of block 1 hurried its queued open, and only that one');
  hold = false;
  for (const go of held.splice(0)) go();
  t.ok((await second).equals(data.subarray(BS, 2 * BS)), 'block 1 identical');
  const rest: Buffer[] = [];
  for (let i = 2; i < 16; i++) rest.push(await reader.read(again, i * BS, BS));
  t.ok(Buffer.concat(rest).equals(data.subarray(2 * BS)), 'the rest identical');
  t.ok(opens.slice(1).every((o) => o.id !== opens[0].id), 'no block opened twice');
  await reader.release(again);
});
