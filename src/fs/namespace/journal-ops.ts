/**
 * What the metadata journal holds and how it is kept: the changes (`JournalOp`), the store
 * that keeps them durable (`JournalStore`, journal-store.ts), what replay tells the mount
 * (`Replayed`), and the names given to conflict copies. The journal itself: journal.ts.
 */
import type { Attr, AttrChanges, EntryName, NewNode, XattrEntry } from '../../meta/types.js';
import type { NameCipher } from '../../crypto/names.js';

export type JournalOp =
  | { kind: 'create'; parent: number; name: EntryName; node: NewNode & { ino: number } }
  | { kind: 'link'; ino: number; parent: number; name: EntryName }
  | { kind: 'unlink'; parent: number; hash: Buffer; ino: number }
  | { kind: 'rmdir'; parent: number; hash: Buffer; ino: number }
  | { kind: 'rename'; parent: number; hash: Buffer; newParent: number; newName: EntryName; ino: number; replaces?: number; exchange?: boolean }
  | { kind: 'setAttr'; ino: number; changes: AttrChanges }
  | { kind: 'reclaim'; ino: number }
  | { kind: 'setXattr'; ino: number; entry: XattrEntry }
  | { kind: 'removeXattr'; ino: number; hash: Buffer };

/** An extended attribute's change waiting in the journal: its new value, or `removed`. */
export type PendingXattr = { removed: false; entry: XattrEntry } | { removed: true; hash: Buffer };

export type CreateOp = Extract<JournalOp, { kind: 'create' }>;

/** Where the journal is kept (src/fs/namespace/journal-store.ts: a file of its own). */
export interface JournalStore {
  /** Keeps `op` (durably, before this returns); returns its sequence number. */
  append(op: string): number;
  /** Every kept op, in the order appended. */
  entries(): { seq: number; op: string }[];
  /** Forgets every kept op up to and including `seq` (what reached the service is always the oldest). */
  removeThrough(seq: number): void;
  close?(): void;
}

export interface JournalHooks {
  /** The `n`th conflict name for `name` (sealed for `parent`), put under `newParent`: "NAME (conflict copy N)". */
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
  /** What the service answered with for the change (its attributes after), when it said. */
  attr?: Attr;
  /** The change's commit at the service, when known. */
  csn?: number;
}

/** The conflict names a mount gives what another client's change kept from its place: "NAME (conflict copy N).ext", sealed. */
export function conflictCopyNames(names: NameCipher): JournalHooks['conflictName'] {
  return (parent, name, n, newParent) => {
    const plain = names.open(parent, name.hash, name.enc);
    const dot = plain.lastIndexOf('.');
    const [stem, ext] = dot > 0 ? [plain.slice(0, dot), plain.slice(dot)] : [plain, ''];
    return names.seal(newParent, `${stem.slice(0, 200)} (conflict copy${n > 1 ? ` ${n}` : ''})${ext.slice(0, 30)}`);
  };
}

/** The inodes (and folders) an operation changes. */
export function inodesOf(op: JournalOp): number[] {
  switch (op.kind) {
    case 'create': return [op.parent, op.node.ino];
    case 'link': return [op.parent, op.ino];
    case 'unlink': case 'rmdir': return [op.parent, op.ino];
    case 'rename': return [op.parent, op.newParent, op.ino, ...(op.replaces ? [op.replaces] : [])];
    default: return [op.ino];
  }
}
