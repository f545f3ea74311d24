/**
 * File names, symlink targets and xattrs as the metadata service stores them.
 *
 * Promises: the service sees only (a) a keyed hash of (parent inode, name) for lookups and
 * (b) the name sealed with AES-256-GCM. Decrypting checks that the name hashes back to the
 * entry's own lookup hash, so a sealed name moved onto another entry is an IntegrityError.
 * Opaque blobs (symlink targets, xattr values) are bound to their inode and purpose.
 */
import { IntegrityError, NameTooLongError, InvalidArgumentError } from '../errors.js';
import { equalBytes, hmac, open, seal } from './aead.js';
import type { FilespaceKeys } from './keys.js';

export const MAX_NAME_BYTES = 255;
const FORMAT = Buffer.from('lucid/v1');
/** What a sealed name is bound to. */
const NAME_AAD = Buffer.concat([FORMAT, Buffer.from('/name')]);
const ENTRY_TAG = Buffer.from('entry\0');

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export interface SealedName {
  hash: Buffer;
  enc: Buffer;
}

export class NameCipher {
  constructor(private readonly keys: FilespaceKeys) {}

  /** Rejects what no POSIX file system accepts as a single name. */
  static check(name: string): Buffer {
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length === 0 || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw new InvalidArgumentError(`invalid file name ${JSON.stringify(name)}`);
    }
    if (bytes.length > MAX_NAME_BYTES) throw new NameTooLongError(`file name is ${bytes.length} bytes; the limit is ${MAX_NAME_BYTES}`);
    return bytes;
  }

  hash(parent: number, name: string): Buffer {
    return hmac(this.keys.nameHash, ENTRY_TAG, u64(parent), NameCipher.check(name));
  }

  seal(parent: number, name: string): SealedName {
    const bytes = NameCipher.check(name);
    return { hash: this.hash(parent, name), enc: seal(this.keys.nameEnc, bytes, NAME_AAD) };
  }

  /** Opens a sealed name and checks it belongs to the entry with lookup hash `hash` under `parent`. */
  open(parent: number, hash: Uint8Array, enc: Uint8Array): string {
    const bytes = open(this.keys.nameEnc, enc, NAME_AAD, 'an encrypted file name');
    const name = bytes.toString('utf8');
    if (!equalBytes(hmac(this.keys.nameHash, ENTRY_TAG, u64(parent), bytes), hash)) {
      throw new IntegrityError(`a directory entry in inode ${parent} carries a name that belongs to another entry`);
    }
    return name;
  }

  xattrHash(ino: number, name: string): Buffer {
    return hmac(this.keys.nameHash, Buffer.from('xattr\0'), u64(ino), Buffer.from(name, 'utf8'));
  }

  /** Seals a blob (symlink target, xattr name or value) bound to an inode and a purpose. */
  sealBlob(ino: number, purpose: string, value: Uint8Array): Buffer {
    return seal(this.keys.meta, value, Buffer.concat([FORMAT, Buffer.from(`/${purpose}/`), u64(ino)]));
  }

  openBlob(ino: number, purpose: string, sealed: Uint8Array): Buffer {
    return open(this.keys.meta, sealed, Buffer.concat([FORMAT, Buffer.from(`/${purpose}/`), u64(ino)]), `the ${purpose} of inode ${ino}`);
  }
}
