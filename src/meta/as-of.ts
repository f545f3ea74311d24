/**
 * A read-only view of a filespace as it was at one commit (a snapshot): every read asks the
 * engine "as of" that CSN, every change is refused with ReadOnlyError (EROFS). A snapshot
 * mount runs the ordinary VFS over this, with the kernel mount read-only too.
 */
import { OutOfRangeError, ReadOnlyError } from '../errors.js';
import type {
  Attr, BlockRef, ChangesPage, EntryName, ListingChanges, LookupOptions, MetaEngine, MetaInfo, ReaddirOptions, ReaddirPage, RestoreResult, Snapshot, SnapshotSchedule, XattrEntry,
} from './types.js';

const refuse = async (): Promise<never> => { throw new ReadOnlyError('a snapshot is read-only: restore it with lucid snapshot restore, or copy files out'); };

export class AsOfMeta implements MetaEngine {
  constructor(private readonly inner: MetaEngine, readonly csn: number) {}

  info(): Promise<MetaInfo> { return this.inner.info(); }
  getAttr(ino: number): Promise<Attr> { return this.inner.getAttr(ino, { asOf: this.csn }); }
  lookup(parent: number, hash: Buffer, options?: LookupOptions): Promise<Attr & { blocks?: BlockRef[] }> {
    return this.inner.lookup(parent, hash, { ...options, asOf: this.csn });
  }
  readdir(parent: number, options?: ReaddirOptions): Promise<ReaddirPage> { return this.inner.readdir(parent, { ...options, asOf: this.csn }); }
  namesOf(ino: number): Promise<({ parent: number } & EntryName)[]> { return this.inner.namesOf(ino, { asOf: this.csn }); }
  /** A snapshot's listings never change, and are not kept across mounts: each is listed whole. */
  async listingChanges(): Promise<ListingChanges> { throw new OutOfRangeError('a snapshot\'s listings are listed whole'); }
  readlink(ino: number): Promise<Buffer> { return this.inner.readlink(ino, { asOf: this.csn }); }
  getBlocks(ino: number, first: number, count: number): Promise<BlockRef[]> { return this.inner.getBlocks(ino, first, count, { asOf: this.csn }); }
  getXattr(ino: number, hash: Buffer): Promise<XattrEntry> { return this.inner.getXattr(ino, hash, { asOf: this.csn }); }
  listXattr(ino: number): Promise<XattrEntry[]> { return this.inner.listXattr(ino, { asOf: this.csn }); }
  changesSince(csn: number, limit?: number): Promise<ChangesPage> { return this.inner.changesSince(csn, limit); }
  listSnapshots(): Promise<Snapshot[]> { return this.inner.listSnapshots(); }
  listSchedules(): Promise<SnapshotSchedule[]> { return this.inner.listSchedules(); }
  retainedObjects(objectIds: string[], beforeMs: number): Promise<string[]> { return this.inner.retainedObjects(objectIds, beforeMs); }

  create = refuse;
  reserveInodes = refuse;
  link = refuse;
  unlink = refuse;
  rmdir = refuse;
  rename = refuse;
  setAttr = refuse;
  commitBlocks = refuse;
  reclaim = refuse;
  setXattr = refuse;
  removeXattr = refuse;
  applyBatch = refuse;
  createSnapshot = refuse;
  deleteSnapshot = refuse;
  createSchedule = refuse;
  deleteSchedule = refuse;
  runSchedules = refuse;
  pruneVersions = refuse;
  restore: (id: number, parent: number, hash: Buffer) => Promise<RestoreResult> = refuse;

  close(): Promise<void> { return this.inner.close(); }
}
