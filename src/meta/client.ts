/**
 * MetaClient: the MetaEngine interface over the service's HTTP API, plus a subscription to
 * its change feed. Connections are kept alive; errors come back as the same typed errors the
 * engine threw; a service that cannot be reached is a ServiceUnavailableError.
 *
 * Several instances (`lucid serve` over one PostgreSQL) may be given: calls go to one until
 * it cannot be reached, then to the next. A call that never reached an instance (refused
 * connection) is tried on the next at once, and so is any call that reads; a change whose
 * request may have reached a dying instance is not sent twice: it fails as unreachable, as
 * with one instance (the write-back journal replays it, idempotently), and the next call
 * goes to the next instance. The feed follows the same instance order when it reconnects.
 *
 * The feed never overtakes a reply: word of a commit is handed on only after the metadata
 * calls that were in flight when it arrived have settled (and their callers have run), so a
 * mount hears of its own commits after their replies, and knows them as its own.
 */
import http from 'node:http';
import https from 'node:https';
import WebSocket from 'ws';
import { InternalError, ServiceUnavailableError, errorFromCode } from '../errors.js';
import type {
  Attr, AttrChanges, BatchOp, BatchResult, BlockRef, ChangesPage, Commit, CommitBlocksOptions, EntryName, ListingChanges, MetaEngine, MetaInfo,
  LookupOptions, MutateOptions, NewNode, RestoreResult, Snapshot, SnapshotSchedule, ReadOptions, ReaddirOptions, ReaddirPage, RenameFlags, XattrEntry, XattrSetFlags,
  PruneResult,
} from './types.js';
import { traced } from '../util/trace.js';
import { decodeWire, encodeWire } from './wire.js';
import type { MetaMethod } from './rpc.js';
import type { LockEvent, LockMethod, LockRpc } from '../locks/types.js';

/** A lock change pushed on the feed: one inode (`ino`, `locked`), or the whole set at (re)connect (`all`). */
export type { LockEvent } from '../locks/types.js';

/** What the feed's WebSocket carries (and, `disconnected`, what its closing is queued as). */
interface FeedMessage {
  type: 'commit' | 'lock' | 'locks' | 'ready' | 'reset' | 'disconnected';
  csn?: number;
  timeMs?: number;
  inos?: number[];
  ino?: number;
  locked?: boolean | number[];
}

export interface MetaClientOptions {
  /** Extra CA certificates to trust for https (a self-signed service). */
  ca?: Buffer;
  timeoutMs?: number;
  /** When given (LUCID_TRACE=1), every call is logged with its timing. */
  trace?: (line: string) => void;
}

/** Calls safe to send again to another instance whatever became of the first try: reads, and reserveInodes (a retry at worst sets aside numbers no one uses). */
const READS = new Set<MetaMethod>(['info', 'getAttr', 'lookup', 'readdir', 'listingChanges', 'namesOf', 'readlink', 'getBlocks', 'getXattr', 'listXattr', 'changesSince',
  'listSnapshots', 'listSchedules', 'retainedObjects', 'reserveInodes']);

/** Connection errors that mean the request never reached the service. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** Errors of requests that never reached the service (a refused connection). */
const neverSent = new WeakSet<Error>();

/** A service that could not be reached; `maybeSent`: the request may have reached it all the same. */
function unreached(message: string, maybeSent: boolean): ServiceUnavailableError {
  const e = new ServiceUnavailableError(message);
  if (!maybeSent) neverSent.add(e);
  return e;
}

export class MetaClient implements MetaEngine, LockRpc {
  private readonly trace?: (line: string) => void;
  private readonly bases: URL[];
  /** The instance calls go to (an index into `bases`). */
  private current = 0;
  private readonly agent: http.Agent;
  private readonly auth: string;
  /** Metadata calls waiting for their replies (lock calls, which may wait long, are not counted). */
  private readonly inFlight = new Set<Promise<unknown>>();

  /** `url`: one service URL, or several instances of one service (also as one comma-separated string). */
  constructor(url: string | string[], token: string, private readonly options: MetaClientOptions = {}) {
    this.bases = (Array.isArray(url) ? url : [url]).flatMap((u) => u.split(',')).map((u) => u.trim()).filter(Boolean).map((u) => new URL(u));
    if (this.bases.length === 0) throw new InternalError('a metadata client needs a service URL');
    if (new Set(this.bases.map((b) => b.protocol)).size > 1) throw new InternalError('the service URLs mix http and https');
    this.trace = options.trace;
    this.auth = `Bearer ${token}`;
    this.agent = this.bases[0].protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 64, ca: options.ca })
      : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  /** The instance calls go to now. */
  private get base(): URL {
    return this.bases[this.current];
  }

  get url(): string {
    return this.base.origin;
  }

  /** Instance `failed` could not be reached: the next one is asked from now on (unless a call already moved on). */
  private failOver(failed: number): void {
    if (this.bases.length < 2 || this.current !== failed) return;
    this.current = (failed + 1) % this.bases.length;
    this.trace?.(`meta failover ${this.bases[failed].origin} -> ${this.base.origin}`);
  }

  info(): Promise<MetaInfo> { return this.call('info', []); }
  getAttr(ino: number, options?: ReadOptions): Promise<Attr> { return this.call('getAttr', [ino, options]); }
  lookup(parent: number, hash: Buffer, options?: LookupOptions): Promise<Attr & { blocks?: BlockRef[] }> { return this.call('lookup', [parent, hash, options]); }
  readdir(parent: number, options?: ReaddirOptions): Promise<ReaddirPage> { return this.call('readdir', [parent, options]); }
  listingChanges(parent: number, since: number): Promise<ListingChanges> { return this.call('listingChanges', [parent, since]); }
  namesOf(ino: number, options?: ReadOptions): Promise<({ parent: number } & EntryName)[]> { return this.call('namesOf', [ino, options]); }
  create(parent: number, name: EntryName, node: NewNode): Promise<Attr> { return this.call('create', [parent, name, node]); }
  reserveInodes(count: number): Promise<{ first: number; count: number }> { return this.call('reserveInodes', [count]); }
  link(ino: number, parent: number, name: EntryName): Promise<Attr> { return this.call('link', [ino, parent, name]); }
  unlink(parent: number, hash: Buffer): Promise<Attr> { return this.call('unlink', [parent, hash]); }
  async rmdir(parent: number, hash: Buffer): Promise<void> { await this.call('rmdir', [parent, hash]); }
  async rename(parent: number, hash: Buffer, newParent: number, newName: EntryName, flags?: RenameFlags): Promise<Attr | undefined> {
    return (await this.call<Attr | null>('rename', [parent, hash, newParent, newName, flags])) ?? undefined;
  }
  setAttr(ino: number, changes: AttrChanges, options?: MutateOptions): Promise<Attr> { return this.call('setAttr', [ino, changes, options]); }
  readlink(ino: number, options?: ReadOptions): Promise<Buffer> { return this.call('readlink', [ino, options]); }
  getBlocks(ino: number, first: number, count: number, options?: ReadOptions): Promise<BlockRef[]> {
    return this.call('getBlocks', [ino, first, count, options]);
  }
  commitBlocks(ino: number, blocks: BlockRef[], options?: CommitBlocksOptions): Promise<Attr> {
    return this.call('commitBlocks', [ino, blocks, options]);
  }
  async reclaim(ino: number): Promise<void> { await this.call('reclaim', [ino]); }
  getXattr(ino: number, hash: Buffer, options?: ReadOptions): Promise<XattrEntry> { return this.call('getXattr', [ino, hash, options]); }
  listXattr(ino: number, options?: ReadOptions): Promise<XattrEntry[]> { return this.call('listXattr', [ino, options]); }
  async setXattr(ino: number, entry: XattrEntry, flags?: XattrSetFlags): Promise<void> { await this.call('setXattr', [ino, entry, flags]); }
  async removeXattr(ino: number, hash: Buffer): Promise<void> { await this.call('removeXattr', [ino, hash]); }
  applyBatch(ops: BatchOp[]): Promise<BatchResult> { return this.call('applyBatch', [ops]); }
  changesSince(csn: number, limit?: number): Promise<ChangesPage> { return this.call('changesSince', [csn, limit]); }
  createSnapshot(name?: string): Promise<Snapshot> { return this.call('createSnapshot', [name]); }
  listSnapshots(): Promise<Snapshot[]> { return this.call('listSnapshots', []); }
  async deleteSnapshot(id: number): Promise<void> { await this.call('deleteSnapshot', [id]); }
  restore(id: number, parent: number, hash: Buffer): Promise<RestoreResult> { return this.call('restore', [id, parent, hash]); }
  createSchedule(name: string, everyMs: number, keep: number): Promise<SnapshotSchedule> { return this.call('createSchedule', [name, everyMs, keep]); }
  listSchedules(): Promise<SnapshotSchedule[]> { return this.call('listSchedules', []); }
  async deleteSchedule(name: string): Promise<void> { await this.call('deleteSchedule', [name]); }
  runSchedules(nowMs: number): Promise<Snapshot[]> { return this.call('runSchedules', [nowMs]); }
  pruneVersions(beforeMs: number, options?: { dryRun?: boolean }): Promise<PruneResult> { return this.call('pruneVersions', [beforeMs, options]); }
  retainedObjects(objectIds: string[], beforeMs: number): Promise<string[]> { return this.call('retainedObjects', [objectIds, beforeMs]); }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /**
   * Follows the change feed from `since`: `onCommit` gets every commit after it, in order,
   * across reconnects (each reconnect resumes from the last commit seen). When the service no
   * longer keeps the changes since then (its history was pruned while this follower was away),
   * `onReset` hears it first: anything may have changed up to `csn`, where the commits resume.
   */
  subscribe(since: number, onCommit: (c: Commit) => void, onReady?: (csn: number) => void, onLocks?: (e: LockEvent) => void, onDisconnect?: () => void,
    onReset?: (csn: number) => void): { close(): void } {
    let last = since;
    let ws: WebSocket | undefined;
    let closed = false;
    let delay = 100;
    const handle = (msg: FeedMessage) => {
      if (closed) return;
      if (msg.type === 'lock') onLocks?.({ ino: msg.ino!, locked: msg.locked === true });
      else if (msg.type === 'locks') onLocks?.({ all: msg.locked as number[] });
      else if (msg.type === 'commit' && msg.csn! > last) {
        last = msg.csn!;
        onCommit({ csn: msg.csn!, timeMs: msg.timeMs!, inos: msg.inos! });
      } else if (msg.type === 'reset' && msg.csn! > last) {
        last = msg.csn!;
        onReset?.(msg.csn!);
      } else if (msg.type === 'ready') {
        delay = 100;
        onReady?.(msg.csn!);
      } else if (msg.type === 'disconnected') {
        onDisconnect?.();
      }
    };
    // Messages are handled in order, each once the calls in flight when it came have settled
    // and the event loop has turned (their callers have run).
    const pending: { msg: FeedMessage; before: Promise<unknown>[] }[] = [];
    let draining = false;
    const drain = async () => {
      draining = true;
      try {
        while (pending.length > 0) {
          await Promise.allSettled(pending[0].before);
          await new Promise<void>((r) => setImmediate(r));
          while (pending.length > 0 && pending[0].before.every((p) => !this.inFlight.has(p))) handle(pending.shift()!.msg);
        }
      } finally {
        draining = false;
      }
    };
    const deliver = (msg: FeedMessage) => {
      if (pending.length === 0 && this.inFlight.size === 0) return handle(msg);
      pending.push({ msg, before: [...this.inFlight] });
      if (!draining) void drain();
    };
    const connect = () => {
      if (closed) return;
      const url = new URL(`/v1/feed?since=${last}`, this.base);
      url.protocol = this.base.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(url, { headers: { authorization: this.auth }, ca: this.options.ca });
      ws.on('message', (data) => deliver(JSON.parse(String(data)) as FeedMessage));
      ws.on('error', () => {});
      const at = this.current;
      ws.on('close', () => {
        if (closed) return;
        deliver({ type: 'disconnected' });
        // A feed that never came up, or dropped, tries the next instance.
        this.failOver(at);
        setTimeout(connect, delay).unref();
        delay = Math.min(delay * 2, 5_000);
      });
    };
    connect();
    return { close: () => { closed = true; ws?.terminate(); } };
  }

  /** One call to the service's lock endpoint (src/locks/service.ts). */
  lockCall<T>(call: LockMethod, body: Record<string, unknown>): Promise<T> {
    return this.post<T>(`/v1/locks/${call}`, JSON.stringify(body), (t) => JSON.parse(t), call === 'test' || call === 'renew');
  }

  private call<T>(method: MetaMethod, args: unknown[]): Promise<T> {
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    const p = traced(this.trace, () => `meta ${method} ${typeof args[0] === 'number' ? args[0] : ''}`,
      () => this.post<T>(`/v1/rpc/${method}`, encodeWire({ args }), decodeWire, READS.has(method)));
    this.inFlight.add(p);
    const gone = () => { this.inFlight.delete(p); };
    p.then(gone, gone);
    return p;
  }

  /**
   * Sends to the current instance; one that cannot be reached hands over to the next, which
   * gets the request too if it never reached the first, or if it is a `read`.
   */
  private async post<T>(route: string, body: string, decode: (text: string) => unknown, read: boolean): Promise<T> {
    for (let tried = 1; ; tried++) {
      const at = this.current;
      try {
        return await this.postTo<T>(this.bases[at], route, body, decode);
      } catch (e) {
        if (!(e instanceof ServiceUnavailableError)) throw e;
        this.failOver(at);
        if (tried >= this.bases.length || (!neverSent.has(e) && !read)) throw e;
      }
    }
  }

  private postTo<T>(base: URL, route: string, body: string, decode: (text: string) => unknown): Promise<T> {
    const url = new URL(route, base);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = lib.request(url, {
        method: 'POST', agent: this.agent, timeout: this.options.timeoutMs ?? 60_000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: this.auth },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(unreached(`metadata service ${base.origin}: ${e.message}`, true)));
        res.on('end', () => {
          let payload: { result?: unknown; error?: { code: string; message: string } };
          try {
            payload = decode(Buffer.concat(chunks).toString('utf8')) as typeof payload;
          } catch {
            return reject(new InternalError(`metadata service ${base.origin} sent an unreadable answer (HTTP ${res.statusCode})`));
          }
          if (payload.error) return reject(errorFromCode(payload.error.code, payload.error.message));
          resolve(payload.result as T);
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e: NodeJS.ErrnoException) => reject(unreached(
        `cannot reach the metadata service at ${base.origin} (${e.code ?? e.message})`, !NOT_SENT.has(e.code ?? ''))));
      req.end(body);
    });
  }
}
