/**
 * A mount whose change feed comes back after the service pruned the history it missed is told
 * so (`reset` on the feed) and drops everything it held: a listing it served as held, the
 * names it gave the kernel, what it knew of files. Without that it would go on serving the
 * folder as it was before the feed dropped.
 */
import t from 'tap';
import { mountVfs, sharedFilespace } from '../helpers/shared.js';

const O_RDWR = 2;
const caller = { uid: 0, gid: 0 };

t.test('history lost: held listings, kernel names and attributes are dropped, and the folder is listed anew', async (t) => {
  const shared = await sharedFilespace(t);
  const invalidated: string[] = [];
  const reader = await mountVfs(t, shared, 'reader', {
    invalidateEntry: (parent, name) => invalidated.push(`${parent}/${name}`),
    invalidate: (ino) => invalidated.push(`${ino}`),
  });
  const writer = await mountVfs(t, shared, 'writer', { idleMs: 0 });
  reader.view.setFeed(true); // as the agent does once the change feed is connected

  const dir = await writer.mkdir(1, 'shots', 0o755, caller);
  for (const name of ['a.exr', 'b.exr']) {
    const { fh } = await writer.create(dir.ino, name, 0o644, O_RDWR, caller);
    await writer.release(fh);
  }
  await writer.journal.flush();
  const d = await reader.lookup(1, 'shots');
  t.same((await reader.list(d.ino)).map((e) => e.name).sort(), ['a.exr', 'b.exr']);
  const a = await reader.lookup(d.ino, 'a.exr');

  // The writer's changes the reader never hears of (the history of them was pruned).
  const { fh } = await writer.create(dir.ino, 'c.exr', 0o644, O_RDWR, caller);
  await writer.release(fh);
  await writer.setattr(a.ino, { mode: 0o600 });
  await writer.journal.flush();
  t.ok(reader.view.servesListing(d.ino), 'the reader holds the listing and trusts it while the feed is up');
  t.same((await reader.list(d.ino)).map((e) => e.name).sort(), ['a.exr', 'b.exr'], 'so without word of the change it serves the old one');

  reader.view.historyLost();
  t.notOk(reader.view.servesListing(d.ino), 'the held listing is dropped');
  t.ok(invalidated.includes(`${d.ino}/a.exr`) && invalidated.includes(`${a.ino}`), 'the kernel is told to forget the names and attributes it was given');
  t.same((await reader.list(d.ino)).map((e) => e.name).sort(), ['a.exr', 'b.exr', 'c.exr'], 'the folder is listed anew');
  t.equal((await reader.getattr(a.ino)).mode & 0o777, 0o600, 'and a file it knew is asked for again');
});
