/**
 * FaultyStore wraps any ObjectStore and injects failures on matching calls, for tests of
 * retry, error surfacing and integrity checking. Rules are matched in order; a rule with
 * `times` fires that many times and then retires.
 */
import { AccessDeniedError, NotFoundError, TransientError } from '../errors.js';
import type { ByteRange, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

export type StoreOp = 'probe' | 'put' | 'get' | 'head' | 'list' | 'delete';

export type Fault =
  | { kind: 'transient' } | { kind: 'accessDenied' } | { kind: 'notFound' }
  /** Delay the call, then let it through. */
  | { kind: 'latency'; ms: number }
  /** Let a get through but return only the first `keep` bytes. */
  | { kind: 'truncate'; keep: number }
  /** Let a get through but flip one bit at `byte`. */
  | { kind: 'flipBit'; byte: number };

export interface FaultRule {
  op?: StoreOp;
  keyPrefix?: string;
  /** Fire this many times, then stop (default: forever). */
  times?: number;
  /** Fire with this probability (default 1). */
  probability?: number;
  fault: Fault;
}

export class FaultyStore implements ObjectStore {
  readonly url: string;
  readonly local?: boolean;
  private rules: FaultRule[] = [];
  /** How many faults fired, for assertions. */
  fired = 0;

  constructor(private readonly inner: ObjectStore) {
    this.url = inner.url;
    this.local = inner.local;
  }

  inject(rule: FaultRule): this {
    this.rules.push({ ...rule });
    return this;
  }

  clear(): void {
    this.rules = [];
  }

  async probe(): Promise<void> { await this.before('probe', ''); return this.inner.probe(); }
  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.before('put', key);
    return this.inner.put(key, body, options);
  }
  async get(key: string, range?: ByteRange, options?: GetOptions): Promise<Buffer> {
    const fault = await this.before('get', key);
    const body = await this.inner.get(key, range, options);
    if (fault?.kind === 'truncate') return body.subarray(0, fault.keep);
    if (fault?.kind === 'flipBit' && fault.byte < body.length) {
      const copy = Buffer.from(body);
      copy[fault.byte] ^= 0x01;
      return copy;
    }
    return body;
  }
  async head(key: string): Promise<ObjectInfo | undefined> { await this.before('head', key); return this.inner.head(key); }
  async list(prefix: string, options?: ListOptions): Promise<ListPage> {
    await this.before('list', prefix);
    return this.inner.list(prefix, options);
  }
  async delete(key: string): Promise<void> { await this.before('delete', key); return this.inner.delete(key); }
  close(): Promise<void> { return this.inner.close(); }

  /** Applies the first matching rule: throws for error faults, returns data faults for the caller. */
  private async before(op: StoreOp, key: string): Promise<Fault | undefined> {
    const rule = this.rules.find((r) =>
      (r.op === undefined || r.op === op) && (r.keyPrefix === undefined || key.startsWith(r.keyPrefix)) &&
      (r.times === undefined || r.times > 0));
    if (!rule || Math.random() >= (rule.probability ?? 1)) return undefined;
    if (rule.times !== undefined) rule.times--;
    this.fired++;
    const f = rule.fault;
    switch (f.kind) {
      case 'transient': throw new TransientError(`injected transient fault on ${op} ${key}`);
      case 'accessDenied': throw new AccessDeniedError(`injected access denied on ${op} ${key}`);
      case 'notFound': throw new NotFoundError(`injected not found on ${op} ${key}`);
      case 'latency': await new Promise((r) => setTimeout(r, f.ms)); return undefined;
      default: return f;
    }
  }
}
