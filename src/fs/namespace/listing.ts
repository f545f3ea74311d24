/**
 * Directory listings: open directory handles and the pages read through them (readdir plus:
 * each entry with its attributes, remembered so the lookups and stats that follow a listing
 * need no round trip each).
 *
 * A folder's listing comes from the service in pipelined pages (listing-pages.ts: the first
 * at once, the rest as ranges several at a time); a large folder's is kept across remounts
 * (kept-listings.ts) and brought up to date by the changes since its commit, one request.
 *
 * Listings are also learnt ahead, in the background: a folder looked up (or found lacking a
 * name) and the subfolders of one listed, a few at a time, so that a walk down a tree
 * (`ls -lR`, `find`, `cp -r`) finds each folder's listing here, and names there are decided
 * locally (write-back).
 *
 * Promises: offsets index a listing taken when the directory was opened, so they stay stable
 * while it changes; a listing is served from what this mount holds only while the view
 * trusts it (the change feed is up, or within the staleness bound, or this mount's changes
 * to the folder wait); offline, a listing is the last full one this mount took (with its own
 * changes applied), never one cut off midway.
 */
import { LRUCache } from 'lru-cache';
import { InvalidArgumentError, OutOfRangeError } from '../../errors.js';
import type { NameCipher } from '../../crypto/names.js';
import { ROOT_INO, S_IFDIR, S_IFMT, S_IFREG, isDir, type Attr, type BlockRef, type DirEntry, type MetaEngine } from '../../meta/types.js';
import type { BlockMap } from '../data/block-map.js';
import type { ListedEntry } from './last-known.js';
import { listingPages } from './listing-pages.js';
import type { KeptEntry, KeptListings } from './kept-listings.js';
import type { MetaJournal } from './journal.js';
import type { NamespaceView } from './view.js';

/** A directory entry as listed (attributes absent for "." and ".."). */
export type DirEntryOut = ListedEntry;

interface DirHandle {
  ino: number;
  /** The directory's version when it was opened: its listing has every change up to it. */
  version: number;
  /** This mount's changes to the folder's names when it was opened (a listing across one is not kept). */
  mark: number;
  entries: DirEntryOut[];
  /** The listing's pages, once asked for. */
  pages?: AsyncGenerator<OpenedPage>;
  /** The commit the listing has every change up to (its first page's), and its entries as they are kept. */
  csn?: number;
  kept: KeptEntry[];
  complete: boolean;
}

/** A page of a listing with its names opened. */
interface OpenedPage {
  entries: KeptEntry[];
  last: boolean;
  /** The commit the listing is current as of, if it is to be kept (again). */
  csn?: number;
}

export interface ListingsOptions {
  /** The most entries a folder may have for its listing to be learnt and kept (default 5 000). */
  learnMax?: number;
  /** Subfolders of a listed folder whose listings are learnt ahead (default 64; 0: none). */
  aheadFolders?: number;
  /** Listings of large folders kept across remounts (brought up to date by the changes since). */
  kept?: KeptListings;
}

/** Listings learnt ahead at once (subfolders of one listed); a folder looked up goes first. */
const AHEAD_PARALLEL = 4;

export class Listings {
  private readonly dirs = new Map<number, DirHandle>();
  private nextFh = 1;
  /** Folders whose listing is being learnt in the background. */
  private readonly learning = new Map<number, Promise<unknown>>();
  /** Folders found too large to learn: names there are looked up one by one (tried again after a while). */
  private readonly tooLarge = new LRUCache<number, true>({ max: 10_000, ttl: 10 * 60_000 });
  /** Subfolders waiting to be learnt ahead, and how many are being learnt. */
  private readonly ahead: number[] = [];
  private aheadActive = 0;

  constructor(private readonly meta: MetaEngine, private readonly names: NameCipher, private readonly view: NamespaceView, private readonly journal: MetaJournal,
    private readonly blockMap: BlockMap, private readonly options: ListingsOptions = {}) {}

  /** Learns `dir`'s listing in the background (once at a time; not a folder found too large, nor one already trusted). */
  learnSoon(dir: number): void {
    if (this.learning.has(dir) || this.tooLarge.has(dir) || this.view.trustsListing(dir)) return;
    const p = this.learn(dir, this.options.learnMax ?? 5000)
      .then((kept) => { if (!kept) this.tooLarge.set(dir, true); }, () => {})
      .finally(() => this.learning.delete(dir));
    this.learning.set(dir, p);
  }

  /** The subfolders of a folder just listed (by a reader: one level ahead of its walk) are learnt ahead, a few at a time. */
  private learnAhead(entries: DirEntryOut[]): void {
    const max = this.options.aheadFolders ?? 64;
    let n = 0;
    for (const e of entries) {
      if (n >= max || this.ahead.length >= 4 * max) break;
      if (!isDir(e.mode) || e.name === '.' || e.name === '..') continue;
      this.ahead.push(e.ino);
      n++;
    }
    this.nextAhead();
  }

  private nextAhead(): void {
    while (this.aheadActive < AHEAD_PARALLEL && this.ahead.length > 0) {
      const dir = this.ahead.shift()!;
      this.learnSoon(dir);
      const p = this.learning.get(dir);
      if (!p) continue;
      this.aheadActive++;
      void p.finally(() => {
        this.aheadActive--;
        this.nextAhead();
      });
    }
  }

  /**
   * What a listing's entry tells beyond its name: its attributes, and a small file's whole
   * block map (its first block ref, or none), so opening and reading it needs no map request.
   */
  private learnt(e: { attr?: Attr; first?: BlockRef }): void {
    if (!e.attr) return;
    this.view.remember(e.attr);
    if ((e.attr.mode & S_IFMT) === S_IFREG && e.attr.size <= this.blockMap.blockSize) this.blockMap.prime(e.attr, e.first ? [e.first] : []);
  }

  async opendir(ino: number): Promise<number> {
    const attr = await this.view.committedAttr(ino);
    if (!isDir(attr.mode)) throw new InvalidArgumentError('not a directory');
    const fh = this.nextFh++;
    this.dirs.set(fh, {
      ino,
      version: attr.version,
      mark: this.view.lastKnown.mark(ino),
      entries: [{ name: '.', ino, mode: S_IFDIR }, { name: '..', ino: ROOT_INO, mode: S_IFDIR }],
      kept: [],
      complete: false,
    });
    return fh;
  }

  /**
   * Entries from position `offset` on (at most `max`), each with the offset of the next one.
   * Offsets index a listing taken when the directory was opened, so they stay stable.
   */
  async readdir(fh: number, offset: number, max: number): Promise<(DirEntryOut & { next: number })[]> {
    const d = this.dirs.get(fh);
    if (!d) throw new InvalidArgumentError(`bad directory handle ${fh}`);
    const view = this.view;
    // A listing being learnt (the folder was looked up a moment ago) is waited for, not asked again.
    if (!d.complete && d.pages === undefined) await this.learning.get(d.ino);
    while (!d.complete && d.entries.length < offset + max) {
      const listGen = view.generation(d.ino);
      const first = d.pages === undefined;
      // A listing this mount holds and trusts is served as it is (offline, the last full one:
      // a listing cut off midway cannot be).
      const current = first && view.servesListing(d.ino);
      const local = first && (current || this.journal.affects(d.ino)) ? view.lastKnown.listing(d.ino) : undefined;
      const page = local ?? await view.lastKnown.orStale<OpenedPage | ListedEntry[]>(() => this.nextPage(d), () => (first ? view.lastKnown.listing(d.ino) : undefined));
      if (Array.isArray(page)) {
        // Served as held: attributes where they are current (the kernel looks the others up).
        for (const e of page) this.took(d, listGen, { ...e, attr: view.heldAttr(e.ino) ?? (current ? undefined : e.attr) });
        d.complete = true;
        this.learnAhead(page);
        break;
      }
      d.csn ??= page.csn;
      for (const e of page.entries) {
        if (e.attr) this.learnt(e);
        d.kept.push(e);
        this.took(d, listGen, { name: e.name, ino: e.ino, mode: e.mode, attr: e.attr });
      }
      d.complete = page.last;
      // Kept as of the first page's commit: whatever changed while it was taken comes again
      // with the changes since, when it is next listed.
      if (d.complete && d.csn !== undefined) this.options.kept?.save(d.ino, d.csn, d.kept);
      if (d.complete && view.generation(d.ino) === listGen) view.lastKnown.keepListing(d.ino, d.entries.slice(2), d.version, d.mark);
      if (d.complete) this.learnAhead(d.entries);
    }
    const end = Math.min(d.entries.length, offset + max);
    const out = new Array<DirEntryOut & { next: number }>(Math.max(0, end - offset));
    for (let i = offset; i < end; i++) {
      const e = d.entries[i];
      out[i - offset] = { name: e.name, ino: e.ino, mode: e.mode, attr: e.attr && view.overlay(view.cachedAttr(e.ino) ?? e.attr), next: i + 1 };
    }
    return out;
  }

  /**
   * An entry of a listing taken for a handle, from the service or as held: with attributes,
   * its name is known (lookups answer from it) and so is its folder (the directory predictor
   * walks it when it is read).
   */
  private took(d: DirHandle, listGen: number, e: DirEntryOut): void {
    const view = this.view;
    if (e.attr) {
      view.keepEntry(d.ino, e.name, e.ino, listGen);
      view.named(e.ino, d.ino, e.name);
    }
    d.entries.push(e);
    view.gaveName(d.ino, e.name);
  }

  /** The next page of a handle's listing (the first asks for them all). */
  private async nextPage(d: DirHandle): Promise<OpenedPage> {
    d.pages ??= this.openedPages(d.ino);
    const r = await d.pages.next();
    return r.done ? { entries: [], last: true } : r.value;
  }

  /**
   * A folder's listing with names opened: a kept listing brought up to date by the changes
   * since its commit (one request), else from the service in pipelined pages.
   */
  private async *openedPages(ino: number): AsyncGenerator<OpenedPage> {
    const kept = await this.options.kept?.load(ino);
    const changes = kept && await this.meta.listingChanges(ino, kept.csn).catch((e: unknown) => {
      if (e instanceof OutOfRangeError) return undefined; // history pruned, or too much changed: listed whole
      throw e;
    });
    if (kept && changes) {
      const byHash = new Map(kept.entries.map((e) => [e.hash, e]));
      for (const h of changes.removed) byHash.delete(h.toString('hex'));
      for (const e of changes.entries) byHash.set(e.hash.toString('hex'), this.opened(ino, e));
      // Kept again only if something changed, or it fell far behind (the changes since a commit
      // are looked up among every inode changed in the filespace since).
      const keepAgain = changes.entries.length > 0 || changes.removed.length > 0 || changes.csn - kept.csn > 1000;
      yield { entries: [...byHash.values()], last: true, csn: keepAgain ? changes.csn : undefined };
      return;
    }
    for await (const page of listingPages(this.meta, ino)) yield { entries: page.entries.map((e) => this.opened(ino, e)), last: page.last, csn: page.csn };
  }

  /** A listed entry with its name opened (checked against its lookup hash). */
  private opened(dir: number, e: DirEntry): KeptEntry {
    return { name: this.names.open(dir, e.hash, e.enc), hash: e.hash.toString('hex'), ino: e.ino, mode: e.mode, attr: e.attr, first: e.first };
  }

  releasedir(fh: number): void {
    const d = this.dirs.get(fh);
    this.dirs.delete(fh);
    // A listing left unread stops asking for more (ranges in flight finish and are dropped).
    void d?.pages?.return(undefined).catch(() => {});
  }

  /** Every regular file at or under `ino` (pin, warm). */
  async *filesUnder(ino: number): AsyncGenerator<Attr> {
    const attr = this.view.overlay(await this.view.committedAttr(ino));
    if (!isDir(attr.mode)) {
      if ((attr.mode & S_IFMT) === S_IFREG) yield attr;
      return;
    }
    for (const e of await this.list(ino)) yield* this.filesUnder(e.ino);
  }

  /**
   * Takes a folder's full listing for the mount to decide names there locally (write-back),
   * unless it has more than `maxEntries`: a folder that large is looked up name by name.
   * Pages of 1 000 entries, pipelined; nothing is kept if the folder changed meanwhile. Resolves
   * false when the folder has more than `maxEntries`.
   */
  async learn(ino: number, maxEntries = 5000): Promise<boolean> {
    const view = this.view;
    const listGen = view.generation(ino);
    const mark = view.lastKnown.mark(ino);
    const version = (await view.committedAttr(ino)).version;
    const entries: DirEntryOut[] = [];
    for await (const page of listingPages(this.meta, ino)) {
      // A folder estimated (from its first page) well past the bound is not fetched further.
      if (entries.length > maxEntries || page.estimate > 1.5 * maxEntries) return false;
      for (const e of page.entries) {
        const name = this.names.open(ino, e.hash, e.enc);
        this.learnt(e);
        entries.push({ name, ino: e.ino, mode: e.mode, attr: e.attr });
      }
    }
    if (entries.length > maxEntries) return false;
    if (view.generation(ino) === listGen && !this.journal.affects(ino)) view.lastKnown.keepListing(ino, entries, version, mark);
    return true;
  }

  /** All names in a directory (for tools, prediction and tests). */
  async list(ino: number): Promise<DirEntryOut[]> {
    const fh = await this.opendir(ino);
    try {
      return (await this.readdir(fh, 2, Number.MAX_SAFE_INTEGER)).map(({ next: _n, ...e }) => e);
    } finally {
      this.releasedir(fh);
    }
  }
}
