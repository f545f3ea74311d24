/**
 * Opening clean cached blocks: a clean block's cache file holds the sealed object exactly as
 * the store does, and an opener turns it into plaintext (read the file whole, authenticate,
 * decrypt). Two implementations: on the event loop (`EventLoopOpener`) and on worker threads
 * (`ThreadedOpener`, in open-threads.ts), which keeps a warm read's file I/O and AES-GCM off
 * the thread that serves FUSE requests.
 *
 * Promises: `open` returns the exact plaintext that was sealed under `objectId`, or throws
 * IntegrityError (the bytes do not authenticate: damaged, swapped, or of an unknown key) or
 * `UnreadableCacheFile` (missing, or shorter than the index says: torn). Never other bytes.
 */
import { promises as fs } from 'node:fs';

export interface CachedBlockOpener {
  open(file: string, size: number, objectId: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** A cache file that is missing or shorter than its index row (torn by a power loss). */
export class UnreadableCacheFile extends Error {
  override name = 'UnreadableCacheFile';
}

/** Opens on the event loop: one open + read of the known size + close, then the codec. */
export class EventLoopOpener implements CachedBlockOpener {
  /** Read buffers reused once their block is opened, sparing the collector a MiB per block. */
  private readonly spare: Buffer[] = [];

  constructor(private readonly codec: { open(objectId: string, sealed: Buffer): Buffer }) {}

  async open(file: string, size: number, objectId: string): Promise<Buffer> {
    const bytes = this.spare.length && this.spare[this.spare.length - 1].length === size ? this.spare.pop()! : Buffer.allocUnsafe(size);
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
    const plain = this.codec.open(objectId, bytes);
    if (this.spare.length < 8) this.spare.push(bytes);
    return plain;
  }

  async close(): Promise<void> {}
}
