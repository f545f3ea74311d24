/**
 * The clean cache's files: a clean block's cache file holds the sealed object exactly as the
 * store does. `CleanFileIo` writes such files (a fetched object kept for later) and opens
 * them into plaintext (read the file whole, authenticate, decrypt). Two implementations: on
 * the event loop (`EventLoopFileIo`) and with opens on worker threads (`ThreadedFileIo`, in
 * clean-files-threads.ts), which keeps a warm read's file I/O and AES-GCM off the thread that
 * serves FUSE requests. Both write on libuv's pool, from the caller's buffer, uncopied.
 *
 * Promises:
 * - `open` returns the exact plaintext that was sealed under `objectId`, or throws
 *   IntegrityError (the bytes do not authenticate: damaged, swapped, or of an unknown key) or
 *   `UnreadableCacheFile` (missing, or shorter than the index says: torn). Never other bytes.
 * - `write` puts the bytes under `file` whole or not at all: written under a temporary name
 *   in the same folder (made if missing) and renamed, so a crash never leaves a short file
 *   under the real name. A failure rejects with an error carrying the system's `code`
 *   (ENOSPC for a full disk) and leaves no temporary file behind.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BufferPool } from '../util/buffer-pool.js';

export interface CleanFileIo {
  /**
   * With `into` (at least the plaintext's size: a view of shared memory, filled in place by
   * another thread, or a whole buffer of its own memory, which may be moved to another thread
   * and back) the plaintext is a view of that memory. The caller gives up `into` either way
   * and uses only what is returned. `urgent`: a reader waits for it now; it goes ahead of
   * the opens queued for reading ahead.
   */
  open(file: string, size: number, objectId: string, into?: Buffer, urgent?: boolean): Promise<Buffer>;
  /** An open of `objectId` queued for reading ahead, that a reader now waits for, goes first. */
  hurry?(objectId: string): void;
  /** The caller leaves `bytes` unchanged until the write settles (they are written as they are). */
  write(file: string, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** A cache file that is missing or shorter than its index row (torn by a power loss). */
export class UnreadableCacheFile extends Error {
  override name = 'UnreadableCacheFile';
}

/** A cache file that could not be written; `code` is the system's (ENOSPC, EACCES...). */
export class CacheWriteError extends Error {
  override name = 'CacheWriteError';
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/**
 * Writes one clean cache file (temporary name, then rename), making its folder the first
 * time it is seen (`dirsMade`: a mkdir per write showed in profiles). Both implementations
 * write through it (ThreadedFileIo hands its writes to its fallback).
 */
async function writeCleanFile(file: string, bytes: Uint8Array, dirsMade: Set<string>): Promise<void> {
  const dir = path.dirname(file);
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    if (!dirsMade.has(dir)) {
      await fs.mkdir(dir, { recursive: true });
      dirsMade.add(dir);
    }
    await fs.writeFile(tmp, bytes, { mode: 0o600 });
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    const err = e as NodeJS.ErrnoException;
    throw new CacheWriteError(err.message, err.code);
  }
}

/** On the event loop: one open + read of the known size + close, then the codec; writes as writeCleanFile. */
export class EventLoopFileIo implements CleanFileIo {
  /**
   * Read buffers reused once their block is opened, sparing the collector a MiB per block;
   * sized to the largest file read so far (a full block's, once one is read).
   */
  private reads = new BufferPool(0, 8);
  private readonly dirsMade = new Set<string>();

  constructor(private readonly codec: { open(objectId: string, sealed: Buffer, into?: Buffer): Buffer }) {}

  async open(file: string, size: number, objectId: string, into?: Buffer): Promise<Buffer> {
    if (size > this.reads.size) this.reads = new BufferPool(size, 8);
    const bytes = this.reads.take(size);
    let got: number;
    try {
      // One read of the known size (readFile adds an fstat and reads in 512 KiB pieces).
      const fh = await fs.open(file, 'r');
      try {
        got = (await fh.read(bytes, 0, size, 0)).bytesRead;
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw new UnreadableCacheFile((e as Error).message);
    }
    if (got !== size) throw new UnreadableCacheFile(`${file} is torn (${got} of ${size} bytes)`);
    const plain = this.codec.open(objectId, bytes, into);
    this.reads.give(bytes);
    return plain;
  }

  write(file: string, bytes: Uint8Array): Promise<void> {
    return writeCleanFile(file, bytes, this.dirsMade);
  }

  async close(): Promise<void> {}
}
