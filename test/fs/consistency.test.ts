/**
 * The consistency switch at the VFS, with two VFS instances (two "mounts") over one store and
 * one engine and no change feed between them, so only the rules themselves can make B see
 * A's writes:
 * - eventual mode: B trusts its cached attributes within the staleness bound (it reads the
 *   old bytes), and sees the new ones once the bound has passed;
 * - strong mode (someone holds a lock on the file): B checks the version on every read and
 *   sees A's committed write at once;
 * - unlocking commits the holder's writes first; a granted lock drops B's cached view.
 */
import t from 'tap';
import { LocalLocks } from '../../src/locks/local.js';
import { mountVfs, sharedFilespace } from '../helpers/shared.js';

const BS = 65536;
const O_RDWR = 2;
const lockAll = (type: 'read' | 'write' | 'unlock') => ({ kind: 'posix' as const, type, start: 0, end: -1, pid: 1 });

t.test('eventual within the staleness bound, strong while locked', async (t) => {
  const shared = await sharedFilespace(t, BS);
  // One lock table for both mounts, as the service would be.
  const locks = new LocalLocks();
  const mount = (name: string, staleMs: number) => mountVfs(t, shared, name, { attrTtlMs: staleMs, locks });
  const a = await mount('a', 1500);
  const b = await mount('b', 1500);

  const { attr, fh } = await a.create(1, 'doc', 0o644, O_RDWR, { uid: 0, gid: 0 });
  await a.write(fh, 0, Buffer.from('version one'));
  await a.fsync(fh);
  const bfh = await b.open(attr.ino, O_RDWR);
  t.equal((await b.read(bfh, 0, 100)).toString(), 'version one');

  await a.write(fh, 0, Buffer.from('version TWO'));
  await a.fsync(fh);
  t.equal((await b.read(bfh, 0, 100)).toString(), 'version one', 'eventual: within the bound B still reads what it cached');
  await new Promise((r) => setTimeout(r, 1600));
  t.equal((await b.read(bfh, 0, 100)).toString(), 'version TWO', '… and the new bytes once the bound has passed');

  // Strong mode: A takes a lock, writes and fsyncs; B reads the new bytes at once.
  await a.setlk(attr.ino, 'ownerA', lockAll('write'));
  t.ok(b.lockManager.isLocked(attr.ino), 'B sees the file locked');
  await a.write(fh, 0, Buffer.from('version 3!!'));
  await a.fsync(fh);
  t.equal((await b.read(bfh, 0, 100)).toString(), 'version 3!!', 'strong: B checks the version on every read');

  // Unlocking commits first: A writes without fsync, unlocks; B, taking the lock, reads it.
  await a.write(fh, 0, Buffer.from('version 4??'));
  await a.setlk(attr.ino, 'ownerA', lockAll('unlock'));
  await b.setlk(attr.ino, 'ownerB', lockAll('read'));
  t.equal((await b.read(bfh, 0, 100)).toString(), 'version 4??', 'the unlock committed A’s write and B’s lock dropped its cached view');
  await b.setlk(attr.ino, 'ownerB', lockAll('unlock'));
  t.notOk(b.lockManager.isLocked(attr.ino), 'no lock left: back to eventual');
});
