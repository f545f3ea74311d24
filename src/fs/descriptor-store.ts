/**
 * Where a filespace's descriptor lives: the one small object at the top of its store
 * (src/crypto/descriptor.ts says what it holds). Loading, creating and replacing it are
 * here, beside the filespace they set up; crypto/ only seals and opens.
 *
 * Promises: a store without a descriptor is NotInitialized, with the command that makes
 * one; a new descriptor never replaces an existing one (AlreadyInitialized, the store left
 * untouched).
 */
import { AlreadyExistsError, AlreadyInitializedError, NotFoundError, NotInitializedError } from '../errors.js';
import { parseDescriptor, serializeDescriptor, type Descriptor } from '../crypto/descriptor.js';
import { DESCRIPTOR_KEY } from '../store/keys.js';
import type { ObjectStore } from '../store/types.js';

/** The error for a store that holds no filespace. */
export function missingDescriptor(storeUrl: string): NotInitializedError {
  return new NotInitializedError(`no Lucid filespace in ${storeUrl}: run "lucid init --store ${storeUrl}" first`);
}

/** Loads and checks the descriptor of the filespace in `store` (no password needed). */
export async function loadDescriptor(store: ObjectStore): Promise<Descriptor> {
  let bytes: Buffer;
  try {
    bytes = await store.get(DESCRIPTOR_KEY);
  } catch (e) {
    if (e instanceof NotFoundError) throw missingDescriptor(store.url);
    throw e;
  }
  return parseDescriptor(bytes);
}

/** Writes a new filespace's descriptor; refuses to replace an existing one. */
export async function saveNewDescriptor(store: ObjectStore, descriptor: Descriptor): Promise<void> {
  const exists = () => new AlreadyInitializedError(`${store.url} already holds a Lucid filespace; it was left untouched (use another --store to create a new one)`);
  if (await store.head(DESCRIPTOR_KEY)) throw exists();
  try {
    await store.put(DESCRIPTOR_KEY, serializeDescriptor(descriptor), { ifAbsent: true });
  } catch (e) {
    if (e instanceof AlreadyExistsError) throw exists();
    throw e;
  }
}

/** Writes a changed descriptor (users, passwords, keys) over the old one. */
export async function saveDescriptor(store: ObjectStore, d: Descriptor): Promise<void> {
  await store.put(DESCRIPTOR_KEY, serializeDescriptor(d));
}
