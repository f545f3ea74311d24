/**
 * AES-256-XTS over 4 KiB sectors, for data at rest in the local cache that is rewritten in
 * place (dirty blocks): like disk encryption, each sector is encrypted under a tweak made of
 * the file's random id and the sector number, so a small write re-encrypts only the sectors
 * it touches. Confidentiality only: what is authenticated is the sealed object that leaves
 * the machine, and a torn cache file is caught there or by its recorded length.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hkdf } from './aead.js';
import { nativeCrypto } from './native.js';

export const SECTOR = 4096;

/** Tests set this to check the native path against node:crypto's. */
let forceNodeCrypto = false;
export function useNodeCryptoForSectors(on: boolean): void {
  forceNodeCrypto = on;
}

export class SectorCipher {
  private readonly key: Buffer;

  constructor(cacheKey: Buffer) {
    this.key = hkdf(cacheKey, Buffer.from('lucid-cache'), 'lucid/v1/cache/dirty-xts', 64);
  }

  private tweak(fileId: Buffer, sector: number): Buffer {
    const t = Buffer.alloc(16);
    fileId.copy(t, 0, 0, 8);
    t.writeBigUInt64LE(BigInt(sector), 8);
    return t;
  }

  /** Encrypts whole sectors in place: `data.length` is a multiple of SECTOR, starting at `firstSector`. */
  encrypt(fileId: Buffer, firstSector: number, data: Buffer, out?: Buffer): Buffer {
    return this.apply(true, fileId, firstSector, data, out);
  }

  decrypt(fileId: Buffer, firstSector: number, data: Buffer, out?: Buffer): Buffer {
    return this.apply(false, fileId, firstSector, data, out);
  }

  /**
   * Into `out` (default: a new buffer; `data` itself is allowed). Through the native binding
   * when it is built: one OpenSSL context for the whole run instead of a Cipher per sector.
   */
  private apply(encrypt: boolean, fileId: Buffer, firstSector: number, data: Buffer, out: Buffer = Buffer.allocUnsafe(data.length)): Buffer {
    if (data.length % SECTOR !== 0) throw new RangeError(`sector data must be whole ${SECTOR}-byte sectors, not ${data.length} bytes`);
    if (nativeCrypto && !forceNodeCrypto) {
      if (nativeCrypto.xtsInto(encrypt, this.key, fileId, firstSector, data, out) !== 0) throw new Error('AES-XTS failed in OpenSSL');
      return out;
    }
    for (let off = 0, s = firstSector; off < data.length; off += SECTOR, s++) {
      const c = encrypt
        ? createCipheriv('aes-256-xts', this.key, this.tweak(fileId, s))
        : createDecipheriv('aes-256-xts', this.key, this.tweak(fileId, s));
      const chunk = c.update(data.subarray(off, off + SECTOR));
      chunk.copy(out, off);
      c.final();
    }
    return out;
  }
}

export const sectorsFor = (bytes: number) => Math.ceil(bytes / SECTOR);
