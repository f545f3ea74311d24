/**
 * MeteredStore wraps any ObjectStore and counts, per operation, requests, failures, bytes
 * moved and latency (total, max and a log-scale histogram for percentiles). `lucid status`
 * and the benchmarks read these figures.
 */
import type { ByteRange, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';
import type { StoreOp } from './faults.js';

export interface OpStats {
  requests: number;
  errors: number;
  bytes: number;
  totalMs: number;
  maxMs: number;
  /** Bucket i counts calls that took < 2^i ms (the last bucket takes the rest). */
  histogram: number[];
}

const BUCKETS = 20;

export class MeteredStore implements ObjectStore {
  readonly url: string;
  readonly local?: boolean;
  readonly stats: Record<StoreOp, OpStats>;
  /** When given (LUCID_TRACE=1 in an agent), every call is logged with its timing. */
  private readonly trace?: (line: string) => void;

  constructor(private readonly inner: ObjectStore, options: { trace?: (line: string) => void } = {}) {
    this.trace = options.trace;
    this.url = inner.url;
    this.local = inner.local;
    const blank = (): OpStats => ({ requests: 0, errors: 0, bytes: 0, totalMs: 0, maxMs: 0, histogram: new Array(BUCKETS).fill(0) });
    this.stats = { probe: blank(), put: blank(), get: blank(), head: blank(), list: blank(), delete: blank() };
  }

  probe(): Promise<void> { return this.time('probe', () => this.inner.probe(), () => 0); }
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    return this.time('put', () => this.inner.put(key, body, options), () => body.byteLength);
  }
  get(key: string, range?: ByteRange, options?: GetOptions): Promise<Buffer> { return this.time('get', () => this.inner.get(key, range, options), (b) => b.length); }
  head(key: string): Promise<ObjectInfo | undefined> { return this.time('head', () => this.inner.head(key), () => 0); }
  list(prefix: string, options?: ListOptions): Promise<ListPage> { return this.time('list', () => this.inner.list(prefix, options), () => 0); }
  delete(key: string): Promise<void> { return this.time('delete', () => this.inner.delete(key), () => 0); }
  close(): Promise<void> { return this.inner.close(); }

  /** Latency below which `q` (0..1) of the calls of `op` finished, in ms (bucket upper bound). */
  percentile(op: StoreOp, q: number): number {
    const s = this.stats[op];
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += s.histogram[i];
      if (seen >= q * s.requests && seen > 0) return 2 ** i;
    }
    return s.maxMs;
  }

  private async time<T>(op: StoreOp, fn: () => Promise<T>, size: (r: T) => number): Promise<T> {
    const s = this.stats[op];
    const start = performance.now();
    s.requests++;
    try {
      const result = await fn();
      s.bytes += size(result);
      this.trace?.(`trace store ${op} ${size(result)} B at ${start.toFixed(1)} took ${(performance.now() - start).toFixed(1)} ms`);
      return result;
    } catch (e) {
      s.errors++;
      throw e;
    } finally {
      const ms = performance.now() - start;
      s.totalMs += ms;
      s.maxMs = Math.max(s.maxMs, ms);
      s.histogram[Math.min(BUCKETS - 1, Math.max(0, Math.ceil(Math.log2(Math.max(ms, 1)))))]++;
    }
  }
}
