/**
 * The mount agent: composes a store, the unlocked filespace, a metadata engine (in-process
 * SQLite, or a `lucid serve` through --service), the block cache, the writeback uploader,
 * the VFS and the FUSE mount; serves a control socket for `lucid status`, `unmount`,
 * `cache`, `pin`, `unpin` and `warm`; and stops cleanly (uploads first, unless forced).
 */
import { promises as fs, statfsSync } from 'node:fs';
import path from 'node:path';
import { loadDescriptor, unlockDescriptor } from '../crypto/descriptor.js';
import { InvalidArgumentError, NoEntryError, UsageError } from '../errors.js';
import { Filespace } from '../fs/filespace.js';
import { Vfs } from '../fs/vfs.js';
import { FuseMount } from '../fs/fuse/adapter.js';
import { BlockCache } from '../cache/block-cache.js';
import { Writeback } from '../chunker/writeback.js';
import { MetaClient } from '../meta/client.js';
import { RemoteLocks } from '../locks/remote.js';
import { AsOfMeta } from '../meta/as-of.js';
import { startScheduler } from '../meta/scheduler.js';
import { collectGarbage, DEFAULT_GRACE_MS, type GcProgress, type GcReport } from '../gc/collector.js';
import { startPeriodicGc } from '../gc/periodic.js';
import { S_IFLNK, S_IFMT, S_IFREG, isDir, type Attr, type MetaEngine, type RestoreResult, type Snapshot } from '../meta/types.js';
import type { MeteredStore } from '../store/metrics.js';
import type { ObjectStore } from '../store/types.js';
import { formatSize } from '../util/size.js';
import { mapLimit } from '../util/concurrency.js';
import { defaultDbPath, lucidHome } from './home.js';
import { openEngine, openStore } from './open.js';
import { ControlServer, mountId } from './control.js';

export interface AgentConfig {
  mountpoint: string;
  storeUrl: string;
  serviceUrl?: string;
  cacheDir?: string;
  cacheSize?: number;
  password: string;
  allowOther?: boolean;
  /**
   * The staleness bound in eventual mode (ms, default 1000): how long this mount trusts the
   * attributes and names it has without asking. The change feed usually updates them sooner.
   */
  staleMs?: number;
  /** Mount this snapshot (by id) read-only instead of the live filespace. */
  snapshotId?: number;
  log: (line: string) => void;
}

export interface WarmProgress {
  files: number;
  filesTotal: number;
  /** Bytes now in the cache, of `bytesTotal`. */
  bytes: number;
  bytesTotal: number;
  /** Of `bytes`, those fetched now (the rest were cached already). */
  fetchedBytes: number;
}

export interface AgentStatus {
  mountpoint: string;
  pid: number;
  state: 'mounted' | 'uploading' | 'stopping';
  filespaceId: string;
  store: string;
  service: string;
  uploadBytes: number;
  uploadBlocks: number;
  uploadsInFlight: number;
  cache: ReturnType<BlockCache['stats']> & { dir: string; hitRatio: number };
  prefetch: { issued: number; used: number; cancelled: number; inflight: number; accuracy: number; predictedFiles: number };
  store_requests: { get: number; put: number; getBytes: number; putBytes: number };
  bytesRead: number;
  bytesWritten: number;
  openFiles: number;
  startedAt: string;
}

const GiB = 1024 ** 3;

export function defaultCacheSize(dir: string): number {
  try {
    const st = statfsSync(dir);
    const free = st.bavail * st.bsize;
    return Math.max(256 * 1024 * 1024, Math.min(10 * GiB, Math.floor(free / 2)));
  } catch {
    return 10 * GiB;
  }
}

/** The commit snapshot `id` shows; a UsageError when there is no such snapshot. */
async function snapshotCsn(meta: MetaEngine, id: number, missing = `no snapshot ${id}`): Promise<number> {
  const snap = (await meta.listSnapshots()).find((x) => x.id === id);
  if (!snap) throw new UsageError(`${missing} (lucid snapshot list shows them)`);
  return snap.csn;
}

export class Agent {
  private stopping?: Promise<void>;
  private control?: ControlServer;
  private resolveStopped!: () => void;
  /** Resolves once the agent has stopped, whatever stopped it. */
  readonly stopped = new Promise<void>((r) => { this.resolveStopped = r; });
  readonly startedAt = new Date();

  private constructor(
    readonly config: AgentConfig,
    readonly filespaceId: string,
    private readonly store: ObjectStore,
    private readonly metrics: MeteredStore,
    private readonly meta: MetaEngine,
    readonly cache: BlockCache,
    readonly writeback: Writeback,
    readonly vfs: Vfs,
    private readonly fuse: FuseMount,
    private readonly cacheDir: string,
  ) {}

  static async start(config: AgentConfig): Promise<Agent> {
    const { store, metrics } = openStore(config.storeUrl);
    const cleanups: (() => Promise<unknown>)[] = [() => store.close()];
    const undo = async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); };
    try {
      await store.probe();
      const descriptor = await loadDescriptor(store);
      const unlocked = await unlockDescriptor(descriptor, config.password);
      const id = descriptor.filespaceId;
      let meta: MetaEngine;
      let remote: { client: MetaClient; locks: RemoteLocks; csn: number } | undefined;
      if (config.serviceUrl) {
        const client = new MetaClient(config.serviceUrl, unlocked.keys.serviceToken.toString('hex'));
        cleanups.push(() => client.close());
        const info = await client.info();
        if (info.filespaceId !== id) throw new UsageError(`the service at ${config.serviceUrl} serves filespace ${info.filespaceId}, not ${id}`);
        meta = client;
        const locks = new RemoteLocks(client, config.log);
        await locks.start();
        cleanups.push(() => locks.close());
        remote = { client, locks, csn: info.csn };
      } else {
        const engine = await openEngine(`sqlite:${defaultDbPath(config.storeUrl, id)}`, { filespaceId: id, blockSize: descriptor.blockSize });
        cleanups.push(() => engine.close());
        meta = engine;
        // No service: this agent runs the snapshot schedules while it is mounted.
        if (config.snapshotId === undefined) {
          const scheduler = startScheduler(engine, { log: config.log });
          cleanups.push(async () => scheduler.stop());
          const gc = startPeriodicGc(engine, store, { everyMs: DEFAULT_GRACE_MS, graceMs: DEFAULT_GRACE_MS, log: config.log });
          cleanups.push(async () => gc.stop());
        }
      }
      if (config.snapshotId !== undefined) {
        // A snapshot: the engine as of its commit, read-only; no locks, no feed (it never changes).
        meta = new AsOfMeta(meta, await snapshotCsn(meta, config.snapshotId, `filespace ${id} has no snapshot ${config.snapshotId}`));
        if (remote) await remote.locks.close();
        remote = undefined;
      }
      const cacheDir = path.resolve(config.cacheDir ?? path.join(lucidHome(), 'cache', id, ...(config.snapshotId !== undefined ? [`snapshot-${config.snapshotId}`] : [])));
      await fs.mkdir(cacheDir, { recursive: true, mode: 0o700 });
      const limit = config.cacheSize ?? defaultCacheSize(cacheDir);
      if (limit < 16 * descriptor.blockSize) throw new UsageError(`--cache-size must be at least ${formatSize(16 * descriptor.blockSize)} (16 blocks)`);
      const filespace = new Filespace(unlocked, store, meta);
      const cache = await BlockCache.open({ dir: cacheDir, filespaceId: id, cacheKey: unlocked.keys.cache, limitBytes: limit, sealer: filespace.codec });
      cleanups.push(() => cache.close());
      let vfs: Vfs | undefined;
      const writeback = new Writeback(filespace, cache, { log: config.log, onCommitted: (ino, refs, attr) => vfs?.committed(ino, refs, attr) });
      cleanups.push(async () => writeback.close());
      let fuseRef: FuseMount | undefined;
      vfs = new Vfs(filespace, cache, writeback, {
        log: config.log, locks: remote?.locks, attrTtlMs: config.staleMs,
        invalidate: (ino) => fuseRef?.invalidateInode(ino),
        invalidateEntry: (parent, name) => fuseRef?.invalidateEntry(parent, name),
      });
      if (remote) {
        // The change feed: other clients' commits drop what this mount (and its kernel) cached.
        const v = vfs;
        const feed = remote.client.subscribe(remote.csn, (c) => v.onRemoteCommit(c), () => v.setFeed(true), (e) => remote!.locks.onEvent(e), () => v.setFeed(false));
        cleanups.push(async () => feed.close());
      }
      for (const r of cache.lost) config.log(`LOST: dirty block ${r.idx} of inode ${r.ino} (${r.length} bytes) is missing from the cache directory`);
      const recovered = writeback.recover();
      if (recovered > 0) config.log(`resuming upload of ${recovered} block(s) written before the last stop`);
      let fuse: FuseMount;
      try {
        const trace = process.env.LUCID_TRACE ? config.log : undefined;
        metrics.trace = trace;
        fuse = FuseMount.mount(vfs, config.mountpoint, {
          allowOther: config.allowOther, log: config.log, fsname: `lucid:${id.slice(0, 8)}`, trace,
          attrTimeout: (config.staleMs ?? 1000) / 1000, entryTimeout: (config.staleMs ?? 1000) / 1000,
          readOnly: config.snapshotId !== undefined,
        });
        fuseRef = fuse;
      } catch (e) {
        throw new InvalidArgumentError(`cannot mount FUSE at ${config.mountpoint}: ${(e as Error).message} (is /dev/fuse there and fuse3 installed?)`);
      }
      const agent = new Agent(config, id, store, metrics, meta, cache, writeback, vfs, fuse, cacheDir);
      try {
        agent.control = await ControlServer.start(config.mountpoint, agent);
      } catch (e) {
        await fuse.unmount(true).catch(() => {});
        throw e;
      }
      void fuse.done.then(() => agent.stop({ force: true, external: true }));
      return agent;
    } catch (e) {
      await undo();
      throw e;
    }
  }

  log(line: string): void {
    this.config.log(line);
  }

  status(): AgentStatus {
    const c = this.cache.stats();
    const s = this.metrics.stats;
    return {
      mountpoint: this.config.mountpoint, pid: process.pid,
      state: this.stopping ? 'stopping' : c.uploadBytes > 0 ? 'uploading' : 'mounted',
      filespaceId: this.filespaceId, store: this.store.url,
      service: this.config.serviceUrl ?? 'in-process (SQLite)',
      uploadBytes: c.uploadBytes, uploadBlocks: c.dirtyBlocks, uploadsInFlight: this.writeback.pendingUploads(),
      cache: { ...c, dir: this.cacheDir, hitRatio: c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : 0 },
      prefetch: (() => { const p = this.vfs.prefetcher.stats(); return { ...p, accuracy: p.issued > 0 ? p.used / p.issued : 0, predictedFiles: this.vfs.predictor.predictedFiles }; })(),
      store_requests: { get: s.get.requests, put: s.put.requests, getBytes: s.get.bytes, putBytes: s.put.bytes },
      bytesRead: this.vfs.bytesRead, bytesWritten: this.vfs.bytesWritten, openFiles: this.vfs.openFiles(),
      startedAt: this.startedAt.toISOString(),
    };
  }

  /** Pins (or unpins) every file at or under `rel` (a path inside the mount). */
  async pin(rel: string, on: boolean): Promise<{ files: number; bytes: number }> {
    const root = await this.vfs.resolve(rel);
    let files = 0;
    let bytes = 0;
    for await (const f of this.vfs.filesUnder(root.ino)) {
      files++;
      if (on) {
        this.cache.pin(f.ino);
        bytes += (await this.vfs.hydrate(f.ino)).bytes;
      } else {
        this.cache.unpin(f.ino);
        bytes += f.size;
      }
    }
    return { files, bytes };
  }

  /**
   * Pre-hydrates a file, or with `recursive` every file under a folder, into the disk cache
   * (render farms: fetch once, read at disk speed). Files go four at a time.
   */
  async warm(rel: string, recursive: boolean, progress: (p: WarmProgress) => void): Promise<WarmProgress> {
    const root = await this.vfs.resolve(rel);
    if (isDir(root.mode) && !recursive) throw new UsageError(`${rel || '/'} is a folder: warm it with --recursive`);
    const files: Attr[] = [];
    for await (const f of this.vfs.filesUnder(root.ino)) files.push(f);
    const p: WarmProgress = { files: 0, filesTotal: files.length, bytes: 0, bytesTotal: files.reduce((n, f) => n + f.size, 0), fetchedBytes: 0 };
    progress(p);
    await mapLimit(files, 4, async (f) => {
      await this.vfs.hydrate(f.ino, (bytes, fetched) => {
        p.bytes += bytes;
        if (fetched) p.fetchedBytes += bytes;
        progress(p);
      }, 4);
      p.files++;
      progress(p);
    });
    return p;
  }

  // ---- snapshots (metadata only; see MetaEngine) ----------------------------------------

  createSnapshot(name?: string): Promise<Snapshot> {
    return this.meta.createSnapshot(name);
  }

  listSnapshots(): Promise<Snapshot[]> {
    return this.meta.listSnapshots();
  }

  deleteSnapshot(id: number): Promise<void> {
    return this.meta.deleteSnapshot(id);
  }

  get snapshots(): Pick<MetaEngine, 'createSchedule' | 'listSchedules' | 'deleteSchedule'> {
    return this.meta;
  }

  /**
   * Restores `rel` (a path inside the mount; "" for everything) as it was in snapshot `id`,
   * in place, in one commit. This mount's uploads of the files concerned are finished first
   * (a restore must not be overwritten by an older upload), and what it cached of the
   * restored inodes is dropped at once (other mounts hear it from the change feed).
   */
  async restore(id: number, rel: string): Promise<RestoreResult> {
    const parts = rel.split('/').filter((p) => p && p !== '.');
    await this.writeback.flushAll();
    let result: RestoreResult;
    if (parts.length === 0) {
      result = await this.meta.restore(id, 0, Buffer.alloc(32));
    } else {
      const parent = await this.vfs.resolve(parts.slice(0, -1).join('/'));
      if (!isDir(parent.mode)) throw new UsageError(`${parts.slice(0, -1).join('/')} is not a folder`);
      result = await this.meta.restore(id, parent.ino, this.vfs.fs.names.hash(parent.ino, parts[parts.length - 1]));
    }
    for (const ino of result.inos) this.vfs.revalidate(ino);
    return result;
  }

  /**
   * Garbage collection of the filespace (see src/gc/collector.ts). This mount's own uploads
   * are committed first, so even a zero grace period never takes an object it is about to
   * commit (other writers are covered by the grace period).
   */
  async gc(options: { dryRun: boolean; graceMs: number }, progress: (p: GcProgress) => void): Promise<GcReport> {
    if (this.config.snapshotId !== undefined) throw new UsageError('this is a snapshot mount: run lucid gc on the live mount');
    if (!options.dryRun) await this.writeback.flushAll();
    return collectGarbage(this.meta, this.store, { ...options, onProgress: progress });
  }

  /**
   * Copies `rel` as it was in snapshot `id` out to the local directory `to` (into
   * `to/<name>`, or `to` itself for the whole filespace): files, folders, symlinks, modes and
   * times. Reads straight from the store through a view of the snapshot, never through this
   * mount's cache of live data.
   */
  async copyOut(id: number, rel: string, to: string, progress: (p: WarmProgress) => void): Promise<WarmProgress> {
    const view = await this.snapshotView(id);
    if (!path.isAbsolute(to)) throw new UsageError('--to needs an absolute directory');
    const st = await fs.stat(to).catch(() => undefined);
    if (!st?.isDirectory()) throw new UsageError(`--to ${to} is not a directory`);
    const parts = rel.split('/').filter((p) => p && p !== '.');
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
    const p: WarmProgress = { files: 0, filesTotal: files.length, bytes: 0, bytesTotal: files.reduce((n, f) => n + f.attr.size, 0), fetchedBytes: 0 };
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
  async diff(from: number, to?: number): Promise<{ change: '+' | '-' | 'M'; path: string }[]> {
    const views = await Promise.all([this.snapshotView(from), this.snapshotView(to)]);
    if (to === undefined) await this.writeback.flushAll();
    const tree = async (fsv: Filespace) => {
      const out = new Map<string, Attr>();
      const walk = async (p: string): Promise<void> => {
        for (const e of await fsv.readdir(p)) {
          const child = p ? `${p}/${e.name}` : e.name;
          out.set(child, e.attr);
          if (isDir(e.attr.mode)) await walk(child);
        }
      };
      await walk('');
      return out;
    };
    const [a, b] = await Promise.all(views.map(tree));
    const changes: { change: '+' | '-' | 'M'; path: string }[] = [];
    for (const [p, x] of a) {
      const y = b.get(p);
      if (!y) changes.push({ change: '-', path: p });
      else if (y.ino !== x.ino || y.mode !== x.mode || (!isDir(x.mode) && (y.size !== x.size || y.mtimeMs !== x.mtimeMs || y.ctimeMs !== x.ctimeMs))) changes.push({ change: 'M', path: p });
    }
    for (const p of b.keys()) if (!a.has(p)) changes.push({ change: '+', path: p });
    return changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  }

  /** The filespace as of snapshot `id` (read-only), or live without an id, at the path level. */
  private async snapshotView(id?: number): Promise<Filespace> {
    const meta = id === undefined ? this.meta : new AsOfMeta(this.meta, await snapshotCsn(this.meta, id));
    return new Filespace(this.vfs.fs.unlocked, this.store, meta);
  }

  /** Uploads everything, unmounts, and closes every part. */
  stop(options: { force?: boolean; external?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (!options.external) {
        if (!options.force) {
          try {
            await this.writeback.flushAll();
          } catch (e) {
            this.stopping = undefined;
            throw new InvalidArgumentError(`${formatSize(this.cache.stats().uploadBytes)} could not be uploaded (${(e as Error).message}): fix the store, or unmount with --force (the data stays in the cache and uploads at the next mount)`);
          }
        }
        try {
          await this.fuse.unmount(options.force);
        } catch (e) {
          this.stopping = undefined;
          if ((e as NodeJS.ErrnoException).code === 'EBUSY') throw new InvalidArgumentError(`${this.config.mountpoint} is busy (files or directories open in it): close them, or unmount with --force`);
          throw e;
        }
      } else {
        this.fuse.destroy();
      }
      this.writeback.close();
      await this.control?.close();
      await this.cache.close();
      await this.meta.close();
      await this.store.close();
      this.resolveStopped();
    })();
    return this.stopping;
  }

  static registryDir(): string {
    return path.join(lucidHome(), 'run');
  }

  get id(): string {
    return mountId(this.config.mountpoint);
  }
}
