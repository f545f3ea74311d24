/**
 * The clean-block seam: where sealed block objects fetched from the store are kept so they
 * need not be fetched again. The block loader (src/fs/data/block-loader.ts) depends on this
 * interface only. Implementations: `BlockCache` (the persistent, encrypted, size-bounded
 * cache on local disk) and `NoDiskCache` (keeps nothing: the library API and admin commands
 * that run without a mount).
 *
 * Promises of every implementation: `openClean` returns authenticated plaintext or
 * undefined (a damaged copy throws IntegrityError, and `dropClean` forgets it); bytes handed
 * to `writeCleanInBackground` stay readable through `sealedBeingWritten` until the returned
 * promise settles, and not after (the caller may then reuse their buffer).
 */
export interface CleanBlocks {
  /** The plaintext of a kept object (opened into `buffer(size)` when given), or undefined. */
  openClean(objectId: string, buffer?: (size: number) => Buffer, urgent?: boolean): Promise<Buffer | undefined>;
  /** An open of `objectId` begun for reading ahead, that a reader now waits for, goes first. */
  hurryClean(objectId: string): void;
  /** Whether the object can be opened without the store: kept, or held while it is written. */
  holdsClean(objectId: string): boolean;
  /** Starts keeping a sealed object; the promise settles once it is kept (or refused). */
  writeCleanInBackground(objectId: string, sealed: Buffer, ino: number): Promise<void>;
  /** The sealed bytes of an object being written, as handed over, until the write settles. */
  sealedBeingWritten(objectId: string): Buffer | undefined;
  /** Whether writes waiting are past their backlog: callers then wait for their own. */
  readonly keepingBacklogged: boolean;
  dropClean(objectId: string): Promise<void>;
}
