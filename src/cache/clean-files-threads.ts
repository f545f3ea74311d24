/**
 * ThreadedFileIo: clean cache files are opened on worker threads and written on the event
 * loop. A warm read from the disk cache costs the FUSE thread one message, not a file read
 * and a MiB of AES-GCM; a plaintext comes back transferred, not copied. Requests go to the
 * thread with the fewest in hand.
 *
 * Writes stay with the fallback (the event loop's own writeCleanFile): libuv's pool writes
 * the caller's buffer as it is, which the caller keeps until the write settles. Handing them
 * to a thread cloned each MiB twice (into the message and out of it) and left the copies to
 * that thread's collector: in an image sequence over the emulated WAN that cost the agent a
 * third more CPU (15.7–16.0 s against 10.4–11.8 s for 200 × 8 MiB frames, 2 cores nearly
 * full), up to 26 MiB more peak RSS, and up to 9% of the throughput (0–9% over six rounds).
 *
 * Opens are handed to the threads a few at a time (`inHandPerThread`, 3 each), the rest
 * wait here: an urgent open (a reader waits for it) and one hurried (a reader came to wait
 * for it) go ahead of those queued for reading ahead, so a demand read waits behind at most
 * a few decryptions, not behind every block a read-ahead asked for (on a fresh mount the
 * first MiB waited 12 ms behind 13 of them).
 *
 * Promises: what CleanFileIo promises. A thread that dies fails its opens in hand (they are
 * then fetched from the store) and is replaced; after `maxDeaths` deaths no thread is started
 * again and the fallback opens too, said once in the log, so a thread that cannot run never
 * turns into a restart storm. Data keys reach a thread only when an object it opens needs
 * one; a key this user lacks is an IntegrityError.
 */
import { Worker } from 'node:worker_threads';
import { IntegrityError } from '../errors.js';
import { CacheWriteError, UnreadableCacheFile, type CleanFileIo } from './clean-files.js';
import type { FromWorker, ToWorker } from './clean-files-worker.js';

interface Thread {
  worker: Worker;
  waiting: Map<number, (r: FromWorker) => void>;
}

export interface ThreadedFileIoOptions {
  threads: number;
  /** Gives a data key, or throws IntegrityError when this user has none. */
  dataKey: (keyId: number) => Buffer;
  /** Writes, and opens once threads are given up on. */
  fallback: CleanFileIo;
  /** Deaths of threads after which no new one is started (default 3). */
  maxDeaths?: number;
  log?: (line: string) => void;
  /** The thread's script (tests give a broken one). */
  workerUrl?: URL;
  /** Opens in a thread's hand at once (3); the others wait in order, urgent ones first. */
  inHandPerThread?: number;
}

interface QueuedOpen {
  objectId: string;
  go: () => void;
}

export class ThreadedFileIo implements CleanFileIo {
  private readonly threads: Thread[] = [];
  private readonly keysSent = new Map<number, Buffer>();
  private nextId = 1;
  private closed = false;
  private deaths = 0;
  /** Opens handed to threads (or to the fallback) and not answered yet. */
  private inHand = 0;
  private readonly urgentQueue: QueuedOpen[] = [];
  private readonly queue: QueuedOpen[] = [];
  /** Threads started, ever (for tests: no restart storm). */
  started = 0;

  constructor(private readonly options: ThreadedFileIoOptions) {
    for (let i = 0; i < Math.max(1, options.threads); i++) this.threads.push(this.start());
  }

  private start(): Thread {
    this.started++;
    const worker = new Worker(this.options.workerUrl ?? new URL('./clean-files-worker.js', import.meta.url));
    worker.unref();
    const t: Thread = { worker, waiting: new Map() };
    worker.on('message', (r: FromWorker) => {
      const done = t.waiting.get(r.id);
      t.waiting.delete(r.id);
      done?.(r);
    });
    const fail = (why: string) => {
      for (const [id, done] of t.waiting) done({ id, error: 'unreadable', message: `the thread handling cache files stopped: ${why}` });
      t.waiting.clear();
      const i = this.threads.indexOf(t);
      if (i < 0 || this.closed) return;
      if (++this.deaths < (this.options.maxDeaths ?? 3)) {
        this.threads[i] = this.start();
        return;
      }
      this.threads.splice(i, 1);
      if (this.threads.length === 0) this.options.log?.(`cache files are opened on the main thread from now on: the thread handling them stopped ${this.deaths} times (${why})`);
    };
    worker.on('error', (e) => fail(e.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    for (const [keyId, key] of this.keysSent) t.worker.postMessage({ type: 'key', keyId, key } satisfies ToWorker);
    return t;
  }

  private ask(t: Thread, message: DistributiveOmit<ToWorker & { id: number }, 'id'>, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    return new Promise((resolve) => {
      const id = this.nextId++;
      t.waiting.set(id, resolve);
      t.worker.postMessage({ ...message, id } as ToWorker, transfer);
    });
  }

  private idlest(): Thread | undefined {
    if (this.threads.length === 0) return undefined;
    return this.threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
  }

  /**
   * `into` in shared memory is filled in place by the thread; `into` that is a whole buffer of
   * its own moves to the thread and back with the plaintext.
   */
  async open(file: string, size: number, objectId: string, into?: Buffer, urgent = false): Promise<Buffer> {
    if (this.closed) throw new UnreadableCacheFile('the cache is closed');
    await this.turn(objectId, urgent);
    try {
      if (this.closed) throw new UnreadableCacheFile('the cache is closed');
      return await this.openNow(file, size, objectId, into);
    } finally {
      this.next();
    }
  }

  hurry(objectId: string): void {
    const i = this.queue.findIndex((q) => q.objectId === objectId);
    if (i >= 0) this.urgentQueue.push(...this.queue.splice(i, 1));
  }

  /** Resolves when this open may be handed to a thread. */
  private turn(objectId: string, urgent: boolean): Promise<void> | undefined {
    const limit = Math.max(1, this.threads.length) * (this.options.inHandPerThread ?? 3);
    if (this.inHand < limit && this.urgentQueue.length === 0 && (urgent || this.queue.length === 0)) {
      this.inHand++;
      return undefined;
    }
    return new Promise((go) => (urgent ? this.urgentQueue : this.queue).push({ objectId, go }));
  }

  /** An open was answered: its place goes to the next one waiting, urgent ones first. */
  private next(): void {
    const q = this.urgentQueue.shift() ?? this.queue.shift();
    if (q) q.go();
    else this.inHand--;
  }

  private async openNow(file: string, size: number, objectId: string, into?: Buffer): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const t = this.idlest();
      if (!t) return this.options.fallback.open(file, size, objectId, into);
      const shared = into && into.buffer instanceof SharedArrayBuffer ? { memory: into.buffer, offset: into.byteOffset, length: into.length } : undefined;
      const memory = !shared && attempt === 0 && into && into.byteOffset === 0 && into.buffer instanceof ArrayBuffer ? into.buffer : undefined;
      const r = await this.ask(t, { type: 'open', file, size, objectId, into: memory, shared }, memory ? [memory] : []);
      if ('sharedLength' in r) return into!.subarray(0, r.sharedLength);
      if ('plain' in r) return Buffer.from(r.plain.buffer, r.plain.byteOffset, r.plain.byteLength);
      if (!('error' in r)) throw new UnreadableCacheFile('unexpected answer from the thread handling cache files');
      if (r.error !== 'key') throw r.error === 'integrity' ? new IntegrityError(r.message) : new UnreadableCacheFile(r.message);
      if (attempt > 0) throw new IntegrityError(`block object ${objectId} needs data key ${r.keyId}, which its thread did not take`);
      const key = this.options.dataKey(r.keyId);
      this.keysSent.set(r.keyId, key);
      for (const each of this.threads) each.worker.postMessage({ type: 'key', keyId: r.keyId, key } satisfies ToWorker);
    }
  }

  async write(file: string, bytes: Uint8Array): Promise<void> {
    if (this.closed) throw new CacheWriteError('the cache is closed');
    return this.options.fallback.write(file, bytes);
  }

  async close(): Promise<void> {
    this.closed = true;
    // Opens still waiting for their turn are answered: the cache is closed.
    for (const q of this.urgentQueue.splice(0).concat(this.queue.splice(0))) {
      this.inHand++;
      q.go();
    }
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    await this.options.fallback.close();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
