/**
 * How the mount looks up and changes names and attributes: lookup, create, mkdir, mknod,
 * symlink, link, unlink, rmdir, rename and setattr (xattrs: xattrs.ts; when a change may be
 * decided locally: gate.ts).
 *
 * Write-back (the eventual mode, the default): a change the mount can decide locally — it
 * holds the folder's current listing and the attributes of what it touches — is applied to
 * what it shows and put in the journal, which sends it to the service at once, in batches;
 * the call returns without a round trip. A change it cannot decide locally first lets what
 * the journal holds reach the service, then goes there itself. A file someone holds a lock
 * on (the strong mode) has its attributes changed at the service, synchronously.
 * While the service cannot be reached, every change goes to the journal (the offline mode).
 *
 * Promises:
 * - names reach the service sealed (encrypted, looked up by keyed hash); so do symlink
 *   targets, xattr names and values;
 * - offline, a change is made only when this mount knows enough to decide it as the service
 *   would (the folder's full listing, the entry's attributes); otherwise it fails with
 *   ServiceUnavailable, and nothing is half-applied;
 * - new inodes take numbers reserved at the service beforehand, so a create needs no reply
 *   to name its inode, and works offline.
 */
import {
  EntryExistsError, IsDirectoryError, NameTooLongError, NoEntryError, NotDirectoryError, NotEmptyError, NotPermittedError,
} from '../../errors.js';
import type { BlockCache } from '../../cache/block-cache.js';
import type { NameCipher } from '../../crypto/names.js';
import { LOOKUP_BLOCKS_MAX, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, isDir, type Attr, type AttrChanges, type BlockRef, type MetaEngine, type NewNode } from '../../meta/types.js';
import type { BlockMap } from '../data/block-map.js';
import type { MetaJournal } from './journal.js';
import type { Listings } from './listing.js';
import type { NamespaceView } from './view.js';
import type { ChangeGate } from './gate.js';


export interface Caller {
  uid: number;
  gid: number;
  pid?: number;
}

export interface SetAttrRequest {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeMs?: number | 'now';
  mtimeMs?: number | 'now';
  /** Clear set-user-ID, and set-group-ID where the group may execute, of a file that is not a
   * folder, as a chown, a truncate by an unprivileged caller or a write by one does (the FUSE
   * binding leaves this to the file system: SEMANTICS.md). A mode given with it wins. */
  dropPrivileges?: boolean;
}

const S_ISUID = 0o4000, S_ISGID = 0o2000, S_IXGRP = 0o010;

/** The mode without the set-ID bits a change of owner or content drops (as Linux's
 * should_remove_suid: set-group-ID only with group execute, which marks a set-GID program). */
function withoutPrivileges(mode: number): number {
  if (isDir(mode)) return mode;
  let m = mode & ~S_ISUID;
  if ((m & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP)) m &= ~S_ISGID;
  return m;
}

export class NamespaceChanges {
  /** Inode numbers reserved at the service for new entries (so creating works offline too). */
  private readonly reservedInos: number[] = [];
  private reserving?: Promise<void>;

  constructor(private readonly meta: MetaEngine, private readonly names: NameCipher, private readonly view: NamespaceView, private readonly journal: MetaJournal,
    private readonly gate: ChangeGate,
    private readonly blockMap: BlockMap, private readonly cache: BlockCache, private readonly listings: Listings) {}

  /**
   * Sets aside inode numbers for new entries while the service answers, so that files and
   * folders can be made while it does not (the agent calls this at mount).
   */
  async reserveInodes(): Promise<void> {
    this.reserving ??= (async () => {
      const r = await this.meta.reserveInodes(1000);
      for (let i = 0; i < r.count; i++) this.reservedInos.push(r.first + i);
    })().finally(() => { this.reserving = undefined; });
    return this.reserving;
  }

  private async newIno(): Promise<number> {
    if (this.reservedInos.length < 500) void this.reserveInodes().catch(() => {});
    if (this.reservedInos.length === 0) await this.reserveInodes();
    return this.reservedInos.shift()!;
  }

  /** Whether lookups and creates in `dir` may be decided from this mount's listing of it. */
  private decidable(dir: number, strict: boolean): boolean {
    return !strict || this.view.trustsListing(dir);
  }

  /** A folder this mount looked into (or found nothing in) and has not listed: its listing is fetched in the background. */
  private learnListing(dir: number): void {
    if (this.gate.writeBack) this.listings.learnSoon(dir);
  }

  // ---- lookup and attributes ------------------------------------------------------------

  async lookup(parent: number, name: string): Promise<Attr> {
    const view = this.view;
    const hit = view.cachedEntry(parent, name);
    view.gaveName(parent, name);
    if (hit) {
      view.named(hit.ino, parent, name);
      return view.overlay(hit);
    }
    const gen = view.generation(parent);
    const current = this.gate.writeBack && view.lastKnown.offlineSinceMs === 0 && view.trustsListing(parent);
    if (current || this.journal.affects(parent)) {
      // A name the folder's current listing lacks (a name about to be made) costs no round
      // trip; one it has is answered locally only while this mount's changes to it wait
      // (otherwise the service's answer brings fresh attributes and the first block refs).
      const local = view.localEntry(parent, name);
      if (local === null) throw new NoEntryError(`no entry ${name}`);
      if (local && this.journal.affects(parent)) {
        view.named(local.ino, parent, name);
        return view.overlay(local);
      }
      // A listing the change feed keeps current, and attributes no word of a change has
      // dropped since they were learnt: the name is answered here too.
      const known = local && current && view.servesListing(parent) ? view.heldAttr(local.ino) : undefined;
      if (known) {
        view.keepEntry(parent, name, known.ino, gen);
        view.named(known.ino, parent, name);
        if (isDir(known.mode)) this.learnListing(known.ino);
        return view.overlay(known);
      }
    }
    // The first block refs come with the answer (256 MiB of 1 MiB blocks): a read from the disk
    // cache gets that far in ~130 ms, time for the rest of the map to arrive (see Vfs.openFile).
    const { blocks, ...attr } = await view.lastKnown.whenUnreachable<Attr & { blocks?: BlockRef[] }>(
      () => this.meta.lookup(parent, this.names.hash(parent, name), { blocks: LOOKUP_BLOCKS_MAX }).catch((e) => {
        if (e instanceof NoEntryError) this.learnListing(parent);
        throw e;
      }), (e) => {
        // Offline, a name missing from a folder's last full listing does not exist (so it can be made).
        const known = view.localEntry(parent, name);
        if (known === null) throw new NoEntryError(`no entry ${name}`);
        if (!known) throw e;
        return known;
      });
    const a = view.remember(attr);
    if (blocks) this.blockMap.prime(a, blocks);
    // The folder looked into, and a folder reached by path: their listings come in the
    // background, so names in them are decided locally from now on (and while the service
    // is away): `rm -rf DIR` then removes DIR itself without waiting for the service.
    this.learnListing(parent);
    if (isDir(a.mode)) this.learnListing(a.ino);
    view.keepEntry(parent, name, a.ino, gen);
    view.named(a.ino, parent, name);
    return view.overlay(a);
  }

  /** Changes mode, owner and times (a size is the data side's: Vfs.setattr truncates first). */
  async setattr(ino: number, req: Omit<SetAttrRequest, 'size'>): Promise<Attr> {
    const now = Date.now();
    const changes: AttrChanges = {};
    if (req.mode !== undefined) changes.mode = req.mode & 0o7777;
    else if (req.dropPrivileges) {
      const { mode } = this.view.overlay(await this.view.committedAttr(ino));
      if (withoutPrivileges(mode) !== mode) changes.mode = withoutPrivileges(mode) & 0o7777;
    }
    if (req.uid !== undefined) changes.uid = req.uid;
    if (req.gid !== undefined) changes.gid = req.gid;
    if (req.atimeMs !== undefined) changes.atimeMs = Math.round(req.atimeMs === 'now' ? now : req.atimeMs);
    if (req.mtimeMs !== undefined) {
      changes.mtimeMs = Math.round(req.mtimeMs === 'now' ? now : req.mtimeMs);
      const p = this.cache.pending(ino);
      if (p) this.cache.setPending({ ...p, mtimeMs: changes.mtimeMs });
    }
    if (Object.keys(changes).length === 0) return this.view.overlay(await this.view.committedAttr(ino));
    return this.view.overlay(await this.setAttr(ino, changes));
  }

  /** Changes attributes at the service, or offline into the journal. */
  setAttr(ino: number, changes: AttrChanges): Promise<Attr> {
    return this.gate.change(async () => this.view.remember(await this.meta.setAttr(ino, changes)), (strict) => {
      const a = this.gate.knownAttr(ino, strict);
      // The change time goes with the change: the service keeps the one this mount showed
      // (`tar c` right after `tar x` saw folders' ctimes jump as their changes arrived).
      const ctimeMs = changes.ctimeMs ?? Date.now();
      this.journal.append({ kind: 'setAttr', ino, changes: { ...changes, ctimeMs } });
      const { mode, ...rest } = changes;
      return this.view.localAttr({ ...a, ...rest, ...(mode === undefined ? {} : { mode: (a.mode & S_IFMT) | (mode & 0o7777) }), ctimeMs });
    }, ino);
  }

  /** Sets the size (truncate's metadata half); true if the change was journaled offline. */
  async setSize(ino: number, size: number, mtimeMs: number): Promise<boolean> {
    await this.setAttr(ino, { size, mtimeMs });
    return this.journal.affects(ino);
  }

  // ---- creating and removing names ------------------------------------------------------

  private async newOwner(parent: number, caller: Caller, mode: number): Promise<{ gid: number; mode: number }> {
    const p = await this.view.committedAttr(parent);
    if (p.mode & S_ISGID) return { gid: p.gid, mode: isDir(mode) ? mode | S_ISGID : mode };
    return { gid: caller.gid, mode };
  }

  async mkdir(parent: number, name: string, mode: number, caller: Caller): Promise<Attr> {
    const owner = await this.newOwner(parent, caller, S_IFDIR | (mode & 0o7777));
    return this.makeNode(parent, name, { mode: owner.mode, uid: caller.uid, gid: owner.gid });
  }

  async mknod(parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    if ((mode & S_IFMT) === 0) mode |= S_IFREG;
    const owner = await this.newOwner(parent, caller, mode);
    return this.makeNode(parent, name, { mode: owner.mode, uid: caller.uid, gid: owner.gid, rdev });
  }

  async symlink(parent: number, name: string, target: string, caller: Caller): Promise<Attr> {
    if (Buffer.byteLength(target) > 4095) throw new NameTooLongError('symlink target is longer than 4095 bytes');
    if (target.length === 0) throw new NoEntryError('empty symlink target');
    const owner = await this.newOwner(parent, caller, S_IFLNK | 0o777);
    return this.makeNode(parent, name, {
      mode: S_IFLNK | 0o777, uid: caller.uid, gid: owner.gid, size: Buffer.byteLength(target),
      target: this.names.sealBlob(0, 'symlink', Buffer.from(target, 'utf8')),
    });
  }

  /** Makes a new entry under a reserved inode number: at the service, or offline into the journal. */
  private async makeNode(parent: number, name: string, node: NewNode): Promise<Attr> {
    const view = this.view;
    view.forgetName(parent, name);
    const sealed = this.names.seal(parent, name);
    const ino = await this.newIno();
    return this.gate.change(async () => {
      const a = await this.meta.create(parent, sealed, { ...node, ino });
      view.forget(parent);
      view.changedName(parent, name, view.remember(a), { csn: a.version, fresh: true });
      return a;
    }, (strict) => {
      const there = this.decidable(parent, strict) ? view.localEntry(parent, name) : undefined;
      if (there) throw new EntryExistsError('an entry with that name already exists');
      if (there === undefined) throw this.gate.unknownOffline(`the folder's entries`);
      const now = Date.now();
      this.journal.append({ kind: 'create', parent, name: sealed, node: { ...node, ino, timeMs: now } });
      const attr: Attr = {
        ino, mode: node.mode, uid: node.uid, gid: node.gid, size: node.size ?? 0, nlink: isDir(node.mode) ? 2 : 1, rdev: node.rdev ?? 0,
        atimeMs: now, mtimeMs: now, ctimeMs: now, crtimeMs: now, version: 0, hasXattrs: false,
      };
      view.joinLocally(parent, name, view.localAttr(attr), now, true);
      return attr;
    });
  }

  async readlink(ino: number): Promise<string> {
    const made = this.journal.pendingCreate(ino)?.node.target;
    return this.names.openBlob(0, 'symlink', made ?? await this.meta.readlink(ino)).toString('utf8');
  }

  async link(ino: number, newParent: number, newName: string): Promise<Attr> {
    const view = this.view;
    view.forgetName(newParent, newName);
    const sealed = this.names.seal(newParent, newName);
    return view.overlay(await this.gate.change(async () => {
      view.forget(newParent);
      const a = view.remember(await this.meta.link(ino, newParent, sealed));
      view.changedName(newParent, newName, a, { csn: a.version });
      return a;
    }, (strict) => {
      const a = this.gate.knownAttr(ino, strict);
      if (isDir(a.mode)) throw new NotPermittedError('hard links to directories are not allowed');
      if (a.nlink === 0) throw new NoEntryError(`inode ${ino} has been removed`);
      const there = this.decidable(newParent, strict) ? view.localEntry(newParent, newName) : undefined;
      if (there) throw new EntryExistsError('an entry with that name already exists');
      if (there === undefined) throw this.gate.unknownOffline(`the folder's entries`);
      this.journal.append({ kind: 'link', ino, parent: newParent, name: sealed });
      const now = Date.now();
      const linked = view.localAttr({ ...a, nlink: a.nlink + 1, ctimeMs: now });
      view.joinLocally(newParent, newName, linked, now, false);
      return linked;
    }, ino));
  }

  /** Removes a name; returns the inode's attributes after (nlink 0: it has no name left). */
  async unlink(parent: number, name: string): Promise<Attr> {
    this.view.forgetName(parent, name);
    const hash = this.names.hash(parent, name);
    return this.gate.change(async () => {
      const a = await this.meta.unlink(parent, hash);
      this.view.changedName(parent, name, undefined, { removed: true, csn: a.version });
      this.view.forget(parent);
      return this.view.remember(a);
    }, (strict) => {
      const a = this.knownOffline(parent, name, strict);
      if (isDir(a.mode)) throw new IsDirectoryError('is a directory');
      this.journal.append({ kind: 'unlink', parent, hash, ino: a.ino });
      return this.removedLocally(parent, name, a);
    });
  }

  async rmdir(parent: number, name: string): Promise<void> {
    this.view.forgetName(parent, name);
    const hash = this.names.hash(parent, name);
    await this.gate.change(async () => {
      await this.meta.rmdir(parent, hash);
      this.view.changedName(parent, name, undefined, { removed: true });
      this.view.forget(parent);
    }, (strict) => {
      const a = this.knownOffline(parent, name, strict);
      this.emptyOffline(a, strict);
      this.journal.append({ kind: 'rmdir', parent, hash, ino: a.ino });
      this.removedLocally(parent, name, a);
    });
  }

  /** Renames; returns what the new name held before, if anything (nlink 0: it has no name left). */
  async rename(parent: number, name: string, newParent: number, newName: string, flags: { noReplace?: boolean; exchange?: boolean } = {}): Promise<Attr | undefined> {
    if (flags.exchange) return this.exchange(parent, name, newParent, newName);
    const view = this.view;
    view.forgetName(parent, name);
    view.forgetName(newParent, newName);
    const hash = this.names.hash(parent, name);
    const sealed = this.names.seal(newParent, newName);
    const moving = view.localEntry(parent, name);
    return this.gate.change(async () => {
      const r = await this.meta.rename(parent, hash, newParent, sealed, { noReplace: flags.noReplace });
      view.changedName(parent, name, undefined, { removed: true });
      view.changedName(newParent, newName, moving ?? undefined);
      view.forget(parent, newParent);
      if (r) view.forget(r.ino);
      return r;
    }, (strict) => {
      const a = this.knownOffline(parent, name, strict);
      const target = this.decidable(newParent, strict) ? view.localEntry(newParent, newName) : undefined;
      if (target === undefined) throw this.gate.unknownOffline(`the folder's entries`);
      if (target?.ino === a.ino) return undefined;
      if (target) {
        if (flags.noReplace) throw new EntryExistsError('an entry with that name already exists');
        if (isDir(target.mode) && !isDir(a.mode)) throw new IsDirectoryError('is a directory');
        if (isDir(target.mode)) this.emptyOffline(target, strict);
        else if (isDir(a.mode)) throw new NotDirectoryError('not a directory');
      }
      this.journal.append({ kind: 'rename', parent, hash, newParent, newName: sealed, ino: a.ino, ...(target ? { replaces: target.ino } : {}) });
      const gone = target ? this.removedLocally(newParent, newName, target) : undefined;
      const now = Date.now();
      view.leaveLocally(parent, name, a, now);
      view.joinLocally(newParent, newName, view.localAttr({ ...a, ctimeMs: now }), now, false);
      return gone;
    });
  }

  /** RENAME_EXCHANGE: the two names swap what they hold (both must exist). */
  private async exchange(parent: number, name: string, newParent: number, newName: string): Promise<undefined> {
    const view = this.view;
    view.forgetName(parent, name);
    view.forgetName(newParent, newName);
    const hash = this.names.hash(parent, name);
    const sealed = this.names.seal(newParent, newName);
    return this.gate.change(async () => {
      await this.meta.rename(parent, hash, newParent, sealed, { exchange: true });
      view.changedName(parent, name, undefined);
      view.changedName(newParent, newName, undefined);
      view.forget(parent, newParent);
      return undefined;
    }, (strict) => {
      const a = this.knownOffline(parent, name, strict);
      const b = this.knownOffline(newParent, newName, strict);
      if (a.ino === b.ino) return undefined;
      this.journal.append({ kind: 'rename', parent, hash, newParent, newName: sealed, ino: a.ino, replaces: b.ino, exchange: true });
      const now = Date.now();
      view.leaveLocally(parent, name, a, now);
      view.leaveLocally(newParent, newName, b, now);
      view.joinLocally(parent, name, view.localAttr({ ...b, ctimeMs: now }), now, false);
      view.joinLocally(newParent, newName, view.localAttr({ ...a, ctimeMs: now }), now, false);
      return undefined;
    });
  }

  /** The metadata half of dropping an inode that lost its last name (its data is dropped first). */
  async reclaim(ino: number): Promise<void> {
    this.view.forget(ino);
    await this.gate.change(() => this.meta.reclaim(ino).catch((e) => { if (!(e instanceof NoEntryError)) throw e; }),
      () => this.journal.append({ kind: 'reclaim', ino }));
  }

  /** The entry under a name as this mount knows it offline (ENOENT if known absent). */
  private knownOffline(parent: number, name: string, strict: boolean): Attr {
    const a = this.decidable(parent, strict) ? this.view.localEntry(parent, name) : undefined;
    if (a === null) throw new NoEntryError(`no entry ${name}`);
    if (!a) throw this.gate.unknownOffline(`the folder's entries`);
    return a;
  }

  /** A name removed offline: gone from its folder; the inode has one link less. */
  private removedLocally(parent: number, name: string, a: Attr): Attr {
    const now = Date.now();
    this.view.leaveLocally(parent, name, a, now);
    return this.view.localAttr({ ...a, nlink: isDir(a.mode) ? 0 : a.nlink - 1, ctimeMs: now });
  }

  /** Offline, a folder may go only if this mount knows it is empty. */
  private emptyOffline(dir: Attr, strict: boolean): void {
    if (!isDir(dir.mode)) throw new NotDirectoryError('not a directory');
    const listing = this.decidable(dir.ino, strict) ? this.view.lastKnown.listing(dir.ino) : undefined;
    if (!listing) throw this.gate.unknownOffline(`the folder's entries`);
    if (listing.length > 0) throw new NotEmptyError('directory not empty');
  }
}
