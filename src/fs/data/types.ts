/**
 * What the data side of the mount needs of the namespace side, as an interface: a file's
 * committed attributes and how this mount shows them. The namespace's view implements it;
 * nothing under src/fs/data imports src/fs/namespace.
 */
import type { PendingSize } from '../../cache/types.js';
import type { Attr } from '../../meta/types.js';

export interface InodeAttrs {
  /** The inode's committed attributes (from what is cached unless `fresh`). */
  committedAttr(ino: number, fresh?: boolean): Promise<Attr>;
  /** The attributes with this mount's writes not yet committed applied. */
  overlay(a: Attr): Attr;
}

/** `a` with a pending size applied: the size written, and times no older than the write. */
export function withPending(a: Attr, p: PendingSize | undefined): Attr {
  return p ? { ...a, size: p.size, mtimeMs: Math.max(a.mtimeMs, p.mtimeMs), ctimeMs: Math.max(a.ctimeMs, p.mtimeMs) } : a;
}
