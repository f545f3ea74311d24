/**
 * The metadata journal: changes to names and attributes this mount made and the service does
 * not have yet — create, mkdir, symlink, link, unlink, rmdir, rename, chmod/chown/utimes/truncate,
 * setxattr and removexattr.
 * In the eventual mode every change the mount can decide locally comes here (write-back);
 * while the service cannot be reached, every change does. Each is kept in order in a file of
 * its own in the cache directory (so a restart keeps it, beside the dirty blocks) and sent
 * to the service at once, in order, in batches: one request, many changes, one transaction
 * (`applyBatch`); the next batch takes what was appended meanwhile.
 *
 * Promises:
 * - a change is in the journal's file before `append` returns (a kill -9 loses nothing);
 * - changes reach the service in the order they were made, each batch a prefix of what waits;
 *   a change the service refuses in a batch is replayed alone by the rules below, and the
 *   batch after it starts behind it;
 * - replay is idempotent: a create carries an inode number reserved beforehand (a retry
 *   finds its own inode under the name); an unlink, rmdir or rename first checks that the
 *   name still holds the inode this mount saw, and one already done is not done twice;
 * - nothing written offline is lost to a conflict: a name another client took meanwhile
 *   gets the journaled file under "NAME (conflict copy N)", a folder removed meanwhile gets it
 *   at the top of the filespace, and another client's file is never replaced or deleted;
 * - while an inode has changes waiting, `affects(ino)` says so: the mount answers for it from
 *   what it knows locally, and its data is not committed before its creation is.
 */
import { EntryExistsError, NoAttributeError, NoEntryError, NotEmptyError, NotPermittedError, ServiceUnavailableError } from '../../errors.js';
import { ROOT_INO, type BatchOp, type BatchResult, type EntryName, type MetaEngine } from '../../meta/types.js';
import { decodeWire, encodeWire } from '../../meta/wire.js';
import type { UploadHolds } from '../../upload/types.js';
import { Signal } from '../../util/signal.js';
import { inodesOf, type CreateOp, type JournalHooks, type JournalOp, type JournalStore, type PendingXattr, type Replayed } from './journal-ops.js';

export { conflictCopyNames } from './journal-ops.js';
export type { CreateOp, JournalHooks, JournalOp, JournalStore, PendingXattr, Replayed } from './journal-ops.js';

/** Changes sent in one batch at most. */
const BATCH_OPS = 256;
/**
 * How long a change waits for others to join its batch when nothing is in flight (ms): a
 * service nearby commits each batch with one disk flush, so a burst of changes is sent as
 * one; far away, the batch in flight already gathers the next.
 */
const GATHER_MS = 5;
/** How long a short batch waits behind the one that came back (ms; not when a flush waits). */
const FOLLOW_MS = 20;

const RETRY_MS = 2000;

const MAX_CONFLICT_NAMES = 100;

export class MetaJournal implements UploadHolds {
  /** Emitted after each change replayed (or dropped). */
  readonly replayed = new Signal<Replayed>();
  /** For the uploader: a replay may release inodes it held back. */
  readonly released = this.replayed;
  private readonly entries: { seq: number; op: JournalOp; atMs: number }[];
  /** Changes sent so far (appended ones get the next numbers): what `flush` waits on. */
  private sent = 0;
  private appended = 0;
  private flushWaiters: { upTo: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Requests to the service that carried changes, and changes they carried (lucid status, bench). */
  batches = 0;
  batchedOps = 0;
  /** Changes another client's change made land otherwise (a conflict copy) or not at all (skipped), since the mount started. */
  conflicts = 0;
  private batchesRefused = false;
  private readonly pending = new Map<number, number>();
  private readonly creates = new Map<number, CreateOp>();
  /** How many xattr changes wait per inode (so a file without any is answered without a scan). */
  private readonly xattrChanges = new Map<number, number>();
  /** Where replay put an entry other than where it was journaled ("parent:hash" → place). */
  private readonly moved = new Map<string, { parent: number; name: EntryName }>();
  private replaying?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private gathering?: NodeJS.Timeout;
  private meta?: MetaEngine;

  constructor(private readonly store: JournalStore, private readonly engine: MetaEngine, private readonly hooks: JournalHooks) {
    // Kept as the service's wire JSON (binary values as {"$b": base64}).
    const now = Date.now();
    this.entries = store.entries().map((e) => ({ seq: e.seq, op: decodeWire(e.op) as JournalOp, atMs: now }));
    for (const e of this.entries) this.track(e.op, 1);
    this.appended = this.entries.length;
  }

  /** Changes waiting for the service. */
  get size(): number {
    return this.entries.length;
  }

  /** How long the oldest change has waited (ms; 0 when none waits). */
  get oldestAgeMs(): number {
    return this.entries.length ? Date.now() - this.entries[0].atMs : 0;
  }

  /** Whether changes to `ino` (an inode, or a folder's entries) are waiting. */
  affects(ino: number): boolean {
    return this.pending.has(ino);
  }

  /** The uploader holds back the blocks of inodes with changes waiting. */
  held(ino: number): boolean {
    return this.affects(ino);
  }

  /** The journaled creation of `ino`, while it waits. */
  pendingCreate(ino: number): CreateOp | undefined {
    return this.creates.get(ino);
  }

  /** The changes to `ino`'s extended attributes that wait, oldest first. */
  pendingXattrs(ino: number): PendingXattr[] {
    if (!this.xattrChanges.has(ino)) return [];
    const out: PendingXattr[] = [];
    for (const { op } of this.entries) {
      if (op.kind === 'setXattr' && op.ino === ino) out.push({ removed: false, entry: op.entry });
      else if (op.kind === 'removeXattr' && op.ino === ino) out.push({ removed: true, hash: op.hash });
    }
    return out;
  }

  /** Keeps a change (on disk before this returns) and replays it as soon as the service answers. */
  append(op: JournalOp): void {
    const seq = this.store.append(encodeWire(op));
    this.entries.push({ seq, op, atMs: Date.now() });
    this.appended++;
    this.track(op, 1);
    this.soon();
  }

  /**
   * Resolves once every change appended before the call is at the service (fsync, a lock
   * taken, unmount); rejects with ServiceUnavailableError if a try to send them finds the
   * service away (they stay journaled, and go when it is back).
   */
  flush(): Promise<void> {
    if (this.entries.length === 0) return Promise.resolve();
    const upTo = this.appended;
    const p = new Promise<void>((resolve, reject) => this.flushWaiters.push({ upTo, resolve, reject }));
    void this.replay();
    return p;
  }

  /** Sends what waits within GATHER_MS (appends made meanwhile join the batch). */
  private soon(): void {
    if (!this.meta || this.timer || this.gathering) return;
    this.gathering = setTimeout(() => {
      this.gathering = undefined;
      void this.replay();
    }, GATHER_MS);
  }

  private settleFlushes(failure?: Error): void {
    const waiting = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiting) {
      if (this.sent >= w.upTo) w.resolve();
      else if (failure) w.reject(failure);
      else this.flushWaiters.push(w);
    }
  }

  private track(op: JournalOp, delta: 1 | -1): void {
    for (const ino of inodesOf(op)) {
      const n = (this.pending.get(ino) ?? 0) + delta;
      if (n > 0) this.pending.set(ino, n);
      else this.pending.delete(ino);
    }
    if (op.kind === 'create') {
      if (delta > 0) this.creates.set(op.node.ino, op);
      else this.creates.delete(op.node.ino);
    } else if (op.kind === 'setXattr' || op.kind === 'removeXattr') {
      const n = (this.xattrChanges.get(op.ino) ?? 0) + delta;
      if (n > 0) this.xattrChanges.set(op.ino, n);
      else this.xattrChanges.delete(op.ino);
    }
  }

  /** Replays from now on (retrying every 2 s while the service is away). */
  start(): void {
    this.meta = this.engine;
    if (this.entries.length > 0) void this.replay();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearTimeout(this.gathering);
    this.gathering = undefined;
    this.meta = undefined;
    this.settleFlushes(new ServiceUnavailableError('the mount is stopping: changes not yet at the metadata service stay journaled for the next mount'));
  }

  /** Stops replaying and closes the store (what waits stays there for the next mount). */
  close(): void {
    this.stop();
    this.store.close?.();
  }

  private schedule(): void {
    if (this.timer || !this.meta) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.replay();
    }, RETRY_MS);
    this.timer.unref();
  }

  /**
   * Sends the waiting changes in order; resolves when the journal is empty or the service
   * cannot be reached (it tries again later). One replay at a time.
   */
  async replay(): Promise<void> {
    // One already running may have started before the service came back: this one starts after it.
    if (this.replaying) await this.replaying;
    this.replaying ??= this.replayAll().finally(() => { this.replaying = undefined; });
    return this.replaying;
  }

  private async replayAll(): Promise<void> {
    const meta = this.meta;
    if (!meta) return;
    try {
      let first = true;
      while (this.entries.length > 0 && this.meta === meta) {
        // Behind a batch that came back, a short one waits a moment for more to join it,
        // unless someone waits for it: a service nearby answers in a millisecond, and sent at
        // once every batch would carry a change or two, each its own transaction.
        if (!first && this.entries.length < BATCH_OPS && this.flushWaiters.length === 0) {
          await new Promise((r) => setTimeout(r, FOLLOW_MS));
          if (this.meta !== meta || this.entries.length === 0) break;
        }
        first = false;
        const batch = this.entries.slice(0, BATCH_OPS);
        const res = await this.sendBatch(meta, batch.map((e) => e.op));
        res.applied.forEach((done, i) => this.done(batch[i], { inos: inodesOf(batch[i].op), asJournaled: true, attr: done.value ?? undefined, csn: done.csn }));
        // One row removal for the whole batch: replay is idempotent if a stop comes first.
        if (res.applied.length > 0) this.store.removeThrough(batch[res.applied.length - 1].seq);
        if (!res.failed) continue;
        // Refused as sent (a name taken, a folder no longer empty, an inode gone, or a change
        // already made by a reply that was lost): replayed alone, by the rules of a conflict.
        const refused = batch[res.failed.index];
        let asJournaled = false;
        try {
          asJournaled = await this.apply(meta, refused.op);
        } catch (e) {
          if (e instanceof ServiceUnavailableError) throw e;
          this.hooks.log(`a change could not be made at the metadata service and is dropped (${refused.op.kind} of inode ${'ino' in refused.op ? refused.op.ino : refused.op.node.ino}): ${(e as Error).message}`);
        }
        this.done(refused, { inos: inodesOf(refused.op), asJournaled });
        this.store.removeThrough(refused.seq);
      }
    } catch (e) {
      if (!(e instanceof ServiceUnavailableError)) throw e;
      this.settleFlushes(e);
      this.schedule();
    }
  }

  /**
   * Sends changes as one batch. A service that refuses batches whole (one older than them)
   * gets the first change alone instead, by `apply`, and no batch again from this mount.
   */
  private async sendBatch(meta: MetaEngine, ops: JournalOp[]): Promise<BatchResult> {
    if (!this.batchesRefused) {
      try {
        const res = await meta.applyBatch(ops.map((op) => this.batchOpOf(op)));
        this.batches++;
        this.batchedOps += res.applied.length;
        return res;
      } catch (e) {
        if (e instanceof ServiceUnavailableError) throw e;
        this.batchesRefused = true;
        this.hooks.log(`the metadata service refused a batch of changes (${(e as Error).message}): they go one at a time`);
      }
    }
    return { applied: [], failed: { index: 0, code: 'NotSupported', message: 'one at a time' } };
  }

  /** A change landed otherwise than it was made, or not at all: logged and counted (lucid status). */
  private conflict(line: string): void {
    this.conflicts++;
    this.hooks.log(`conflict: ${line}`);
  }

  /** One change is at the service (or dropped): forgotten here (its row goes with its batch's), and said. */
  private done(entry: { seq: number; op: JournalOp }, replayed: Replayed): void {
    if (this.entries[0] !== entry) return; // a replay before this one already took it
    this.entries.shift();
    this.track(entry.op, -1);
    this.sent++;
    this.replayed.emit(replayed);
    if (this.entries.length === 0) this.moved.clear();
    this.settleFlushes();
  }

  /** A journaled change as the batch call takes it, with the preconditions replay checks. */
  private batchOpOf(op: JournalOp): BatchOp {
    switch (op.kind) {
      case 'create': return { op: 'create', parent: op.parent, name: op.name, node: op.node };
      case 'link': return { op: 'link', ino: op.ino, parent: op.parent, name: op.name };
      case 'unlink':
      case 'rmdir': {
        const at = this.place(op.parent, op.hash);
        return { op: op.kind, parent: at.parent, hash: at.hash, expectIno: op.ino };
      }
      case 'rename': {
        const at = this.place(op.parent, op.hash);
        if (op.exchange) return { op: 'rename', parent: at.parent, hash: at.hash, newParent: op.newParent, newName: op.newName, exchange: true, expectIno: op.ino, replaces: op.replaces };
        return { op: 'rename', parent: at.parent, hash: at.hash, newParent: op.newParent, newName: op.newName, expectIno: op.ino, ...(op.replaces ? { replaces: op.replaces } : { noReplace: true }) };
      }
      case 'setAttr': return { op: 'setAttr', ino: op.ino, changes: op.changes };
      case 'reclaim': return { op: 'reclaim', ino: op.ino };
      // Decided locally with what this mount knew: sent as a plain set (the last word wins).
      case 'setXattr': return { op: 'setXattr', ino: op.ino, entry: op.entry };
      case 'removeXattr': return { op: 'removeXattr', ino: op.ino, hash: op.hash };
    }
  }

  /** Where an entry journaled as (parent, hash) is now. */
  private place(parent: number, hash: Buffer): { parent: number; hash: Buffer } {
    const m = this.moved.get(`${parent}:${hash.toString('hex')}`);
    return m ? { parent: m.parent, hash: m.name.hash } : { parent, hash };
  }

  /** The inode under a name now, or undefined. */
  private async inodeAt(meta: MetaEngine, parent: number, hash: Buffer): Promise<number | undefined> {
    try {
      return (await meta.lookup(parent, hash)).ino;
    } catch (e) {
      if (e instanceof NoEntryError) return undefined;
      throw e;
    }
  }

  /** Whether inode `ino` still has a name at the service. */
  private async exists(meta: MetaEngine, ino: number): Promise<boolean> {
    try {
      return (await meta.getAttr(ino)).nlink > 0;
    } catch (e) {
      if (e instanceof NoEntryError) return false;
      throw e;
    }
  }

  /** Replays one change; true if it landed exactly as journaled. */
  private async apply(meta: MetaEngine, op: JournalOp): Promise<boolean> {
    switch (op.kind) {
      case 'create': {
        const where = await this.settle(meta, op.parent, op.name, (parent, name) => meta.create(parent, name, op.node), 'made');
        if (where) this.moved.set(`${op.parent}:${op.name.hash.toString('hex')}`, where);
        return !where;
      }
      case 'unlink':
      case 'rmdir': {
        const at = this.place(op.parent, op.hash);
        const there = await this.inodeAt(meta, at.parent, at.hash);
        if (there === undefined) return true; // already gone
        if (there !== op.ino) {
          this.conflict(`a delete of inode ${op.ino} skipped: another client put inode ${there} under that name meanwhile`);
          return false;
        }
        try {
          if (op.kind === 'unlink') await meta.unlink(at.parent, at.hash);
          else await meta.rmdir(at.parent, at.hash);
        } catch (e) {
          if (e instanceof NoEntryError) return true;
          if (e instanceof NotEmptyError) {
            this.conflict(`a removal of folder inode ${op.ino} skipped: another client put files in it meanwhile`);
            return false;
          }
          throw e;
        }
        return true;
      }
      case 'rename': {
        const at = this.place(op.parent, op.hash);
        const there = await this.inodeAt(meta, at.parent, at.hash);
        if (op.exchange) {
          const other = await this.inodeAt(meta, op.newParent, op.newName.hash);
          if (there === op.replaces && other === op.ino) return true; // already done
          if (there !== op.ino || other !== op.replaces) {
            this.conflict(`an exchange of inodes ${op.ino} and ${op.replaces} skipped: another client changed one of the names meanwhile`);
            return false;
          }
          await meta.rename(at.parent, at.hash, op.newParent, op.newName, { exchange: true });
          return true;
        }
        if (there !== op.ino) {
          if (there === undefined && (await this.inodeAt(meta, op.newParent, op.newName.hash)) === op.ino) return true; // already done
          this.conflict(`a rename of inode ${op.ino} skipped: its name was changed by another client meanwhile`);
          return false;
        }
        const target = await this.inodeAt(meta, op.newParent, op.newName.hash);
        // Replace only what this mount saw there; another client's file there is kept.
        const replace = target !== undefined && target === op.replaces;
        const where = await this.settle(meta, op.newParent, op.newName, (parent, name) =>
          meta.rename(at.parent, at.hash, parent, name, { noReplace: !replace }), 'renamed');
        if (where) this.moved.set(`${op.newParent}:${op.newName.hash.toString('hex')}`, where);
        return !where;
      }
      case 'setAttr':
        try {
          await meta.setAttr(op.ino, op.changes);
          return true;
        } catch (e) {
          if (!(e instanceof NoEntryError)) throw e;
          return false;
        }
      case 'reclaim':
        try {
          await meta.reclaim(op.ino);
        } catch (e) {
          if (!(e instanceof NoEntryError) && !(e instanceof NotPermittedError)) throw e;
        }
        return true;
      case 'link': {
        if ((await this.inodeAt(meta, op.parent, op.name.hash)) === op.ino) return true; // already done
        if (!(await this.exists(meta, op.ino))) {
          this.conflict(`a hard link to inode ${op.ino} skipped: another client removed the file meanwhile`);
          return false;
        }
        const where = await this.settle(meta, op.parent, op.name, (parent, name) => meta.link(op.ino, parent, name), 'linked');
        if (where) this.moved.set(`${op.parent}:${op.name.hash.toString('hex')}`, where);
        return !where;
      }
      case 'setXattr':
      case 'removeXattr':
        try {
          if (op.kind === 'setXattr') await meta.setXattr(op.ino, op.entry);
          else await meta.removeXattr(op.ino, op.hash);
          return true;
        } catch (e) {
          if (e instanceof NoAttributeError) return true; // removed already
          if (!(e instanceof NoEntryError)) throw e;
          return false;
        }
    }
  }

  /**
   * Puts an entry in place with `put`: under its own name, or when another client took the
   * name (or removed the folder) meanwhile, under the next free conflict name (at the top
   * of the filespace if the folder is gone). Returns where it went if not where it was meant.
   */
  private async settle(meta: MetaEngine, parent: number, name: EntryName, put: (parent: number, name: EntryName) => Promise<unknown>,
    what: string): Promise<{ parent: number; name: EntryName } | undefined> {
    try {
      await put(parent, name);
      return undefined;
    } catch (e) {
      if (!(e instanceof EntryExistsError) && !(e instanceof NoEntryError)) throw e;
    }
    for (let n = 1; n <= MAX_CONFLICT_NAMES; n++) {
      for (const dir of [parent, ROOT_INO]) {
        const other = this.hooks.conflictName(parent, name, n, dir);
        try {
          await put(dir, other);
          this.conflict(`an entry ${what} by this mount was given a conflict name ${dir === parent ? 'in its folder' : 'at the top of the filespace'}: another client took its name or removed its folder meanwhile`);
          return { parent: dir, name: other };
        } catch (e) {
          if (e instanceof EntryExistsError) break;
          if (!(e instanceof NoEntryError)) throw e;
        }
      }
    }
    throw new EntryExistsError(`no free conflict name after ${MAX_CONFLICT_NAMES} tries`);
  }
}
