/**
 * `azure://container/prefix`: Azure Blob Storage through @azure/storage-blob, with the
 * connection string from AZURE_STORAGE_CONNECTION_STRING (Azurite's works too).
 *
 * Promises: block blobs written in one request; the SDK's own retries are off because
 * RetryingStore owns retry policy; every SDK failure becomes one of the typed store errors.
 */
import { BlobServiceClient, RestError, type ContainerClient } from '@azure/storage-blob';
import {
  AccessDeniedError, AlreadyExistsError, BadStoreUrlError, LucidError, NoSuchBucketError, NotFoundError, TransientError,
} from '../errors.js';
import { readBody } from './body.js';
import { assertValidKey } from './keys.js';
import { DEFAULT_LIST_LIMIT, type ByteRange, type GetOptions, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

export interface AzureStoreOptions {
  container: string;
  prefix: string;
  connectionString?: string;
  /** Longest a single request may take before it fails as transient (default 60 s). */
  requestTimeoutMs?: number;
}

export class AzureStore implements ObjectStore {
  readonly url: string;
  private readonly containerClient: ContainerClient;
  private readonly prefix: string;

  constructor(private readonly options: AzureStoreOptions) {
    const conn = options.connectionString ?? process.env.AZURE_STORAGE_CONNECTION_STRING;
    if (!conn) throw new BadStoreUrlError('azure:// stores need AZURE_STORAGE_CONNECTION_STRING in the environment');
    this.prefix = options.prefix;
    this.url = `azure://${options.container}/${options.prefix}`;
    // One try per call: RetryingStore retries. Each call is bounded by `signal()` (the SDK's
    // own tryTimeoutInMs only asks the server; a stalled connection would wait forever).
    const service = BlobServiceClient.fromConnectionString(conn, { retryOptions: { maxTries: 1 } });
    this.containerClient = service.getContainerClient(options.container);
  }

  /** An abort signal for one call: it fails as transient when the call outlasts the timeout. */
  private signal(): AbortSignal {
    return AbortSignal.timeout(this.options.requestTimeoutMs ?? 60_000);
  }

  async probe(): Promise<void> {
    let exists: boolean;
    try {
      exists = await this.containerClient.exists({ abortSignal: this.signal() });
    } catch (e) {
      throw this.mapError(e, '');
    }
    if (!exists) throw this.noContainer();
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    try {
      await this.containerClient.getBlockBlobClient(this.prefix + key).upload(body, body.byteLength, {
        conditions: options.ifAbsent ? { ifNoneMatch: '*' } : undefined, abortSignal: this.signal(),
      });
    } catch (e) {
      throw this.mapError(e, key);
    }
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Buffer> {
    assertValidKey(key);
    if (range && range.length <= 0) return Buffer.alloc(0);
    try {
      const blob = this.containerClient.getBlobClient(this.prefix + key);
      // A whole object with no buffer given: the SDK's own download into a buffer of its own.
      if (!range && !options.buffer) return await blob.downloadToBuffer(undefined, undefined, { abortSignal: this.signal() });
      let res;
      try {
        res = await blob.download(range?.offset ?? 0, range?.length, { abortSignal: this.signal() });
      } catch (e) {
        if (range && e instanceof RestError && e.statusCode === 416) return Buffer.alloc(0);
        throw e;
      }
      return await readBody(res.readableStreamBody as AsyncIterable<Uint8Array>, res.contentLength, `object ${key} in ${this.url}`, options.buffer);
    } catch (e) {
      const mapped = this.mapError(e, key);
      // A download's 404 may carry no error code: tell a missing container apart.
      if (mapped instanceof NotFoundError) await this.probe();
      throw mapped;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const props = await this.containerClient.getBlobClient(this.prefix + key).getProperties({ abortSignal: this.signal() });
      return { key, size: props.contentLength ?? 0, modifiedMs: props.lastModified?.getTime() ?? Date.now() };
    } catch (e) {
      const mapped = this.mapError(e, key);
      if (mapped instanceof NotFoundError) {
        await this.probe();
        return undefined;
      }
      throw mapped;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    try {
      const pages = this.containerClient
        .listBlobsFlat({ prefix: this.prefix + prefix, abortSignal: this.signal() })
        .byPage({ continuationToken: options.cursor, maxPageSize: options.limit ?? DEFAULT_LIST_LIMIT });
      const { value } = await pages.next();
      if (!value) return { items: [] };
      const items = value.segment.blobItems.map((b: { name: string; properties: { contentLength?: number; lastModified?: Date } }) => ({ key: b.name.slice(this.prefix.length), size: b.properties.contentLength ?? 0, modifiedMs: b.properties.lastModified?.getTime() ?? Date.now() }));
      return { items, cursor: value.continuationToken ? value.continuationToken : undefined };
    } catch (e) {
      throw this.mapError(e, '');
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.containerClient.getBlobClient(this.prefix + key).deleteIfExists({ abortSignal: this.signal() });
    } catch (e) {
      throw this.mapError(e, key);
    }
  }

  async close(): Promise<void> {}

  private noContainer(cause?: unknown): Error {
    return new NoSuchBucketError(`container "${this.options.container}" does not exist: create it or fix the container in --store`, { cause });
  }

  private mapError(e: unknown, key: string): Error {
    if (e instanceof LucidError) return e;
    const where = key ? `object ${key} in ${this.url}` : `container ${this.options.container}`;
    if ((e as Error)?.name === 'AbortError') {
      return new TransientError(`${where}: no answer within ${(this.options.requestTimeoutMs ?? 60_000) / 1000} s`, { cause: e });
    }
    if (e instanceof RestError) {
      const status = e.statusCode ?? 0;
      const code = e.code ?? '';
      if (code === 'ContainerNotFound') return this.noContainer(e);
      if (code === 'BlobNotFound' || status === 404) return key ? new NotFoundError(`${where} not found`, { cause: e }) : this.noContainer(e);
      if (code === 'BlobAlreadyExists' || code === 'ConditionNotMet' || status === 409 || status === 412) {
        return new AlreadyExistsError(`${where} already exists`, { cause: e });
      }
      if (status === 401 || status === 403) {
        return new AccessDeniedError(`access denied to ${where} (${code || status}): check AZURE_STORAGE_CONNECTION_STRING`, { cause: e });
      }
      if (code === 'REQUEST_SEND_ERROR' || status === 0) {
        return new TransientError(`cannot reach Azure Blob for ${where}: ${e.message}`, { cause: e });
      }
      return new TransientError(`${where}: ${code || 'error'} (HTTP ${status})`, { cause: e });
    }
    return new TransientError(`${where}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}
