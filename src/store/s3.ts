/**
 * `s3://bucket/prefix?endpoint=http://host:port&region=R`: any S3-compatible store through
 * @aws-sdk/client-s3. Credentials come from the standard AWS environment and files.
 *
 * Promises: path-style addressing when an endpoint is given (s3rver, MinIO, Ceph); request
 * and response checksums only when the operation requires them (streamed aws-chunked bodies
 * break many S3-compatible servers); the SDK's own retries are off because RetryingStore
 * owns retry policy; every SDK failure becomes one of the typed store errors. Bodies are
 * sent with `x-amz-content-sha256: UNSIGNED-PAYLOAD` (the request itself stays signed):
 * hashing each body cost the agent ~0.9 ms of its event loop per MiB uploaded, and a block
 * object is authenticated end to end by its own AES-GCM tag, which a changed byte fails.
 * No `Expect: 100-continue`: a PUT is one round trip at any block size.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import {
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, S3ServiceException,
} from '@aws-sdk/client-s3';
import {
  AccessDeniedError, AlreadyExistsError, LucidError, NoSuchBucketError, NotFoundError, TransientError,
} from '../errors.js';
import { readBody } from './body.js';
import { assertValidKey } from './keys.js';
import { DEFAULT_LIST_LIMIT, type ByteRange, type GetOptions, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading slash; '' or ending in '/'. */
  prefix: string;
  endpoint?: string;
  region?: string;
  /** Milliseconds before a single request is abandoned (a transient failure). */
  requestTimeoutMs?: number;
}

export class S3Store implements ObjectStore {
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(private readonly options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    const query = options.endpoint ? `?endpoint=${options.endpoint}` : '';
    this.url = `s3://${options.bucket}/${options.prefix}${query}`;
    this.client = new S3Client({
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.endpoint !== undefined,
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // No `Expect: 100-continue` (the SDK's default from 2 MB): it costs a round trip per PUT
      // of a 4 or 16 MiB block, and a rejected PUT of a block wastes little.
      expectContinueHeader: false,
      // Without throwOnRequestTimeout the SDK only warns about a stalled request and waits on forever.
      requestHandler: { requestTimeout: options.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000, throwOnRequestTimeout: true } as never,
    });
    // The signer takes a body hash already in the headers as given instead of computing one.
    this.client.middlewareStack.add((next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    }, { step: 'build', name: 'lucidUnsignedPayload' });
  }

  async probe(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      throw this.mapError(e, '');
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    // Servers without conditional writes ignore If-None-Match: a HEAD first still refuses
    // when the object is visibly there (the header closes the race where it is honoured).
    if (options.ifAbsent && (await this.head(key))) throw new AlreadyExistsError(`object ${key} in ${this.url} already exists`);
    try {
      await this.client.send(new PutObjectCommand({
        Bucket: this.bucket, Key: this.prefix + key, Body: body, ContentLength: body.byteLength,
        IfNoneMatch: options.ifAbsent ? '*' : undefined,
      }));
    } catch (e) {
      throw this.mapError(e, key);
    }
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Buffer> {
    assertValidKey(key);
    if (range && range.length <= 0) return Buffer.alloc(0);
    try {
      const res = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket, Key: this.prefix + key,
        Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
      }));
      return await readBody(res.Body as AsyncIterable<Uint8Array>, res.ContentLength, `object ${key} in ${this.url}`, options.buffer);
    } catch (e) {
      if (range && isS3Error(e) && e.$metadata?.httpStatusCode === 416) return Buffer.alloc(0);
      throw this.mapError(e, key);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { key, size: res.ContentLength ?? 0, modifiedMs: res.LastModified?.getTime() ?? Date.now() };
    } catch (e) {
      const mapped = this.mapError(e, key);
      if (mapped instanceof NotFoundError) {
        // A HEAD has no body, so a missing bucket also looks like 404: tell them apart.
        await this.probe();
        return undefined;
      }
      throw mapped;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    try {
      const res = await this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: this.prefix + prefix,
        MaxKeys: options.limit ?? DEFAULT_LIST_LIMIT,
        StartAfter: options.cursor !== undefined ? this.prefix + options.cursor : undefined,
      }));
      const items = (res.Contents ?? []).map((o) => ({ key: o.Key!.slice(this.prefix.length), size: o.Size ?? 0, modifiedMs: o.LastModified?.getTime() ?? Date.now() }));
      return { items, cursor: res.IsTruncated && items.length > 0 ? items[items.length - 1].key : undefined };
    } catch (e) {
      throw this.mapError(e, '');
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (e) {
      const mapped = this.mapError(e, key);
      if (mapped instanceof NotFoundError) return;
      throw mapped;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private mapError(e: unknown, key: string): Error {
    if (e instanceof LucidError) return e;
    const where = key ? `object ${key} in ${this.url}` : `bucket ${this.bucket}`;
    const endpoint = this.options.endpoint ?? 'AWS S3';
    if (isS3Error(e)) {
      const status = e.$metadata?.httpStatusCode ?? 0;
      const name = e.name;
      if (name === 'NoSuchBucket' || (key === '' && status === 404)) {
        return new NoSuchBucketError(`bucket "${this.bucket}" does not exist at ${endpoint}: create it or fix the bucket in --store`, { cause: e });
      }
      if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return new NotFoundError(`${where} not found`, { cause: e });
      if (name === 'PreconditionFailed' || status === 412 || (status === 409 && name === 'ConditionalRequestConflict')) {
        return new AlreadyExistsError(`${where} already exists`, { cause: e });
      }
      if (status === 401 || status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden/.test(name)) {
        return new AccessDeniedError(`access denied to ${where} (${name}): check the AWS credentials in the environment`, { cause: e });
      }
      if (status >= 500 || status === 429 || /Throttl|SlowDown|RequestTimeout|InternalError|ServiceUnavailable/.test(name)) {
        return new TransientError(`${where}: ${name} (HTTP ${status})`, { cause: e });
      }
      return new TransientError(`${where}: ${name}${status ? ` (HTTP ${status})` : ''}: ${e.message}`, { cause: e });
    }
    const err = e as NodeJS.ErrnoException & { name?: string };
    const code = err?.code ?? err?.name ?? 'error';
    if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(code)) {
      return new TransientError(`cannot reach the store at ${endpoint} (${code})`, { cause: e });
    }
    if (/ECONNRESET|ETIMEDOUT|EPIPE|TimeoutError|AbortError|socket hang up|RequestTimeout/.test(`${code} ${err?.message ?? ''}`)) {
      return new TransientError(`${where}: connection failed (${code})`, { cause: e });
    }
    return new TransientError(`${where}: ${err?.message ?? String(e)}`, { cause: e });
  }
}

function isS3Error(e: unknown): e is S3ServiceException {
  return e instanceof S3ServiceException || (typeof e === 'object' && e !== null && '$metadata' in e && '$fault' in e);
}
