/**
 * Native authenticated encryption and key derivation primitives (node:crypto, OpenSSL):
 * AES-256-GCM with 96-bit random nonces, HKDF-SHA256, HMAC-SHA256. Bulk data opened into a
 * caller's buffer goes through Lucid's own binding to the same OpenSSL (native/lucid_aead.c).
 *
 * Promises: `open` either returns the exact plaintext that was sealed with the same key and
 * associated data, or throws IntegrityError; it never returns unauthenticated bytes.
 * Callers never reuse a (key, nonce) pair: bulk data uses a fresh key per object.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { nativeCrypto } from './native.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** Random bytes drawn from the system's CSPRNG a page at a time: a nonce costs a copy, not a call. */
const noncePool = { bytes: Buffer.alloc(0), used: 0 };
function freshNonce(into: Buffer): void {
  if (noncePool.used + NONCE_BYTES > noncePool.bytes.length) {
    noncePool.bytes = randomBytes(4096);
    noncePool.used = 0;
  }
  noncePool.bytes.copy(into, 0, noncePool.used, noncePool.used + NONCE_BYTES);
  // Never handed out twice: the pool's bytes are overwritten as they are taken.
  noncePool.bytes.fill(0, noncePool.used, noncePool.used + NONCE_BYTES);
  noncePool.used += NONCE_BYTES;
}

/** Seals to nonce ‖ ciphertext ‖ tag. */
export function seal(key: Buffer, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  if (nativeCrypto?.sealInto) {
    const out = Buffer.allocUnsafe(NONCE_BYTES + plaintext.length + TAG_BYTES);
    freshNonce(out);
    const end = NONCE_BYTES + plaintext.length;
    if (nativeCrypto.sealInto(key, out.subarray(0, NONCE_BYTES), aad, plaintext, out.subarray(NONCE_BYTES, end), out.subarray(end)) !== 0) {
      throw new Error('AES-256-GCM sealing failed in OpenSSL');
    }
    return out;
  }
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, body, tail, cipher.getAuthTag()]);
}

/** Opens nonce ‖ ciphertext ‖ tag, or throws IntegrityError naming `what`. */
export function open(key: Buffer, sealed: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new IntegrityError(`${what} is truncated (${sealed.length} bytes)`);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const length = buf.length - NONCE_BYTES - TAG_BYTES;
  // Into a buffer of its own, so a small item (a name, an xattr) goes through the native
  // binding too: one call, not a decipher object (~1 µs against ~6).
  return openParts(key, buf.subarray(0, NONCE_BYTES), buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES), buf.subarray(buf.length - TAG_BYTES), aad, what,
    nativeCrypto ? Buffer.allocUnsafe(length) : undefined);
}

/**
 * Without the native binding, into a caller's buffer the ciphertext is decrypted in pieces
 * of this size: each piece's output is a small allocation that dies young, where a whole
 * block's would be a fresh MiB.
 */
const PIECE_BYTES = 64 * 1024;

/** Whether opening into a caller's buffer goes through the native binding. */
export const NATIVE_AEAD = nativeCrypto !== undefined;

/**
 * Opens one sealed message from its parts. With `into` (at least the ciphertext's length)
 * the plaintext is written there and a view of it returned; if opening fails, `into` holds
 * unauthenticated bytes the caller must never read.
 */
export function openParts(key: Buffer, nonce: Buffer, ciphertext: Buffer, tag: Buffer, aad: Uint8Array, what: string, into?: Buffer): Buffer {
  if (nativeCrypto && into && into.length >= ciphertext.length) {
    const length = nativeCrypto.openInto(key, nonce, aad, ciphertext, tag, into);
    if (length < 0) throw notAuthentic(what);
    return into.subarray(0, length);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    if (into && into.length >= ciphertext.length) {
      let at = 0;
      for (let o = 0; o < ciphertext.length; o += PIECE_BYTES) at += decipher.update(ciphertext.subarray(o, o + PIECE_BYTES)).copy(into, at);
      at += decipher.final().copy(into, at);
      return into.subarray(0, at);
    }
    const body = decipher.update(ciphertext);
    const tail = decipher.final();
    return tail.length ? Buffer.concat([body, tail]) : body;
  } catch {
    throw notAuthentic(what);
  }
}

function notAuthentic(what: string): IntegrityError {
  return new IntegrityError(`${what} failed authentication: it was altered, truncated or belongs elsewhere`);
}

export function hkdf(key: Buffer, salt: Buffer, info: string, bytes = KEY_BYTES): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, Buffer.from(info, 'utf8'), bytes));
}

export function hmac(key: Buffer, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
