/** Block objects and sealed names: round trips, and tampering is never returned as data. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { IntegrityError, InvalidArgumentError, NameTooLongError } from '../../src/errors.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { NameCipher } from '../../src/crypto/names.js';
import { BlockCodec, HEADER_BYTES, newObjectId, sealedSize } from '../../src/chunker/format.js';

const { keys } = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
const codec = new BlockCodec(keys, 1);

t.test('seal/open round trip, fresh nonce every time', async (t) => {
  for (const size of [0, 1, 4096, 1 << 20]) {
    const plain = randomBytes(size);
    const id = newObjectId();
    const sealed = codec.seal(id, plain);
    t.equal(sealed.length, sealedSize(size));
    t.ok(codec.open(id, sealed).equals(plain), `size ${size}`);
    t.notOk(codec.seal(id, plain).equals(sealed), 'sealing again gives other bytes');
  }
});

t.test('a flipped bit anywhere in a block object is an IntegrityError', async (t) => {
  const plain = randomBytes(64 * 1024);
  const id = newObjectId();
  const sealed = codec.seal(id, plain);
  const positions = new Set<number>();
  for (let i = 0; i < HEADER_BYTES + 8; i++) positions.add(i);
  for (let i = sealed.length - 24; i < sealed.length; i++) positions.add(i);
  while (positions.size < 1500) positions.add(Math.floor(Math.random() * sealed.length));
  let detected = 0;
  for (const p of positions) {
    const bad = Buffer.from(sealed);
    bad[p] ^= 1 << (p % 8);
    t.throws(() => codec.open(id, bad), IntegrityError);
    detected++;
  }
  t.equal(detected, positions.size);
});

t.test('truncated, swapped and replayed objects are IntegrityErrors', async (t) => {
  const a = newObjectId();
  const b = newObjectId();
  const sa = codec.seal(a, Buffer.from('contents of a'));
  const sb = codec.seal(b, Buffer.from('contents of b'));
  t.throws(() => codec.open(a, sa.subarray(0, sa.length - 1)), IntegrityError, 'truncated');
  t.throws(() => codec.open(a, sa.subarray(0, 20)), IntegrityError, 'truncated into the header');
  t.throws(() => codec.open(a, sb), IntegrityError, 'object b fetched as a');
  const replayed = Buffer.from(sb);
  Buffer.from(a, 'hex').copy(replayed, 10); // b's body relabelled with a's id
  t.throws(() => codec.open(a, replayed), IntegrityError, 'relabelled object');
  const other = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
  t.throws(() => new BlockCodec(other.keys, 1).open(a, sa), IntegrityError, "another filespace's keys");
});

t.test('names: sealed, hashed per parent, bound to their entry', async (t) => {
  const names = new NameCipher(keys);
  const s = names.seal(7, 'Final Cut v3.mov');
  t.equal(names.open(7, s.hash, s.enc), 'Final Cut v3.mov');
  t.notOk(s.enc.includes(Buffer.from('Final')), 'no plaintext in the sealed name');
  t.notOk(names.hash(7, 'a').equals(names.hash(8, 'a')), 'hash depends on the parent');
  const other = names.seal(7, 'other.txt');
  t.throws(() => names.open(7, s.hash, other.enc), IntegrityError, "another entry's sealed name");
  const bad = Buffer.from(s.enc);
  bad[bad.length - 1] ^= 1;
  t.throws(() => names.open(7, s.hash, bad), IntegrityError, 'flipped bit');
  t.throws(() => names.seal(1, 'a/b'), InvalidArgumentError);
  t.throws(() => names.seal(1, '..'), InvalidArgumentError);
  t.throws(() => names.seal(1, 'nul\0byte'), InvalidArgumentError);
  t.throws(() => names.seal(1, 'x'.repeat(256)), NameTooLongError);
  t.equal(names.open(1, names.hash(1, 'é'.repeat(127)), names.seal(1, 'é'.repeat(127)).enc), 'é'.repeat(127), '254-byte UTF-8 name');
});

t.test('blobs are bound to inode and purpose', async (t) => {
  const names = new NameCipher(keys);
  const sealed = names.sealBlob(5, 'xattr-value', Buffer.from('secret'));
  t.equal(names.openBlob(5, 'xattr-value', sealed).toString(), 'secret');
  t.throws(() => names.openBlob(6, 'xattr-value', sealed), IntegrityError, 'other inode');
  t.throws(() => names.openBlob(5, 'symlink', sealed), IntegrityError, 'other purpose');
});
