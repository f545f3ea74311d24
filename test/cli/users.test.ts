/**
 * Users, as an admin manages them with a running `lucid serve`: `lucid user add` gives a
 * user their own password, keys and token; `lucid user remove` makes the service refuse
 * their token within seconds and rotates the data key (new blocks are sealed with a key the
 * removed user cannot compute, even holding the master key); `lucid passwd` changes a
 * password without changing the token; you cannot remove yourself.
 */
import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { blockKey } from '../../src/store/keys.js';
import { unlockDescriptor, type UnlockedFilespace } from '../../src/crypto/descriptor.js';
import { loadDescriptor } from '../../src/fs/descriptor-store.js';
import { IntegrityError, UnauthorizedError, WrongPasswordError } from '../../src/errors.js';
import { Filespace } from '../../src/fs/filespace.js';
import { MetaClient } from '../../src/meta/client.js';
import { ROOT_INO } from '../../src/meta/types.js';
import { FileStore } from '../../src/store/file.js';
import { lucid, serveLucid } from '../helpers/cli.js';
import { tempDir } from '../helpers/servers.js';

t.test('add, remove (revoke + rotate), passwd', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const dir = path.join(tmp.dir, 'store');
  await fs.mkdir(dir);
  const url = `file://${dir}`;
  const home = { LUCID_HOME: path.join(tmp.dir, 'home') };
  const as = (password: string, extra: Record<string, string> = {}) => ({ ...home, LUCID_PASSWORD: password, ...extra });
  t.equal((await lucid(['init', '--store', url, '--kdf', 'interactive', '--user', 'alice'], { env: as('alice pw') })).code, 0);
  const { url: service, child: serve } = await serveLucid(['--store', url, '--listen', '127.0.0.1:0'], home);
  t.teardown(() => { serve.kill('SIGTERM'); });

  const store = new FileStore(dir);
  t.teardown(() => store.close());
  const unlock = async (password: string) => unlockDescriptor(await loadDescriptor(store), password);
  const connect = (u: UnlockedFilespace) => {
    const meta = new MetaClient(service, u.keys.serviceToken.toString('hex'));
    t.teardown(() => meta.close());
    return new Filespace(u, store, meta);
  };

  const alice = await unlock('alice pw');
  const before = Buffer.alloc(100_000, 1);
  await connect(alice).writeFile('before.bin', before);

  const add = await lucid(['user', 'add', 'bob', '--store', url, '--kdf', 'interactive'], { env: as('alice pw', { LUCID_NEW_PASSWORD: 'bob pw' }) });
  t.equal(add.code, 0, add.stderr);
  t.match((await lucid(['user', 'list', '--store', url], { env: home })).stdout, /^alice\nbob\n$/);
  const bob = await unlock('bob pw');
  t.equal(bob.user, 'bob');
  t.notSame(bob.keys.serviceToken, alice.keys.serviceToken, 'bob has a token of his own');
  await new Promise((r) => setTimeout(r, 5500)); // the service rereads the descriptor every 5 s
  const bobFs = connect(bob);
  t.same(await bobFs.readFile('before.bin'), before, 'bob reads with his own token');

  const remove = await lucid(['user', 'remove', 'bob', '--store', url], { env: as('alice pw') });
  t.equal(remove.code, 0, remove.stderr);
  t.match(remove.stdout, /new writes use data key 2/);
  let refused = false;
  for (let i = 0; i < 80 && !refused; i++) {
    refused = await bobFs.meta.getAttr(ROOT_INO).then(() => false, (e) => e instanceof UnauthorizedError);
    if (!refused) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(refused, 'the service refuses bob\'s token once it has reread the descriptor');
  await t.rejects(unlock('bob pw'), WrongPasswordError, 'bob\'s password opens nothing any more');

  const alice2 = await unlock('alice pw');
  t.equal(alice2.descriptor.dataKeyId, 2);
  const afterFs = connect(alice2);
  const after = Buffer.alloc(100_000, 2);
  await afterFs.writeFile('after.bin', after);
  t.same(await afterFs.readFile('before.bin'), before, 'alice still reads what was sealed with key 1');
  t.same(await afterFs.readFile('after.bin'), after, 'and what she writes with key 2');
  // Bob kept his old unlocked keys (the master key too) and the store: the new block is closed to him.
  const ref = (await afterFs.meta.getBlocks((await afterFs.resolve('after.bin')).ino, 0, 1))[0];
  const sealed = await store.get(blockKey(ref.objectId));
  t.equal(sealed.readUInt32BE(6), 2, 'the new block is sealed with data key 2');
  t.throws(() => bobFs.codec.open(ref.objectId, sealed), IntegrityError, 'a removed user cannot open blocks written after the rotation');

  for (const [args, extra] of [[['user', 'add', 'alice'], { LUCID_NEW_PASSWORD: 'x' }], [['user', 'remove', 'nobody'], {}], [['user', 'add', 'bad/name'], {}]] as const) {
    const r = await lucid([...args, '--store', url], { env: as('alice pw', extra) });
    t.equal(r.code, 2, `${args.join(' ')}: exit 2 (${r.stderr.trim()})`);
  }
  const self = await lucid(['user', 'remove', 'alice', '--store', url], { env: as('alice pw') });
  t.equal(self.code, 2, 'you cannot remove yourself');
  t.equal(self.stderr.trim().split('\n').length, 1);

  const passwd = await lucid(['passwd', '--store', url, '--kdf', 'interactive'], { env: as('alice pw', { LUCID_NEW_PASSWORD: 'alice new pw' }) });
  t.equal(passwd.code, 0, passwd.stderr);
  await t.rejects(unlock('alice pw'), WrongPasswordError, 'the old password no longer opens it');
  const alice3 = await unlock('alice new pw');
  t.same(alice3.keys.serviceToken, alice2.keys.serviceToken, 'the token stays the same across a password change');
  t.same(await connect(alice3).readFile('after.bin'), after, 'and everything reads');
});
