/**
 * The agent's control socket: a small HTTP API on a Unix socket under ~/.lucid/run, one per
 * mount, with a registry file beside it. `lucid status`, `unmount`, `cache`, `pin`, `unpin`
 * and `warm` talk to a running agent through it. Only the owner can reach it (mode 0600).
 */
import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { InternalError, LucidError, UsageError, type ErrorCode } from '../errors.js';
import { lucidHome } from './home.js';
import type { ControlledAgent } from './agent-types.js';

export function mountId(mountpoint: string): string {
  return createHash('sha256').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
}

function runDir(): string {
  return path.join(lucidHome(), 'run');
}

export function socketPath(mountpoint: string): string {
  const p = path.join(runDir(), `${mountId(mountpoint)}.sock`);
  return p.length < 100 ? p : path.join(os.tmpdir(), `lucid-${process.getuid?.() ?? 0}-${mountId(mountpoint)}.sock`);
}

export interface MountRecord {
  mountpoint: string;
  pid: number;
  socket: string;
  store: string;
  filespaceId: string;
}

export class ControlServer {
  private constructor(private readonly server: http.Server, private readonly files: string[]) {}

  static async start(mountpoint: string, agent: ControlledAgent): Promise<ControlServer> {
    await fs.mkdir(runDir(), { recursive: true, mode: 0o700 });
    const sock = socketPath(mountpoint);
    await fs.rm(sock, { force: true });
    const server = http.createServer((req, res) => {
      void handle(agent, req, res).catch((e: unknown) => {
        const err = wireError(e);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sock, () => resolve());
    });
    await fs.chmod(sock, 0o600);
    const record: MountRecord = { mountpoint, pid: process.pid, socket: sock, store: agent.config.storeUrl, filespaceId: agent.filespaceId };
    const recordFile = path.join(runDir(), `${mountId(mountpoint)}.json`);
    await fs.writeFile(recordFile, JSON.stringify(record, null, 2), { mode: 0o600 });
    return new ControlServer(server, [sock, recordFile]);
  }

  /** Stops listening; a call still being answered (the unmount itself) finishes on its own. */
  async close(): Promise<void> {
    this.server.close();
    this.server.closeIdleConnections();
    for (const f of this.files) await fs.rm(f, { force: true });
  }
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function handle(agent: ControlledAgent, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  const send = (body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /status': return send(agent.status());
    case 'POST /sync': return send(await agent.sync());
    case 'POST /unmount': {
      const body = await readJson(req);
      await agent.stop({ force: body.force === true });
      return send({ ok: true });
    }
    case 'POST /cache': {
      const body = await readJson(req);
      if (typeof body.size === 'number') agent.cache.setLimit(body.size);
      return send(agent.status().cache);
    }
    case 'POST /pin': {
      const body = await readJson(req);
      return send(await agent.pin(String(body.path ?? ''), body.pin !== false));
    }
    case 'POST /snapshot': {
      const body = await readJson(req);
      switch (body.op) {
        case 'create': return send(await agent.admin.createSnapshot(typeof body.name === 'string' ? body.name : undefined));
        case 'list': return send(await agent.admin.listSnapshots());
        case 'delete': await agent.admin.deleteSnapshot(Number(body.id)); return send({ ok: true });
        case 'restore': return send(await agent.admin.restore(Number(body.id), String(body.path ?? '')));
        case 'schedule-create': return send(await agent.admin.createSchedule(String(body.name), Number(body.everyMs), Number(body.keep)));
        case 'schedule-list': return send(await agent.admin.listSchedules());
        case 'schedule-delete': await agent.admin.deleteSchedule(String(body.name)); return send({ ok: true });
        case 'diff': return send(await agent.admin.diff(Number(body.id), body.to === undefined ? undefined : Number(body.to)));
        default: throw new UsageError(`unknown snapshot call ${String(body.op)}`);
      }
    }
    case 'POST /warm': {
      const body = await readJson(req);
      return streamProgress(res, (progress) => agent.warm(String(body.path ?? ''), body.recursive === true, progress));
    }
    case 'POST /gc': {
      const body = await readJson(req);
      return streamProgress(res, (progress) => agent.admin.gc({ dryRun: body.dryRun === true, graceMs: Number(body.graceMs) }, progress));
    }
    case 'POST /snapshot-copy': {
      const body = await readJson(req);
      return streamProgress(res, (progress) => agent.admin.copyOut(Number(body.id), String(body.path ?? ''), String(body.to ?? ''), progress));
    }
    default:
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'Usage', message: `no such control call ${url.pathname}`, exitCode: 2 } }));
  }
}

/** Answers with a stream of JSON lines: progress (at most five a second), then the result or an error. */
async function streamProgress<P, R>(res: http.ServerResponse, run: (progress: (p: P) => void) => Promise<R>): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  let last = 0;
  try {
    const result = await run((p) => {
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      res.write(`${JSON.stringify({ progress: p })}\n`);
    });
    res.end(`${JSON.stringify({ result })}\n`);
  } catch (e) {
    const err = wireError(e);
    res.end(`${JSON.stringify({ error: err })}\n`);
  }
}

/** Mounts this user has running (stale records of dead agents are removed). */
export function listMounts(): MountRecord[] {
  let names: string[];
  try {
    names = readdirSync(runDir());
  } catch {
    return [];
  }
  const out: MountRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    try {
      const rec = JSON.parse(readFileSync(path.join(runDir(), n), 'utf8')) as MountRecord;
      process.kill(rec.pid, 0);
      out.push(rec);
    } catch {
      void fs.rm(path.join(runDir(), n), { force: true });
    }
  }
  return out;
}

/** The running mount that holds `p` (a mountpoint or a path inside one). */
export function mountOf(p: string): MountRecord {
  const abs = path.resolve(p);
  const hit = listMounts()
    .filter((m) => abs === m.mountpoint || abs.startsWith(`${m.mountpoint}/`))
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
  if (!hit) throw new UsageError(`${abs} is not inside a running Lucid mount (lucid status lists them)`);
  return hit;
}

interface WireError { code: string; message: string; exitCode: 1 | 2 }

/** An error as the agent sends it: code, one-line message, exit code. */
function wireError(e: unknown): WireError {
  return e instanceof LucidError ? { code: e.code, message: e.message, exitCode: e.exitCode } : { code: 'Internal', message: String((e as Error)?.message ?? e), exitCode: 1 };
}

/** The error an agent sent, rebuilt on the CLI's side. */
function fromWire(e: Partial<WireError>): LucidError {
  return new LucidError((e.code ?? 'Internal') as ErrorCode, String(e.message), e.exitCode === 2 ? 2 : 1);
}

function unreachable(rec: MountRecord, e: Error): UsageError {
  return new UsageError(`the agent for ${rec.mountpoint} does not answer (${(e as NodeJS.ErrnoException).code ?? e.message})`);
}

/** One call to a running agent; its errors come back as one-line errors with their exit code. */
/** The mount named by `--mount`, or the only running one. */
export function pickMount(mount: string | undefined): MountRecord {
  if (mount) return mountOf(mount);
  const all = listMounts();
  if (all.length === 1) return all[0];
  throw new UsageError(all.length === 0 ? 'no Lucid mount is running: mount the filespace first' : 'several mounts are running: say which with --mount MOUNTPOINT');
}

export function callAgent<T>(rec: MountRecord, method: string, route: string, body?: unknown, timeoutMs = 0): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: rec.socket, path: route, method, headers: { 'content-type': 'application/json' }, timeout: timeoutMs || undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (payload.error) return reject(fromWire(payload.error));
          resolve(payload as T);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', (e) => reject(unreachable(rec, e)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A streaming call: `onLine` hears each JSON line; resolves with the last one's `result`. */
export function streamAgent<T>(rec: MountRecord, route: string, body: unknown, onLine: (line: Record<string, unknown>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: rec.socket, path: route, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let buf = '';
      let result: T | undefined;
      let failure: LucidError | undefined;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          buf = buf.slice(nl + 1);
          if (line.error) failure = fromWire(line.error as WireError);
          else if ('result' in line) result = line.result as T;
          else onLine(line);
        }
      });
      res.on('end', () => (failure ? reject(failure) : result !== undefined ? resolve(result) : reject(new InternalError('the agent ended the call without an answer'))));
      res.on('error', reject);
    });
    req.on('error', (e) => reject(unreachable(rec, e)));
    req.end(JSON.stringify(body));
  });
}
