/**
 * The uploader's seams: what it tells the mount after each commit, and what can hold an
 * inode's uploads back. The uploader depends on these interfaces only; the mount's
 * namespace journal is what implements `UploadHolds`.
 */
import type { Attr, BlockRef } from '../meta/types.js';

/** Told about each block-map commit (`refs` may be empty when only the size caught up). */
export type CommitListener = (ino: number, refs: BlockRef[], attr: Attr) => void;

export interface UploadHolds {
  /** Whether `ino`'s blocks must wait (changes to it that the service does not have yet). */
  held(ino: number): boolean;
  /** Says when holds may have been released: the uploader looks again. */
  readonly released: { on(listener: () => void): void };
}
