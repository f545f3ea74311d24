/**
 * RetryingStore wraps any ObjectStore and retries transient failures (network, throttling,
 * 5xx, timeouts) with exponential backoff and full jitter. It never retries what cannot
 * change by waiting: a missing object or bucket, denied access, a failed ifAbsent put,
 * a full disk, an integrity failure. Every call of the interface is idempotent, so a retry
 * after an ambiguous failure is safe.
 */
import { TransientError } from '../errors.js';
import type { ByteRange, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

export interface RetryPolicy {
  /** Total tries including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Called before each wait; for logs and metrics. */
  onRetry?: (op: string, attempt: number, error: Error, delayMs: number) => void;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 100, maxDelayMs: 5_000 };

export class RetryingStore implements ObjectStore {
  readonly url: string;
  readonly local?: boolean;
  constructor(private readonly inner: ObjectStore, private readonly policy: RetryPolicy = DEFAULT_RETRY) {
    this.url = inner.url;
    this.local = inner.local;
  }

  probe(): Promise<void> { return this.run('probe', () => this.inner.probe()); }
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    return this.run('put', () => this.inner.put(key, body, options));
  }
  get(key: string, range?: ByteRange, options?: GetOptions): Promise<Buffer> { return this.run('get', () => this.inner.get(key, range, options)); }
  head(key: string): Promise<ObjectInfo | undefined> { return this.run('head', () => this.inner.head(key)); }
  list(prefix: string, options?: ListOptions): Promise<ListPage> { return this.run('list', () => this.inner.list(prefix, options)); }
  delete(key: string): Promise<void> { return this.run('delete', () => this.inner.delete(key)); }
  close(): Promise<void> { return this.inner.close(); }

  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof TransientError) || attempt >= this.policy.attempts) throw e;
        const cap = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** (attempt - 1));
        const delay = Math.random() * cap;
        this.policy.onRetry?.(op, attempt, e, delay);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}
