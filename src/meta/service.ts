/**
 * The metadata & lock service as an HTTP API under /v1 (node:http or node:https):
 *   GET  /v1/health            → 200 {"status":"ok"} (no authentication)
 *   POST /v1/rpc/<method>      → one MetaEngine call; body {"args": [...]}, answer {"result": …}
 *   GET  /v1/feed?since=CSN    → WebSocket: the change feed, catching up from CSN, then live
 *                                (first a `reset` when the history since CSN was pruned)
 * Every call but health needs `Authorization: Bearer <token>` whose verifier is in the
 * filespace descriptor, so only holders of the filespace keys can talk to it. The service
 * holds no keys and only ever sees lookup hashes and sealed blobs.
 *
 * Promises: malformed input (bad JSON, unknown method, wrong argument types, oversized
 * bodies) is a clean 4xx that changes nothing; an engine error keeps its code on the wire.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { InternalError, InvalidArgumentError, LucidError, OutOfRangeError, UnauthorizedError } from '../errors.js';
import { serviceVerifierOf } from '../crypto/keys.js';
import type { Commit, MetaEngine } from './types.js';
import { META_METHODS, META_PARAMS, fitsParam, type MetaMethod } from './rpc.js';
import { decodeWire, encodeWire, statusOf } from './wire.js';
import { LockService } from '../locks/service.js';
import { startScheduler } from './scheduler.js';
import type { LockStore } from '../locks/service.js';

export const MAX_BODY_BYTES = 4 * 1024 * 1024;
const METHODS = new Set<string>(META_METHODS);

/** An engine the service can serve: it announces its commits and keeps the lock tables. */
export interface ServedEngine extends MetaEngine {
  onCommit(listener: (c: Commit) => void): () => void;
  lockStore(): Promise<LockStore>;
}

export interface ServiceOptions {
  engine: ServedEngine;
  /** Accepted token verifiers (hex SHA-256, see serviceVerifierOf); a function is asked on every request (users added and removed while running). */
  verifiers: string[] | (() => string[]);
  tls?: { cert: Buffer; key: Buffer };
  /** How long a silent client keeps its locks (ms; default 15 s). */
  lockLeaseMs?: number;
  /** How often snapshot schedules are checked (ms; default 10 s; 0: not run here). */
  scheduleTickMs?: number;
  log?: (line: string) => void;
}

export interface RunningService {
  server: Server;
  locks: LockService;
  url: string;
  close(): Promise<void>;
}

export async function startService(options: ServiceOptions, host = '127.0.0.1', port = 0): Promise<RunningService> {
  // Decoded once per list: a function's answer is decoded again only when it changes.
  let decodedFrom: string[] | undefined;
  let decoded: Buffer[] = [];
  const verifiers = () => {
    const list = typeof options.verifiers === 'function' ? options.verifiers() : options.verifiers;
    if (list !== decodedFrom) {
      decoded = list.map((v) => Buffer.from(v, 'hex'));
      decodedFrom = list;
    }
    return decoded;
  };
  const authorized = (req: IncomingMessage): boolean => {
    const m = /^Bearer ([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const v = Buffer.from(serviceVerifierOf(m[1]), 'hex');
    return verifiers().some((x) => x.length === v.length && timingSafeEqual(x, v));
  };

  const lockStore = await options.engine.lockStore();
  const scheduler = options.scheduleTickMs === 0 ? undefined : startScheduler(options.engine, { tickMs: options.scheduleTickMs, log: options.log });
  const locks = new LockService(lockStore, options.lockLeaseMs, options.log);
  const LOCK_CALLS = new Set(['test', 'set', 'release', 'renew', 'drop']);

  /** POST /v1/locks/<call> {client, ino, owner, range | kind}: answered at once, never waits. */
  const lockCall = async (call: string, a: Record<string, unknown>): Promise<unknown> => {
    const client = a.client as string;
    switch (call) {
      case 'test': return { conflict: await locks.test(client, a.ino as number, a.owner as string, a.range as never) };
      case 'set': return { conflict: await locks.set(client, a.ino as number, a.owner as string, a.range as never) };
      case 'release': await locks.release(client, a.ino as number, a.owner as string, a.kind as never); return {};
      case 'renew': await locks.renew(client); return { leaseMs: locks.leaseMs };
      default: await locks.drop(client); return {};
    }
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e) => reply(res, e instanceof LucidError ? e : new InternalError('internal service error')));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v1/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return replyRaw(res, 405, { error: { code: 'InvalidArgument', message: 'use GET' } });
      return replyRaw(res, 200, { status: 'ok' });
    }
    if (!authorized(req)) return reply(res, new UnauthorizedError('missing or invalid bearer token for this filespace'));
    const lock = /^\/v1\/locks\/([a-z]+)$/.exec(url.pathname);
    if (lock) {
      if (req.method !== 'POST') return replyRaw(res, 405, { error: { code: 'InvalidArgument', message: 'use POST' } });
      if (!LOCK_CALLS.has(lock[1])) return replyRaw(res, 404, { error: { code: 'InvalidArgument', message: `no such lock call ${lock[1]}` } });
      const body = await readBody(req);
      if (body === undefined) return replyRaw(res, 413, { error: { code: 'InvalidArgument', message: `request body over ${MAX_BODY_BYTES} bytes` } });
      let a: unknown;
      try {
        a = JSON.parse(body);
      } catch {
        return reply(res, new InvalidArgumentError('request body is not valid JSON'));
      }
      if (!a || typeof a !== 'object' || Array.isArray(a)) return reply(res, new InvalidArgumentError('request body must be a JSON object'));
      let result: unknown;
      try {
        result = await lockCall(lock[1], a as Record<string, unknown>);
      } catch (e) {
        if (e instanceof LucidError) return reply(res, e);
        options.log?.(`internal error in lock ${lock[1]}: ${(e as Error)?.stack ?? e}`);
        return reply(res, new InternalError('internal service error'));
      }
      return replyRaw(res, 200, { result });
    }
    const rpc = /^\/v1\/rpc\/([A-Za-z]+)$/.exec(url.pathname);
    if (!rpc) return replyRaw(res, 404, { error: { code: 'InvalidArgument', message: `no such endpoint ${url.pathname}` } });
    if (req.method !== 'POST') return replyRaw(res, 405, { error: { code: 'InvalidArgument', message: 'use POST' } });
    const method = rpc[1];
    if (!METHODS.has(method)) return replyRaw(res, 404, { error: { code: 'InvalidArgument', message: `no such method ${method}` } });
    const body = await readBody(req);
    if (body === undefined) return replyRaw(res, 413, { error: { code: 'InvalidArgument', message: `request body over ${MAX_BODY_BYTES} bytes` } });
    let args: unknown;
    try {
      args = (decodeWire(body) as { args?: unknown })?.args;
    } catch {
      return reply(res, new InvalidArgumentError('request body is not valid JSON'));
    }
    if (!Array.isArray(args)) return reply(res, new InvalidArgumentError('request body must be {"args": [...]}'));
    const params = META_PARAMS[method as MetaMethod];
    if (args.length > params.length) return reply(res, new InvalidArgumentError(`${method} takes ${params.length} argument(s), got ${args.length}`));
    for (let i = 0; i < params.length; i++) {
      if (!fitsParam(params[i], args[i])) return reply(res, new InvalidArgumentError(`argument ${i + 1} of ${method} must be ${params[i].replace('?', '')}`));
      if (args[i] === null) args[i] = undefined;
    }
    const fn = options.engine[method as MetaMethod] as (...a: unknown[]) => Promise<unknown>;
    let result: unknown;
    try {
      result = await fn.apply(options.engine, args);
    } catch (e) {
      if (e instanceof LucidError) return reply(res, e);
      // A TypeError from a malformed argument shape is the caller's fault, not a crash.
      if (e instanceof TypeError) return reply(res, new InvalidArgumentError(`malformed arguments for ${method}`));
      options.log?.(`internal error in ${method}: ${(e as Error)?.stack ?? e}`);
      return reply(res, new InternalError('internal service error'));
    }
    replyRaw(res, 200, { result: result ?? null });
  };

  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) as unknown as Server
    : createHttpServer(handler);
  server.keepAliveTimeout = 65_000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const sockets = new Set<WebSocket>();
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/v1/feed' || !authorized(req)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      void serveFeed(ws, Number(url.searchParams.get('since') ?? '0'));
    });
  });

  const serveFeed = async (ws: WebSocket, since: number) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('error', () => ws.terminate());
    // Buffer live commits until the catch-up has been sent, so nothing falls in between.
    const pending: Commit[] = [];
    let live = false;
    let last = Number.isSafeInteger(since) && since >= 0 ? since : 0;
    const send = (e: Commit) => {
      if (e.csn <= last || ws.readyState !== ws.OPEN) return;
      last = e.csn;
      ws.send(JSON.stringify({ type: 'commit', ...e }));
    };
    const stop = options.engine.onCommit((e) => (live ? send(e) : pending.push(e)));
    ws.on('close', stop);
    // Lock changes go out at once (they are not commits): waiters wake, files switch mode.
    const stopLocks = locks.onChange((c) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'lock', ino: c.ino, locked: c.locked }));
    });
    ws.on('close', stopLocks);
    try {
      for (;;) {
        const page = await options.engine.changesSince(last, 1000).catch(async (e) => {
          if (!(e instanceof OutOfRangeError)) throw e;
          // The history since `last` was pruned: the follower is told that anything may have
          // changed, and hears what the history still holds.
          const from = (await options.engine.info()).historyCsn;
          if (from === undefined || from <= last) throw e;
          last = from;
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'reset', csn: last }));
          return undefined;
        });
        if (!page) continue;
        for (const c of page.commits) send(c);
        if (page.commits.length === 0 || last >= page.csn) break;
      }
      for (const e of pending) send(e);
      live = true;
      const locked = await locks.lockedInodes();
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'locks', locked }));
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'ready', csn: last }));
    } catch {
      ws.close(1011, 'feed failed');
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    locks,
    url: `${options.tls ? 'https' : 'http'}://${shownHost}:${addr.port}`,
    close: async () => {
      scheduler?.stop();
      locks.close();
      lockStore.close();
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function reply(res: ServerResponse, e: LucidError): void {
  replyRaw(res, statusOf(e), { error: { code: e.code, message: e.message } });
}

function replyRaw(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = encodeWire(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
