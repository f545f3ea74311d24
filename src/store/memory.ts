/**
 * An in-memory ObjectStore for unit tests and for wrapping in fault tests. It keeps the same
 * contract as the real backends (the conformance suite runs against it too) but holds
 * nothing across processes: never a stand-in for a real backend in integration tests.
 */
import { AlreadyExistsError, NotFoundError } from '../errors.js';
import { bodyBuffer } from './body.js';
import { assertValidKey, compareKeys } from './keys.js';
import { DEFAULT_LIST_LIMIT, type ByteRange, type GetOptions, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

export class MemoryStore implements ObjectStore {
  readonly url: string;
  private readonly objects = new Map<string, Buffer>();
  private readonly written = new Map<string, number>();

  constructor(name = 'test') {
    this.url = `memory://${name}`;
  }

  async probe(): Promise<void> {}

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    if (options.ifAbsent && this.objects.has(key)) throw new AlreadyExistsError(`object ${key} already exists in ${this.url}`);
    this.objects.set(key, Buffer.from(body));
    this.written.set(key, Date.now());
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Buffer> {
    assertValidKey(key);
    const body = this.objects.get(key);
    if (!body) throw new NotFoundError(`object ${key} not found in ${this.url}`);
    const wanted = range ? body.subarray(range.offset, range.offset + range.length) : body;
    const copy = bodyBuffer(wanted.length, options.buffer);
    copy.set(wanted);
    return copy;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    const body = this.objects.get(key);
    return body ? { key, size: body.length, modifiedMs: this.written.get(key)! } : undefined;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    const keys = [...this.objects.keys()]
      .filter((k) => k.startsWith(prefix) && (options.cursor === undefined || compareKeys(k, options.cursor) > 0))
      .sort(compareKeys);
    const page = keys.slice(0, limit);
    return {
      items: page.map((key) => ({ key, size: this.objects.get(key)!.length, modifiedMs: this.written.get(key)! })),
      cursor: keys.length > limit ? page[page.length - 1] : undefined,
    };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.objects.delete(key);
    this.written.delete(key);
  }

  async close(): Promise<void> {}

  /** Test access: the raw stored bytes, for tampering. */
  raw(key: string): Buffer | undefined {
    return this.objects.get(key);
  }
}
