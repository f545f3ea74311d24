/**
 * Users of a filespace: each has their own password (wrapping the master key), their own key
 * pair and their own bearer token for the service (derived from their private key, checked
 * against a verifier in the descriptor).
 *
 * - `addUser` wraps the master key and every rotated data key for the new user;
 * - `removeUser` drops the user (the service stops accepting their token when it rereads the
 *   descriptor, within seconds) and rotates the data key: a new random key, sealed to each
 *   remaining user's public key, seals every block written after it; what the removed user
 *   could read before stays readable to anyone who kept its keys;
 * - `changePassword` rewraps the user's secrets under a new password (and gives a user from
 *   before per-user tokens keys of their own).
 * Every change re-signs the descriptor (MAC) and is written over the old one.
 */
import { randomBytes } from 'node:crypto';
import { AlreadyExistsError, InvalidArgumentError, NoEntryError, UsageError } from '../errors.js';
import { seal } from './aead.js';
import {
  dataKeyAad, macOf, newUserKeys, sealTo, serializeDescriptor, wrapAad, type Descriptor, type DescriptorUser, type UnlockedFilespace,
} from './descriptor.js';
import { deriveKek, kdfParams, type KdfStrength } from './kdf.js';

const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

function signed(u: UnlockedFilespace, d: Descriptor): Descriptor {
  d.mac = '';
  d.mac = macOf(u.keys, d);
  return d;
}

/** The rotated data keys this admin holds, by id. */
function heldDataKeys(u: UnlockedFilespace): { id: number; key: Buffer }[] {
  return (u.descriptor.dataKeys ?? []).map((k) => ({ id: k.id, key: u.keys.blockDataKey(k.id) }));
}

async function userEntry(u: UnlockedFilespace, name: string, password: string, kdf: KdfStrength, privateDer?: Buffer): Promise<{ entry: DescriptorUser; publicKey: string }> {
  const params = await kdfParams(kdf, randomBytes(16));
  const kek = await deriveKek(password, params);
  const own = newUserKeys(u.descriptor.filespaceId, name, kek, privateDer);
  return { entry: { name, kdf: params, wrappedMasterKey: seal(kek, u.master, wrapAad(u.descriptor.filespaceId, name)).toString('base64'), ...own.entry }, publicKey: own.entry.publicKey };
}

export function checkUserName(name: string): void {
  if (!USER_NAME.test(name)) throw new UsageError('a user name is 1-64 letters, digits, ".", "_", "@" or "-"');
}

export async function addUser(u: UnlockedFilespace, name: string, password: string, kdf: KdfStrength = 'moderate'): Promise<Descriptor> {
  checkUserName(name);
  if (u.descriptor.users.some((x) => x.name === name)) throw new AlreadyExistsError(`the filespace already has a user "${name}"`);
  if (!password) throw new InvalidArgumentError('the new user\'s password is empty');
  const { entry, publicKey } = await userEntry(u, name, password, kdf);
  const d: Descriptor = structuredClone(u.descriptor);
  d.users.push(entry);
  for (const k of heldDataKeys(u)) {
    d.dataKeys!.find((x) => x.id === k.id)!.sealedTo[name] = sealTo(publicKey, k.key, dataKeyAad(d.filespaceId, k.id, name)).toString('base64');
  }
  return signed(u, d);
}

export function removeUser(u: UnlockedFilespace, name: string): Descriptor {
  if (!u.descriptor.users.some((x) => x.name === name)) throw new NoEntryError(`the filespace has no user "${name}"`);
  if (name === u.user) throw new UsageError('you cannot remove yourself: ask another user to');
  const d: Descriptor = structuredClone(u.descriptor);
  d.users = d.users.filter((x) => x.name !== name);
  const legacy = d.users.filter((x) => !x.publicKey).map((x) => x.name);
  if (legacy.length) throw new UsageError(`user(s) ${legacy.join(', ')} have no keys of their own yet (made before per-user tokens): each runs "lucid passwd" once, then remove ${name}`);
  // The next data key: random, sealed to each remaining user.
  const id = Math.max(d.dataKeyId, ...(d.dataKeys ?? []).map((k) => k.id)) + 1;
  const key = randomBytes(32);
  d.dataKeys = (d.dataKeys ?? []).map((k) => ({ id: k.id, sealedTo: Object.fromEntries(Object.entries(k.sealedTo).filter(([user]) => user !== name)) }));
  d.dataKeys.push({ id, sealedTo: Object.fromEntries(d.users.map((x) => [x.name, sealTo(x.publicKey!, key, dataKeyAad(d.filespaceId, id, x.name)).toString('base64')])) });
  d.dataKeyId = id;
  return signed(u, d);
}

export async function changePassword(u: UnlockedFilespace, password: string, kdf: KdfStrength = 'moderate'): Promise<Descriptor> {
  if (!password) throw new InvalidArgumentError('the new password is empty');
  const { entry } = await userEntry(u, u.user, password, kdf, u.privateDer);
  const d: Descriptor = structuredClone(u.descriptor);
  d.users = d.users.map((x) => (x.name === u.user ? entry : x));
  // A user from before per-user keys gets keys now: seal them the rotated data keys too.
  if (!u.privateDer) {
    for (const k of heldDataKeys(u)) d.dataKeys!.find((x) => x.id === k.id)!.sealedTo[u.user] = sealTo(entry.publicKey!, k.key, dataKeyAad(d.filespaceId, k.id, u.user)).toString('base64');
  }
  return signed(u, d);
}
