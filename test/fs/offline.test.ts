/**
 * What a mount keeps for an outage outlives late word of changes it has already seen. The
 * change feed can bring word of a commit after the mount has listed the folder that commit
 * changed (a mount just started catches up; a busy machine delivers late): the listing
 * already has that change, so the folder must still list when the service is then down. Word
 * of a change made after the listing drops it: offline, an old listing is not served.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceUnavailableError } from '../../src/errors.js';
import { ROOT_INO } from '../../src/meta/types.js';
import type { Commit } from '../../src/meta/types.js';
import { mountVfs, sharedFilespace, Switch } from '../helpers/shared.js';

const ME = { uid: 0, gid: 0 };
const O_RDWR = 2;
const TTL_MS = 200;

t.test('late word of a change already listed keeps the listing for an outage; word of a newer one drops it', async (t) => {
  const shared = await sharedFilespace(t);
  const sw = new Switch(shared.engine);
  const writer = await mountVfs(t, shared, 'writer');
  const reader = await mountVfs(t, shared, 'reader', { meta: sw.meta, attrTtlMs: TTL_MS });
  const words: Commit[] = [];
  t.teardown(shared.engine.onCommit((e) => words.push(e)));
  const names = async (ino: number) => (await reader.list(ino)).map((e) => e.name).filter((n) => !n.startsWith('.')).sort();

  const proj = (await writer.mkdir(ROOT_INO, 'proj', 0o755, ME)).ino;
  let notes = 0;
  for (const name of ['cut.mov', 'notes.txt']) {
    const { attr, fh } = await writer.create(proj, name, 0o644, O_RDWR, ME);
    await writer.release(fh);
    notes = attr.ino;
  }
  await writer.journal.flush(); // the writer's changes are at the service (write-back sends them behind the calls)
  const late = words.splice(0);
  t.ok(late.some((e) => e.inos.includes(proj)), 'the creates changed the folder');
  t.same(await names(proj), ['cut.mov', 'notes.txt'], 'listed while the service answers');
  await sleep(TTL_MS + 100); // the folder's cached attributes are past their time
  for (const e of late) reader.view.onRemoteCommit(e);

  sw.down = true;
  t.same(await names(proj), ['cut.mov', 'notes.txt'], 'offline, the folder still lists');
  t.equal((await reader.lookup(proj, 'notes.txt')).ino, notes, 'and its names resolve');
  sw.down = false;

  await writer.release((await writer.create(proj, 'take2.mov', 0o644, O_RDWR, ME)).fh);
  await writer.journal.flush();
  for (const e of words.splice(0)) reader.view.onRemoteCommit(e);
  sw.down = true;
  await t.rejects(names(proj), ServiceUnavailableError, 'a change after the listing: offline, the old listing is not served');
});
