/**
 * Putting one block object: sealed under a fresh random id (or as already sealed), written
 * to the store as a new immutable object. The uploader and the library API (Filespace.write)
 * both write blocks through this, so every block object in a store is made one way.
 *
 * Promise: when it resolves, the object is durably in the store; only then may a block map
 * name it.
 */
import { newObjectId, type BlockCodec } from '../block/format.js';
import { blockKey } from '../store/keys.js';
import type { ObjectStore } from '../store/types.js';

/**
 * Puts a block: `plain` is sealed under a new id (into `into` when given, exactly its sealed
 * size), or `sealed` (sealed before, as `objectId`) goes as it is. Returns the object's id and bytes.
 */
export async function putBlock(store: ObjectStore, codec: BlockCodec, block: { plain: Buffer; into?: Buffer } | { objectId: string; sealed: Buffer }): Promise<{ objectId: string; sealed: Buffer }> {
  const objectId = 'objectId' in block ? block.objectId : newObjectId();
  const sealed = 'sealed' in block ? block.sealed : codec.seal(objectId, block.plain, block.into);
  await store.put(blockKey(objectId), sealed);
  return { objectId, sealed };
}
