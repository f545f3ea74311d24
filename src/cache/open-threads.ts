/**
 * ThreadedOpener: clean cached blocks are read and opened on worker threads, so a warm read
 * from the disk cache costs the FUSE thread one message, not a file read and a MiB of
 * AES-GCM. Requests go to the thread with the fewest in hand; the plaintext comes back
 * transferred, not copied.
 *
 * Promises: what CachedBlockOpener promises. A thread that dies fails its requests (the
 * caller then fetches from the store) and is replaced; after `maxDeaths` deaths no thread is
 * started again and blocks are opened by the fallback (on the event loop), said once in the
 * log, so a thread that cannot run never turns into a restart storm. Data keys reach a
 * thread only when an object it opens needs one; a key this user lacks is an IntegrityError.
 */
import { Worker } from 'node:worker_threads';
import { IntegrityError } from '../errors.js';
import { UnreadableCacheFile, type CachedBlockOpener } from './opener.js';
import type { FromWorker, ToWorker } from './open-worker.js';

interface Thread {
  worker: Worker;
  waiting: Map<number, (r: FromWorker) => void>;
}

export interface ThreadedOpenerOptions {
  threads: number;
  /** Gives a data key, or throws IntegrityError when this user has none. */
  dataKey: (keyId: number) => Buffer;
  /** Opens blocks once threads are given up on. */
  fallback: CachedBlockOpener;
  /** Deaths of threads after which no new one is started (default 3). */
  maxDeaths?: number;
  log?: (line: string) => void;
  /** The thread's script (tests give a broken one). */
  workerUrl?: URL;
}

export class ThreadedOpener implements CachedBlockOpener {
  private readonly threads: Thread[] = [];
  private readonly keysSent = new Map<number, Buffer>();
  private nextId = 1;
  private closed = false;
  private deaths = 0;
  /** Threads started, ever (for tests: no restart storm). */
  started = 0;

  constructor(private readonly options: ThreadedOpenerOptions) {
    for (let i = 0; i < Math.max(1, options.threads); i++) this.threads.push(this.start());
  }

  private start(): Thread {
    this.started++;
    const worker = new Worker(this.options.workerUrl ?? new URL('./open-worker.js', import.meta.url));
    worker.unref();
    const t: Thread = { worker, waiting: new Map() };
    worker.on('message', (r: FromWorker) => {
      const done = t.waiting.get(r.id);
      t.waiting.delete(r.id);
      done?.(r);
    });
    const fail = (why: string) => {
      for (const [id, done] of t.waiting) done({ id, error: 'unreadable', message: `the thread opening cached blocks stopped: ${why}` });
      t.waiting.clear();
      const i = this.threads.indexOf(t);
      if (i < 0 || this.closed) return;
      if (++this.deaths < (this.options.maxDeaths ?? 3)) {
        this.threads[i] = this.start();
        return;
      }
      this.threads.splice(i, 1);
      if (this.threads.length === 0) this.options.log?.(`cached blocks are opened on the main thread from now on: the thread opening them stopped ${this.deaths} times (${why})`);
    };
    worker.on('error', (e) => fail(e.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    for (const [keyId, key] of this.keysSent) t.worker.postMessage({ type: 'key', keyId, key } satisfies ToWorker);
    return t;
  }

  private ask(t: Thread, file: string, size: number, objectId: string): Promise<FromWorker> {
    return new Promise((resolve) => {
      const id = this.nextId++;
      t.waiting.set(id, resolve);
      t.worker.postMessage({ type: 'open', id, file, size, objectId } satisfies ToWorker);
    });
  }

  private idlest(): Thread | undefined {
    if (this.threads.length === 0) return undefined;
    return this.threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
  }

  async open(file: string, size: number, objectId: string): Promise<Buffer> {
    if (this.closed) throw new UnreadableCacheFile('the cache is closed');
    for (let attempt = 0; ; attempt++) {
      const t = this.idlest();
      if (!t) return this.options.fallback.open(file, size, objectId);
      const r = await this.ask(t, file, size, objectId);
      if ('plain' in r) return Buffer.from(r.plain.buffer, r.plain.byteOffset, r.plain.byteLength);
      if (r.error !== 'key') throw r.error === 'integrity' ? new IntegrityError(r.message) : new UnreadableCacheFile(r.message);
      if (attempt > 0) throw new IntegrityError(`block object ${objectId} needs data key ${r.keyId}, which its thread did not take`);
      const key = this.options.dataKey(r.keyId);
      this.keysSent.set(r.keyId, key);
      for (const each of this.threads) each.worker.postMessage({ type: 'key', keyId: r.keyId, key } satisfies ToWorker);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    await this.options.fallback.close();
  }
}
