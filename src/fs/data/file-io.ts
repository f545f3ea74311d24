/**
 * File contents as the mount serves them: reads (dirty blocks from the cache, the rest
 * through the block loader), writes into the cache's dirty blocks, truncates, the hydration
 * of whole files into the disk cache, and the loads the prefetcher drives.
 *
 * Promises:
 * - a read sees this mount's writes at once (dirty blocks first), and committed blocks of
 *   the version it was given, never older;
 * - a reply may be a view of a block in memory, valid only during the reply's call;
 * - writes, truncates and discards of one inode run one at a time; a truncate or a discard
 *   holds the inode's uploads back while it changes the dirty blocks;
 * - `write` returns once the bytes are in the cache (durable there) and queued for upload.
 */
import { spans } from '../../block/layout.js';
import type { DirtyBlocks } from '../../cache/types.js';
import { IsDirectoryError, InvalidArgumentError } from '../../errors.js';
import { isDir } from '../../meta/types.js';
import { Prefetcher, prefetchWindowBlocks } from '../../prefetch/prefetcher.js';
import type { Uploader } from '../../upload/uploader.js';
import { mapLimit } from '../../util/concurrency.js';
import { KeyedMutex } from '../../util/mutex.js';
import { traced, type TraceSink } from '../../util/trace.js';
import type { BlockLoader } from './block-loader.js';
import type { BlockMap } from './block-map.js';
import type { InodeAttrs } from './types.js';

export class FileIo {
  readonly prefetcher: Prefetcher;
  private readonly locks = new KeyedMutex<number>();
  bytesRead = 0;
  bytesWritten = 0;

  constructor(readonly loader: BlockLoader, private readonly blockMap: BlockMap, private readonly cache: DirtyBlocks, private readonly uploader: Uploader,
    private readonly attrs: InodeAttrs, private readonly blockSize: number, options: { trace?: TraceSink } = {}) {
    this.prefetcher = new Prefetcher({
      isCached: (ino, idx) => this.isCached(ino, idx),
      load: (ino, idx, toDisk) => traced(options.trace, () => `${toDisk ? 'stage' : 'prefetch'} ino ${ino} block ${idx}`, async () => {
        const { version } = await this.attrs.committedAttr(ino);
        return toDisk ? this.stageBlock(ino, idx, version) : this.fetchBlock(ino, idx, version);
      }),
    }, { blockSize, maxInflight: 16, maxWindowBlocks: prefetchWindowBlocks(loader.memoryBytes, blockSize) });
  }

  /**
   * Serves a read of handle `fh` on `ino` (committed `version`, `size` as this mount sees it)
   * and tells the prefetcher. The demand read goes first; the prefetches it calls for, and
   * the opens of the blocks after it from disk, start once it is served (on a fresh mount the
   * first MiB waited behind a dozen such opens).
   */
  readForHandle(fh: number, ino: number, version: number, size: number, offset: number, length: number, reply: (data: Buffer) => void): Promise<void> {
    const served = this.read(ino, version, size, offset, length, reply);
    this.prefetcher.onRead(fh, ino, offset, length, size, served);
    if (this.prefetcher.patternOf(fh) === 'sequential') {
      // The next window of the map, asked for half a window ahead.
      this.blockMap.loadAhead(ino, Math.floor((offset + length) / this.blockSize) + (this.blockMap.window >> 1), version, size);
      void served.then(() => this.readAheadFromDisk(ino, offset + length, size), () => {});
    }
    return served;
  }

  /** Reads a copy of an inode's bytes as this mount sees them, without a handle (tools and tests). */
  async readInode(ino: number, offset: number, length: number): Promise<Buffer> {
    const committed = await this.attrs.committedAttr(ino);
    return copyOfReply((reply) => this.read(ino, committed.version, this.attrs.overlay(committed).size, offset, length, reply));
  }

  /** Reads with the inode's committed version and its size as this mount sees it; `reply` as in readForHandle. */
  async read(ino: number, version: number, size: number, offset: number, length: number, reply: (data: Buffer) => void): Promise<void> {
    const parts = spans(this.blockSize, offset, length, size);
    const total = parts.reduce((n, s) => n + s.length, 0);
    if (parts.length === 1 && !this.cache.dirtyRow(ino, parts[0].index)) {
      // One clean block: reply with a view of its plaintext, no copy. A write landing
      // meanwhile makes it dirty: checked again once it is here.
      const s = parts[0];
      const ref = await this.blockMap.ref(ino, s.index, version);
      if (ref && s.start + s.length <= ref.length) {
        const served = await this.loader.use(ref, ino, (plain) => {
          if (plain.length < s.start + s.length || this.cache.dirtyRow(ino, s.index)) return false;
          reply(plain.subarray(s.start, s.start + s.length));
          return true;
        });
        if (served) {
          this.bytesRead += total;
          return;
        }
      }
    }
    const out = Buffer.alloc(total);
    await Promise.all(parts.map(async (s) => {
      const dirty = await this.cache.readDirty(ino, s.index, s.start, s.length);
      if (dirty) {
        dirty.copy(out, s.outOffset);
        return;
      }
      const ref = await this.blockMap.ref(ino, s.index, version);
      if (!ref || s.start >= ref.length) return; // a hole, or past the block's valid bytes
      await this.loader.use(ref, ino, (plain) => plain.copy(out, s.outOffset, s.start, Math.min(ref.length, plain.length, s.start + s.length)));
    }));
    this.bytesRead += total;
    reply(out);
  }

  /**
   * Sequential reads of blocks already in the disk cache: the next few are read and opened
   * into memory ahead of time, so disk and decryption overlap with serving (the network
   * prefetcher skips blocks that are on disk).
   */
  private readAheadFromDisk(ino: number, from: number, size: number): void {
    const first = Math.floor(from / this.blockSize);
    const ahead = Math.max(1, Math.floor(this.loader.memoryBytes / 2 / this.blockSize));
    const last = Math.min(first + ahead, Math.floor((size - 1) / this.blockSize));
    for (let i = first; i <= last; i++) {
      const ref = this.blockMap.known(ino, i);
      if (ref) this.loader.openAhead(ref, ino);
    }
  }

  /** Brings one block into memory and the cache (a hole or a dirty block needs nothing). */
  private async fetchBlock(ino: number, idx: number, version: number): Promise<void> {
    if (this.cache.dirtyRow(ino, idx)) return;
    const ref = await this.blockMap.ref(ino, idx, version);
    if (ref) await this.loader.bringIn(ref, ino);
  }

  /** Brings one block to the disk cache only (a predicted file further ahead than memory keeps). */
  private async stageBlock(ino: number, idx: number, version: number): Promise<void> {
    if (this.cache.dirtyRow(ino, idx)) return;
    const ref = await this.blockMap.ref(ino, idx, version);
    if (ref) await this.loader.stage(ref.objectId, ino);
  }

  /** Whether a block can be read without the store. */
  private isCached(ino: number, idx: number): boolean {
    if (this.cache.dirtyRow(ino, idx)) return true;
    const ref = this.blockMap.known(ino, idx);
    if (ref === null) return true; // a hole
    return ref !== undefined && this.loader.isLocal(ref.objectId);
  }

  /** Writes `data` at `offset` of `ino` (at its end if `append`) into dirty blocks; returns the bytes written. */
  async write(ino: number, offset: number, data: Buffer, append: boolean): Promise<number> {
    return this.locks.run(ino, async () => {
      const attr = this.attrs.overlay(await this.attrs.committedAttr(ino));
      const at = append ? attr.size : offset;
      const full: number[] = [];
      const parts = spans(this.blockSize, at, data.length);
      // The size the write implies is recorded with its last block, in one step.
      const pending = { ino, size: Math.max(attr.size, at + data.length), mtimeMs: Date.now() };
      for (const [i, s] of parts.entries()) {
        const blockStart = s.index * this.blockSize;
        const baseLength = Math.max(0, Math.min(this.blockSize, attr.size - blockStart));
        await this.cache.writeDirty(ino, s.index, s.start, data.subarray(s.outOffset, s.outOffset + s.length),
          () => this.committedBlock(ino, s.index, baseLength), baseLength, i === parts.length - 1 ? pending : undefined);
        if (s.start + s.length === this.blockSize) full.push(s.index);
      }
      if (parts.length === 0) this.cache.setPending(pending);
      this.uploader.noteWrite(ino, full);
      this.bytesWritten += data.length;
      return data.length;
    });
  }

  /** The committed plaintext of a block, exactly `length` bytes (zeros past its end), or undefined for a hole. */
  private async committedBlock(ino: number, idx: number, length: number): Promise<Buffer | undefined> {
    const attr = await this.attrs.committedAttr(ino);
    const ref = await this.blockMap.ref(ino, idx, attr.version);
    if (!ref) return undefined;
    const out = Buffer.alloc(length);
    await this.loader.use(ref, ino, (plain) => plain.copy(out, 0, 0, Math.min(length, ref.length, plain.length)));
    return out;
  }

  /**
   * Truncates to `size`: dirty blocks past it go, the one it cuts is shortened, then
   * `commitSize` records the size (it says whether the change was journaled offline, when
   * the map this mount knows is cut rather than dropped).
   */
  async truncate(ino: number, size: number, commitSize: (mtimeMs: number) => Promise<boolean>): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('bad size');
    await this.locks.run(ino, async () => {
      const attr = await this.attrs.committedAttr(ino);
      if (isDir(attr.mode)) throw new IsDirectoryError('is a directory');
      const release = await this.uploader.freeze(ino);
      try {
        const cut = Math.ceil(size / this.blockSize);
        for (const r of this.cache.dirtyRowsOf(ino)) {
          if (r.idx >= cut) await this.cache.dropDirty(ino, r.idx);
          else if (r.idx === cut - 1 && size % this.blockSize !== 0) await this.cache.truncateDirty(ino, r.idx, size % this.blockSize);
        }
        const now = Date.now();
        if (await commitSize(now)) this.blockMap.trim(ino, size);
        else this.blockMap.drop(ino);
        if (this.cache.dirtyRowsOf(ino).length > 0) this.cache.setPending({ ino, size, mtimeMs: now });
        else this.cache.clearPending(ino);
      } finally {
        release();
      }
    });
  }

  /** Drops everything of an inode that lost its last name, then `reclaim`s it (its metadata). */
  async discard(ino: number, reclaim: () => Promise<void>): Promise<void> {
    await this.locks.run(ino, async () => {
      // Uploads in flight are not waited for: they end dropped (Uploader.forget).
      this.uploader.forget(ino);
      for (const r of this.cache.dirtyRowsOf(ino)) await this.cache.dropDirty(ino, r.idx);
      this.cache.clearPending(ino);
      this.blockMap.drop(ino);
      await reclaim();
    });
  }

  /**
   * Brings every block of a file into the disk cache, `parallel` fetches at a time (so its
   * memory stays bounded); `onBytes` hears of each block as it is fetched or found cached.
   * `size` is the file's committed size; its refs are asked of the service 256 at a time.
   */
  async hydrate(ino: number, size: number, onBytes?: (bytes: number, fetched: boolean) => void, parallel = 8): Promise<{ bytes: number; fetched: number }> {
    const count = Math.ceil(size / this.blockSize);
    let bytes = 0;
    let fetched = 0;
    for (let first = 0; first < count; first += 256) {
      await mapLimit(await this.blockMap.committedRefs(ino, first, 256), parallel, async (r) => {
        const got = await this.loader.fetchToDisk(r.objectId, ino);
        if (got) fetched += r.length;
        bytes += r.length;
        onBytes?.(r.length, got);
      });
    }
    return { bytes, fetched };
  }
}

/** A copy, to keep, of the bytes a read hands its reply (valid only during that call). */
export async function copyOfReply(read: (reply: (data: Buffer) => void) => Promise<void>): Promise<Buffer> {
  let out = Buffer.alloc(0);
  await read((data) => { out = Buffer.from(data); });
  return out;
}
