/**
 * Deleting a file whose upload is in flight (`rm -rf` right after `tar x`): the unlink does
 * not wait for the PUT, and nothing of the file is committed after it.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { NameCipher } from '../../src/crypto/names.js';
import type { BatchOp } from '../../src/meta/types.js';
import type { ObjectStore } from '../../src/store/types.js';
import { mountVfs, sharedFilespace, watchingCalls, writeFile } from '../helpers/shared.js';

const BS = 65536;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('an unlink does not wait for the upload in flight, and nothing of the file is committed', async (t) => {
  const shared = await sharedFilespace(t, BS);
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  let puts = 0;
  // PUTs reach the store only once the gate opens.
  const store = new Proxy(shared.store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop !== 'put') return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => { puts++; await gate; return (v as (...a: unknown[]) => unknown).apply(target, args); };
    },
  }) as ObjectStore;
  const committed: number[] = [];
  const meta = watchingCalls(shared.engine, ['applyBatch'], (_, args) => {
    for (const op of args[0] as BatchOp[]) if (op.op === 'commitBlocks') committed.push(op.ino);
  });
  const vfs = await mountVfs(t, shared, 'm', { store, meta, idleMs: 0 });
  t.teardown(open);
  const ino = await writeFile(vfs, 1, 'render.exr', randomBytes(BS + 10));
  for (let i = 0; i < 200 && puts < 2; i++) await sleep(10);
  t.equal(puts, 2, 'both blocks\' PUTs are in flight');
  const unlinked = await Promise.race([vfs.unlink(1, 'render.exr').then(() => true), sleep(2000).then(() => false)]);
  t.ok(unlinked, 'the unlink returned while the PUTs wait');
  open();
  await vfs.journal.flush();
  for (let i = 0; i < 200 && vfs.uploader.pendingUploads() > 0; i++) await sleep(10);
  t.equal(vfs.uploader.pendingUploads(), 0, 'the uploads ended');
  await sleep(50);
  t.notOk(committed.includes(ino), 'and no block of the deleted file was committed');
  await t.rejects(shared.engine.lookup(1, new NameCipher(shared.u.keys).hash(1, 'render.exr')), { code: 'NoEntry' }, 'the service has no such name');
});
