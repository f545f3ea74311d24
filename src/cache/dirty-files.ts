/**
 * How the block cache reads and writes its dirty block files.
 *
 * A file written or read whole (a block sealed whole) of at most `SYNC_IO_MAX` bytes is
 * handled with synchronous calls on the event loop: a write of a few KiB into the page cache
 * takes microseconds, while each of the three hops of an asynchronous open, write and close
 * through libuv's thread pool waits behind whatever else the pool is doing (uploads, clean
 * cache writes, reads) — for `tar x` of 4 KiB files that wait was most of a write's time.
 * Larger whole files go through the pool (made synchronous at 1 MiB, 16 writers of 64 MiB
 * left the agent's RSS past 1 GiB, and `cp` was no faster). Either way the bytes are in the file (the OS has them) when the promise settles, and
 * errors carry the system's `code` (ENOSPC for a full disk).
 *
 * A block written in part (kept in sector form) is written many times in a row — `dd bs=128k`
 * writes eight times into each 1 MiB block — so its file stays open between writes
 * (`OpenDirtyFiles`, a bounded set of descriptors, closed least recently used first, and
 * always before the file is renamed or removed); its reads and writes, up to one request
 * (1 MiB) each, are synchronous calls into the page cache on the event loop, so no hop through
 * libuv's pool and no open or close stands between a request and its answer (`dd bs=128k`:
 * 60 → 170+ MB/s with the store near).
 *
 * Making a file is the one slow step left: on this kind of disk (ext4 on a virtual disk) a
 * create costs ~0.28 ms where opening an existing file costs 2 µs, and `tar x` of small files
 * makes one dirty file per file. `SpareFiles` makes empty files ahead on a thread of its
 * own, and a new dirty block takes one (its name is a fresh random id, as before); when none is
 * ready the block makes its own. A spare never named by the cache's index is an orphan the
 * next start-up removes, like any file a killed process made but never recorded.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, closeSync, ftruncateSync, openSync, read as readCallback, readSync, rmSync, unlinkSync, write as writeCallback, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import { IntegrityError } from '../errors.js';

/** Whole files up to this size are read and written on the event loop. */
export const SYNC_IO_MAX = 64 * 1024;

/** An open dirty file: positioned reads and writes, then close. */
export interface DirtyFile {
  read(into: Buffer, offset: number, length: number, position: number): Promise<number>;
  write(bytes: Buffer, offset: number, length: number, position: number): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

class SyncFile implements DirtyFile {
  constructor(private readonly fd: number) {}
  async read(into: Buffer, offset: number, length: number, position: number): Promise<number> {
    return readSync(this.fd, into, offset, length, position);
  }
  async write(bytes: Buffer, offset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) done += writeSync(this.fd, bytes, offset + done, length - done, position + done);
  }
  async truncate(length: number): Promise<void> {
    ftruncateSync(this.fd, length);
  }
  async close(): Promise<void> {
    closeSync(this.fd);
  }
}

/**
 * Dirty files kept open between writes, at most `max` at once. Every call on one is
 * synchronous, so closing one (evicted, forgotten) never meets a call in progress on it.
 */
export class OpenDirtyFiles {
  private readonly fds: LRUCache<string, KeptFile>;

  constructor(private readonly dir: string, max = 64) {
    this.fds = new LRUCache<string, KeptFile>({ max, dispose: (f) => f.shut() });
  }

  /** The open file `fileId` ('wx' makes it first; otherwise it exists, a spare or a block's). */
  open(fileId: string, flags: 'r+' | 'wx' = 'r+'): KeptFile {
    let f = this.fds.get(fileId);
    if (!f) {
      f = new KeptFile(openSync(path.join(this.dir, fileId), flags === 'wx' ? 'wx+' : 'r+', 0o600));
      this.fds.set(fileId, f);
    }
    return f;
  }

  /** Closes `fileId` if it is open: before it is renamed or removed. */
  forget(fileId: string): void {
    this.fds.delete(fileId);
  }

  closeAll(): void {
    this.fds.clear();
  }
}

/**
 * A file of OpenDirtyFiles: `close()` leaves it open for the next write; `shut()` closes it.
 * `pread` and `pwrite` are the synchronous calls themselves.
 */
export class KeptFile extends SyncFile {
  constructor(private readonly descriptor: number) {
    super(descriptor);
  }
  /** Fills `into` from `position` (zeros past the end of the file). */
  pread(into: Buffer, position: number): void {
    let done = 0;
    while (done < into.length) {
      const n = readSync(this.descriptor, into, done, into.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    into.fill(0, done);
  }
  /** Writes all of `bytes` at `position`. */
  pwrite(bytes: Buffer, position: number): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.descriptor, bytes, done, bytes.length - done, position + done);
  }
  override async close(): Promise<void> { /* kept open */ }
  shut(): void {
    closeSync(this.descriptor);
  }
}

/** Fills `file` with `bytes`: made now ('wx'), or a spare that exists and is empty ('r+'). */
export async function writeNewDirty(file: string, bytes: Uint8Array, flag: 'wx' | 'r+' = 'wx'): Promise<void> {
  if (bytes.length <= SYNC_IO_MAX) {
    writeFileSync(file, bytes, { mode: 0o600, flag });
    return;
  }
  // Opened and closed here (microseconds for a spare), written by the pool: one hop, not three.
  const fd = openSync(file, flag, 0o600);
  try {
    let done = 0;
    while (done < bytes.length) {
      done += await new Promise<number>((resolve, reject) => writeCallback(fd, bytes, done, bytes.length - done, done, (e, n) => (e ? reject(e) : resolve(n))));
    }
  } finally {
    closeSync(fd);
  }
}

/** A new dirty file's id, and whether it exists already (a spare: open it 'r+', not 'wx'). */
export interface NewDirtyFile {
  fileId: string;
  spare: boolean;
}

/**
 * Makes empty files in a thread of its own: a create costs the calling thread its whole
 * time (even through libuv's pool, the event loop's profile showed the creates' time on it).
 */
const MAKER = `
const { parentPort } = require('node:worker_threads');
const { closeSync, openSync } = require('node:fs');
parentPort.on('message', ({ paths }) => {
  const made = [];
  try { for (const p of paths) { closeSync(openSync(p, 'wx', 0o600)); made.push(p); } } catch {}
  parentPort.postMessage({ made });
});`;

/**
 * Empty files made ahead in `dir`, in batches on a thread of their own, so a writer rarely
 * waits for a create. Promises: an id handed out by `take` names an empty file that nothing
 * else uses, or (spare: false) a name no file has yet; a failure to make spares (a full
 * disk) only means writers make their own files, which then report the error.
 */
export class SpareFiles {
  private readonly ready: string[] = [];
  private filling = false;
  private closed = false;
  private maker?: Worker;
  /** How many spares the batch in the making asks for (fewer made: the disk is full). */
  private pendingBatch = 0;

  constructor(private readonly dir: string, private readonly keep = 64) {}

  take(): NewDirtyFile {
    const fileId = this.ready.pop();
    this.fill();
    return fileId ? { fileId, spare: true } : { fileId: randomBytes(8).toString('hex'), spare: false };
  }

  /** Makes spares until `keep` are ready (one batch at a time). */
  fill(): void {
    if (this.filling || this.closed || this.ready.length > this.keep / 2) return;
    this.filling = true;
    if (!this.maker) {
      this.maker = new Worker(MAKER, { eval: true });
      this.maker.unref();
      this.maker.on('error', () => { this.maker = undefined; this.filling = false; });
      this.maker.on('message', ({ made }: { made: string[] }) => {
        this.filling = false;
        if (this.closed) {
          for (const p of made) rmSync(p, { force: true });
          return;
        }
        this.ready.push(...made.map((p) => path.basename(p)));
        // A short batch: out of room or inodes; writers make their own files and meet the error.
        if (made.length === this.pendingBatch) this.fill();
      });
    }
    const n = this.keep - this.ready.length;
    this.pendingBatch = n;
    this.maker.postMessage({ paths: Array.from({ length: n }, () => path.join(this.dir, randomBytes(8).toString('hex'))) });
  }

  /** Removes the spares not handed out, and stops the thread. */
  close(): void {
    this.closed = true;
    for (const id of this.ready.splice(0)) rmSync(path.join(this.dir, id), { force: true });
    void this.maker?.terminate();
  }
}

/**
 * Fills `into` with the first `into.length` bytes of `file` and returns it: synchronously up
 * to SYNC_IO_MAX, else opened and closed here with one read through the pool (as
 * writeNewDirty). A file shorter than that is an IntegrityError: its index row says more.
 */
export async function readDirtyFileInto(file: string, into: Buffer): Promise<Buffer> {
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < into.length) {
      const n = into.length <= SYNC_IO_MAX
        ? readSync(fd, into, done, into.length - done, done)
        : await new Promise<number>((resolve, reject) => readCallback(fd, into, done, into.length - done, done, (e, got) => (e ? reject(e) : resolve(got))));
      if (n === 0) throw new IntegrityError(`the dirty cache file ${file} holds ${done} bytes where its index says ${into.length}`);
      done += n;
    }
    return into;
  } finally {
    closeSync(fd);
  }
}

/** Removes `file` if it is there (a small one with one unlink: rmSync's checks cost 22 us to its 7). */
export async function removeDirty(file: string, size: number): Promise<void> {
  if (size > SYNC_IO_MAX) return fs.rm(file, { force: true });
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
