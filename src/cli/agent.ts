/**
 * The mount agent: composes a store, the unlocked filespace, a metadata engine (in-process
 * SQLite, or a `lucid serve` through --service), the block cache, the writeback uploader,
 * the VFS and the FUSE mount; serves a control socket for `lucid status`, `unmount`,
 * `cache`, `pin`, `unpin` and `warm`; and stops cleanly (uploads first, unless forced).
 */
import { promises as fs, statfsSync } from 'node:fs';
import path from 'node:path';
import { unlockDescriptor } from '../crypto/descriptor.js';
import { loadDescriptor } from '../fs/descriptor-store.js';
import { InvalidArgumentError, ServiceUnavailableError, UsageError } from '../errors.js';
import { Filespace } from '../fs/filespace.js';
import { GcPacer } from '../util/gc-pacer.js';
import type { Vfs } from '../fs/vfs.js';
import { buildMount } from '../fs/mount.js';
import { FuseMount } from '../fs/fuse/adapter.js';
import { BlockCache } from '../cache/block-cache.js';
import { EventLoopFileIo, type CleanFileIo } from '../cache/clean-files.js';
import { ThreadedFileIo } from '../cache/clean-files-threads.js';
import type { FilespaceKeys } from '../crypto/keys.js';
import type { Uploader } from '../upload/uploader.js';
import { MetaClient } from '../meta/client.js';
import { RemoteLocks } from '../locks/remote.js';
import { AsOfMeta } from '../meta/as-of.js';
import { startScheduler } from '../meta/scheduler.js';
import { DEFAULT_GRACE_MS } from '../gc/collector.js';
import { FilespaceAdmin, snapshotCsn, type CopyProgress } from './admin.js';
import { startPeriodicGc } from '../gc/periodic.js';
import { isDir, type Attr, type MetaEngine } from '../meta/types.js';
import type { MeteredStore } from '../store/metrics.js';
import type { ObjectStore } from '../store/types.js';
import { formatSize } from '../util/size.js';
import { forEachAhead } from '../util/concurrency.js';
import { lucidHome } from './home.js';
import { connectMeta, openStore } from './open.js';
import { ControlServer, mountId } from './control.js';
import type { AgentStatus, ControlledAgent, WarmProgress } from './agent-types.js';

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

export type { AgentStatus, WarmProgress } from './agent-types.js';

const GiB = 1024 ** 3;
/** Files a recursive warm holds ahead of the ones being fetched. */
const WARM_AHEAD = 10_000;

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
export class Agent implements ControlledAgent {
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
    readonly writeback: Uploader,
    readonly vfs: Vfs,
    private readonly fuse: FuseMount,
    private readonly cacheDir: string,
    /** Snapshots, restores, copies out, diffs and GC for the control socket. */
    readonly admin: FilespaceAdmin,
  ) {}

  static async start(config: AgentConfig): Promise<Agent> {
    // LUCID_TRACE=1: every FUSE request, metadata call, block load, prefetch and store call, timed.
    const trace = process.env.LUCID_TRACE ? config.log : undefined;
    const { store, metrics } = await openStore(config.storeUrl, trace);
    const cleanups: (() => Promise<unknown>)[] = [() => store.close()];
    const undo = async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); };
    try {
      await store.probe();
      const descriptor = await loadDescriptor(store);
      const unlocked = await unlockDescriptor(descriptor, config.password);
      const id = descriptor.filespaceId;
      const connected = await connectMeta(config.storeUrl, unlocked, config.serviceUrl, undefined, trace);
      cleanups.push(() => connected.meta.close());
      let meta: MetaEngine = connected.meta;
      let remote: { client: MetaClient; locks: RemoteLocks; csn: number } | undefined;
      if (connected.client) {
        const locks = new RemoteLocks(connected.client, config.log);
        await locks.start();
        cleanups.push(() => locks.close());
        remote = { client: connected.client, locks, csn: connected.csn };
      } else if (connected.engine && config.snapshotId === undefined) {
        // No service: this agent runs the snapshot schedules and GC while it is mounted.
        const scheduler = startScheduler(connected.engine, { log: config.log });
        cleanups.push(async () => scheduler.stop());
        const gc = startPeriodicGc(connected.engine, store, { everyMs: DEFAULT_GRACE_MS, graceMs: DEFAULT_GRACE_MS, log: config.log });
        cleanups.push(async () => gc.stop());
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
      const cache = await BlockCache.open({ dir: cacheDir, filespaceId: id, cacheKey: unlocked.keys.cache, limitBytes: limit, sealer: filespace.codec, files: cleanFileIo(filespace, unlocked.keys, config.log), blockSize: filespace.blockSize });
      cleanups.push(() => cache.close());
      let fuseRef: FuseMount | undefined;
      const gcPacer = new GcPacer();
      // The kernel is told to forget what the mount made stale through the FUSE mount, made
      // after the VFS it serves: until it is there, the kernel holds nothing to forget.
      const vfs = buildMount(filespace, cache, {
        log: config.log, trace, locks: remote?.locks, attrTtlMs: config.staleMs, allocated: (bytes) => gcPacer.allocated(bytes),
        invalidate: (ino) => fuseRef?.invalidateInode(ino),
        invalidateAttrs: (ino) => fuseRef?.invalidateAttrs(ino),
        invalidateEntry: (parent, name) => fuseRef?.invalidateEntry(parent, name),
      });
      const writeback = vfs.uploader;
      cleanups.push(async () => writeback.close());
      cleanups.push(async () => vfs.journal.close());
      // Inode numbers set aside now let files be made while the service cannot be reached.
      if (config.snapshotId === undefined) void vfs.reserveInodes().catch((e: Error) => config.log(`could not reserve inode numbers for offline use: ${e.message}`));
      if (remote) {
        // The change feed: other clients' commits drop what this mount (and its kernel) cached.
        const feed = remote.client.subscribe(remote.csn, (c) => vfs.view.onRemoteCommit(c), () => vfs.view.setFeed(true), (e) => remote!.locks.onEvent(e), () => vfs.view.setFeed(false),
          () => vfs.view.historyLost());
        cleanups.push(async () => feed.close());
      }
      for (const r of cache.lost) config.log(`LOST: dirty block ${r.idx} of inode ${r.ino} (${r.length} bytes) is missing from the cache directory`);
      const recovered = writeback.recover();
      if (recovered > 0) config.log(`resuming upload of ${recovered} block(s) written before the last stop`);
      let fuse: FuseMount;
      try {
        fuse = FuseMount.mount(vfs, config.mountpoint, {
          allowOther: config.allowOther, log: config.log, fsname: `lucid:${id.slice(0, 8)}`, trace,
          attrTimeout: (config.staleMs ?? 1000) / 1000, entryTimeout: (config.staleMs ?? 1000) / 1000,
          readOnly: config.snapshotId !== undefined,
        });
        fuseRef = fuse;
      } catch (e) {
        throw new InvalidArgumentError(`cannot mount FUSE at ${config.mountpoint}: ${(e as Error).message} (is /dev/fuse there and fuse3 installed?)`);
      }
      await fuse.readaheadRaised;
      const admin = new FilespaceAdmin(filespace, {
        settle: () => writeback.flushAll(),
        restored: (inos) => { for (const ino of inos) vfs.view.revalidate(ino); },
      });
      const agent = new Agent(config, id, store, metrics, meta, cache, writeback, vfs, fuse, cacheDir, admin);
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
    const offline = this.offline();
    const rate = this.writeback.uploadRate();
    return {
      mountpoint: this.config.mountpoint, pid: process.pid,
      state: this.stopping ? 'stopping' : offline ? 'offline' : c.uploadBytes > 0 || this.vfs.journal.size > 0 ? 'uploading' : 'mounted',
      ...(offline ? { offline } : {}),
      filespaceId: this.filespaceId, store: this.store.url,
      service: this.config.serviceUrl ?? 'in-process (SQLite)',
      uploadBytes: c.uploadBytes, uploadRate: rate, ...(rate > 0 && c.uploadBytes > 0 ? { uploadSecondsLeft: c.uploadBytes / rate } : {}),
      changesWaiting: this.vfs.journal.size, changesOldestMs: this.vfs.journal.oldestAgeMs,
      conflicts: this.vfs.journal.conflicts, metaBatches: { requests: this.vfs.journal.batches, changes: this.vfs.journal.batchedOps }, uploadBlocks: c.dirtyBlocks, uploadsInFlight: this.writeback.pendingUploads(),
      cache: { ...c, dir: this.cacheDir, hitRatio: c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : 0 },
      prefetch: (() => { const p = this.vfs.data.prefetcher.stats(); return { ...p, accuracy: p.issued > 0 ? p.used / p.issued : 0, predictedFiles: this.vfs.predictor.predictedFiles }; })(),
      store_requests: { get: s.get.requests, put: s.put.requests, getBytes: s.get.bytes, putBytes: s.put.bytes },
      bytesRead: this.vfs.data.bytesRead, bytesWritten: this.vfs.data.bytesWritten, openFiles: this.vfs.openFiles(),
      startedAt: this.startedAt.toISOString(),
      memory: (({ rss, heapUsed, external, arrayBuffers }) => ({ rss, heapUsed, external, arrayBuffers }))(process.memoryUsage()),
    };
  }

  /** Whether the service or the store is out of reach now, since when and why. */
  private offline(): AgentStatus['offline'] {
    const failure = this.writeback.lastFailure;
    const serviceSince = this.vfs.view.lastKnown.offlineSinceMs || (failure?.code === 'ServiceUnavailable' ? failure.sinceMs : 0);
    if (serviceSince) return { since: new Date(serviceSince).toISOString(), reason: 'the metadata service cannot be reached' };
    if (failure?.code === 'Transient') return { since: new Date(failure.sinceMs).toISOString(), reason: `the store cannot be reached (${failure.message})` };
    return undefined;
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
        bytes += (await this.vfs.hydrate(f)).bytes;
      } else {
        this.cache.unpin(f.ino);
        bytes += f.size;
      }
    }
    return { files, bytes };
  }

  /**
   * Pre-hydrates a file, or with `recursive` every file under a folder, into the disk cache
   * (render farms: fetch once, read at disk speed). Files go four at a time while the walk
   * goes on ahead (at most 10 000 files held: a folder of millions is never listed into
   * memory whole), so the totals grow until the walk is done (`counting`).
   */
  async warm(rel: string, recursive: boolean, progress: (p: WarmProgress) => void): Promise<WarmProgress> {
    const root = await this.vfs.resolve(rel);
    if (isDir(root.mode) && !recursive) throw new UsageError(`${rel || '/'} is a folder: warm it with --recursive`);
    const p: WarmProgress = { files: 0, filesTotal: 0, bytes: 0, bytesTotal: 0, fetchedBytes: 0, counting: true };
    progress(p);
    await forEachAhead(this.vfs.filesUnder(root.ino), 4, WARM_AHEAD, async (f) => {
      await this.vfs.hydrate(f, (bytes, fetched) => {
        p.bytes += bytes;
        if (fetched) p.fetchedBytes += bytes;
        progress(p);
      }, 4);
      p.files++;
      progress(p);
    }, (f) => {
      p.filesTotal++;
      p.bytesTotal += f.size;
    });
    p.counting = false;
    progress(p);
    return p;
  }

  async sync(): Promise<{ changes: number; bytes: number }> {
    const waited = { changes: this.vfs.journal.size, bytes: this.cache.stats().uploadBytes };
    try {
      await this.vfs.journal.flush();
      await this.writeback.flushAll();
      // A file's commit may have waited on its creation: whatever the uploads left is sent too.
      await this.vfs.journal.flush();
    } catch (e) {
      if (e instanceof ServiceUnavailableError) throw new ServiceUnavailableError(`not synced: ${e.message}; the changes stay in the cache and are sent when it is back`);
      throw e;
    }
    return waited;
  }

  /** Uploads everything, unmounts, and closes every part. */
  stop(options: { force?: boolean; external?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (!options.external) {
        if (!options.force) {
          await this.vfs.journal.flush().catch(() => {});
          if (this.vfs.journal.size > 0) {
            this.stopping = undefined;
            throw new InvalidArgumentError(`${this.vfs.journal.size} change(s) to names and attributes have not reached the metadata service yet (it cannot be reached): wait for it, or unmount with --force (they stay in the cache and are sent at the next mount)`);
          }
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
      this.vfs.journal.close();
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

/**
 * Who opens clean cache files: a worker thread (LUCID_OPEN_THREADS, default 1: a second one
 * measured no faster on two cores and costs memory), so warm reads from the disk cache keep
 * file I/O and decryption off the thread serving FUSE; 0 opens them on the event loop. Cache
 * files are written on the event loop (libuv's pool) either way.
 */
function cleanFileIo(filespace: Filespace, keys: FilespaceKeys, log: (line: string) => void): CleanFileIo {
  const asked = process.env.LUCID_OPEN_THREADS;
  const threads = asked !== undefined && /^\d+$/.test(asked) ? Number(asked) : 1;
  const onLoop = new EventLoopFileIo(filespace.codec);
  if (threads === 0) return onLoop;
  return new ThreadedFileIo({ threads: Math.min(threads, 16), dataKey: (keyId) => keys.blockDataKey(keyId), fallback: onLoop, log });
}
