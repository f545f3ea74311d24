/**
 * The filespace key hierarchy below the master key. Every working key is derived from the
 * 256-bit master key with HKDF-SHA256 (salt: the filespace id, info: its purpose), so no
 * two purposes ever share a key:
 *   data/<keyId>  → per-object block keys (HMAC of the object id), so a nonce can never repeat
 *   name-enc      → file names (AEAD)          name-hash → directory lookup hashes (HMAC)
 *   meta          → symlink targets, xattrs     descriptor-mac → descriptor authentication
 *   service-token → bearer token for the metadata service (filespaces from before per-user
 *                   tokens; a user with keys of their own has a token derived from them)
 *   cache         → the local cache at rest
 * Data keys after a rotation (`lucid user remove`) are random, not derived: they are sealed
 * to each remaining user's public key in the descriptor, so a removed user who kept the
 * master key cannot compute them.
 */
import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { hkdf, hmac } from './aead.js';

/** The key that seals one block object, from its data key and object id. */
export function blockKeyOf(dataKey: Buffer, objectId: Buffer): Buffer {
  return hmac(dataKey, Buffer.from('block\0'), objectId);
}

export class FilespaceKeys {
  readonly nameEnc: Buffer;
  readonly nameHash: Buffer;
  readonly meta: Buffer;
  readonly descriptorMac: Buffer;
  serviceToken: Buffer;
  readonly cache: Buffer;
  private readonly dataKeys = new Map<number, Buffer>();

  constructor(private readonly master: Buffer, private readonly filespaceId: Buffer) {
    this.nameEnc = this.derive('name-enc');
    this.nameHash = this.derive('name-hash');
    this.meta = this.derive('meta');
    this.descriptorMac = this.derive('descriptor-mac');
    this.serviceToken = this.derive('service-token');
    this.cache = this.derive('cache');
  }

  /** A data key that is not derived from the master key (after a rotation). */
  setDataKey(keyId: number, key: Buffer): void {
    this.dataKeys.set(keyId, key);
  }

  /** The key that seals one block object: unique per (data key, object id). */
  blockKey(keyId: number, objectId: Buffer): Buffer {
    return blockKeyOf(this.blockDataKey(keyId), objectId);
  }

  /** Data key `keyId`: key 1 is derived from the master key; later ones come sealed in the descriptor. */
  blockDataKey(keyId: number): Buffer {
    let dataKey = this.dataKeys.get(keyId);
    if (!dataKey) {
      if (keyId !== 1) throw new IntegrityError(`data key ${keyId} is not available to this user (it was rotated after they were removed, or the descriptor is damaged)`);
      dataKey = this.derive(`data/${keyId}`);
      this.dataKeys.set(keyId, dataKey);
    }
    return dataKey;
  }

  /** What the service stores to check bearer tokens without being able to mint them. */
  serviceVerifier(): string {
    return serviceVerifierOf(this.serviceToken.toString('hex'));
  }

  private derive(purpose: string): Buffer {
    return hkdf(this.master, this.filespaceId, `lucid/v1/${purpose}`);
  }
}

export function serviceVerifierOf(token: string): string {
  return createHash('sha256').update(`lucid-service-token:${token}`).digest('hex');
}
