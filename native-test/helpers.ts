/**
 * Helpers for tests through a real FUSE mount: each test gets its own Lucid home, store,
 * cache and mountpoint, mounts with the real CLI (a separate agent process), drives the
 * mount with real tools through bash, and always unmounts. Nothing here blocks this
 * process's event loop, so nothing can deadlock against the mount.
 *
 * A test file that is killed (tap's timeout sends SIGTERM) takes its mounts and agents with
 * it: every Lucid home a fixture made is swept on SIGTERM, SIGINT and exit — each agent it
 * recorded is killed and each mountpoint lazily unmounted — so nothing is left mounted.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { CLI, lucid, serveLucid, type CliResult } from '../test/helpers/cli.js';
import { tempDir } from '../test/helpers/servers.js';

export interface ShResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a bash script; resolves with its exit code and output. */
export function sh(script: string, env: Record<string, string> = {}, timeoutMs = 600_000): Promise<ShResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

export interface MountFixture {
  /** The mountpoint. */
  mp: string;
  /** A scratch directory outside the mount (references, archives). */
  work: string;
  home: string;
  store: string;
  cacheDir: string;
  env: Record<string, string>;
  /** Extra `lucid mount` arguments used by remount(). */
  mountArgs: string[];
  lucid(args: string[], input?: string): Promise<CliResult>;
  mount(extra?: string[]): Promise<CliResult>;
  unmount(force?: boolean): Promise<CliResult>;
  agentPid(): Promise<number | undefined>;
}

export const PASSWORD = 'native test password';

/** Lucid homes (and their mountpoints) of the fixtures still alive in this process. */
const live = new Map<string, string[]>();

/**
 * Sweeps `home` (its agents and mounts, and `mountpoints`) if this process is killed before
 * its test's teardown; the returned function forgets it again.
 */
export function sweepOnKill(home: string, ...mountpoints: string[]): () => void {
  live.set(home, mountpoints);
  return () => { live.delete(home); };
}

/** Kills the agents a home recorded and lazily unmounts their mountpoints (synchronously: it runs on exit too). */
function sweep(home: string, mountpoints: string[]): void {
  const mps = new Set(mountpoints);
  try {
    const run = path.join(home, 'run');
    for (const f of readdirSync(run).filter((n) => n.endsWith('.json'))) {
      const { pid, mountpoint } = JSON.parse(readFileSync(path.join(run, f), 'utf8')) as { pid?: number; mountpoint?: string };
      if (mountpoint) mps.add(mountpoint);
      if (pid && pid !== process.pid) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }
  } catch { /* no run directory: no agent started */ }
  for (const mp of mps) {
    try {
      if (readFileSync('/proc/mounts', 'utf8').includes(` ${mp} `)) execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
    } catch { /* not mounted */ }
  }
}

/** `lucid serve` processes started here, stopped with the rest. */
const serving = new Set<ChildProcess>();

function sweepAll(): void {
  for (const [home, mps] of live) sweep(home, mps);
  live.clear();
  for (const child of serving) child.kill('SIGKILL');
  serving.clear();
}

process.once('exit', sweepAll);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    sweepAll();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/**
 * A fresh filespace in a file:// store (or the embedded default with `embedded`), mounted.
 * Unmounts (forcibly if it must) when the test ends.
 */
export async function withMount(t: Test, options: { embedded?: boolean; cacheSize?: string; blockSize?: string; mount?: boolean; allowOther?: boolean } = {}): Promise<MountFixture> {
  const root = tempDir('lucid-native-');
  const home = path.join(root.dir, 'home');
  const store = path.join(root.dir, 'store');
  const mp = path.join(root.dir, 'mnt');
  const work = path.join(root.dir, 'work');
  const cacheDir = path.join(root.dir, 'cache');
  for (const d of [home, store, mp, work]) mkdirSync(d, { recursive: true });
  const env: Record<string, string> = { LUCID_HOME: home };
  if (!options.embedded) env.LUCID_PASSWORD = PASSWORD;
  const mountArgs = options.embedded ? [] : ['--store', `file://${store}`];
  mountArgs.push('--cache-dir', cacheDir);
  if (options.cacheSize) mountArgs.push('--cache-size', options.cacheSize);
  if (options.allowOther) mountArgs.push('--allow-other');
  const fx: MountFixture = {
    mp, work, home, store: options.embedded ? path.join(home, 'default', 'store') : store, cacheDir, env, mountArgs,
    lucid: (args, input) => lucid(args, { env, input, timeoutMs: 600_000 }),
    mount: (extra = []) => lucid(['mount', mp, ...mountArgs, ...extra], { env, timeoutMs: 120_000 }),
    unmount: (force = false) => lucid(['unmount', mp, ...(force ? ['--force'] : [])], { env, timeoutMs: 600_000 }),
    agentPid: async () => {
      const r = await lucid(['status', mp, '--json'], { env });
      return r.code === 0 ? (JSON.parse(r.stdout) as { pid: number }).pid : undefined;
    },
  };
  if (!options.embedded) {
    const init = await lucid(['init', '--store', `file://${store}`, '--kdf', 'interactive', ...(options.blockSize ? ['--block-size', options.blockSize] : [])], { env });
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  }
  const swept = sweepOnKill(home, mp);
  t.teardown(async () => {
    await fx.unmount(true);
    await sh(`if grep -q " ${mp} " /proc/mounts; then umount -l ${mp}; fi`);
    swept();
    root.remove();
  });
  if (options.mount !== false) {
    const m = await fx.mount();
    if (m.code !== 0) throw new Error(`mount failed: ${m.stderr}`);
  }
  return fx;
}

export { CLI };

/** Starts `lucid serve` for a store on `db` (a free port unless `extra` has `--listen`). */
export async function startServe(store: string, db: string, env: Record<string, string>, extra: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const started = await serveLucid(['--store', store, '--db', db, ...(extra.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...extra], env, 'inherit');
  serving.add(started.child);
  started.child.once('exit', () => serving.delete(started.child));
  return started;
}

/** Runs `check` every 100 ms until it passes or `ms` elapse; resolves with the time it took (or -1). */
export async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  return -1;
}

/** Kills an agent with SIGKILL (a crash) and waits until it is gone. */
export async function killAgent(pid: number | undefined): Promise<void> {
  if (!pid) throw new Error('no agent pid');
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 200; i++) {
    try { process.kill(pid, 0); } catch { return; }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A new filespace on a file store in a temporary folder, for tests that start their own
 * `lucid serve`: `dir(name)` makes a folder in it, `run` runs the CLI with its Lucid home and
 * password; `swept()` forgets the sweep made if this process is killed (call it in teardown).
 */
export async function initFilespace(t: Test, prefix: string): Promise<{ root: string; dir(name: string): string; store: string; env: Record<string, string>; swept(): void; remove(): void; run(args: string[]): Promise<CliResult> }> {
  const tmp = tempDir(prefix);
  const dir = (n: string) => { const p = path.join(tmp.dir, n); mkdirSync(p, { recursive: true }); return p; };
  const store = `file://${dir('store')}`;
  const env = { LUCID_HOME: dir('home'), LUCID_PASSWORD: PASSWORD };
  const swept = sweepOnKill(env.LUCID_HOME);
  const run = (args: string[]) => lucid(args, { env, timeoutMs: 120_000 });
  t.equal((await run(['init', '--store', store, '--kdf', 'interactive'])).code, 0, 'lucid init');
  return { root: tmp.dir, dir, store, env, swept, remove: () => tmp.remove(), run };
}
