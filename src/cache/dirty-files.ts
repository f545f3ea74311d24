/**
 * How the block cache reads and writes its dirty block files.
 *
 * A small file (at most `SYNC_IO_MAX` bytes, the size of the whole file after the call) is
 * handled with synchronous calls on the event loop: a write of a few KiB into the page cache
 * takes microseconds, while each of the three hops of an asynchronous open, write and close
 * through libuv's thread pool waits behind whatever else the pool is doing (uploads, clean
 * cache writes, reads) — for `tar x` of 4 KiB files that wait was most of a write's time.
 * Larger files go through the pool as before, so a slow disk never holds the event loop for
 * long. Either way the bytes are in the file (the OS has them) when the promise settles, and
 * errors carry the system's `code` (ENOSPC for a full disk).
 */
import { promises as fs, closeSync, ftruncateSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';

/** Files up to this size are read and written on the event loop. */
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

class PooledFile implements DirtyFile {
  constructor(private readonly fh: fs.FileHandle) {}
  async read(into: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(into, offset, length, position)).bytesRead;
  }
  async write(bytes: Buffer, offset: number, length: number, position: number): Promise<void> {
    await this.fh.write(bytes, offset, length, position);
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Opens `file` (`flags` as fs.open; 'wx' makes it, mode 0600); `size`: how large it is or becomes. */
export async function openDirty(file: string, flags: 'r' | 'r+' | 'wx', size: number): Promise<DirtyFile> {
  if (size <= SYNC_IO_MAX) return new SyncFile(openSync(file, flags, 0o600));
  return new PooledFile(await fs.open(file, flags, 0o600));
}

/** Makes `file` (it must not exist) holding `bytes`. */
export async function writeNewDirty(file: string, bytes: Uint8Array): Promise<void> {
  if (bytes.length <= SYNC_IO_MAX) writeFileSync(file, bytes, { mode: 0o600, flag: 'wx' });
  else await fs.writeFile(file, bytes, { mode: 0o600, flag: 'wx' });
}

/** The whole of `file`, known to be about `size` bytes. */
export async function readDirtyFile(file: string, size: number): Promise<Buffer> {
  return size <= SYNC_IO_MAX ? readFileSync(file) : fs.readFile(file);
}

/** Removes `file` if it is there. */
export async function removeDirty(file: string, size: number): Promise<void> {
  if (size <= SYNC_IO_MAX) rmSync(file, { force: true });
  else await fs.rm(file, { force: true });
}
