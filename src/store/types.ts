/**
 * The object-store seam: the one interface every backend (file, S3, Azure, memory) and every
 * wrapper (retry, faults, metrics) implements.
 *
 * Promises of every implementation:
 * - keys are relative to the store's own prefix, `/`-separated, no empty or dot segments;
 * - every call is idempotent: a repeated put stores the same bytes, a repeated delete succeeds;
 * - failures are typed: NotFoundError (no such object), NoSuchBucketError (the bucket,
 *   container or directory is missing), AccessDeniedError, TransientError (worth retrying),
 *   AlreadyExistsError (only from a put with `ifAbsent`), NoSpaceError;
 * - `list` returns keys in ascending byte order, at most `limit` per page, with a cursor for
 *   the next page while there is more.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** When the object was last written, by the store's clock (garbage collection's grace period). */
  modifiedMs: number;
}

export interface ByteRange {
  offset: number;
  /** Bytes wanted; fewer come back if the object ends first. */
  length: number;
}

export interface PutOptions {
  /** Fail with AlreadyExistsError instead of replacing an existing object. */
  ifAbsent?: boolean;
}

export interface GetOptions {
  /**
   * Gives the buffer a body of `size` bytes is read into, so a caller can reuse buffers
   * instead of each GET allocating one: the result is then its first `size` bytes. A buffer
   * shorter than `size` is not used. The caller owns it again once the call settles (an
   * attempt that failed may have written into it).
   */
  buffer?: (size: number) => Buffer;
}

export interface ListOptions {
  cursor?: string;
  limit?: number;
}

export interface ListPage {
  items: ObjectInfo[];
  /** Present while more keys follow: pass it back as `cursor`. */
  cursor?: string;
}

export interface ObjectStore {
  /** A URL that names this store for people (no secrets). */
  readonly url: string;
  /**
   * Its objects are files on this machine's own disks (file://): a PUT is disk work, with no
   * round trip to hide, so the uploader treats it as near without timing it.
   */
  readonly local?: boolean;
  /** Checks that the bucket/container/directory exists and is reachable; typed errors if not. */
  probe(): Promise<void>;
  /** Writes `body` as `key`; once this settles the store holds no reference to `body` (callers reuse it). */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void>;
  get(key: string, range?: ByteRange, options?: GetOptions): Promise<Buffer>;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Removes an object; succeeds when it is already gone. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_LIST_LIMIT = 1000;

/** Iterates every key under a prefix, page by page. */
export async function* listAll(store: ObjectStore, prefix: string, pageSize = DEFAULT_LIST_LIMIT): AsyncGenerator<ObjectInfo> {
  let cursor: string | undefined;
  do {
    const page = await store.list(prefix, { cursor, limit: pageSize });
    yield* page.items;
    cursor = page.cursor;
  } while (cursor !== undefined);
}
