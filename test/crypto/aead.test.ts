/**
 * AES-256-GCM sealing: what `seal` makes (through the native binding when it is built) is
 * standard AES-256-GCM — node:crypto opens it and `open` opens node:crypto's — at every size,
 * with a fresh nonce each time; a changed byte anywhere is refused.
 */
import t from 'tap';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { NATIVE_AEAD, open, seal } from '../../src/crypto/aead.js';

const key = randomBytes(32);
const aad = Buffer.from('lucid/v1/name');

t.test('seal and open agree with node:crypto both ways, at every size', async (t) => {
  t.comment(`native binding: ${NATIVE_AEAD}`);
  for (const n of [0, 1, 15, 16, 17, 255, 4096, 65_537, 1_048_576]) {
    const plain = randomBytes(n);
    const sealed = seal(key, plain, aad);
    t.equal(sealed.length, 12 + n + 16, `${n} bytes: nonce, ciphertext and tag`);
    const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    t.ok(Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]).equals(plain), `${n} bytes: node:crypto opens what seal made`);
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const theirs = Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
    t.ok(open(key, theirs, aad, 'a test message').equals(plain), `${n} bytes: open opens what node:crypto made`);
  }
});

t.test('every seal takes a fresh nonce, and a changed byte is refused', async (t) => {
  const nonces = new Set<string>();
  for (let i = 0; i < 2000; i++) nonces.add(seal(key, Buffer.from('f1.bin'), aad).subarray(0, 12).toString('hex'));
  t.equal(nonces.size, 2000, 'no nonce twice in 2 000 seals (across the random pool\'s refills)');
  const sealed = seal(key, Buffer.from('take-042.mov'), aad);
  for (const at of [0, 12, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at] ^= 1;
    t.throws(() => open(key, bad, aad, 'a file name'), { code: 'Integrity' }, `a flipped bit at byte ${at} is refused`);
  }
  t.throws(() => open(key, sealed, Buffer.from('lucid/v1/other'), 'a file name'), { code: 'Integrity' }, 'so is other associated data');
});
