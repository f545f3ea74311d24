/**
 * The metadata journal: changes to names and attributes made while the metadata service
 * could not be reached — create, mkdir, symlink, unlink, rmdir, rename, chmod/chown/utimes/
 * truncate — kept in order in the cache's index (beside the dirty blocks, so a restart keeps
 * both) and replayed when the service answers again.
 *
 * Promises:
 * - replay is idempotent: a create carries an inode number reserved beforehand (a retry
 *   finds its own inode under the name); an unlink, rmdir or rename first checks that the
 *   name still holds the inode this mount saw, and one already done is not done twice;
 * - nothing written offline is lost to a conflict: a name another client took meanwhile
 *   gets the journaled file under "NAME (offline copy N)", a folder removed meanwhile gets it
 *   at the top of the filespace, and another client's file is never replaced or deleted;
 * - while an inode has changes waiting, `affects(ino)` says so: the mount answers for it from
 *   what it knows locally, and its data is not committed before its creation is.
 */
import { EntryExistsError, NoEntryError, NotEmptyError, NotPermittedError, ServiceUnavailableError } from '../../errors.js';
import { ROOT_INO, type AttrChanges, type EntryName, type MetaEngine, type NewNode } from '../../meta/types.js';
import { decodeWire, encodeWire } from '../../meta/wire.js';
import type { NameCipher } from '../../crypto/names.js';
import type { UploadHolds } from '../../upload/types.js';
import { Signal } from '../../util/signal.js';

export type JournalOp =
  | { kind: 'create'; parent: number; name: EntryName; node: NewNode & { ino: number } }
  | { kind: 'unlink'; parent: number; hash: Buffer; ino: number }
  | { kind: 'rmdir'; parent: number; hash: Buffer; ino: number }
  | { kind: 'rename'; parent: number; hash: Buffer; newParent: number; newName: EntryName; ino: number; replaces?: number }
  | { kind: 'setAttr'; ino: number; changes: AttrChanges }
  | { kind: 'reclaim'; ino: number };

export type CreateOp = Extract<JournalOp, { kind: 'create' }>;

/** Where the journal is kept (src/fs/namespace/journal-store.ts: a file of its own). */
export interface JournalStore {
  /** Keeps `op` (durably, before this returns); returns its sequence number. */
  append(op: string): number;
  /** Every kept op, in the order appended. */
  entries(): { seq: number; op: string }[];
  remove(seq: number): void;
  close?(): void;
}

export interface JournalHooks {
  /** The `n`th conflict name for `name` (sealed for `parent`), put under `newParent`: "NAME (offline copy N)". */
  conflictName(parent: number, name: EntryName, n: number, newParent: number): EntryName;
  log(line: string): void;
}

/**
 * Changes to these inodes reached the service. `asJournaled`: exactly as journaled (what the
 * mount shows of them is right); otherwise a conflict changed the outcome, or the change was
 * skipped or dropped, and what the mount knows of them is old.
 */
export interface Replayed {
  inos: number[];
  asJournaled: boolean;
}

const RETRY_MS = 2000;

/** The conflict names a mount gives what it made offline: "NAME (offline copy N).ext", sealed. */
export function offlineCopyNames(names: NameCipher): JournalHooks['conflictName'] {
  return (parent, name, n, newParent) => {
    const plain = names.open(parent, name.hash, name.enc);
    const dot = plain.lastIndexOf('.');
    const [stem, ext] = dot > 0 ? [plain.slice(0, dot), plain.slice(dot)] : [plain, ''];
    return names.seal(newParent, `${stem.slice(0, 200)} (offline copy${n > 1 ? ` ${n}` : ''})${ext.slice(0, 30)}`);
  };
}
const MAX_CONFLICT_NAMES = 100;

/** The inodes (and folders) an operation changes. */
function inodesOf(op: JournalOp): number[] {
  switch (op.kind) {
    case 'create': return [op.parent, op.node.ino];
    case 'unlink': case 'rmdir': return [op.parent, op.ino];
    case 'rename': return [op.parent, op.newParent, op.ino, ...(op.replaces ? [op.replaces] : [])];
    default: return [op.ino];
  }
}

export class MetaJournal implements UploadHolds {
  /** Emitted after each change replayed (or dropped). */
  readonly replayed = new Signal<Replayed>();
  /** For the uploader: a replay may release inodes it held back. */
  readonly released = this.replayed;
  private readonly entries: { seq: number; op: JournalOp }[];
  private readonly pending = new Map<number, number>();
  private readonly creates = new Map<number, CreateOp>();
  /** Where replay put an entry other than where it was journaled ("parent:hash" → place). */
  private readonly moved = new Map<string, { parent: number; name: EntryName }>();
  private replaying?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private meta?: MetaEngine;

  constructor(private readonly store: JournalStore, private readonly engine: MetaEngine, private readonly hooks: JournalHooks) {
    // Kept as the service's wire JSON (binary values as {"$b": base64}).
    this.entries = store.entries().map((e) => ({ seq: e.seq, op: decodeWire(e.op) as JournalOp }));
    for (const e of this.entries) this.track(e.op, 1);
  }

  /** Changes waiting for the service. */
  get size(): number {
    return this.entries.length;
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

  /** Keeps a change (on disk before this returns) and replays it as soon as the service answers. */
  append(op: JournalOp): void {
    const seq = this.store.append(encodeWire(op));
    this.entries.push({ seq, op });
    this.track(op, 1);
    this.schedule();
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
    }
  }

  /** Replays from now on (retrying every 2 s while the service is away). */
  start(): void {
    this.meta = this.engine;
    if (this.entries.length > 0) void this.replay();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.meta = undefined;
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
    while (this.entries.length > 0) {
      const { seq, op } = this.entries[0];
      let asJournaled = false;
      try {
        asJournaled = await this.apply(meta, op);
      } catch (e) {
        if (e instanceof ServiceUnavailableError) {
          this.schedule();
          return;
        }
        this.hooks.log(`a change made offline could not be replayed and is dropped (${op.kind} of inode ${'ino' in op ? op.ino : op.node.ino}): ${(e as Error).message}`);
      }
      this.entries.shift();
      this.store.remove(seq);
      this.track(op, -1);
      this.replayed.emit({ inos: inodesOf(op), asJournaled });
      if (this.entries.length === 0) this.moved.clear();
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
          this.hooks.log(`offline delete of inode ${op.ino} skipped: another client put inode ${there} under that name meanwhile`);
          return false;
        }
        try {
          if (op.kind === 'unlink') await meta.unlink(at.parent, at.hash);
          else await meta.rmdir(at.parent, at.hash);
        } catch (e) {
          if (e instanceof NoEntryError) return true;
          if (e instanceof NotEmptyError) {
            this.hooks.log(`offline removal of folder inode ${op.ino} skipped: another client put files in it meanwhile`);
            return false;
          }
          throw e;
        }
        return true;
      }
      case 'rename': {
        const at = this.place(op.parent, op.hash);
        const there = await this.inodeAt(meta, at.parent, at.hash);
        if (there !== op.ino) {
          if (there === undefined && (await this.inodeAt(meta, op.newParent, op.newName.hash)) === op.ino) return true; // already done
          this.hooks.log(`offline rename of inode ${op.ino} skipped: its name was changed by another client meanwhile`);
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
          this.hooks.log(`an entry ${what} offline was given a conflict name ${dir === parent ? 'in its folder' : 'at the top of the filespace'}: another client took its name or removed its folder meanwhile`);
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
