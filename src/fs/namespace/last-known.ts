/**
 * What a mount last knew of the metadata, kept for when the service cannot be reached: the
 * last attributes of each inode, the last inode under each name, the last full listing of
 * each directory, the last filespace totals. While the service is up these are never read
 * (fresh answers and the TTL-bound caches serve); while it is down, lookups, stat, listings
 * and reads of cached files are served from here, so work on cached files goes on.
 *
 * Changes this mount makes while offline (journaled: src/fs/namespace/journal.ts) are applied here
 * too — a new entry joins its folder's listing, a removed one leaves it — so the mount shows
 * its own offline changes until they are replayed.
 *
 * Promises: what was kept of an inode from before another client's announced change to it
 * is dropped (what was kept after it stays, however late the word comes), so nothing older
 * than the last announced change is served; the mount says it is offline from the first
 * failed call until the next successful one.
 */
import { LRUCache } from 'lru-cache';
import { ServiceUnavailableError } from '../../errors.js';
import { isDir, type Attr, type MetaInfo } from '../../meta/types.js';

export interface ListedEntry {
  name: string;
  ino: number;
  mode: number;
  /** The entry's attributes as listed (absent for "." and ".."). */
  attr?: Attr;
}

/** Bounds: what is kept for outages costs memory all the time (the agent stays ≤ 256 MiB). */
const KEPT_INODES = 20_000;
const KEPT_LISTINGS = 256;
const KEPT_LISTING_ENTRIES = 5_000;
/** Entries of all kept listings together (each with its attributes: ~400 bytes). */
const KEPT_ENTRIES_TOTAL = 100_000;

/** A folder's full listing, when it was taken, the folder's version before, and its entries by name. */
interface KeptListing {
  at: number;
  version: number;
  entries: ListedEntry[];
  byName: Map<string, ListedEntry>;
}

const kept = (entries: ListedEntry[], version: number): KeptListing =>
  ({ at: Date.now(), version, entries, byName: new Map(entries.map((e) => [e.name, e])) });

/** Takes `name` out of a kept listing, if it is there. */
function dropName(listing: KeptListing, name: string): void {
  const e = listing.byName.get(name);
  if (!e) return;
  listing.byName.delete(name);
  listing.entries.splice(listing.entries.indexOf(e), 1);
}

export class LastKnown {
  private readonly attrs = new LRUCache<number, Attr>({ max: KEPT_INODES });
  private readonly names = new LRUCache<string, { ino: number; gen: number }>({ max: KEPT_INODES });
  /**
   * Full listings, when each was taken, and the folder's version known before it was taken
   * (the listing has every change up to that version); this mount's own changes keep them current.
   */
  private readonly listings = new LRUCache<number, KeptListing>({ max: KEPT_LISTINGS, maxSize: KEPT_ENTRIES_TOTAL, sizeCalculation: (l) => l.entries.length + 1 });
  private info?: MetaInfo;
  /** A count per folder of this mount's changes to what it knows of the folder's names (see `mark`). */
  private readonly marks = new LRUCache<number, number>({ max: 100_000 });
  /** When the service was first found unreachable (0: it answers). */
  offlineSinceMs = 0;

  keepAttr(a: Attr): void {
    const known = this.attrs.get(a.ino);
    if (!known || known.version <= a.version) this.attrs.set(a.ino, a);
  }

  keepName(parent: number, name: string, ino: number, gen: number): void {
    this.names.set(`${parent}/${name}`, { ino, gen });
  }

  /**
   * A folder's full listing, taken after the folder was seen at `version` (not kept past
   * 5 000 entries: offline, such a folder does not list).
   */
  keepListing(dir: number, entries: ListedEntry[], version: number, since?: number): void {
    // A listing taken while this mount changed the folder's names may miss those changes.
    if (since !== undefined && since !== this.mark(dir)) return;
    if (entries.length <= KEPT_LISTING_ENTRIES) this.listings.set(dir, kept(entries, version));
    else this.listings.delete(dir);
  }

  /**
   * Changes with every change this mount makes to what it knows of `dir`'s names: a listing
   * started before (`keepListing(…, since)`) is not kept over them.
   */
  mark(dir: number): number {
    return this.marks.get(dir) ?? 0;
  }

  private touch(dir: number): void {
    this.marks.set(dir, this.mark(dir) + 1);
  }

  keepInfo(info: MetaInfo): void {
    this.info = info;
  }

  /**
   * Another client changed an inode (in commit `csn`; unknown: any time): what was known of
   * it, and of its listing, from before that change is old. What was learnt after it stays —
   * the change feed can bring word of a change later than the answers that already had it.
   */
  forget(ino: number, csn = Infinity): void {
    if ((this.attrs.get(ino)?.version ?? -1) < csn) this.attrs.delete(ino);
    if ((this.listings.get(ino)?.version ?? -1) < csn) this.listings.delete(ino);
  }

  /** Every inode something is kept of: attributes or a listing. */
  inodes(): number[] {
    const folders = [...this.names.keys()].map((k) => Number(k.slice(0, k.indexOf('/'))));
    return [...this.attrs.keys(), ...this.listings.keys(), ...folders];
  }

  /** A name changed in a way this mount cannot follow exactly: the folder's listing is old. */
  forgetName(parent: number, name: string): void {
    this.touch(parent);
    this.names.delete(`${parent}/${name}`);
    this.listings.delete(parent);
  }

  /**
   * Runs a call to the service; when the service cannot be reached, `fallback` instead (and
   * the mount is offline until a call succeeds). Any other error goes through.
   */
  async whenUnreachable<T>(call: () => Promise<T>, fallback: (e: ServiceUnavailableError) => T | Promise<T>): Promise<T> {
    try {
      const v = await call();
      this.offlineSinceMs = 0;
      return v;
    } catch (e) {
      if (!(e instanceof ServiceUnavailableError)) throw e;
      this.offlineSinceMs ||= Date.now();
      return fallback(e);
    }
  }

  /** Runs a call to the service; when it cannot be reached and `stale()` has an answer, that answer. */
  orStale<T>(call: () => Promise<T>, stale: () => T | undefined): Promise<T> {
    return this.whenUnreachable(call, (e) => {
      const v = stale();
      if (v === undefined) throw e;
      return v;
    });
  }

  /**
   * What is known of a name: its attributes; null when its folder's full listing is known
   * and does not have it; undefined when nothing is known.
   */
  entry(parent: number, name: string, gen: number): Attr | null | undefined {
    const n = this.names.get(`${parent}/${name}`);
    const a = n && n.gen === gen ? this.attrs.get(n.ino) : undefined;
    if (a) return a;
    const listing = this.listings.get(parent);
    if (!listing) return undefined;
    const e = listing.byName.get(name);
    return e ? this.attrs.get(e.ino) ?? e.attr ?? undefined : null;
  }

  /**
   * An entry this mount made (or moved, or linked) here: known under its name and in its
   * folder's listing; a `fresh` folder (just made) is known empty.
   */
  addEntry(parent: number, name: string, attr: Attr, gen: number, fresh: boolean): void {
    this.touch(parent);
    this.attrs.set(attr.ino, attr);
    this.names.set(`${parent}/${name}`, { ino: attr.ino, gen });
    const listing = this.listings.get(parent);
    if (listing) {
      // Listings are copied out when read, so they change in place.
      dropName(listing, name);
      if (listing.entries.length < KEPT_LISTING_ENTRIES) {
        const e = { name, ino: attr.ino, mode: attr.mode, attr };
        listing.entries.push(e);
        listing.byName.set(name, e);
      } else {
        this.listings.delete(parent);
      }
    }
    if (fresh && isDir(attr.mode)) this.listings.set(attr.ino, kept([], attr.version));
  }

  /** An entry this mount removed (or moved away): gone from its folder's listing and from the names. */
  removeEntry(parent: number, name: string): void {
    this.touch(parent);
    this.names.delete(`${parent}/${name}`);
    const listing = this.listings.get(parent);
    if (listing) dropName(listing, name);
  }

  /** Attributes changed offline (same version: the service has not seen them yet). */
  setAttr(a: Attr): void {
    this.attrs.set(a.ino, a);
  }

  attr(ino: number): Attr | undefined {
    return this.attrs.get(ino);
  }

  listing(dir: number): ListedEntry[] | undefined {
    return this.listings.get(dir)?.entries;
  }

  /**
   * The folder's full listing if it was taken less than `maxAgeMs` ago (another client's
   * change to the folder forgets it; this mount's own changes keep it current).
   */
  recentListing(dir: number, maxAgeMs: number): ListedEntry[] | undefined {
    const l = this.listings.get(dir);
    return l && Date.now() - l.at <= maxAgeMs ? l.entries : undefined;
  }

  lastInfo(): MetaInfo | undefined {
    return this.info;
  }

  noteSuccess(): void {
    this.offlineSinceMs = 0;
  }
}
