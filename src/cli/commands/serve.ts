/** `lucid serve`: runs the metadata & lock service for one filespace. */
import { promises as fs } from 'node:fs';
import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { acceptedVerifiers } from '../../crypto/descriptor.js';
import { loadDescriptor } from '../../fs/descriptor-store.js';
import { startService } from '../../meta/service.js';
import { defaultStoreUrl } from '../home.js';
import { openFilespaceEngine, openStore } from '../open.js';
import { startPeriodicGc } from '../../gc/periodic.js';

/** "15s", "500ms" → ms (1 s to 1 h). */
function parseLease(v: string | undefined): number {
  const ms = parseDuration(String(v ?? '15s'), ['ms', 's', 'm'], 's');
  if (!(ms >= 1000 && ms <= 3_600_000)) throw new UsageError(`--lock-lease must be between 1s and 60m, like 15s (got "${v}")`);
  return ms;
}

/** "1h", "30m", "0" (off) → ms. */
export function parseGcEvery(v: string | undefined): number {
  if (v === 'off' || v === '0') return 0;
  const ms = parseDuration(String(v ?? '1h'), ['s', 'm', 'h', 'd'], 's');
  if (!(ms >= 1000)) throw new UsageError(`--gc-every must be like 1h, 30m or off (got "${v}")`);
  return ms;
}

/** "1h", "10m", "0s" → ms: how long new objects and replaced refs are kept whatever refers to them. */
export function parseGrace(v: string | undefined, flag = '--gc-grace'): number {
  const ms = parseDuration(String(v ?? '1h'), ['ms', 's', 'm', 'h', 'd'], 's');
  if (!(ms >= 0)) throw new UsageError(`${flag} must be like 1h, 10m or 0s (got "${v}")`);
  return ms;
}

export interface ServeArgs {
  gcEvery?: string;
  gcGrace?: string;
  lockLease?: string;
  store?: string;
  db?: string;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen "${listen}" is not HOST:PORT (e.g. 127.0.0.1:7410 or [::1]:7410)`);
  return { host: m[1] ?? m[2], port };
}

export const serveCommand = {
  command: 'serve',
  describe: 'Run the metadata & lock service for a filespace',
  builder: (y: Argv) => y
    .option('store', { type: 'string', describe: 'Store URL of the filespace (default: the embedded default)' })
    .option('db', { type: 'string', describe: 'Metadata database: sqlite:PATH (default: inside a file:// store, else under ~/.lucid/meta)' })
    .option('listen', { type: 'string', default: '127.0.0.1:7410', describe: 'HOST:PORT to listen on (port 0 picks a free one)' })
    .option('tls-cert', { type: 'string', describe: 'PEM certificate: serve HTTPS' })
    .option('tls-key', { type: 'string', describe: 'PEM private key for --tls-cert' })
    .option('lock-lease', { type: 'string', default: '15s', describe: 'How long a silent client keeps its locks (e.g. 15s)' })
    .option('gc-every', { type: 'string', default: '1h', describe: 'Run garbage collection this often (off: never; lucid gc runs it by hand)' })
    .option('gc-grace', { type: 'string', default: '1h', describe: 'Keep objects written and refs replaced within this long' }),
  handler: async (args: ServeArgs) => {
    if (!!args.tlsCert !== !!args.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
    const { host, port } = parseListen(args.listen);
    const url = args.store ?? defaultStoreUrl();
    const gcEveryMs = parseGcEvery(args.gcEvery);
    const gcGraceMs = parseGrace(args.gcGrace);
    const { store } = await openStore(url);
    let descriptor;
    try {
      descriptor = await loadDescriptor(store);
    } catch (e) {
      await store.close();
      throw e;
    }
    // Users added or removed (lucid user add/remove) are heard by rereading the descriptor.
    let verifiers = acceptedVerifiers(descriptor);
    const reread = setInterval(() => {
      loadDescriptor(store).then((d) => { verifiers = acceptedVerifiers(d); }, (e: Error) => process.stderr.write(`rereading the filespace descriptor: ${e.message}\n`));
    }, 5000);
    reread.unref();
    const engine = await openFilespaceEngine(url, descriptor, args.db);
    const readPem = async (file: string, what: string) => fs.readFile(file).catch(() => {
      throw new UsageError(`cannot read ${what} ${file}`);
    });
    const tls = args.tlsCert ? { cert: await readPem(args.tlsCert, '--tls-cert'), key: await readPem(args.tlsKey!, '--tls-key') } : undefined;
    let service;
    try {
      service = await startService({ engine, verifiers: () => verifiers, tls, lockLeaseMs: parseLease(args.lockLease), log: (l) => process.stderr.write(`${l}\n`) }, host, port);
    } catch (e) {
      await engine.close();
      await store.close();
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new UsageError(`${args.listen} is already in use: pick another --listen`);
      if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UsageError(`cannot listen on ${args.listen}: no such local address`);
      throw e;
    }
    const gc = gcEveryMs > 0 ? startPeriodicGc(engine, store, { everyMs: gcEveryMs, graceMs: gcGraceMs, log: (l) => process.stderr.write(`${l}\n`) }) : undefined;
    process.stdout.write(`lucid serve: filespace ${descriptor.filespaceId} listening on ${service.url}\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    gc?.stop();
    await service.close();
    await engine.close();
    await store.close();
  },
};
