/** The descriptor: create, unlock, wrong password, and every kind of damage detected. */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { IntegrityError, WrongPasswordError } from '../../src/errors.js';
import {
  acceptedVerifiers,
  createDescriptor, parseDescriptor, serializeDescriptor, unlockDescriptor,
} from '../../src/crypto/descriptor.js';
import { hmac } from '../../src/crypto/aead.js';

t.test('create and unlock with the right password gives the same keys', async (t) => {
  const made = await createDescriptor({ password: 'correct horse', blockSize: 1 << 20, kdf: 'interactive' });
  const bytes = serializeDescriptor(made.descriptor);
  const parsed = parseDescriptor(bytes);
  t.same(parsed, made.descriptor, 'round trip through the canonical form');
  const opened = await unlockDescriptor(parsed, 'correct horse');
  t.equal(opened.user, 'admin');
  t.ok(opened.keys.nameEnc.equals(made.keys.nameEnc), 'same name key');
  t.ok(opened.keys.blockKey(1, Buffer.alloc(16, 3)).equals(made.keys.blockKey(1, Buffer.alloc(16, 3))), 'same block keys');
  t.equal(opened.keys.serviceVerifier(), parsed.users[0].serviceVerifier, 'the user\'s own token');
  t.same(acceptedVerifiers(parsed), [parsed.users[0].serviceVerifier], 'the service accepts only per-user tokens when every user has one');
});

t.test('the derived keys are distinct per purpose and per object', async (t) => {
  const { keys } = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
  keys.setDataKey(2, randomBytes(32));
  const all = [keys.nameEnc, keys.nameHash, keys.meta, keys.descriptorMac, keys.serviceToken, keys.cache,
    keys.blockKey(1, Buffer.alloc(16, 1)), keys.blockKey(1, Buffer.alloc(16, 2)), keys.blockKey(2, Buffer.alloc(16, 1))];
  t.equal(new Set(all.map((k) => k.toString('hex'))).size, all.length);
  t.throws(() => keys.blockKey(3, Buffer.alloc(16, 1)), IntegrityError, 'a rotated data key this user was not given cannot be made up');
});

t.test('a wrong password is WrongPasswordError', async (t) => {
  const made = await createDescriptor({ password: 'right', blockSize: 1 << 20, kdf: 'interactive' });
  await t.rejects(unlockDescriptor(made.descriptor, 'wrong'), WrongPasswordError);
  await t.rejects(unlockDescriptor(made.descriptor, 'right', 'nobody'), WrongPasswordError);
});

t.test('a flipped bit anywhere in the descriptor is an IntegrityError before any password', async (t) => {
  const made = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
  const bytes = serializeDescriptor(made.descriptor);
  let detected = 0;
  for (let i = 0; i < bytes.length; i++) {
    for (const bit of [0, 3, 6]) {
      const bad = Buffer.from(bytes);
      bad[i] ^= 1 << bit;
      try {
        parseDescriptor(bad);
      } catch (e) {
        if (e instanceof IntegrityError) { detected++; continue; }
        throw e;
      }
      t.fail(`flip of bit ${bit} at byte ${i} went unnoticed`);
    }
  }
  t.equal(detected, bytes.length * 3, 'every flip detected');
});

t.test('a field changed by someone without the keys (checksum recomputed) fails the MAC', async (t) => {
  const made = await createDescriptor({ password: 'pw', blockSize: 1 << 20, kdf: 'interactive' });
  const forged = parseDescriptor(serializeDescriptor({ ...made.descriptor, blockSize: 1 << 16 }));
  await t.rejects(unlockDescriptor(forged, 'pw'), IntegrityError);
  const forgedMac = { ...made.descriptor, serviceVerifier: hmac(Buffer.alloc(32), Buffer.from('x')).toString('hex') };
  await t.rejects(unlockDescriptor(forgedMac, 'pw'), IntegrityError);
});
