/**
 * The filespace descriptor: the one small object at the top of a store that says what the
 * filespace is (id, format version, block size) and holds each user's wrapped master key.
 *
 * Promises:
 * - the file is canonical JSON with a SHA-256 checksum, so any damaged byte (even white
 *   space) is an IntegrityError before a password is tried;
 * - a wrong password is a WrongPasswordError, told apart from damage;
 * - after unlocking, an HMAC under a key derived from the master key proves that nobody
 *   without the keys changed any field (block size, users, service verifier).
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { IntegrityError, WrongPasswordError } from '../errors.js';
import { equalBytes, hkdf, hmac, open, seal } from './aead.js';
import { deriveKek, kdfParams, type KdfParams, type KdfStrength } from './kdf.js';
import { FilespaceKeys, serviceVerifierOf } from './keys.js';

export const DESCRIPTOR_FORMAT = 'lucid-filespace';
export const FORMAT_VERSION = 1;

export interface DescriptorUser {
  name: string;
  kdf: KdfParams;
  /** base64 of nonce ‖ sealed master key ‖ tag */
  wrappedMasterKey: string;
  /** The user's own keys (users made before per-user tokens have none until `lucid passwd`). */
  publicKey?: string;
  /** base64 of the user's X25519 private key (PKCS#8), sealed with their password's key. */
  wrappedPrivateKey?: string;
  /** What the service checks this user's bearer token against. */
  serviceVerifier?: string;
}

/** A data key made by a rotation, sealed to each user allowed to use it. */
export interface SealedDataKey {
  id: number;
  /** user name → base64 of the key sealed to their public key */
  sealedTo: Record<string, string>;
}

export interface Descriptor {
  format: typeof DESCRIPTOR_FORMAT;
  formatVersion: number;
  filespaceId: string;
  createdAt: string;
  blockSize: number;
  blockCipher: 'aes-256-gcm';
  /** The data key id new block objects are sealed with. */
  dataKeyId: number;
  users: DescriptorUser[];
  /** Data keys after key 1 (which is derived from the master key). */
  dataKeys?: SealedDataKey[];
  /** The shared token's verifier, for users without keys of their own. */
  serviceVerifier: string;
  mac: string;
}

export interface UnlockedFilespace {
  descriptor: Descriptor;
  keys: FilespaceKeys;
  user: string;
  /** Held only to administer users (add, remove, passwd); never written anywhere. */
  master: Buffer;
  /** The user's own private key (PKCS#8), when they have one. */
  privateDer?: Buffer;
  /** The key that wraps this user's secrets (from their password). */
  kek?: Buffer;
}

export function wrapAad(filespaceId: string, user: string): Buffer {
  return Buffer.from(`lucid/v1/wrap\0${filespaceId}\0${user}`);
}

/** Field order is fixed here: canonical form is this object serialized with 2-space indent. */
function ordered(d: Descriptor): Descriptor {
  return {
    format: d.format, formatVersion: d.formatVersion, filespaceId: d.filespaceId, createdAt: d.createdAt,
    blockSize: d.blockSize, blockCipher: d.blockCipher, dataKeyId: d.dataKeyId,
    users: d.users.map((u) => ({
      name: u.name,
      kdf: { alg: u.kdf.alg, opsLimit: u.kdf.opsLimit, memLimit: u.kdf.memLimit, salt: u.kdf.salt },
      wrappedMasterKey: u.wrappedMasterKey,
      ...(u.publicKey !== undefined ? { publicKey: u.publicKey, wrappedPrivateKey: u.wrappedPrivateKey, serviceVerifier: u.serviceVerifier } : {}),
    })),
    ...(d.dataKeys !== undefined ? { dataKeys: d.dataKeys.map((k) => ({ id: k.id, sealedTo: Object.fromEntries(Object.entries(k.sealedTo).sort(([a], [b]) => (a < b ? -1 : 1))) })) } : {}),
    serviceVerifier: d.serviceVerifier, mac: d.mac,
  };
}

export function macOf(keys: FilespaceKeys, d: Descriptor): string {
  const body = JSON.stringify(ordered({ ...d, mac: '' }));
  return hmac(keys.descriptorMac, Buffer.from(body)).toString('hex');
}

function checksumOf(body: string): string {
  return createHash('sha256').update(body).digest('hex');
}

export function serializeDescriptor(d: Descriptor): Buffer {
  const body = JSON.stringify(ordered(d), null, 2);
  return Buffer.from(`${body.slice(0, -2)},\n  "checksum": "${checksumOf(body)}"\n}\n`);
}

/** Parses and checks the checksum; does not need (or check) the password. */
export function parseDescriptor(bytes: Buffer): Descriptor {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError('the filespace descriptor is damaged: it is not valid JSON');
  }
  if (typeof obj !== 'object' || obj === null || obj.format !== DESCRIPTOR_FORMAT) {
    throw new IntegrityError('the filespace descriptor is damaged or not a Lucid descriptor');
  }
  if (typeof obj.formatVersion === 'number' && obj.formatVersion > FORMAT_VERSION) {
    throw new IntegrityError(`the filespace uses format version ${obj.formatVersion}; this lucid reads up to ${FORMAT_VERSION}: upgrade lucid`);
  }
  const { checksum, ...rest } = obj;
  let canonical: Buffer;
  try {
    canonical = serializeDescriptor(rest as unknown as Descriptor);
  } catch {
    throw new IntegrityError('the filespace descriptor is damaged: fields are missing or malformed');
  }
  if (typeof checksum !== 'string' || !canonical.equals(bytes)) {
    throw new IntegrityError('the filespace descriptor is damaged: its checksum or layout does not match its contents');
  }
  return rest as unknown as Descriptor;
}

export interface CreateOptions {
  password: string;
  blockSize: number;
  user?: string;
  kdf?: KdfStrength;
}

export async function createDescriptor(options: CreateOptions): Promise<UnlockedFilespace> {
  const user = options.user ?? 'admin';
  const idBytes = randomBytes(16);
  const filespaceId = idBytes.toString('hex');
  const master = randomBytes(32);
  const kdf = await kdfParams(options.kdf ?? 'moderate', randomBytes(16));
  const kek = await deriveKek(options.password, kdf);
  const keys = new FilespaceKeys(master, idBytes);
  const own = newUserKeys(filespaceId, user, kek);
  const descriptor: Descriptor = {
    format: DESCRIPTOR_FORMAT, formatVersion: FORMAT_VERSION, filespaceId, createdAt: new Date().toISOString(),
    blockSize: options.blockSize, blockCipher: 'aes-256-gcm', dataKeyId: 1,
    users: [{ name: user, kdf, wrappedMasterKey: seal(kek, master, wrapAad(filespaceId, user)).toString('base64'), ...own.entry }],
    serviceVerifier: keys.serviceVerifier(), mac: '',
  };
  keys.serviceToken = own.token;
  descriptor.mac = macOf(keys, descriptor);
  return { descriptor, keys, user, master };
}

/** A user's own key pair, its private half sealed with `kek`, and the bearer token it gives. */
export function newUserKeys(filespaceId: string, user: string, kek: Buffer, privateDer?: Buffer): { entry: Required<Pick<DescriptorUser, 'publicKey' | 'wrappedPrivateKey' | 'serviceVerifier'>>; token: Buffer; privateDer: Buffer } {
  const pair = privateDer ? { privateKey: createPrivateKey({ key: privateDer, format: 'der', type: 'pkcs8' }) } : generateKeyPairSync('x25519');
  const der = privateDer ?? pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  const pub = createPublicKey(pair.privateKey).export({ format: 'der', type: 'spki' });
  const token = userToken(filespaceId, der);
  return {
    entry: { publicKey: pub.toString('base64'), wrappedPrivateKey: seal(kek, der, privateAad(filespaceId, user)).toString('base64'), serviceVerifier: serviceVerifierOf(token.toString('hex')) },
    token, privateDer: der,
  };
}

function privateAad(filespaceId: string, user: string): Buffer {
  return Buffer.from(`lucid/v1/private-key\0${filespaceId}\0${user}`);
}

/** A user's bearer token: derived from their private key, so nobody else can make it. */
function userToken(filespaceId: string, privateDer: Buffer): Buffer {
  return hkdf(privateDer, Buffer.from(filespaceId, 'hex'), 'lucid/v1/user-service-token');
}

/** The verifiers the service accepts: each user's own, and the shared one while some user has none. */
export function acceptedVerifiers(d: Descriptor): string[] {
  const own = d.users.filter((u) => u.serviceVerifier).map((u) => u.serviceVerifier!);
  return d.users.some((u) => !u.serviceVerifier) ? [...own, d.serviceVerifier] : own;
}

/** Seals `data` to an X25519 public key (ephemeral key agreement, HKDF, AES-256-GCM). */
export function sealTo(publicKeyB64: string, data: Buffer, aad: Buffer): Buffer {
  const recipient = createPublicKey({ key: Buffer.from(publicKeyB64, 'base64'), format: 'der', type: 'spki' });
  const eph = generateKeyPairSync('x25519');
  const ephPub = eph.publicKey.export({ format: 'der', type: 'spki' });
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient });
  const key = hkdf(shared, Buffer.concat([ephPub, Buffer.from(publicKeyB64, 'base64')]), 'lucid/v1/sealed-data-key');
  return Buffer.concat([Buffer.from([ephPub.length]), ephPub, seal(key, data, aad)]);
}

/** Opens what `sealTo` sealed to the public key of `privateDer`; IntegrityError if it cannot. */
export function openWith(privateDer: Buffer, sealed: Buffer, aad: Buffer, what: string): Buffer {
  const privateKey = createPrivateKey({ key: privateDer, format: 'der', type: 'pkcs8' });
  const ephPub = sealed.subarray(1, 1 + sealed[0]);
  const ownPub = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const shared = diffieHellman({ privateKey, publicKey: createPublicKey({ key: ephPub, format: 'der', type: 'spki' }) });
  const key = hkdf(shared, Buffer.concat([ephPub, ownPub]), 'lucid/v1/sealed-data-key');
  return open(key, sealed.subarray(1 + sealed[0]), aad, what);
}

export function dataKeyAad(filespaceId: string, id: number, user: string): Buffer {
  return Buffer.from(`lucid/v1/data-key\0${filespaceId}\0${id}\0${user}`);
}

/** Unwraps the master key with a password (trying the named user, or every user). */
export async function unlockDescriptor(descriptor: Descriptor, password: string, user?: string): Promise<UnlockedFilespace> {
  const candidates = user ? descriptor.users.filter((u) => u.name === user) : descriptor.users;
  if (candidates.length === 0) throw new WrongPasswordError(`the filespace has no user "${user}"`);
  for (const u of candidates) {
    const kek = await deriveKek(password, u.kdf);
    let master: Buffer;
    try {
      master = open(kek, Buffer.from(u.wrappedMasterKey, 'base64'), wrapAad(descriptor.filespaceId, u.name), 'the wrapped master key');
    } catch {
      continue;
    }
    const keys = new FilespaceKeys(master, Buffer.from(descriptor.filespaceId, 'hex'));
    if (!equalBytes(Buffer.from(macOf(keys, descriptor), 'hex'), Buffer.from(descriptor.mac, 'hex'))) {
      throw new IntegrityError('the filespace descriptor was changed by someone without its keys (MAC mismatch)');
    }
    let privateDer: Buffer | undefined;
    if (u.wrappedPrivateKey) {
      privateDer = open(kek, Buffer.from(u.wrappedPrivateKey, 'base64'), privateAad(descriptor.filespaceId, u.name), `user ${u.name}'s private key`);
      keys.serviceToken = userToken(descriptor.filespaceId, privateDer);
      for (const k of descriptor.dataKeys ?? []) {
        const sealed = k.sealedTo[u.name];
        if (sealed) keys.setDataKey(k.id, openWith(privateDer, Buffer.from(sealed, 'base64'), dataKeyAad(descriptor.filespaceId, k.id, u.name), `data key ${k.id}`));
      }
    }
    return { descriptor, keys, user: u.name, master, privateDer, kek };
  }
  throw new WrongPasswordError(user ? `wrong password for user "${user}"` : 'wrong password for this filespace');
}
