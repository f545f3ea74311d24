/**
 * The block object format. Every flush of a block is sealed into a new immutable object
 * under a fresh random 128-bit id, never an overwrite:
 *
 *   offset  size  field
 *   0       4     magic "LUCB"
 *   4       1     format version (1)
 *   5       1     flags (0)
 *   6       4     data key id, u32 big-endian
 *   10      16    object id
 *   26      12    nonce
 *   38      n     AES-256-GCM ciphertext of the block's plaintext
 *   38+n    16    GCM tag
 *
 * The whole header is the associated data, and the key is derived from (data key, object id),
 * so a flipped bit anywhere, a truncated object, or an object fetched under another id
 * (swapped or replayed) fails authentication: an IntegrityError, never wrong bytes.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { NONCE_BYTES, TAG_BYTES, openParts } from '../crypto/aead.js';
import type { FilespaceKeys } from '../crypto/keys.js';
import { nativeCrypto } from '../crypto/native.js';

export const BLOCK_MAGIC = Buffer.from('LUCB');
export const BLOCK_FORMAT_VERSION = 1;
export const HEADER_BYTES = 38;
export const OBJECT_ID_BYTES = 16;

export function newObjectId(): string {
  return randomBytes(OBJECT_ID_BYTES).toString('hex');
}

export class BlockCodec {
  constructor(private readonly keys: FilespaceKeys, private readonly dataKeyId: number) {}

  newObjectId(): string {
    return newObjectId();
  }

  /**
   * Seals one block's plaintext into the bytes of object `objectId`: into `into` when given
   * (exactly `sealedSize(plaintext.length)` bytes, a reused buffer), else a new buffer.
   */
  seal(objectId: string, plaintext: Uint8Array, into?: Buffer): Buffer {
    const id = Buffer.from(objectId, 'hex');
    const size = HEADER_BYTES + plaintext.length + TAG_BYTES;
    if (into && into.length !== size) throw new RangeError(`sealing into ${into.length} bytes: a sealed block of ${plaintext.length} is ${size}`);
    const out = into ?? Buffer.allocUnsafe(size);
    BLOCK_MAGIC.copy(out, 0);
    out[4] = BLOCK_FORMAT_VERSION;
    out[5] = 0;
    out.writeUInt32BE(this.dataKeyId, 6);
    id.copy(out, 10);
    const nonce = randomBytes(NONCE_BYTES);
    nonce.copy(out, 26);
    const key = this.keys.blockKey(this.dataKeyId, id);
    const tagAt = HEADER_BYTES + plaintext.length;
    // Straight into `out` through the native binding: no ciphertext buffer to allocate and copy.
    if (nativeCrypto) {
      if (nativeCrypto.sealInto(key, nonce, out.subarray(0, HEADER_BYTES), plaintext, out.subarray(HEADER_BYTES, tagAt), out.subarray(tagAt)) !== 0) {
        throw new Error(`sealing block object ${objectId} failed in OpenSSL`);
      }
      return out;
    }
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(out.subarray(0, HEADER_BYTES));
    const body = cipher.update(plaintext);
    body.copy(out, HEADER_BYTES);
    const tail = cipher.final();
    tail.copy(out, HEADER_BYTES + body.length);
    cipher.getAuthTag().copy(out, tagAt);
    return out;
  }

  /**
   * Opens the bytes fetched for `objectId`, or throws IntegrityError naming the object. With
   * `into` (at least `plainSize(sealed.length)` bytes) the plaintext is a view of it.
   */
  open(objectId: string, sealed: Buffer, into?: Buffer): Buffer {
    return openBlock(objectId, sealed, (keyId, id) => this.keys.blockKey(keyId, id), into);
  }
}

/**
 * Opens the sealed bytes of object `objectId`, with `keyFor` giving the block key of a data
 * key id and object id: the plaintext (written into `into` when given, as `openParts`), or
 * IntegrityError naming the object.
 */
export function openBlock(objectId: string, sealed: Buffer, keyFor: (keyId: number, id: Buffer) => Buffer, into?: Buffer): Buffer {
  const what = `block object ${objectId}`;
  if (sealed.length < HEADER_BYTES + TAG_BYTES) throw new IntegrityError(`${what} is truncated (${sealed.length} bytes)`);
  if (!sealed.subarray(0, 4).equals(BLOCK_MAGIC)) throw new IntegrityError(`${what} is not a Lucid block (bad magic)`);
  if (sealed[4] !== BLOCK_FORMAT_VERSION) throw new IntegrityError(`${what} has unknown format version ${sealed[4]}`);
  const id = Buffer.from(objectId, 'hex');
  if (!sealed.subarray(10, 26).equals(id)) throw new IntegrityError(`${what} carries another object's id: swapped or replayed`);
  return openParts(keyFor(sealed.readUInt32BE(6), id), sealed.subarray(26, HEADER_BYTES),
    sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES), sealed.subarray(sealed.length - TAG_BYTES),
    sealed.subarray(0, HEADER_BYTES), what, into);
}

/** Stored size of an object holding `plainBytes` of plaintext. */
export function sealedSize(plainBytes: number): number {
  return HEADER_BYTES + plainBytes + TAG_BYTES;
}

/** Plaintext size of an object of `sealedBytes` (0 for one too short to be a block). */
export function plainSize(sealedBytes: number): number {
  return Math.max(0, sealedBytes - HEADER_BYTES - TAG_BYTES);
}
