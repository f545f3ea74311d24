/**
 * Lucid's binding to the OpenSSL that Node is built with (native/lucid_aead.c, built beside the
 * FUSE binding): AES-256-GCM into a caller's buffer and AES-256-XTS over runs of sectors, with
 * no allocation per call. `undefined` when it is not built: callers then use node:crypto.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeCrypto {
  /** The plaintext's length, or -1 when the tag does not verify. */
  openInto(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, into: Uint8Array): number;
  /** 0 with the ciphertext in `out` and the tag in `tag`, or -1 if OpenSSL failed. */
  sealInto(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, tag: Uint8Array): number;
  /** 0 with whole 4 KiB sectors of `src` en- or decrypted into `dst` (which may be `src`), or -1 if OpenSSL failed. */
  xtsInto(encrypt: boolean, key: Uint8Array, fileId: Uint8Array, firstSector: number, src: Uint8Array, dst: Uint8Array): number;
}

export const nativeCrypto: NativeCrypto | undefined = (() => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  try {
    return createRequire(import.meta.url)(path.join(root, 'build', 'Release', 'lucid_aead.node')) as NativeCrypto;
  } catch {
    return undefined;
  }
})();
