/**
 * What the benchmarks share: timed reads through a mount (one read() per MiB, as a player
 * or a copy does), RSS sampling of a process, fio, test data, and the no-op file system on
 * Lucid's binding that gives the ceiling for warm reads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { hasTool } from './peers.js';
import { ROOT, lucid } from '../test/helpers/cli.js';

export const MiB = 1024 * 1024;

/** Runs `lucid ARGS` (15 minutes at most) and returns its stdout, or throws with its stderr. */
export async function lucidOk(args: string[], env: Record<string, string>): Promise<string> {
  const r = await lucid(args, { env, timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`lucid ${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * Runs a shell command; resolves with its standard output. Never synchronously: the WAN
 * proxies live on the benchmark's event loop, and a mount's calls go through them.
 */
export function sh(cmd: string, cwd?: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const c = spawn('sh', ['-c', cmd], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd}: exit ${code}: ${err.trim()}`))));
  });
}

/** Seconds a shell command takes. */
export async function timedSh(cmd: string, cwd?: string): Promise<number> {
  const t = performance.now();
  await sh(cmd, cwd);
  return (performance.now() - t) / 1000;
}

/** Reads [offset, offset+length) with one read() per MiB; returns ms. */
export async function timedRead(file: string, offset: number, length: number): Promise<number> {
  const fh = await fs.open(file, 'r');
  const buf = Buffer.allocUnsafe(MiB);
  const start = performance.now();
  try {
    for (let done = 0; done < length;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(MiB, length - done), offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return performance.now() - start;
}

export async function seqMBps(file: string, bytes: number): Promise<number> {
  return bytes / 1e6 / (await timedRead(file, 0, bytes) / 1000);
}

export async function randomLatencies(file: string, fileBytes: number, count: number): Promise<number[]> {
  const lat: number[] = [];
  for (let i = 0; i < count; i++) lat.push(await timedRead(file, Math.floor(Math.random() * (fileBytes - MiB)), MiB));
  return lat.sort((a, b) => a - b);
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Samples a process's RSS every 50 ms and keeps the highest per phase. */
export function rssSampler(): { watch(pid: number): void; phase(name: string): void; stop(): Record<string, number> } {
  let pid = 0;
  let phase = 'start';
  const peaks: Record<string, number> = {};
  const timer = setInterval(() => {
    if (!pid) return;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peaks[phase] = Math.max(peaks[phase] ?? 0, Math.round(Number(m[1]) / 1024));
    } catch { /* gone */ }
  }, 50);
  return { watch: (p) => { pid = p; }, phase: (n) => { phase = n; }, stop: () => { clearInterval(timer); return peaks; } };
}

export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

export function exec(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('close', (code) => resolve({ code, stdout: out }));
    c.on('error', () => resolve({ code: -1, stdout: '' }));
  });
}

/** 4 KiB random reads with O_DIRECT, 16 in flight, for `seconds`: IOPS (fio), or undefined without fio. */
export async function fioIops(file: string, sizeBytes: number, seconds = 5): Promise<number | undefined> {
  if (!hasTool('fio')) return undefined;
  const r = await exec('fio', ['--name=r', `--filename=${file}`, '--rw=randread', '--bs=4k', '--direct=1', '--ioengine=libaio', '--iodepth=16',
    `--size=${sizeBytes}`, `--runtime=${seconds}`, '--time_based', '--readonly', '--output-format=json']);
  try {
    return (JSON.parse(r.stdout) as { jobs: { read: { iops: number } }[] }).jobs[0].read.iops;
  } catch {
    return undefined;
  }
}

export async function waitLine(child: ChildProcess, re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = re.exec(out);
      if (m) resolve(m);
    });
    child.on('exit', () => reject(new Error(`${what} exited: ${out}`)));
  });
}

/** Writes `mib` MiB of fresh random bytes to `file`, fsynced. */
export async function writeRandom(file: string, mib: number): Promise<void> {
  const fh = await fs.open(file, 'w');
  for (let i = 0; i < mib; i++) await fh.write(randomBytes(MiB), 0, MiB);
  await fh.sync();
  await fh.close();
}

/**
 * Mounts the no-op file system (one file of `bytes` zeros, `zero.bin`) at `dir` in a child
 * process; `stop()` unmounts it.
 */
export async function mountNoop(dir: string, bytes: number): Promise<{ file: string; stop(): void }> {
  await fs.mkdir(dir, { recursive: true });
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'bench', 'noop-fs.js'), dir, String(bytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitLine(child, /ready/, 'no-op file system');
  await new Promise((r) => setTimeout(r, 300));
  return { file: path.join(dir, 'zero.bin'), stop: () => { child.kill('SIGTERM'); } };
}
