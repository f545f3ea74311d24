/**
 * Filespace administration that needs no kernel mount: snapshots and their schedules,
 * in-place restores, copies out of a snapshot, diffs, garbage collection. A mount's agent
 * serves it through its control socket (its hooks finish the mount's uploads first and drop
 * what it cached of restored inodes); `lucid snapshot … --store/--service` runs it in the
 * CLI process on an unlocked filespace.
 *
 * Paths are inside the filespace ("" or "/" is the whole of it).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NoEntryError, UsageError } from '../errors.js';
import { Filespace } from '../fs/filespace.js';
import { collectGarbage, type GcProgress, type GcReport } from '../gc/collector.js';
import { AsOfMeta } from '../meta/as-of.js';
import { ROOT_INO, S_IFLNK, S_IFMT, S_IFREG, isDir, type Attr, type EntryName, type MetaEngine, type RestoreResult, type Snapshot, type SnapshotSchedule } from '../meta/types.js';

/** Progress of a copy out of a snapshot, or of `lucid warm`. */
export interface CopyProgress {
  files: number;
  filesTotal: number;
  /** Bytes copied (warm: now in the cache), of `bytesTotal`. */
  bytes: number;
  bytesTotal: number;
  /** Of `bytes`, those fetched now (warm: the rest were cached already). */
  fetchedBytes: number;
  /** While the walk that finds the files goes on: the totals are what it found so far. */
  counting?: boolean;
}

/** `name` under the path `at` ("" is the root). */
const join = (at: string, name: string) => (at ? `${at}/${name}` : name);

export interface DiffLine {
  change: '+' | '-' | 'M';
  path: string;
}

export interface AdminHooks {
  /** Before a restore, a diff against the live tree, or GC: this mount's writes committed. */
  settle?(): Promise<void>;
  /** After a restore: the inodes whose cached state is now wrong. */
  restored?(inos: number[]): void;
}

/** The commit a snapshot shows, or a usage error naming the missing id. */
export async function snapshotCsn(meta: MetaEngine, id: number, missing = `no snapshot ${id}`): Promise<number> {
  const snap = (await meta.listSnapshots()).find((x) => x.id === id);
  if (!snap) throw new UsageError(`${missing} (lucid snapshot list shows them)`);
  return snap.csn;
}

function split(rel: string): string[] {
  return rel.split('/').filter((p) => p && p !== '.');
}

export class FilespaceAdmin {
  constructor(readonly fs: Filespace, private readonly hooks: AdminHooks = {}) {}

  private get meta(): MetaEngine {
    return this.fs.meta;
  }

  createSnapshot(name?: string): Promise<Snapshot> { return this.meta.createSnapshot(name); }
  listSnapshots(): Promise<Snapshot[]> { return this.meta.listSnapshots(); }
  deleteSnapshot(id: number): Promise<void> { return this.meta.deleteSnapshot(id); }
  createSchedule(name: string, everyMs: number, keep: number): Promise<SnapshotSchedule> { return this.meta.createSchedule(name, everyMs, keep); }
  listSchedules(): Promise<SnapshotSchedule[]> { return this.meta.listSchedules(); }
  deleteSchedule(name: string): Promise<void> { return this.meta.deleteSchedule(name); }

  /**
   * Restores `rel` as it was in snapshot `id`, in place, in one commit (see
   * MetaEngine.restore). Pending writes are settled first: a restore must not be
   * overwritten by an older upload.
   */
  async restore(id: number, rel: string): Promise<RestoreResult> {
    const parts = split(rel);
    await this.hooks.settle?.();
    let result: RestoreResult;
    if (parts.length === 0) {
      result = await this.meta.restore(id, 0, Buffer.alloc(32));
    } else {
      const parentPath = parts.slice(0, -1).join('/');
      const parent = await this.fs.resolve(parentPath).catch((e) => {
        if (e instanceof NoEntryError) throw new UsageError(`${parentPath} does not exist now: restore the folder that holds it first`);
        throw e;
      });
      if (!isDir(parent.mode)) throw new UsageError(`${parentPath} is not a folder`);
      result = await this.meta.restore(id, parent.ino, this.fs.names.hash(parent.ino, parts[parts.length - 1]));
    }
    this.hooks.restored?.(result.inos);
    return result;
  }

  /**
   * Copies `rel` as it was in snapshot `id` out to the local directory `to` (into
   * `to/<name>`, or `to` itself for the whole filespace): files, folders, symlinks, modes and
   * times, straight from the store.
   */
  async copyOut(id: number, rel: string, to: string, progress: (p: CopyProgress) => void): Promise<CopyProgress> {
    const view = await this.view(id);
    if (!path.isAbsolute(to)) throw new UsageError('--to needs an absolute directory');
    const st = await fs.stat(to).catch(() => undefined);
    if (!st?.isDirectory()) throw new UsageError(`--to ${to} is not a directory`);
    const parts = split(rel);
    const root = await view.resolve(parts.join('/')).catch((e) => {
      if (e instanceof NoEntryError) throw new UsageError(`${rel || '/'} is not in snapshot ${id}`);
      throw e;
    });
    // First the list (for totals), then the copy.
    const items: { rel: string; attr: Attr }[] = [];
    const walk = async (p: string, attr: Attr): Promise<void> => {
      items.push({ rel: p, attr });
      if (isDir(attr.mode)) for (const e of await view.readdir(p)) await walk(p ? `${p}/${e.name}` : e.name, e.attr);
    };
    await walk(parts.join('/'), root);
    const files = items.filter((i) => (i.attr.mode & S_IFMT) === S_IFREG);
    const p: CopyProgress = { files: 0, filesTotal: files.length, bytes: 0, bytesTotal: files.reduce((n, f) => n + f.attr.size, 0), fetchedBytes: 0 };
    progress(p);
    const base = parts.length ? path.join(to, parts[parts.length - 1]) : to;
    const dest = (r: string) => path.join(base, path.relative(parts.join('/'), r));
    for (const item of items) {
      const out = dest(item.rel);
      const type = item.attr.mode & S_IFMT;
      if (isDir(item.attr.mode)) await fs.mkdir(out, { recursive: true, mode: item.attr.mode & 0o7777 });
      else if (type === S_IFLNK) await fs.symlink(await view.readlink(item.rel), out);
      else if (type === S_IFREG) {
        const fh = await fs.open(out, 'w', item.attr.mode & 0o7777);
        try {
          const chunk = 8 * view.blockSize;
          for (let off = 0; off < item.attr.size; off += chunk) {
            const data = await view.read(item.attr.ino, off, Math.min(chunk, item.attr.size - off));
            await fh.write(data, 0, data.length, off);
            p.bytes += data.length;
            p.fetchedBytes += data.length;
            progress(p);
          }
        } finally {
          await fh.close();
        }
        p.files++;
        progress(p);
      }
      if (type !== S_IFLNK) await fs.utimes(out, item.attr.atimeMs / 1000, item.attr.mtimeMs / 1000);
    }
    // Folders' times last: copying into them moved them.
    for (const item of items.filter((i) => isDir(i.attr.mode)).reverse()) await fs.utimes(dest(item.rel), item.attr.atimeMs / 1000, item.attr.mtimeMs / 1000);
    return p;
  }

  /**
   * What changed between snapshot `from` and snapshot `to` (or the live tree): paths added,
   * removed, and modified (another inode under the name, or a file whose size, mode or
   * times differ: a restored file equals its snapshot). Both trees are walked by name.
   */
  /**
   * What changed between snapshot `from` and snapshot `to` (or the live tree), by path: `+`
   * in `to` only, `-` in `from` only, `M` a path whose inode, type or mode changed (or a
   * non-folder's size, mtime or ctime). Only what the commits between them touched is read
   * (the change feed's history), not the whole tree: a folder whose entries changed is listed
   * at both commits, a file that changed is named at both; a folder that came or went is
   * walked. Memory and time follow what changed, however large the filespace.
   */
  async diff(from: number, to?: number): Promise<DiffLine[]> {
    const csnFrom = await snapshotCsn(this.meta, from);
    if (to === undefined) await this.hooks.settle?.();
    const csnTo = to === undefined ? (await this.meta.info()).csn : await snapshotCsn(this.meta, to);
    const sides = [csnFrom, csnTo] as const;
    const names = this.fs.names;
    const lines = new Map<string, DiffLine['change']>();
    const touched = new Set<number>();
    for (let after = Math.min(csnFrom, csnTo), end = Math.max(csnFrom, csnTo); after < end;) {
      const page = await this.meta.changesSince(after, 10_000);
      for (const c of page.commits) if (c.csn <= end) for (const ino of c.inos) touched.add(ino);
      if (page.commits.length === 0) break;
      after = page.commits[page.commits.length - 1].csn;
    }
    const attrAt = (ino: number, side: number) => this.meta.getAttr(ino, { asOf: sides[side] }).catch((e) => {
      if (e instanceof NoEntryError) return undefined;
      throw e;
    });
    /** The path of entry `n` at a side, or null if its folder has none. */
    const nameAt = async (n: { parent: number } & EntryName, side: number): Promise<string | null> => {
      const up = await pathAt(n.parent, side);
      return up === null ? null : join(up, names.open(n.parent, n.hash, n.enc));
    };
    /** The path of `ino` at a side (a folder has one name; a file, its first), or null if it has none. */
    const paths = [new Map<number, string | null>(), new Map<number, string | null>()];
    const pathAt = async (ino: number, side: number): Promise<string | null> => {
      if (ino === ROOT_INO) return '';
      const known = paths[side].get(ino);
      if (known !== undefined) return known;
      const [n] = await this.meta.namesOf(ino, { asOf: sides[side] });
      const p = n ? await nameAt(n, side) : null;
      if (paths[side].size > 100_000) paths[side].clear();
      paths[side].set(ino, p);
      return p;
    };
    const listAt = async (dir: number, side: number): Promise<Map<string, { ino: number; attr: Attr }>> => {
      const out = new Map<string, { ino: number; attr: Attr }>();
      let cursor: string | undefined;
      do {
        const page = await this.meta.readdir(dir, { cursor, limit: 1000, plus: true, asOf: sides[side] });
        for (const e of page.entries) out.set(names.open(dir, e.hash, e.enc), { ino: e.ino, attr: e.attr! });
        cursor = page.cursor;
      } while (cursor);
      return out;
    };
    /** Every path under folder `dir` (at `at`) at one side, marked `change`. */
    const walk = async (dir: number, at: string, side: number, change: '+' | '-'): Promise<void> => {
      for (const [name, e] of await listAt(dir, side)) {
        lines.set(join(at, name), change);
        if (isDir(e.attr.mode)) await walk(e.ino, join(at, name), side, change);
      }
    };
    const differs = (x: Attr, y: Attr) => x.ino !== y.ino || x.mode !== y.mode || (!isDir(x.mode) && (x.size !== y.size || x.mtimeMs !== y.mtimeMs || x.ctimeMs !== y.ctimeMs));
    /** Two folders at one path: their entries compared by name (and their subfolders, where the folder itself was replaced). */
    const compare = async (a: number, b: number, at: string): Promise<void> => {
      const [was, now] = await Promise.all([listAt(a, 0), listAt(b, 1)]);
      for (const [name, x] of was) {
        const y = now.get(name);
        const p = join(at, name);
        if (!y) {
          lines.set(p, '-');
          if (isDir(x.attr.mode)) await walk(x.ino, p, 0, '-');
        } else if (differs(x.attr, y.attr)) {
          lines.set(p, 'M');
          if (isDir(x.attr.mode) && isDir(y.attr.mode) && x.ino !== y.ino) await compare(x.ino, y.ino, p);
          else if (isDir(x.attr.mode) && !isDir(y.attr.mode)) await walk(x.ino, p, 0, '-');
          else if (!isDir(x.attr.mode) && isDir(y.attr.mode)) await walk(y.ino, p, 1, '+');
        }
      }
      for (const [name, y] of now) {
        if (was.has(name)) continue;
        const p = join(at, name);
        lines.set(p, '+');
        if (isDir(y.attr.mode)) await walk(y.ino, p, 1, '+');
      }
    };
    const files: number[] = [];
    for (const ino of touched) {
      const [a, b] = await Promise.all([attrAt(ino, 0), attrAt(ino, 1)]);
      if (a && b && isDir(a.mode) && isDir(b.mode)) {
        const [pa, pb] = await Promise.all([pathAt(ino, 0), pathAt(ino, 1)]);
        // A folder in the same place at both: its entries; moved, made or gone: its parent's listing tells.
        if (pa !== null && pa === pb) {
          if (pa !== '' && a.mode !== b.mode && !lines.has(pa)) lines.set(pa, 'M');
          await compare(ino, ino, pa);
        }
      } else if (a && b && !isDir(a.mode) && !isDir(b.mode) && differs(a, b)) files.push(ino);
    }
    // A file changed in place (its folder's listing did not say so): M at each of its names at both.
    const namedAt = async (ino: number, side: number) => {
      const out = new Set<string>();
      for (const n of await this.meta.namesOf(ino, { asOf: sides[side] })) {
        const p = await nameAt(n, side);
        if (p !== null) out.add(p);
      }
      return out;
    };
    for (const ino of files) {
      const was = await namedAt(ino, 0);
      for (const p of await namedAt(ino, 1)) if (was.has(p) && !lines.has(p)) lines.set(p, 'M');
    }
    return [...lines].map(([p, change]) => ({ change, path: p })).sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  }

  /**
   * Garbage collection (src/gc/collector.ts). Settled first, so even a zero grace period
   * never takes an object this process is about to commit (other writers: the grace period).
   */
  async gc(options: { dryRun: boolean; graceMs: number }, progress: (p: GcProgress) => void): Promise<GcReport> {
    if (this.meta instanceof AsOfMeta) throw new UsageError('this is a snapshot mount: run lucid gc on the live mount');
    if (!options.dryRun) await this.hooks.settle?.();
    return collectGarbage(this.meta, this.fs.store, { ...options, onProgress: progress });
  }

  /** The filespace as of snapshot `id` (read-only), or live without an id, at the path level. */
  private async view(id?: number): Promise<Filespace> {
    const meta = id === undefined ? this.meta : new AsOfMeta(this.meta, await snapshotCsn(this.meta, id));
    return new Filespace(this.fs.unlocked, this.fs.store, meta);
  }
}
