/**
 * Dirty-cache sector encryption: the native run (one OpenSSL context for many sectors) makes
 * exactly the bytes node:crypto makes sector by sector, both ways, at any first sector and
 * run length, in place too; each sector depends on its number and its file's id.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { SECTOR, SectorCipher, useNodeCryptoForSectors } from '../../src/crypto/sectors.js';
import { nativeCrypto } from '../../src/crypto/native.js';

const cipher = new SectorCipher(randomBytes(32));
const fileId = randomBytes(16);

function viaNode<T>(f: () => T): T {
  useNodeCryptoForSectors(true);
  try {
    return f();
  } finally {
    useNodeCryptoForSectors(false);
  }
}

t.test('the native binding is built and loads', async (t) => {
  t.ok(nativeCrypto?.xtsInto, 'build/Release/lucid_aead.node has xtsInto');
});

t.test('native and node:crypto agree both ways, at any first sector and length', async (t) => {
  for (const [first, sectors] of [[0, 1], [0, 32], [7, 3], [1023, 2], [2 ** 33 + 5, 4], [0, 256]]) {
    const plain = randomBytes(sectors * SECTOR);
    const ours = cipher.encrypt(fileId, first, plain);
    const theirs = viaNode(() => cipher.encrypt(fileId, first, plain));
    t.ok(ours.equals(theirs), `sectors ${first}..${first + sectors - 1}: same ciphertext`);
    t.notOk(ours.equals(plain), 'the ciphertext is not the plaintext');
    t.ok(viaNode(() => cipher.decrypt(fileId, first, ours)).equals(plain), 'node:crypto decrypts the native ciphertext');
    t.ok(cipher.decrypt(fileId, first, theirs).equals(plain), 'native decrypts node:crypto ciphertext');
  }
});

t.test('in place, and each sector under its own tweak', async (t) => {
  const plain = Buffer.alloc(4 * SECTOR, 7);
  const buf = Buffer.from(plain);
  t.equal(cipher.encrypt(fileId, 10, buf, buf), buf, 'returns the buffer it wrote into');
  const sectors = [0, 1, 2, 3].map((i) => buf.subarray(i * SECTOR, (i + 1) * SECTOR).toString('hex'));
  t.equal(new Set(sectors).size, 4, 'equal plaintext sectors encrypt differently by sector number');
  t.notOk(cipher.encrypt(randomBytes(16), 10, plain).equals(buf), 'another file id gives other bytes');
  cipher.decrypt(fileId, 10, buf, buf);
  t.ok(buf.equals(plain), 'decrypted in place');
  t.throws(() => cipher.encrypt(fileId, 0, Buffer.alloc(100)), RangeError, 'a part sector is refused');
});
