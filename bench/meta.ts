/**
 * The metadata benchmark (`npm run bench -- meta`), three parts:
 *
 * - **mdtest**: for 1, 8 and 64 client processes (bench/meta-client.ts) against one `lucid
 *   serve` on SQLite, one on PostgreSQL, and two over one PostgreSQL (clients split between
 *   them): creates, stats, lookups, listed entries, renames and removes per second (one call
 *   each, every client at once), and creates in batches of 100; p50 and p99 per operation;
 *   the service's peak RSS and CPU seconds over the run.
 * - **listing**: one folder of `--list N` files (made through the batch call); a mount whose
 *   service is behind the emulated WAN (`--rtt`, `--mbps`): cold `ls -f` (the first name and
 *   the last) and `ls -l`, and both again after a remount with the same cache.
 * - **populate** (`--populate N`): a realistic tree of N files (bench/populate.ts) through the
 *   batch call, then from a mount on loopback: `find | wc -l`, `du -s`, `lucid snapshot
 *   create`, `lucid snapshot diff`, `lucid gc`, `lucid warm --recursive` of a subtree, each
 *   with the agent's and the service's peak RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createDescriptor, unlockDescriptor } from '../src/crypto/descriptor.js';
import { NameCipher } from '../src/crypto/names.js';
import { loadDescriptor, saveNewDescriptor } from '../src/fs/descriptor-store.js';
import { MetaClient } from '../src/meta/client.js';
import { ROOT_INO, S_IFDIR } from '../src/meta/types.js';
import { FileStore } from '../src/store/file.js';
import { startPostgres, tempDir, type PostgresServer } from '../test/helpers/servers.js';
import { ROOT, serveLucid } from '../test/helpers/cli.js';
import { lucidOk, peakRssMiB, sh, timedSh } from './reads.js';
import { populate, planTree } from './populate.js';
import { startWanProxy } from './wan-proxy.js';

export const META_PHASES = ['create', 'stat', 'lookup', 'list', 'rename', 'remove', 'batch-create'] as const;
export type MetaPhase = typeof META_PHASES[number];

/** What a client prints at the end of a phase. */
export interface PhaseReport {
  client: number;
  phase: MetaPhase;
  ops: number;
  startMs: number;
  endMs: number;
  latencies: number[];
  errors: string[];
}

export type MetaEngineSetup = 'sqlite' | 'postgres' | 'postgres-2';

export interface MetaBenchOptions {
  engines: MetaEngineSetup[];
  clients: number[];
  /** Items per client in each phase (mdtest's -I). */
  items: number;
  /** Entries of the folder listed over the WAN (0: skip). */
  list: number;
  /** Files of the populated tree (0: skip). */
  populate: number;
  rttMs: number;
  bytesPerSecond: number;
  log?: (line: string) => void;
}

export interface PhaseFigure { opsPerSec: number; p50Ms: number; p99Ms: number }

export interface MdtestRun {
  engine: MetaEngineSetup;
  clients: number;
  phases: Partial<Record<MetaPhase, PhaseFigure>>;
  errors: string[];
  serviceRssMiB: number;
  serviceCpuSec: number;
}

export interface ListingRun {
  entries: number;
  rttMs: number;
  /** `ls -f` (the listing alone), cold: until the first name, and until the last. */
  firstNameSec: number;
  coldListSec: number;
  /** `ls -l` (the listing, then a stat and two xattr probes per entry, the kernel's), cold. */
  coldLsSec: number;
  /** The same after a remount with the same cache. */
  remountListSec: number;
  remountLsSec: number;
}

export interface PopulateRun {
  engine: MetaEngineSetup;
  files: number;
  folders: number;
  populateSec: number;
  steps: { step: string; sec: number; agentRssMiB?: number; serviceRssMiB: number; note?: string }[];
}

export interface MetaBenchResult {
  mdtest: MdtestRun[];
  listing?: ListingRun;
  populate: PopulateRun[];
}

const PASSWORD = 'meta bench password';

/** Peak RSS (VmHWM) and CPU seconds (user + system) of a process so far. */
function usage(pid: number): { rssMiB: number; cpuSec: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { rssMiB: peakRssMiB(pid), cpuSec: (Number(stat[11]) + Number(stat[12])) / 100 };
}

const quantile = (sorted: number[], f: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] : NaN;

/** A filespace on a `file://` store with its services: what every part starts from. */
interface Setup {
  storeDir: string;
  urls: string[];
  services: ChildProcess[];
  meta: MetaClient;
  names: NameCipher;
  env: Record<string, string>;
  close(): Promise<void>;
}

async function setUp(root: string, engine: MetaEngineSetup, pg: () => Promise<PostgresServer>): Promise<Setup> {
  const storeDir = path.join(root, 'store');
  await fs.mkdir(storeDir, { recursive: true });
  const store = new FileStore(storeDir);
  await saveNewDescriptor(store, (await createDescriptor({ password: PASSWORD, blockSize: 1 << 20, kdf: 'interactive' })).descriptor);
  const env = { LUCID_HOME: path.join(root, 'home'), LUCID_PASSWORD: PASSWORD };
  const db = engine === 'sqlite' ? `sqlite:${path.join(root, 'meta.sqlite')}` : await (await pg()).createDatabase();
  const services: ChildProcess[] = [];
  const urls: string[] = [];
  for (let i = 0; i < (engine === 'postgres-2' ? 2 : 1); i++) {
    const s = await serveLucid(['--store', `file://${storeDir}`, '--db', db, '--listen', '127.0.0.1:0', '--gc-every', 'off'], env, 'inherit');
    services.push(s.child);
    urls.push(s.url);
  }
  const unlocked = await unlockDescriptor(await loadDescriptor(store), PASSWORD);
  const meta = new MetaClient(urls[0], unlocked.keys.serviceToken.toString('hex'), { timeoutMs: 600_000 });
  return {
    storeDir, urls, services, meta, names: new NameCipher(unlocked.keys), env,
    close: async () => {
      await meta.close();
      for (const s of services) s.kill('SIGTERM');
      await Promise.all(services.map((s) => new Promise((r) => (s.exitCode !== null ? r(null) : s.once('exit', r)))));
      await store.close();
    },
  };
}

/** Runs the mdtest phases with `clients` processes; every phase starts in all of them at once. */
async function mdtest(s: Setup, engine: MetaEngineSetup, clients: number, items: number, log: (l: string) => void): Promise<MdtestRun> {
  const top = (await s.meta.create(ROOT_INO, s.names.seal(ROOT_INO, `mdtest-${clients}`), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 })).ino;
  const before = s.services.map((c) => usage(c.pid!));
  const script = path.join(ROOT, 'dist', 'bench', 'meta-client.js');
  const procs = Array.from({ length: clients }, (_, i) => spawn(process.execPath,
    [script, s.storeDir, s.urls[i % s.urls.length], PASSWORD, String(i), String(items), String(top)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = procs.map((p) => createInterface({ input: p.stdout! })[Symbol.asyncIterator]());
  const next = async (i: number) => {
    const r = await lines[i].next();
    if (r.done) throw new Error(`meta client ${i} exited early`);
    return r.value as string;
  };
  const errors: string[] = [];
  const phases: MdtestRun['phases'] = {};
  try {
    await Promise.all(procs.map((_, i) => next(i)));
    for (const phase of META_PHASES) {
      for (const p of procs) p.stdin!.write(`go ${phase}\n`);
      const reports = await Promise.all(procs.map(async (_, i) => JSON.parse(await next(i)) as PhaseReport));
      const ops = reports.reduce((n, r) => n + r.ops, 0);
      const ms = Math.max(...reports.map((r) => r.endMs)) - Math.min(...reports.map((r) => r.startMs));
      const lat = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
      phases[phase] = { opsPerSec: ops / (ms / 1000), p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) };
      errors.push(...reports.flatMap((r) => r.errors.map((e) => `client ${r.client}: ${e}`)));
      log(`  ${engine}, ${clients} clients, ${phase}: ${Math.round(phases[phase]!.opsPerSec)}/s, p50 ${phases[phase]!.p50Ms.toFixed(2)} ms, p99 ${phases[phase]!.p99Ms.toFixed(2)} ms`);
    }
  } finally {
    for (const p of procs) p.stdin!.end('quit\n');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
  }
  const after = s.services.map((c) => usage(c.pid!));
  return {
    engine, clients, phases, errors,
    serviceRssMiB: Math.max(...after.map((u) => u.rssMiB)),
    serviceCpuSec: after.reduce((n, u, i) => n + u.cpuSec - before[i].cpuSec, 0),
  };
}

/** Seconds until `cmd` prints its first byte, and until it ends. */
function outputTimes(cmd: string): Promise<{ firstSec: number; endSec: number }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const c = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let firstSec: number | undefined;
    c.stdout.on('data', () => { firstSec ??= (performance.now() - t) / 1000; });
    c.on('close', (code) => (code === 0 && firstSec !== undefined ? resolve({ firstSec, endSec: (performance.now() - t) / 1000 }) : reject(new Error(`${cmd}: exit ${code}, printed ${firstSec === undefined ? 'nothing' : 'something'}`))));
  });
}

async function listing(root: string, s: Setup, entries: number, rttMs: number, bytesPerSecond: number, log: (l: string) => void): Promise<ListingRun> {
  log(`listing: a folder of ${entries} files through the batch call…`);
  await populate(s.meta, s.names, ROOT_INO, [{ path: 'listed', files: entries }]);
  const wan = await startWanProxy({ rttMs, bytesPerSecond, targetHost: '127.0.0.1', targetPort: Number(new URL(s.urls[0]).port) });
  const mp = path.join(root, 'mnt-list');
  await fs.mkdir(mp);
  const mount = (cache: string) => lucidOk(['mount', mp, '--store', `file://${s.storeDir}`, '--service', wan.url(), '--cache-dir', path.join(root, cache)], s.env);
  const dir = path.join(mp, 'listed');
  const unmount = async () => {
    // The kernel's last releases after a listing of this size can trail the command by a moment.
    for (let i = 0; ; i++) {
      try {
        return await lucidOk(['unmount', mp], s.env);
      } catch (e) {
        if (i === 20 || !/busy/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  try {
    log(`listing: cold ls -f and ls -l through ${rttMs} ms, then both after a remount…`);
    await mount('cache-a');
    const cold = await outputTimes(`ls -f '${dir}'`);
    const count = Number((await sh(`ls -f '${dir}' | wc -l`)).trim());
    if (count !== entries + 2) throw new Error(`ls -f listed ${count - 2} entries, not ${entries}`);
    await unmount();
    await mount('cache-b');
    const coldLsSec = await timedSh(`ls -l '${dir}' | wc -l`);
    await unmount();
    await mount('cache-b');
    const remount = await outputTimes(`ls -f '${dir}'`);
    await unmount();
    await mount('cache-b');
    const remountLsSec = await timedSh(`ls -l '${dir}' | wc -l`);
    return { entries, rttMs, coldListSec: cold.endSec, firstNameSec: cold.firstSec, coldLsSec, remountListSec: remount.endSec, remountLsSec };
  } finally {
    await lucidOk(['unmount', mp, '--force'], s.env).catch(() => {});
    await wan.close();
  }
}

async function populated(root: string, s: Setup, engine: MetaEngineSetup, files: number, log: (l: string) => void): Promise<PopulateRun> {
  const plan = planTree(files);
  log(`populate (${engine}): ${files} files in ${plan.length} folders…`);
  const t = performance.now();
  let last = 0;
  await populate(s.meta, s.names, ROOT_INO, plan, {
    onProgress: (p) => {
      if (performance.now() - last < 10_000) return;
      last = performance.now();
      log(`  ${p.folders} folders, ${p.files} files, ${Math.round(p.files / ((last - t) / 1000))} files/s`);
    },
  });
  const populateSec = (performance.now() - t) / 1000;
  const serviceRss = () => Math.max(...s.services.map((c) => usage(c.pid!).rssMiB));
  const steps: PopulateRun['steps'] = [{ step: 'populate', sec: populateSec, serviceRssMiB: serviceRss() }];
  const mp = path.join(root, `mnt-pop-${engine}`);
  await fs.mkdir(mp);
  await lucidOk(['mount', mp, '--store', `file://${s.storeDir}`, '--service', s.urls[0], '--cache-dir', path.join(root, `cache-pop-${engine}`)], s.env);
  const agentPid = Number(JSON.parse(await lucidOk(['status', mp, '--json'], s.env)).pid);
  const step = async (name: string, cmd: string, note?: (out: string) => string): Promise<string> => {
    log(`  ${name}…`);
    const t0 = performance.now();
    const out = await sh(cmd);
    steps.push({ step: name, sec: (performance.now() - t0) / 1000, agentRssMiB: agentPid ? usage(agentPid).rssMiB : undefined, serviceRssMiB: serviceRss(), note: note?.(out) });
    return out.trim();
  };
  const envs = Object.entries(s.env).map(([k, v]) => `${k}='${v}'`).join(' ');
  const lucidCmd = (args: string) => `${envs} '${process.execPath}' '${path.join(ROOT, 'dist', 'src', 'cli', 'main.js')}' ${args} --mount '${mp}'`;
  try {
    await step('find | wc -l', `find '${mp}/pop' | wc -l`, (o) => `${o.trim()} entries`);
    await step('du -s', `du -s '${mp}/pop'`, (o) => `${o.trim().split(/\s/)[0]} KiB`);
    const a = await step('snapshot create', lucidCmd('snapshot create a'));
    await sh(`touch '${mp}/pop/changed' && rm -f '${mp}/pop/s10/g0/d0/f0' && sync`);
    const b = await step('snapshot create (2nd)', lucidCmd('snapshot create b'));
    await step('snapshot diff', lucidCmd(`snapshot diff ${a} ${b}`), (o) => `${o.trim().split('\n').length} lines`);
    await step('gc', lucidCmd('gc'));
    await step('warm --recursive (s100)', `${envs} '${process.execPath}' '${path.join(ROOT, 'dist', 'src', 'cli', 'main.js')}' warm --recursive '${mp}/pop/s100'`);
  } finally {
    await lucidOk(['unmount', mp, '--force'], s.env).catch(() => {});
  }
  return { engine, files, folders: plan.length, populateSec, steps };
}

export async function benchMeta(o: MetaBenchOptions): Promise<MetaBenchResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-meta-');
  let pg: PostgresServer | undefined;
  const pgOnce = async () => (pg ??= await startPostgres());
  const result: MetaBenchResult = { mdtest: [], populate: [] };
  try {
    let n = 0;
    for (const engine of o.engines) {
      for (const clients of o.clients) {
        const s = await setUp(path.join(root.dir, `md${n++}`), engine, pgOnce);
        try {
          log(`mdtest: ${engine}, ${clients} clients × ${o.items} items…`);
          result.mdtest.push(await mdtest(s, engine, clients, o.items, log));
        } finally {
          await s.close();
        }
      }
    }
    if (o.list > 0) {
      const s = await setUp(path.join(root.dir, 'list'), 'sqlite', pgOnce);
      try {
        result.listing = await listing(path.join(root.dir, 'list'), s, o.list, o.rttMs, o.bytesPerSecond, log);
      } finally {
        await s.close();
      }
    }
    if (o.populate > 0) {
      for (const engine of o.engines.filter((e) => e !== 'postgres-2')) {
        const dir = path.join(root.dir, `pop-${engine}`);
        const s = await setUp(dir, engine, pgOnce);
        try {
          result.populate.push(await populated(dir, s, engine, o.populate, log));
        } finally {
          await s.close();
        }
      }
    }
    return result;
  } finally {
    await pg?.close();
    root.remove();
  }
}
