/**
 * `lucid mount MOUNTPOINT`: mounts a filespace. Detaches by default: a child process runs
 * the agent and reports back over IPC whether the mount came up, so errors still reach the
 * terminal as one line with the right exit code. `--foreground` stays attached and unmounts
 * cleanly (uploads first) on SIGINT or SIGTERM.
 */
import { spawn } from 'node:child_process';
import { openSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { LucidError, UsageError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { parseSize } from '../../util/size.js';
import { Agent } from '../agent.js';
import { mountId } from '../control.js';
import { defaultStorePassword, defaultStoreUrl, isDefaultStore, lucidHome } from '../home.js';
import { checkMountpoint } from '../mountpoint.js';
import { getPassword } from '../password.js';
import { ensureDefaultFilespace } from './init.js';
import { serviceUrls } from '../open.js';

export interface MountArgs {
  mountpoint: string;
  store?: string;
  service?: string;
  cacheDir?: string;
  cacheSize?: string;
  passwordStdin?: boolean;
  foreground?: boolean;
  allowOther?: boolean;
  staleness?: string;
  ipc?: boolean;
  /** Set by `lucid snapshot mount ID MOUNTPOINT`. */
  snapshot?: number;
}

type IpcMessage = { type: 'password'; password: string } | { type: 'ready'; mountpoint: string } | { type: 'error'; message: string; exitCode: number };

/** The options `lucid mount` and `lucid snapshot mount` share. */
export const mountOptions = (y: Argv) => y
    .option('store', { type: 'string', describe: 'Store URL (default: the embedded default under ~/.lucid, created on first use)' })
    .option('service', { type: 'string', coerce: serviceUrls, describe: 'URL of a lucid serve (default: the service runs in this agent); instances of one service: URL,URL or --service repeated (the next is used when one cannot be reached)' })
    .option('cache-dir', { type: 'string', describe: 'Cache directory (default: ~/.lucid/cache/<filespace id>)' })
    .option('cache-size', { type: 'string', describe: 'Cache size limit, e.g. 10G (default: 10 GiB, or half the free space on a small disk)' })
    .option('password-stdin', { type: 'boolean', describe: 'Read the password from the first line of standard input' })
    .option('foreground', { type: 'boolean', describe: 'Stay attached; Ctrl-C unmounts' })
    .option('allow-other', { type: 'boolean', describe: 'Let other users use the mount (FUSE allow_other)' })
    .option('staleness', { type: 'string', describe: 'Longest time another client\'s change may go unseen in eventual mode (e.g. 500ms, 1s; default 1s)' })
    .option('ipc', { type: 'boolean', hidden: true });

export const mountCommand = {
  command: 'mount <mountpoint>',
  describe: 'Mount a filespace at an empty directory',
  builder: (y: Argv) => mountOptions(y.positional('mountpoint', { type: 'string', describe: 'An empty directory' })),
  handler: async (args: MountArgs) => {
    const mountpoint = await checkMountpoint(args.mountpoint);
    const cacheSize = args.cacheSize ? parseSize(args.cacheSize, '--cache-size') : undefined;
    const storeUrl = args.store ?? defaultStoreUrl();
    if (args.ipc) return runChild(args, mountpoint, storeUrl, cacheSize);
    if (isDefaultStore(storeUrl)) await ensureDefaultFilespace((l) => process.stderr.write(`${l}\n`));
    const password = await getPassword({
      passwordStdin: args.passwordStdin,
      fallback: isDefaultStore(storeUrl) ? () => defaultStorePassword(false) : undefined,
    });
    if (args.foreground) return runForeground(args, mountpoint, storeUrl, cacheSize, password);
    return detach(args, mountpoint, password);
  },
};

/** A mount agent logs a stray failure instead of dying with the mount still attached. */
function keepAlive(log: (l: string) => void): void {
  process.on('unhandledRejection', (e) => log(`unexpected failure (continuing): ${(e as Error)?.stack ?? e}`));
}

/** "500ms", "2s" or a number of ms → ms, within 0–60 s. */
function parseStaleness(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v, ['ms', 's'], 'ms');
  if (!(ms >= 0 && ms <= 60_000)) throw new UsageError(`--staleness must be a time up to 60s, like 500ms or 1s (got "${v}")`);
  return ms;
}

function agentConfig(args: MountArgs, mountpoint: string, storeUrl: string, cacheSize: number | undefined, password: string) {
  return {
    mountpoint, storeUrl, serviceUrl: args.service, cacheDir: args.cacheDir, cacheSize, password,
    allowOther: args.allowOther, staleMs: parseStaleness(args.staleness), snapshotId: args.snapshot, log: (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`),
  };
}

async function runForeground(args: MountArgs, mountpoint: string, storeUrl: string, cacheSize: number | undefined, password: string): Promise<void> {
  const config = agentConfig(args, mountpoint, storeUrl, cacheSize, password);
  keepAlive(config.log);
  const agent = await Agent.start(config);
  process.stdout.write(`Mounted filespace ${agent.filespaceId} at ${mountpoint} (Ctrl-C to unmount)\n`);
  stopOnSignals(agent);
  await agent.stopped;
  await exitSoon();
}

/**
 * LUCID_CPU_PROFILE=FILE: the agent records a CPU profile (Chrome DevTools format) from start
 * to unmount, for benchmarks and performance work.
 */
async function startProfile(): Promise<void> {
  const file = process.env.LUCID_CPU_PROFILE;
  if (!file) return;
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) => session.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r))));
  await post('Profiler.enable');
  await post('Profiler.start');
  stopProfile = async () => {
    const { profile } = await post('Profiler.stop') as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
  };
}

let stopProfile: (() => Promise<void>) | undefined;

/** Lets a last control answer (the unmount's) go out, then ends the process. */
async function exitSoon(): Promise<never> {
  await stopProfile?.().catch(() => {});
  await new Promise((r) => setTimeout(r, 200));
  process.exit(0);
}

function stopOnSignals(agent: Agent): void {
  const stop = (signal: string) => {
    agent.log(`${signal}: uploading and unmounting`);
    agent.stop().catch((e: Error) => {
      agent.log(`${e.message}; detaching the mount`);
      return agent.stop({ force: true });
    }).catch(() => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** The detached agent: gets its password over IPC, reports ready or the error, then runs. */
async function runChild(args: MountArgs, mountpoint: string, storeUrl: string, cacheSize: number | undefined): Promise<void> {
  const send = (m: IpcMessage) => new Promise<void>((r) => (process.send ? process.send(m, () => r()) : r()));
  const password = await new Promise<string>((resolve) => {
    process.once('message', (m: IpcMessage) => resolve(m.type === 'password' ? m.password : ''));
  });
  let agent: Agent;
  await startProfile();
  const config = agentConfig(args, mountpoint, storeUrl, cacheSize, password);
  keepAlive(config.log);
  try {
    agent = await Agent.start(config);
  } catch (e) {
    const le = e instanceof LucidError ? e : undefined;
    await send({ type: 'error', message: (e as Error).message, exitCode: le?.exitCode ?? 1 });
    process.exit(le?.exitCode ?? 1);
  }
  await send({ type: 'ready', mountpoint });
  process.disconnect?.();
  agent.log(`mounted filespace ${agent.filespaceId} at ${mountpoint}`);
  stopOnSignals(agent);
  await agent.stopped;
  agent.log('stopped');
  await exitSoon();
}

async function detach(args: MountArgs, mountpoint: string, password: string): Promise<void> {
  const logDir = path.join(lucidHome(), 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const logFile = path.join(logDir, `mount-${mountId(mountpoint)}.log`);
  const log = openSync(logFile, 'a', 0o600);
  const argv = process.argv.slice(1).filter((a) => a !== '--password-stdin');
  // The agent's heap: --expose-gc lets it pace collections by the block buffers it reads
  // (src/util/gc-pacer.ts); 4 MiB semi-spaces collect young garbage sooner (bench/stream.ts:
  // peak RSS 228–235 MiB with both, 256–258 with the pacer alone, 266–286 with neither).
  // One malloc arena: block plaintexts made on the thread that opens cached blocks and freed
  // on the main thread otherwise kept a second arena's worth of freed memory resident (peak
  // RSS 299–301 MiB in the stream benchmark; 230 with one arena, no slower).
  const heapFlags = ['--expose-gc', '--max-semi-space-size=4'];
  const child = spawn(process.execPath, [...process.execArgv.filter((a) => !heapFlags.includes(a)), ...heapFlags, ...argv, '--ipc'], {
    detached: true, stdio: ['ignore', log, log, 'ipc'], env: { UV_THREADPOOL_SIZE: '16', MALLOC_ARENA_MAX: '1', ...process.env, LUCID_PASSWORD: '' },
  });
  const result = await new Promise<IpcMessage>((resolve) => {
    child.on('message', (m: IpcMessage) => resolve(m));
    child.on('exit', (code) => resolve({ type: 'error', message: `the mount agent exited (code ${code}) before mounting: see ${logFile}`, exitCode: 1 }));
    child.send({ type: 'password', password } satisfies IpcMessage);
  });
  if (result.type === 'error') throw new LucidError(result.exitCode === 2 ? 'Usage' : 'Internal', result.message, result.exitCode === 2 ? 2 : 1);
  child.disconnect();
  child.unref();
  process.stdout.write(`Mounted at ${mountpoint} (agent pid ${child.pid}, log ${logFile}); "lucid unmount ${mountpoint}" to stop\n`);
}

