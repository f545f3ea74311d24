/**
 * Object key layout inside a store and key validation shared by every backend.
 * Block objects fan out by the first byte of their id so no directory or listing page
 * grows without bound on backends that care (the file backend).
 */
import { InvalidArgumentError } from '../errors.js';

export const DESCRIPTOR_KEY = 'lucid-filespace.json';
export const BLOCK_PREFIX = 'blocks/';

export function blockKey(objectId: string): string {
  return `${BLOCK_PREFIX}${objectId.slice(0, 2)}/${objectId}`;
}

/** Throws unless `key` is a safe relative key: no empty, "." or ".." segments, no NUL, no leading dot segment. */
export function assertValidKey(key: string): void {
  if (key.length === 0 || key.length > 1024 || key.includes('\0')) {
    throw new InvalidArgumentError(`invalid object key ${JSON.stringify(key)}`);
  }
  for (const seg of key.split('/')) {
    if (seg === '' || seg.startsWith('.')) {
      throw new InvalidArgumentError(`invalid object key ${JSON.stringify(key)}: empty or dot segment`);
    }
  }
}

/** Keys in ascending byte order (what S3 and Azure return), not locale order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
