/**
 * What the mount knows of names and attributes: each inode's attributes, the inode under
 * each name, the names handed to the kernel, the last name each inode was looked up by,
 * and what is kept for outages (`LastKnown`). It remembers answers, forgets what this mount
 * changed, and revalidates what the change feed says another client changed.
 *
 * Promises:
 * - an answer never replaces newer attributes with older ones, nor one older than a change
 *   the feed already announced (it raced the push);
 * - what is fetched is trusted for the staleness bound (`attrTtlMs`), or, while the change
 *   feed is connected, until a push says otherwise (`feedTtlMs` only bounds memory); when
 *   the feed drops, everything fetched is forgotten;
 * - what this mount changed while offline (journaled) stays what it shows until the
 *   service has it;
 * - a file's size and mtime as shown include this mount's writes not yet committed (`overlay`).
 */
import { LRUCache } from 'lru-cache';
import type { BlockCache } from '../../cache/block-cache.js';
import { isDir, type Attr, type MetaEngine } from '../../meta/types.js';
import type { BlockMap } from '../data/block-map.js';
import { withPending } from '../data/types.js';
import type { MetaJournal, Replayed } from './journal.js';
import { LastKnown } from './last-known.js';

export interface ViewOptions {
  /**
   * How long attributes fetched from the metadata service are trusted (ms): the bound on how
   * stale another client's change can look. This mount's own changes update them at once.
   */
  attrTtlMs?: number;
  /**
   * How long attributes and names are trusted while the change feed is connected (ms,
   * default 60 s): every change is then pushed, so the TTL only bounds memory.
   */
  feedTtlMs?: number;
  /** Tells the kernel to drop what it caches of an inode (attributes and pages). */
  invalidate?: (ino: number) => void;
  /** Tells the kernel to drop an inode's attributes only (and what it answers from them: "no extended attributes"). */
  invalidateAttrs?: (ino: number) => void;
  /** Tells the kernel to forget one name in a directory. */
  invalidateEntry?: (parent: number, name: string) => void;
}

export class NamespaceView {
  /** What was last known of the metadata: served while the service cannot be reached. */
  readonly lastKnown = new LastKnown();
  private readonly attrs: LRUCache<number, Attr>;
  /**
   * Names seen in listings and lookups ("parent/name" → inode), trusted for the attribute TTL
   * like the attributes themselves: a listed directory's entries are then looked up and
   * stat'ed without a round trip each (metadata prefetch). This mount's own changes to a
   * name drop it at once.
   */
  private readonly dentries: LRUCache<string, { ino: number; gen: number }>;
  /** The commit of this mount's last change to each folder's entries: the feed's word of it is no news. */
  private readonly ownCommits = new LRUCache<number, number>({ max: 10_000 });
  /** Bumped when another client changes a directory: its cached names are then stale. */
  private readonly dirGen = new Map<number, number>();
  /** The newest CSN the feed announced per inode: older answers in flight are not cached. */
  private readonly announced = new LRUCache<number, number>({ max: 100_000 });
  private feedUp = false;
  /**
   * Names handed to the kernel per directory, so a change pushed for it can make the kernel
   * forget them; and when names were last handed out there. The kernel drops a name by
   * itself once its entry timeout passes, so a folder not handed a name for longer than the
   * longest timeout is forgotten here too (`sweepKernelNames`): what is held is what was
   * handed out within about a minute, however large the tree walked (a `find` of ten million).
   */
  private readonly kernelNames = new Map<number, { names: Set<string>; at: number }>();
  private kernelNamesSwept = 0;
  /** The name each inode was last looked up by: directory prediction needs it at open. */
  private readonly lastName = new LRUCache<number, { parent: number; name: string }>({ max: 10_000 });
  /** The committed version each inode had when this mount last opened or wrote it: unchanged → the kernel keeps its pages. */
  private readonly seenVersion = new LRUCache<number, number>({ max: 100_000 });
  /** Commits of this mount's own journaled changes (the feed's word of them is no news). */
  private readonly ownCsns = new LRUCache<number, true>({ max: 20_000 });
  /** Commits the feed announced for inodes with journaled changes waiting: checked when those reach the service. */
  private readonly missed = new Map<number, Set<number>>();

  constructor(private readonly meta: MetaEngine, readonly journal: MetaJournal, private readonly cache: BlockCache, private readonly blockMap: BlockMap,
    private readonly options: ViewOptions = {}) {
    this.attrs = new LRUCache<number, Attr>({ max: 100_000, ttl: options.attrTtlMs ?? 1000 });
    this.dentries = new LRUCache<string, { ino: number; gen: number }>({ max: 100_000, ttl: options.attrTtlMs ?? 1000 });
    journal.replayed.on((r) => this.replayed(r));
  }

  /**
   * Journaled changes reached the service. As journaled, what this mount shows is what the
   * service now has: the service's answer (the inode's attributes after) is kept, and what
   * else the change touched (its folders) keeps the attributes shown, at the change's commit
   * — no round trip, and the change feed's word of the commit is no news. Otherwise (a
   * conflict changed the outcome), or when another client changed one of them while the
   * change waited, what the mount knows of them is old.
   */
  private replayed({ inos, asJournaled, attr, csn }: Replayed): void {
    this.lastKnown.noteSuccess();
    // Word the feed brought of an inode while changes to it waited is weighed once the last
    // of them is here (below): by then the commit of every one of them is known as own.
    if (csn !== undefined) this.ownCsns.set(csn, true);
    for (const ino of inos) {
      if (this.journal.affects(ino)) continue;
      const missed = this.missed.get(ino);
      this.missed.delete(ino);
      if (!asJournaled || (missed && [...missed].some((c) => !this.ownCsns.has(c)))) {
        this.revalidate(ino);
        continue;
      }
      const shown = this.attrs.get(ino) ?? this.lastKnown.attr(ino);
      if (attr?.ino === ino) {
        this.attrs.delete(ino);
        this.remember(attr);
        // What the mount knows of its blocks follows its own changes (a truncate's cut is
        // made in the map when journaled): it holds at this commit too.
        this.blockMap.advance(ino, attr.version);
      } else if (shown && csn !== undefined && isDir(shown.mode)) {
        // A folder: its entries and times are as this mount shows them. (A file's size may
        // have been committed by the uploader meanwhile: it is asked for again.)
        const a = { ...shown, version: Math.max(shown.version, csn) };
        this.attrs.set(ino, a, { ttl: this.ttl() });
        this.lastKnown.keepAttr(a);
      } else {
        this.forget(ino);
        this.options.invalidate?.(ino);
      }
    }
  }

  // ---- attributes -----------------------------------------------------------------------

  /** The inode's committed attributes: from the attribute cache unless `fresh` or expired. */
  async committedAttr(ino: number, fresh = false): Promise<Attr> {
    if (this.journal.affects(ino)) {
      const local = this.lastKnown.attr(ino);
      if (local) return local;
    }
    const hit = fresh ? undefined : this.attrs.get(ino);
    return hit ?? this.lastKnown.orStale(async () => this.remember(await this.meta.getAttr(ino)), () => this.lastKnown.attr(ino));
  }

  /** Attributes as cached now (no fetch), or undefined. */
  cachedAttr(ino: number): Attr | undefined {
    return this.attrs.get(ino);
  }

  /**
   * Attributes no word of another client's change has dropped since they were learnt (the
   * cache, else what is kept for outages), or undefined: with the feed up, they are current.
   */
  heldAttr(ino: number): Attr | undefined {
    return this.attrs.get(ino) ?? this.lastKnown.attr(ino);
  }

  /**
   * Keeps attributes the service answered with (unless older than what is known), and returns
   * what the mount shows: while changes to the inode wait in the journal, its local attributes
   * (the service's answer predates them: `tar x` restoring a folder's times, then a lookup
   * answered by the service, showed the folder's old mtime until the change arrived).
   */
  remember(a: Attr): Attr {
    if (this.journal.affects(a.ino)) return this.lastKnown.attr(a.ino) ?? a;
    const known = this.attrs.get(a.ino);
    // Answers can arrive out of order: never replace newer attributes with older ones.
    // An answer older than a change the feed already announced is not kept (it raced the push).
    if ((!known || known.version <= a.version) && a.version >= (this.announced.get(a.ino) ?? 0)) {
      this.attrs.set(a.ino, a, { ttl: this.ttl() });
      this.lastKnown.keepAttr(a);
    }
    return a;
  }

  /** The attributes with writes not yet committed applied (size, mtime). */
  overlay(a: Attr): Attr {
    return withPending(a, this.cache.pending(a.ino));
  }

  /** How long what is fetched now may be trusted. */
  ttl(): number {
    return this.feedUp ? this.options.feedTtlMs ?? 60_000 : this.options.attrTtlMs ?? 1000;
  }

  /**
   * The change feed is connected (and caught up) or lost. While it is up, cached attributes
   * and names are trusted until a push says otherwise; when it drops, everything cached is
   * forgotten and the staleness bound applies again until it is back.
   */
  setFeed(up: boolean): void {
    if (up) this.lastKnown.noteSuccess();
    if (this.feedUp && !up) {
      this.attrs.clear();
      this.dentries.clear();
    }
    this.feedUp = up;
  }

  /** Forgets fetched attributes (this mount changed the inodes). */
  forget(...inos: number[]): void {
    for (const ino of inos) {
      // What this mount changed offline stays known until the service has it.
      if (this.journal.affects(ino)) continue;
      // What was last known stays for outages: a little old (times) after this mount's own
      // change, it still says what the inode is; another client's change drops it (revalidate).
      this.attrs.delete(ino);
    }
  }

  /** The uploader committed blocks of `ino`: its attributes follow; the kernel keeps the pages we wrote. */
  committed(attr: Attr): void {
    this.remember(attr);
    if (this.seenVersion.has(attr.ino)) this.seenVersion.set(attr.ino, attr.version);
  }

  /** Notes the committed version this mount opens; true if it is the one seen at the last open (the kernel's pages are good). */
  opened(ino: number, version: number): boolean {
    const same = this.seenVersion.get(ino) === version;
    this.seenVersion.set(ino, version);
    return same;
  }

  /** Attributes changed by this mount offline: kept until the service has them. */
  localAttr(a: Attr): Attr {
    this.attrs.set(a.ino, a, { ttl: 24 * 3600_000 });
    this.lastKnown.setAttr(a);
    return a;
  }

  // ---- names ----------------------------------------------------------------------------

  /** How many times another client changed `dir` (names cached at an older count are stale). */
  generation(dir: number): number {
    return this.dirGen.get(dir) ?? 0;
  }

  /** The attributes under a name, if both the name and the attributes are cached and current. */
  cachedEntry(parent: number, name: string): Attr | undefined {
    const known = this.dentries.get(`${parent}/${name}`);
    return known !== undefined && known.gen === this.generation(parent) ? this.attrs.get(known.ino) : undefined;
  }

  /** Keeps what a lookup or listing answered for a name, unless the folder changed since `gen`. */
  keepEntry(parent: number, name: string, ino: number, gen: number): void {
    if (this.generation(parent) !== gen) return;
    this.dentries.set(`${parent}/${name}`, { ino, gen }, { ttl: this.ttl() });
    this.lastKnown.keepName(parent, name, ino, gen);
  }

  /** The name `ino` was last seen under. */
  named(ino: number, parent: number, name: string): void {
    this.lastName.set(ino, { parent, name });
  }

  nameOf(ino: number): { parent: number; name: string } | undefined {
    return this.lastName.get(ino);
  }

  /** A name handed to the kernel, which must forget it when another client changes the folder. */
  gaveName(parent: number, name: string): void {
    if (!this.options.invalidateEntry) return;
    const now = Date.now();
    let held = this.kernelNames.get(parent);
    if (!held) {
      if (now - this.kernelNamesSwept > 5_000) this.sweepKernelNames(now);
      this.kernelNames.set(parent, (held = { names: new Set(), at: now }));
    }
    held.at = now;
    if (held.names.size < 100_000) held.names.add(name);
  }

  /** Forgets the names of folders the kernel has forgotten by now (none handed out within its longest entry timeout). */
  private sweepKernelNames(now: number): void {
    this.kernelNamesSwept = now;
    const cutoff = now - Math.max(this.options.feedTtlMs ?? 60_000, this.options.attrTtlMs ?? 1000) - 1_000;
    for (const [dir, held] of this.kernelNames) if (held.at < cutoff) this.kernelNames.delete(dir);
  }

  /** This mount changes a name: what it knew of it is old (offline, the change itself says what is new). */
  forgetName(parent: number, name: string): void {
    this.dentries.delete(`${parent}/${name}`);
  }

  /**
   * This mount's change to a name reached the service: what it knows for outages follows it
   * exactly (`attr` is what the name holds now, or undefined if it holds nothing or this mount
   * does not know), so a folder listed before stays listed. `csn` is the change's commit: the
   * change feed's word of it is then not taken for another client's change.
   */
  changedName(parent: number, name: string, attr: Attr | undefined, options: { csn?: number; fresh?: boolean; removed?: boolean } = {}): void {
    if (attr) this.lastKnown.addEntry(parent, name, attr, this.generation(parent), options.fresh ?? false);
    else if (options.removed) this.lastKnown.removeEntry(parent, name);
    else this.lastKnown.forgetName(parent, name);
    if (options.csn !== undefined) this.ownCommits.set(parent, options.csn);
  }

  /**
   * Whether this mount's listing of `dir` is current enough to decide names there locally:
   * kept current by this mount's own changes, and by the change feed while it is connected
   * (another client's change drops it); with no feed, for the staleness bound after it was
   * taken; always while this mount's own changes to the folder wait for the service.
   */
  trustsListing(dir: number): boolean {
    if (!this.lastKnown.listing(dir)) return false;
    return this.feedUp || this.journal.affects(dir) ||
      this.lastKnown.recentListing(dir, this.options.attrTtlMs ?? 1000) !== undefined;
  }

  /**
   * Whether this mount's listing of `dir` is kept current by the change feed (connected, and
   * no word of another client's change to the folder since): a reader's listing is served
   * from it. (Within the staleness bound alone, a reader's listing is asked for afresh.)
   */
  servesListing(dir: number): boolean {
    return this.feedUp && this.lastKnown.listing(dir) !== undefined;
  }

  /** What this mount knows of a name while its folder has offline changes or the service is away. */
  localEntry(parent: number, name: string): Attr | null | undefined {
    return this.lastKnown.entry(parent, name, this.generation(parent));
  }

  /** An entry joins a folder offline (made or moved there): the listing and the folder's times and links follow. */
  joinLocally(parent: number, name: string, a: Attr, now: number, fresh: boolean): void {
    this.lastKnown.addEntry(parent, name, a, this.generation(parent), fresh);
    this.touchLocalDir(parent, isDir(a.mode) ? 1 : 0, now);
    this.lastName.set(a.ino, { parent, name });
  }

  /** An entry leaves a folder offline (removed or moved away): the listing and the folder's times and links follow. */
  leaveLocally(parent: number, name: string, a: Attr, now: number): void {
    this.lastKnown.removeEntry(parent, name);
    this.touchLocalDir(parent, isDir(a.mode) ? -1 : 0, now);
  }

  /** A folder's attributes after an offline change to its entries. */
  private touchLocalDir(dir: number, nlinkDelta: number, now: number): void {
    const d = this.lastKnown.attr(dir);
    if (d) this.localAttr({ ...d, nlink: d.nlink + nlinkDelta, mtimeMs: now, ctimeMs: now });
  }

  // ---- the change feed ------------------------------------------------------------------

  /**
   * A commit from the change feed. Inodes whose cached version is older (another client
   * changed them) are revalidated here and in the kernel; our own commits, already known,
   * are skipped, so the kernel keeps the pages we wrote.
   */
  onRemoteCommit(c: { csn: number; inos: number[] }): void {
    // A commit of this mount's own journaled changes: what it shows already follows it.
    if (this.ownCsns.has(c.csn)) return;
    for (const ino of c.inos) {
      this.announced.set(ino, Math.max(c.csn, this.announced.get(ino) ?? 0));
      const known = this.attrs.get(ino);
      if (known && known.version >= c.csn) {
        // Already here: an answer to this mount's own commit that came after it (the uploader
        // committing blocks behind another client's setxattr). The kernel still holds the
        // attributes shown before, and the binding answers "no extended attributes" from them.
        this.options.invalidateAttrs?.(ino);
        continue;
      }
      if (this.ownCommits.get(ino) === c.csn) {
        // This mount's own change to the folder: its names and listing already follow it.
        this.forget(ino);
        this.options.invalidate?.(ino);
        continue;
      }
      this.revalidate(ino, c.csn);
    }
  }

  /**
   * The service no longer has the changes since this mount last heard of one (its history was
   * pruned while the feed was away): any inode may have changed, so everything known of every
   * inode, and what the kernel was told of it, is dropped as another client's change would.
   */
  historyLost(): void {
    const inos = new Set<number>([...this.attrs.keys(), ...this.kernelNames.keys(), ...this.seenVersion.keys(), ...this.lastKnown.inodes(), ...this.blockMap.inodes()]);
    this.dentries.clear();
    for (const ino of inos) this.revalidate(ino);
  }

  /**
   * Forgets cached metadata of an inode (another client changed it, in commit `csn` if known)
   * and tells the kernel. What is kept for outages goes only if it is older than that commit.
   */
  revalidate(ino: number, csn?: number): void {
    if (this.journal.affects(ino)) {
      // This mount's changes to it are not at the service yet: they stay what it shows, and
      // the word is weighed when they get there (this mount's own commit, or another's).
      if (csn !== undefined && Number.isFinite(csn)) {
        let set = this.missed.get(ino);
        if (!set) this.missed.set(ino, (set = new Set()));
        if (set.size < 1000) set.add(csn);
      } else {
        this.missed.set(ino, new Set([Infinity]));
      }
      this.options.invalidate?.(ino);
      return;
    }
    this.dirGen.set(ino, this.generation(ino) + 1);
    const held = this.kernelNames.get(ino);
    if (held) {
      this.kernelNames.delete(ino);
      for (const n of held.names) this.options.invalidateEntry?.(ino, n);
    }
    this.forget(ino);
    this.lastKnown.forget(ino, csn);
    this.blockMap.drop(ino);
    this.seenVersion.delete(ino);
    this.options.invalidate?.(ino);
  }
}
