/**
 * A lock table: the POSIX rules for byte-range locks, written once and used by the local
 * lock manager and by the metadata service.
 *
 * Promises (POSIX fcntl, Linux flock):
 * - Two locks conflict when they belong to different owners, have the same kind, overlap,
 *   and at least one is a write lock.
 * - Setting a lock replaces the owner's own locks on the range it covers: adjacent or
 *   overlapping locks of the same type merge; a different type splits the old lock
 *   (upgrade and downgrade); unlocking a middle part leaves two pieces.
 * - flock locks are whole-file; a new flock request converts the owner's existing one.
 * - Nothing changes when a request conflicts.
 */
import type { HeldLock, LockKind, LockRange } from './types.js';

const EOF_END = Number.MAX_SAFE_INTEGER;

const endOf = (end: number) => (end < 0 ? EOF_END : end);
const overlaps = (a: { start: number; end: number }, b: { start: number; end: number }) => a.start <= endOf(b.end) && b.start <= endOf(a.end);

export class LockTable {
  private readonly byIno = new Map<number, HeldLock[]>();

  /** The first conflicting lock of another owner, or undefined. */
  conflict(ino: number, owner: string, want: LockRange): HeldLock | undefined {
    if (want.type === 'unlock') return undefined;
    const r = this.normalize(want);
    for (const l of this.byIno.get(ino) ?? []) {
      if (l.owner === owner || l.kind !== r.kind) continue;
      if (!overlaps(l, r)) continue;
      if (l.type === 'write' || r.type === 'write') return l;
    }
    return undefined;
  }

  /** Applies `want` if nothing conflicts; returns the conflict otherwise (and changes nothing). */
  apply(ino: number, owner: string, want: LockRange): HeldLock | undefined {
    const hit = this.conflict(ino, owner, want);
    if (hit) return hit;
    const r = this.normalize(want);
    const all = this.byIno.get(ino) ?? [];
    const kept: HeldLock[] = [];
    let merged = r.type === 'unlock' ? undefined : { ino, owner, kind: r.kind, type: r.type, start: r.start, end: endOf(r.end), pid: r.pid } as HeldLock;
    const rEnd = endOf(r.end);
    for (const l of all) {
      if (l.owner !== owner || l.kind !== r.kind) {
        kept.push(l);
        continue;
      }
      const lEnd = endOf(l.end);
      const touching = l.start <= rEnd + 1 && r.start <= lEnd + 1;
      if (!touching) {
        kept.push(l);
        continue;
      }
      if (merged && l.type === merged.type) {
        // Same type, overlapping or adjacent: one lock covering both.
        merged.start = Math.min(merged.start, l.start);
        merged.end = Math.max(merged.end, lEnd);
        continue;
      }
      if (!overlaps({ start: l.start, end: lEnd }, { start: r.start, end: rEnd })) {
        kept.push(l); // adjacent but of another type (or an unlock next to it): untouched
        continue;
      }
      // The new request (a lock of another type, or an unlock) cuts this lock.
      if (l.start < r.start) kept.push({ ...l, end: r.start - 1 });
      if (lEnd > rEnd) kept.push({ ...l, start: rEnd + 1, end: lEnd });
    }
    if (merged) kept.push(merged);
    const out = kept.map((l) => ({ ...l, end: l.end >= EOF_END ? -1 : l.end })).sort((a, b) => a.start - b.start);
    if (out.length) this.byIno.set(ino, out);
    else this.byIno.delete(ino);
    return undefined;
  }

  /** Drops an owner's locks of one kind on `ino` (all inodes when `ino` is undefined). */
  release(owner: string, kind?: LockKind, ino?: number): number[] {
    const touched: number[] = [];
    for (const [i, locks] of this.byIno) {
      if (ino !== undefined && i !== ino) continue;
      const kept = locks.filter((l) => l.owner !== owner || (kind !== undefined && l.kind !== kind));
      if (kept.length === locks.length) continue;
      touched.push(i);
      if (kept.length) this.byIno.set(i, kept);
      else this.byIno.delete(i);
    }
    return touched;
  }

  /** Drops every lock whose owner matches (a client gone: owners are "<client>:<owner>"). */
  releaseWhere(match: (owner: string) => boolean): number[] {
    const touched: number[] = [];
    for (const [i, locks] of this.byIno) {
      const kept = locks.filter((l) => !match(l.owner));
      if (kept.length === locks.length) continue;
      touched.push(i);
      if (kept.length) this.byIno.set(i, kept);
      else this.byIno.delete(i);
    }
    return touched;
  }

  /** Replaces the locks of `ino` (a table loaded from the database). */
  load(ino: number, locks: HeldLock[]): void {
    if (locks.length) this.byIno.set(ino, locks.map((l) => ({ ...l })));
    else this.byIno.delete(ino);
  }

  locksOn(ino: number): HeldLock[] {
    return [...(this.byIno.get(ino) ?? [])];
  }

  lockedInodes(): number[] {
    return [...this.byIno.keys()];
  }

  private normalize(want: LockRange): LockRange {
    if (want.kind === 'flock') return { ...want, start: 0, end: -1 };
    return want;
  }
}
