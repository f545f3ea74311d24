/** Block objects and sealed names: round trips, and tampering is never returned as data. */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { IntegrityError, InvalidArgumentError, NameTooLongError } from '../../src/errors.js';
import { createDescriptor } from '../../src/crypto/descriptor.js';
import { NameCipher } from '../../src/crypto/names.js';
import { BlockCodec, HEADER_BYTES, newObjectId, sealedSize } from '../../src/block/format.js';
import { NATIVE_AEAD } from '../../src/crypto/aead.js';

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

t.test("opened into a caller's buffer by the native binding: the same bytes, in that memory, and tampering still caught", async (t) => {
  t.ok(NATIVE_AEAD, 'build/Release/lucid_aead.node is built and loads');
  for (const size of [0, 1, 4096, (1 << 20) + 3]) {
    const plain = randomBytes(size);
    const id = newObjectId();
    const sealed = codec.seal(id, plain);
    // A view into the middle of a larger buffer, as the pool hands out.
    const memory = Buffer.alloc(size + 200, 0xee);
    const into = memory.subarray(100, 100 + size + 50);
    const opened = codec.open(id, sealed, into);
    t.ok(opened.equals(plain), `size ${size}: the plaintext`);
    t.ok(opened.equals(codec.open(id, sealed)), `size ${size}: what node:crypto opens`);
    t.equal(opened.buffer, memory.buffer, `size ${size}: in the caller's memory`);
    t.equal(opened.byteOffset, into.byteOffset, `size ${size}: at its start`);
    t.ok(memory.subarray(0, 100).every((b) => b === 0xee) && memory.subarray(100 + size).every((b) => b === 0xee), `size ${size}: nothing written outside the plaintext`);
  }
  const plain = randomBytes(64 * 1024);
  const id = newObjectId();
  const sealed = codec.seal(id, plain);
  const into = Buffer.alloc(plain.length);
  for (const p of [0, 26, HEADER_BYTES, HEADER_BYTES + 1000, sealed.length - 17, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[p] ^= 0x40;
    t.throws(() => codec.open(id, bad, into), IntegrityError, `flipped bit at ${p}`);
  }
  t.throws(() => codec.open(id, sealed.subarray(0, sealed.length - 1), into), IntegrityError, 'truncated');
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
