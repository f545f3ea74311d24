/**
 * The uploader (writeback): turns dirty blocks in the cache into sealed objects in the store
 * and then commits them to the block map.
 *
 * Promises:
 * - a block map entry is committed only after its object is in the store;
 * - at most one upload per block is in flight, so commits of one block land in write order;
 * - commits of one inode are grouped (one transaction for every block that is ready);
 * - a dirty block is forgotten only if it did not change while it was being uploaded;
 * - `flush(ino)` resolves once everything written to the inode before the call is committed,
 *   and rejects with the store's or the service's error if that cannot happen;
 * - `freeze(ino)` waits for the inode's uploads in flight and holds new ones back, so a
 *   truncate or a delete can change the inode's dirty blocks safely.
 * Full blocks go at once; partial blocks after `idleMs` without writes, or on flush.
 * Width: `slots` PUTs of large objects at first, growing while blocks wait (up to
 * LARGE_INFLIGHT_BYTES), and eight times `slots` of small ones (their time over a long link is
 * the round trip); a slot is free once its PUT is done, not its commit. While callers keep the
 * mount busy (`foreground`), small PUTs keep to half a slot's width unless a flush waits for
 * them or the cache is full.
 * Write-behind for a near store: while a writer keeps writing (a write in the last
 * WRITER_PAUSE_MS), blocks of large objects wait if the store is local (file://) or the
 * quickest of the last large PUTs took under NEAR_STORE_MS (the quickest, since PUTs queued
 * behind each other only add time); until one large PUT has been timed, one goes at a time to
 * learn it. Near, a PUT is the event loop's work more than waiting, on the thread that serves
 * the writer's requests (a 256 MiB `cp` to s3rver on loopback: 110 MB/s uploading alongside,
 * 430–480 MB/s without); far away a PUT is mostly waiting, and overlapping it with the writes
 * brings the data to the store sooner. Held blocks go when the writer pauses, when a flush
 * waits for them, when the cache holds half its limit in data not yet uploaded, or after
 * MAX_HOLD_MS of writing without a pause.
 */
import type { DirtyBlocks } from '../cache/types.js';
import type { Attr, BlockRef } from '../meta/types.js';
import type { BlockCommits } from './commit-batcher.js';
import type { ObjectStore } from '../store/types.js';
import { ServiceUnavailableError } from '../errors.js';
import { sealedSize, type BlockCodec } from '../block/format.js';
import type { BufferPool } from '../util/buffer-pool.js';
import { putBlock } from './put-block.js';
import { RateMeter } from '../util/rate.js';
import type { CommitListener, UploadHolds } from './types.js';

/** What the uploader works with: where objects go, how they are sealed, where maps are committed. */
export interface UploaderParts {
  store: ObjectStore;
  codec: BlockCodec;
  /** Where block maps are committed (a CommitBatcher: many files' commits per request). */
  meta: BlockCommits;
  /** Where dirty blocks wait: the mount's block cache, or memory for the library API. */
  cache: DirtyBlocks;
  blockSize: number;
  /**
   * Buffers of one sealed block to reuse (the block cache's): blocks of the cache's snapshots
   * marked `pooled` are given back here once settled, and blocks are sealed into them.
   */
  buffers?: BufferPool;
}

export interface UploaderOptions {
  slots?: number;
  idleMs?: number;
  retryMs?: number;
  log?: (line: string) => void;
  /** Told about each commit: the mount refreshes what it knows of the inode. */
  committed?: CommitListener;
  /** Inodes whose blocks must wait (the mount: changes to them not yet at the service). */
  holds?: UploadHolds;
  /**
   * Whether callers keep the mount busy: small PUTs then keep to half a slot's worth in
   * flight (the rest wait, unless a flush or a full cache needs them), and go at full width
   * once callers pause.
   */
  foreground?: { busy(): boolean };
  /** Write-behind: a writer that has not written for this long has paused (default WRITER_PAUSE_MS). */
  writerPauseMs?: number;
  /** Write-behind: a store whose quickest recent large PUT took less than this is near (default NEAR_STORE_MS). */
  nearStoreMs?: number;
}

interface Queued {
  key: string;
  ino: number;
  idx: number;
  small: boolean;
}

interface Ready {
  ref: BlockRef;
  gen: number;
  sealed: Buffer;
  /** `sealed` goes back to the parts' buffers once settled. */
  recycle: boolean;
  /** Resolves once a commit has dealt with this block (the upload's slot ends then). */
  done: () => void;
}

const keyOf = (ino: number, idx: number) => `${ino}:${idx}`;
/**
 * Objects up to this size are small: a slot holds SMALL_PER_SLOT of their PUTs, since over a
 * long link a small PUT's time is its round trip, not its bytes (`tar x` of 4 KiB files at
 * 8 in flight and 50 ms went ~55 objects/s).
 */
const SMALL_OBJECT = 256 * 1024;
const SMALL_PER_SLOT = 8;
/**
 * Large PUTs in flight grow from `slots` toward this many bytes of them (the link's
 * bandwidth-delay product at 50 ms and 1 Gbit/s is ~6 MiB, and a PUT also waits on the
 * store's own time): one more each time a PUT ends with every slot busy and blocks waiting,
 * as the prefetcher's window grows for reads. Through a 50 ms link, 8 in flight uploaded
 * 83 MB/s where parallel PUTs from another process reached 119.
 */
const LARGE_INFLIGHT_BYTES = 64 * 1024 * 1024;
/** Sealed bytes of large objects put and waiting for their commit, past which a slot is held until the commit. */
const AWAITING_COMMIT_BYTES = 64 * 1024 * 1024;
/** A writer that has not written for this long has paused: held-back blocks go. */
const WRITER_PAUSE_MS = 200;
/** Held back for a writer that never pauses this long, blocks go anyway (data reaches the store in bounded time). */
const MAX_HOLD_MS = 5000;
/** A store whose quickest recent large PUT took less than this is near: uploads hold back for writers. */
const NEAR_STORE_MS = 25;

export class Uploader {
  readonly slots: number;
  private readonly idleMs: number;
  private readonly retryMs: number;
  private readonly writerPauseMs: number;
  private readonly nearStoreMs: number;
  /** Blocks waiting to go, in order: small objects and the rest apart (each has its own width). */
  private readonly queues: { small: Queued[]; large: Queued[] } = { small: [], large: [] };
  private readonly queued = new Set<string>();
  private readonly inflight = new Set<string>();
  private readonly inflightByIno = new Map<number, number>();
  private readonly ready = new Map<number, Ready[]>();
  private readonly committing = new Set<number>();
  private readonly frozen = new Map<number, number>();
  private readonly idleTimers = new Map<number, NodeJS.Timeout>();
  private readonly errors = new Map<number, Error>();
  /** Inodes committed while held, whose pending size is cleared once the journal releases them. */
  private readonly unsettled = new Map<number, Attr>();
  private resuming = false;
  /** The last upload or commit failure, until one succeeds again (lucid status: offline). */
  lastFailure?: { message: string; code?: string; sinceMs: number };
  private waiters: (() => void)[] = [];
  /** How many large PUTs may be in flight: from `slots`, growing while blocks wait (LARGE_INFLIGHT_BYTES). */
  private largeWidth: number;
  private readonly maxLargeWidth: number;
  /** PUTs in flight: of small objects (many fit in one slot), and of the rest. */
  private activeSmall = 0;
  private activeLarge = 0;
  private yieldTimer?: NodeJS.Timeout;
  /** Inodes forgotten while uploads of theirs were in flight (until those end). */
  private readonly gone = new Set<number>();
  /** Inodes a flush waits for: their PUTs never step back for callers. */
  private readonly flushing = new Map<number, number>();
  /** Until then (a full cache asked for room), nothing steps back for callers. */
  private urgentUntilMs = 0;
  private closed = false;
  /** When a caller last wrote (write-behind: large uploads wait for a pause on a near store). */
  private lastWriteMs = -Infinity;
  /** Since when large uploads have been held back for a writer without a pause. */
  private holdingSince?: number;
  /** Sealed bytes put and waiting in `ready` for their commit. */
  private awaitingCommitBytes = 0;
  /** Times of the last large PUTs: the shortest says how near the store is (queueing only adds). */
  private readonly largePutMs: number[] = [];
  uploadedBytes = 0;
  commits = 0;
  /** Bytes uploaded per second lately (lucid status). */
  private readonly rate = new RateMeter();
  private readonly cache: DirtyBlocks;

  constructor(private readonly parts: UploaderParts, private readonly options: UploaderOptions = {}) {
    this.cache = parts.cache;
    this.slots = options.slots ?? 8;
    this.largeWidth = this.slots;
    this.maxLargeWidth = Math.max(this.slots, Math.floor(LARGE_INFLIGHT_BYTES / parts.blockSize));
    this.idleMs = options.idleMs ?? 1000;
    this.retryMs = options.retryMs ?? 2000;
    this.writerPauseMs = options.writerPauseMs ?? WRITER_PAUSE_MS;
    this.nearStoreMs = options.nearStoreMs ?? NEAR_STORE_MS;
    this.cache.pressure.on(() => {
      this.urgentUntilMs = Date.now() + 1000;
      this.enqueueAll();
    });
    options.holds?.released.on(() => this.resume());
  }

  /**
   * Whether `ino`'s blocks wait (a file made offline cannot take a commit before the service
   * has its creation); they go once the holds are released.
   */
  private held(ino: number): boolean {
    return this.options.holds?.held(ino) ?? false;
  }

  /** After a restart: every dirty block the cache holds is uploaded and committed. */
  recover(): number {
    const rows = this.cache.allDirty();
    for (const r of rows) this.enqueue(r.ino, r.idx);
    return rows.length;
  }

  /** A write touched these blocks of `ino`; full ones go now, the rest after a pause. */
  noteWrite(ino: number, fullBlocks: number[]): void {
    this.lastWriteMs = performance.now();
    for (const idx of fullBlocks) this.enqueue(ino, idx);
    clearTimeout(this.idleTimers.get(ino));
    const t = setTimeout(() => { this.idleTimers.delete(ino); this.enqueueInode(ino); }, this.idleMs);
    t.unref();
    this.idleTimers.set(ino, t);
  }

  /** Starts uploading everything dirty of `ino` (on close), without waiting. */
  enqueueInode(ino: number): void {
    for (const r of this.cache.dirtyRowsOf(ino)) this.enqueue(r.ino, r.idx);
  }

  enqueueAll(): void {
    for (const r of this.cache.allDirty()) this.enqueue(r.ino, r.idx);
  }

  /** Waits until every block of `ino` written before now is committed (fsync). */
  async flush(ino: number): Promise<void> {
    this.errors.delete(ino);
    this.flushing.set(ino, (this.flushing.get(ino) ?? 0) + 1);
    try {
      this.enqueueInode(ino);
      for (;;) {
        const err = this.errors.get(ino);
        if (err) throw err;
        if (this.held(ino) && this.cache.dirtyRowsOf(ino).length > 0) throw new ServiceUnavailableError(`inode ${ino} was changed offline: its data waits in the cache until the metadata service has the change`);
        if (this.idle(ino)) return;
        await this.changed();
      }
    } finally {
      const n = (this.flushing.get(ino) ?? 1) - 1;
      if (n <= 0) this.flushing.delete(ino);
      else this.flushing.set(ino, n);
    }
  }

  /** Waits until nothing is dirty anywhere (unmount). */
  async flushAll(): Promise<void> {
    const inos = new Set(this.cache.allDirty().map((r) => r.ino));
    for (const ino of inos) await this.flush(ino);
  }

  /**
   * `ino` is gone (its last name removed, nobody has it open; the caller drops its dirty
   * blocks): those in flight are dropped when their PUT ends, never committed (a commit
   * already sent lands, or is refused once the removal is at the service). Unlike `freeze`,
   * nothing waits: `rm -rf` right after a `tar x` does not wait for each file's upload.
   */
  forget(ino: number): void {
    clearTimeout(this.idleTimers.get(ino));
    this.idleTimers.delete(ino);
    // Blocks still queued find their dirty rows gone when their turn comes, and end there.
    if ((this.inflightByIno.get(ino) ?? 0) > 0) this.gone.add(ino);
    this.notify();
  }

  /** Holds uploads of `ino` back and waits for those in flight; call the result to release. */
  async freeze(ino: number): Promise<() => void> {
    this.frozen.set(ino, (this.frozen.get(ino) ?? 0) + 1);
    while ((this.inflightByIno.get(ino) ?? 0) > 0 || this.committing.has(ino) || (this.ready.get(ino)?.length ?? 0) > 0) {
      await this.changed();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.frozen.get(ino) ?? 1) - 1;
      if (n <= 0) this.frozen.delete(ino);
      else this.frozen.set(ino, n);
      this.pump();
      this.notify();
    };
  }

  /**
   * Held inodes may have become free: start what waits, and settle what waited — once per
   * turn of the event loop (the journal says so after each change of a batch it sent).
   */
  resume(): void {
    if (this.resuming) return;
    this.resuming = true;
    setImmediate(() => {
      this.resuming = false;
      if (this.closed) return;
      this.pump();
      this.settleReleased();
    });
  }

  /** Plaintext bytes uploaded per second over the last seconds. */
  uploadRate(): number {
    return this.rate.perSecond();
  }

  pendingUploads(): number {
    return this.queues.small.length + this.queues.large.length + this.inflight.size;
  }

  close(): void {
    this.closed = true;
    for (const t of this.idleTimers.values()) clearTimeout(t);
    clearTimeout(this.yieldTimer);
    this.notify();
  }

  private idle(ino: number): boolean {
    return this.cache.dirtyRowsOf(ino).length === 0 && (this.inflightByIno.get(ino) ?? 0) === 0 &&
      !this.committing.has(ino) && (this.ready.get(ino)?.length ?? 0) === 0;
  }

  private enqueue(ino: number, idx: number): void {
    const k = keyOf(ino, idx);
    if (this.queued.has(k) || this.closed) return;
    this.queued.add(k);
    const small = (this.cache.dirtyRow(ino, idx)?.length ?? 0) <= SMALL_OBJECT;
    (small ? this.queues.small : this.queues.large).push({ key: k, ino, idx, small });
    this.pump();
  }

  private pump(): void {
    if (this.closed) return;
    const busy = this.options.foreground?.busy() === true && Date.now() >= this.urgentUntilMs;
    const full = this.slots * SMALL_PER_SLOT;
    const smallCap = busy ? Math.max(1, this.slots / 2) : full;
    const holdLarge = this.holdingBackForWriter();
    // Until a large PUT has said how near the store is, one at a time goes while a writer writes.
    if (holdLarge && this.largePutMs.length === 0 && !this.parts.store.local) {
      while (this.activeLarge < 1 && this.start(this.queues.large, () => true)) { /* started one */ }
    }
    // Held back, only a flush's blocks may go: the queue is not searched when none waits.
    if (!holdLarge || this.flushing.size > 0) {
      while (this.activeLarge < this.largeWidth && this.start(this.queues.large, (q) => !holdLarge || this.flushing.has(q.ino))) { /* started one */ }
    }
    while (this.activeSmall < smallCap && this.start(this.queues.small, () => true)) { /* started one */ }
    // A flush never waits behind callers: its inode's blocks go at full width.
    while (this.activeSmall < full && this.flushing.size > 0 && this.start(this.queues.small, (q) => this.flushing.has(q.ino))) { /* started one */ }
    // What stepped back for callers goes once they pause: looked at again shortly.
    if (((busy && this.queues.small.length > 0 && this.activeSmall >= smallCap) || (holdLarge && this.queues.large.length > 0)) && !this.yieldTimer) {
      this.yieldTimer = setTimeout(() => { this.yieldTimer = undefined; this.pump(); }, 50);
      this.yieldTimer.unref();
    }
  }

  /**
   * Whether the store is on this machine's disks, or the quickest of the last large PUTs took
   * under nearStoreMs. A local store is never timed: its PUTs queue behind the writers' own
   * disk work (16 writers of 64 MiB: 40+ ms each), which made it look far, and the width grew
   * to 64 PUTs of 1 MiB held in memory against a disk that takes no more at once.
   */
  private storeIsNear(): boolean {
    return this.parts.store.local === true || this.largePutMs.length > 0 && Math.min(...this.largePutMs) < this.nearStoreMs;
  }

  /** Whether blocks of large objects wait for the writer to pause (write-behind, above). */
  private holdingBackForWriter(): boolean {
    const now = performance.now();
    const hold = (this.largePutMs.length === 0 || this.storeIsNear()) && now - this.lastWriteMs < this.writerPauseMs && Date.now() >= this.urgentUntilMs && this.cache.mayHoldBack();
    if (!hold) {
      this.holdingSince = undefined;
      return false;
    }
    this.holdingSince ??= now;
    // A writer that never pauses holds blocks back for MAX_HOLD_MS at most: then they go.
    return now - this.holdingSince < MAX_HOLD_MS;
  }

  /** Starts the first block of `queue` that may go now (and that `allowed` lets go); false if none. */
  private start(queue: Queued[], allowed: (q: Queued) => boolean): boolean {
    // Entries no longer queued (their inode was forgotten, or a later entry of the block went) are dropped.
    while (queue.length > 0 && !this.queued.has(queue[0].key)) queue.shift();
    const i = queue.findIndex((q) => this.queued.has(q.key) && !this.inflight.has(q.key) && !this.frozen.has(q.ino) && !this.held(q.ino) && allowed(q));
    if (i < 0) return false;
    const [{ key: k, ino, idx, small }] = queue.splice(i, 1);
    this.queued.delete(k);
    if (small) this.activeSmall++;
    else this.activeLarge++;
    this.inflight.add(k);
    this.inflightByIno.set(ino, (this.inflightByIno.get(ino) ?? 0) + 1);
    // The slot is free once the object is in the store; the block stays in flight (no
    // second upload of it) until its commit is done.
    let slotHeld = true;
    const freeSlot = () => {
      if (!slotHeld) return;
      slotHeld = false;
      if (small) this.activeSmall--;
      else this.activeLarge--;
      this.pump();
    };
    void this.upload(ino, idx, freeSlot).finally(() => {
      this.inflight.delete(k);
      const left = (this.inflightByIno.get(ino) ?? 1) - 1;
      this.inflightByIno.set(ino, left);
      if (left <= 0) this.gone.delete(ino);
      freeSlot();
      this.pump();
      this.notify();
    });
    return true;
  }

  private async upload(ino: number, idx: number, putDone: () => void): Promise<void> {
    try {
      const snap = await this.cache.snapshotDirty(ino, idx);
      if (!snap) return;
      const started = performance.now();
      // A block written whole was sealed at write time; a partial one is sealed now.
      const buffers = this.parts.buffers;
      const into = snap.sealed ? undefined : buffers?.take(sealedSize(snap.length));
      const { objectId, sealed } = await putBlock(this.parts.store, this.parts.codec, snap.sealed ? { objectId: snap.sealed.objectId, sealed: snap.sealed.bytes } : { plain: snap.data!, into });
      if (snap.pooled && snap.data) buffers?.give(snap.data);
      const recycle = into !== undefined || snap.pooled === true;
      this.uploadedBytes += snap.length;
      this.rate.note(this.uploadedBytes);
      if (snap.length > SMALL_OBJECT) {
        this.largePutMs.push(performance.now() - started);
        if (this.largePutMs.length > 16) this.largePutMs.shift();
        // Every slot was busy and blocks wait: one more may go at once (a near store needs no more).
        if (!this.storeIsNear() && this.activeLarge >= this.largeWidth && this.queues.large.length > 0) this.largeWidth = Math.min(this.maxLargeWidth, this.largeWidth + 1);
      }
      if (this.gone.has(ino)) { // deleted meanwhile: the object is left to GC
        if (recycle) buffers?.give(sealed);
        return;
      }
      // Its sealed bytes wait in memory for the commit (the clean cache takes them then): past
      // AWAITING_COMMIT_BYTES of those, the slot stays taken until the commit, so PUTs that
      // outrun commits (a slow service) cannot fill memory with sealed blocks.
      this.awaitingCommitBytes += sealed.length;
      if (snap.length <= SMALL_OBJECT || this.awaitingCommitBytes <= AWAITING_COMMIT_BYTES) putDone();
      // The block stays in flight until its commit is done: a second upload of it must not
      // start while this one waits to be committed.
      try {
        await new Promise<void>((done) => {
          const list = this.ready.get(ino) ?? [];
          list.push({ ref: { index: idx, objectId, length: snap.length }, gen: snap.gen, sealed, recycle, done });
          this.ready.set(ino, list);
          void this.commit(ino);
        });
      } finally {
        this.awaitingCommitBytes -= sealed.length;
      }
    } catch (e) {
      this.fail(ino, idx, e as Error);
    }
  }

  /** Commits every ready block of `ino` in one transaction (one commit at a time per inode). */
  private async commit(ino: number): Promise<void> {
    if (this.committing.has(ino)) return; // the running commit loops and takes these too
    this.committing.add(ino);
    try {
      for (;;) {
        const batch = this.ready.get(ino) ?? [];
        if (batch.length === 0) break;
        this.ready.delete(ino);
        if (this.gone.has(ino)) {
          for (const b of batch) b.done();
          continue;
        }
        const pending = this.cache.pending(ino);
        const end = Math.max(...batch.map((b) => b.ref.index * this.parts.blockSize + b.ref.length));
        const minSize = pending ? Math.min(pending.size, end) : end;
        let attr: Attr;
        try {
          attr = await this.parts.meta.commitBlocks(ino, batch.map((b) => b.ref), { minSize, mtimeMs: pending?.mtimeMs });
        } catch (e) {
          for (const b of batch) {
            this.fail(ino, b.ref.index, e as Error);
            b.done();
          }
          continue;
        }
        this.commits++;
        this.lastFailure = undefined;
        // Readers must learn the new block map before the dirty copies they read now go.
        this.options.committed?.(ino, batch.map((b) => b.ref), attr);
        for (const b of batch) {
          try {
            await this.cache.settleUploaded(ino, b.ref.index, b.gen, b.ref.objectId, b.sealed)
              .catch((e: Error) => this.options.log?.(`caching object ${b.ref.objectId}: ${e.message}`));
            if (b.recycle) this.parts.buffers?.give(b.sealed);
          } finally {
            b.done();
          }
        }
        try {
          const settled = await this.settleSize(ino, attr);
          if (settled !== attr) this.options.committed?.(ino, [], settled);
        } catch (e) {
          this.errors.set(ino, e as Error);
          this.options.log?.(`committing the size of inode ${ino} failed, will retry: ${(e as Error).message}`);
          const t = setTimeout(() => this.enqueueInode(ino), this.retryMs);
          t.unref();
        }
      }
    } finally {
      this.committing.delete(ino);
      this.notify();
    }
  }

  /** Once nothing of `ino` is dirty, the committed size catches up with the written size. */
  private async settleSize(ino: number, attr: Attr): Promise<Attr> {
    if (this.cache.dirtyRowsOf(ino).length > 0) return attr;
    const pending = this.cache.pending(ino);
    if (!pending) return attr;
    if (pending.size !== attr.size) {
      attr = await this.parts.meta.setAttr(ino, { size: pending.size, mtimeMs: pending.mtimeMs, ctimeMs: Math.max(attr.ctimeMs, pending.mtimeMs) });
    }
    // While changes to the inode wait in the journal, the mount shows attributes of its own
    // (a rename's, a chmod's) that this commit did not reach: the size written stays shown
    // from the pending row until they are at the service.
    if (this.held(ino)) {
      this.unsettled.set(ino, attr);
      return attr;
    }
    if (this.cache.dirtyRowsOf(ino).length === 0 && this.cache.pending(ino)?.size === pending.size) this.cache.clearPending(ino);
    return attr;
  }

  /** Sizes whose settling waited for the journal: settled now for the inodes it released. */
  private settleReleased(): void {
    for (const [ino, attr] of this.unsettled) {
      if (this.held(ino) || !this.idle(ino)) continue;
      this.unsettled.delete(ino);
      void this.settleSize(ino, attr).catch((e: Error) => this.options.log?.(`settling the size of inode ${ino} failed: ${e.message}`));
    }
  }

  private fail(ino: number, idx: number, e: Error): void {
    if ((e as { code?: string }).code === 'NoEntry') {
      // The inode is gone (deleted elsewhere): nothing left to upload it to.
      void this.cache.dropDirty(ino, idx);
      return;
    }
    this.errors.set(ino, e);
    // One line per outage, not one per block per retry.
    if (this.lastFailure?.message !== e.message) this.options.log?.(`upload of inode ${ino} block ${idx} failed, will retry every ${this.retryMs / 1000} s: ${e.message}`);
    this.lastFailure = { message: e.message, code: (e as { code?: string }).code, sinceMs: this.lastFailure?.sinceMs ?? Date.now() };
    const t = setTimeout(() => this.enqueue(ino, idx), this.retryMs);
    t.unref();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
