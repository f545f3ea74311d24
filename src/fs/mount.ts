/**
 * Builds a mount: from an unlocked filespace's parts (store, codec, names, metadata engine)
 * and a block cache, the journal, the namespace view and its changes, the block map, the
 * block loader, the uploader, file I/O, the directory predictor, and the VFS over them. The
 * agent and every test helper build a mount here, so the parts are joined one way, by
 * constructor arguments, in the order each needs the last. The one thing it opens is the
 * journal's own file in the cache directory (unless given a journal store).
 */
import path from 'node:path';
import { ActivityMeter } from '../util/activity.js';
import type { BlockCodec } from '../block/format.js';
import type { BlockCache } from '../cache/block-cache.js';
import type { NameCipher } from '../crypto/names.js';
import { LocalLocks } from '../locks/local.js';
import type { LockManager } from '../locks/types.js';
import { S_IFMT, S_IFREG, type MetaEngine } from '../meta/types.js';
import { DirectoryPredictor } from '../prefetch/directory.js';
import type { ObjectStore } from '../store/types.js';
import { CommitBatcher } from '../upload/commit-batcher.js';
import { Uploader, type UploaderOptions } from '../upload/uploader.js';
import type { TraceSink } from '../util/trace.js';
import { BlockLoader } from './data/block-loader.js';
import { BlockMap } from './data/block-map.js';
import { FileIo } from './data/file-io.js';
import { ChangeGate } from './namespace/gate.js';
import { XattrChanges } from './namespace/xattrs.js';
import { NamespaceChanges } from './namespace/changes.js';
import { MetaJournal, conflictCopyNames, type JournalStore } from './namespace/journal.js';
import { FileJournalStore } from './namespace/journal-store.js';
import { Listings } from './namespace/listing.js';
import { KeptListings } from './namespace/kept-listings.js';
import { NamespaceView, type ViewOptions } from './namespace/view.js';
import { Vfs } from './vfs.js';

/** What a mount is built from: an unlocked filespace's parts (Filespace has them all). */
export interface MountParts {
  store: ObjectStore;
  meta: MetaEngine;
  codec: BlockCodec;
  names: NameCipher;
  blockSize: number;
}

export interface MountOptions extends ViewOptions {
  /** Plaintext of recently read blocks kept in memory (bytes). */
  memoryCacheBytes?: number;
  /** Where locks are held: this machine only by default, the service for shared filespaces. */
  locks?: LockManager;
  log?: (line: string) => void;
  /** Told the bytes of each block object fetched, for pacing garbage collection. */
  allocated?: (bytes: number) => void;
  /** LUCID_TRACE: each block brought into memory (from disk or store), and each prefetch, timed. */
  trace?: TraceSink;
  /** Block refs asked of the service at a time (default 1024). */
  mapWindowBlocks?: number;
  /** Where the journal keeps changes not yet at the service (default: journal.log in the cache's directory). */
  journalStore?: JournalStore;
  /**
   * Changes to names and attributes that the mount can decide locally return at once and
   * reach the service in batches behind them (default true; false: each waits for the service).
   */
  writeBack?: boolean;
  /** The uploader's pacing (slots, idle time before a partial block goes, retry delay). */
  upload?: Omit<UploaderOptions, 'log' | 'committed' | 'holds' | 'foreground'>;
}

export function buildMount(parts: MountParts, cache: BlockCache, options: MountOptions = {}): Vfs {
  const { store, meta, codec, names, blockSize } = parts;
  const log = options.log;
  const journalStore = options.journalStore ?? FileJournalStore.open(cache.directory, cache.legacyJournal);
  const journal = new MetaJournal(journalStore, meta, { conflictName: conflictCopyNames(names), log: (line) => log?.(line) });
  const blockMap = new BlockMap(meta, blockSize, { windowBlocks: options.mapWindowBlocks, madeLocally: (ino) => journal.pendingCreate(ino) !== undefined });
  const view = new NamespaceView(meta, journal, cache, blockMap, options);
  const activity = new ActivityMeter();
  const uploader = new Uploader({ store, codec, meta: new CommitBatcher(meta), cache, blockSize, buffers: cache.blockBuffers }, {
    ...options.upload, log, holds: journal, foreground: activity,
    committed: (ino, refs, attr) => {
      view.committed(attr);
      blockMap.committed(ino, refs, attr.version);
    },
  });
  const loader = new BlockLoader(store, codec, cache, blockSize, { memoryCacheBytes: options.memoryCacheBytes, log, allocated: options.allocated, trace: options.trace });
  const data = new FileIo(loader, blockMap, cache, uploader, view, blockSize, { trace: options.trace });
  const listings = new Listings(meta, names, view, journal, blockMap, { kept: new KeptListings(path.join(cache.directory, 'listings'), names) });
  const locks = options.locks ?? new LocalLocks();
  const gate = new ChangeGate(view, journal, { writeBack: options.writeBack, strong: (ino) => locks.isLocked(ino), activity });
  const changes = new NamespaceChanges(meta, names, view, journal, gate, blockMap, cache, listings);
  const xattrs = new XattrChanges(meta, names, view, journal, gate);
  const listingTtlMs = Math.max(500, (options.attrTtlMs ?? 1000) / 2);
  // Predicted files starting within a third of the plaintext memory (the frame opened and the
  // next) come into memory; those further ahead would be evicted before they are read, so
  // they come to disk only (8 MiB frames: 87 against 73 MB/s with all of them into memory).
  const predictor = new DirectoryPredictor({
    // A listing the application has just taken (a player lists the folder, then opens the
    // first frame) serves, unless the folder changed since: no second round trip.
    list: async (parent) => (view.lastKnown.recentListing(parent, listingTtlMs) ?? await listings.list(parent)).map((e) => ({
      name: e.name, ino: e.ino, size: e.attr?.size ?? 0, regular: (e.mode & S_IFMT) === S_IFREG,
    })),
    prepare: async (ino) => {
      const a = view.cachedAttr(ino);
      if (a) await blockMap.ref(ino, 0, a.version);
    },
  }, data.prefetcher, { blockSize, listingTtlMs, memoryBytes: loader.memoryBytes / 3, walkAfterOpens: 2 });
  if (journal.size > 0) log?.(`${journal.size} change(s) made offline wait for the metadata service`);
  journal.start();
  return new Vfs({
    meta, blockSize, cache, uploader, journal, view, changes, xattrs, listings, blockMap, data, predictor, locks,
  });
}
