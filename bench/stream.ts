/**
 * Streaming over an emulated WAN, side by side with the peers in one run.
 *
 * s3rver is the store and `lucid serve` the metadata service, each behind a WanProxy (RTT
 * and a shared bandwidth cap). Test data is written by a mount that talks to both directly
 * (set-up is not measured); the same bytes are put as plain objects for rclone and s3fs.
 * Then, each with an empty cache and through the link: time to the first MiB, cold
 * sequential MB/s, cold random 1 MiB reads, an image sequence read in name order, `ls -l`
 * of a 10 000-entry folder, warm sequential MB/s (the kernel's pages kept across opens, and
 * the agent's disk cache after a remount)
 * and warm 4 KiB random-read IOPS (fio, O_DIRECT), the agent's peak RSS; and a no-op file
 * system on the same FUSE binding as the ceiling for warm reads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { startWanProxy } from './wan-proxy.js';
import { hasTool, mountRclone, mountS3fs, type PeerMount } from './peers.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { CLI, ROOT, lucid } from '../test/helpers/cli.js';
import { S3Store } from '../src/store/s3.js';

export interface StreamOptions {
  rttMs: number;
  bytesPerSecond: number;
  fileMiB: number;
  randomReads: number;
  frames: number;
  frameMiB: number;
  listEntries: number;
  peers: boolean;
  log?: (line: string) => void;
}

export interface PeerResult {
  name: string;
  firstMiBms: number;
  coldSeqMBps: number;
  randomMedianMs: number;
}

export interface StreamResult {
  rttMs: number;
  linkMBps: number;
  /** A single 64 MiB GET straight through the proxy: what one stream gets. */
  rawGetMBps: number;
  firstMiBms: number;
  coldSeqMBps: number;
  randomMedianMs: number;
  randomP90Ms: number;
  imageSeqMBps: number;
  imageSeqFrames: number;
  lsMs: number;
  lsEntries: number;
  warmSeqMBps: number;
  warmPageCacheMBps: number;
  warmIops?: number;
  noopSeqMBps: number;
  noopIops?: number;
  agentPeakRssMiB: number;
  /** The agent's peak RSS in each phase (sampled every 50 ms): where the peak is. */
  agentRssByPhaseMiB: Record<string, number>;
  peers: PeerResult[];
}

const MiB = 1024 * 1024;

const run = (args: string[], env: Record<string, string>) => lucid(args, { env, timeoutMs: 900_000 });

async function must(p: Promise<{ code: number | null; stdout: string; stderr: string }>, what: string): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}`);
  return r.stdout;
}

/** Reads [offset, offset+length) with one read() per MiB; returns ms. */
async function timedRead(file: string, offset: number, length: number): Promise<number> {
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

async function seqMBps(file: string, bytes: number): Promise<number> {
  return bytes / 1e6 / (await timedRead(file, 0, bytes) / 1000);
}

async function randomLatencies(file: string, fileBytes: number, count: number): Promise<number[]> {
  const lat: number[] = [];
  for (let i = 0; i < count; i++) lat.push(await timedRead(file, Math.floor(Math.random() * (fileBytes - MiB)), MiB));
  return lat.sort((a, b) => a - b);
}

const median = (xs: number[]) => xs[Math.floor(xs.length / 2)];

/** Samples a process's RSS every 50 ms and keeps the highest per phase. */
function rssSampler(): { watch(pid: number): void; phase(name: string): void; stop(): Record<string, number> } {
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

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function exec(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('close', (code) => resolve({ code, stdout: out }));
    c.on('error', () => resolve({ code: -1, stdout: '' }));
  });
}

/** 4 KiB random reads with O_DIRECT, 16 in flight, for `seconds`: IOPS (fio), or undefined without fio. */
async function fioIops(file: string, sizeBytes: number, seconds = 5): Promise<number | undefined> {
  if (!hasTool('fio')) return undefined;
  const r = await exec('fio', ['--name=r', `--filename=${file}`, '--rw=randread', '--bs=4k', '--direct=1', '--ioengine=libaio', '--iodepth=16',
    `--size=${sizeBytes}`, `--runtime=${seconds}`, '--time_based', '--readonly', '--output-format=json']);
  try {
    return (JSON.parse(r.stdout) as { jobs: { read: { iops: number } }[] }).jobs[0].read.iops;
  } catch {
    return undefined;
  }
}

async function waitLine(child: ChildProcess, re: RegExp, what: string): Promise<RegExpExecArray> {
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
async function writeRandom(file: string, mib: number): Promise<void> {
  const fh = await fs.open(file, 'w');
  for (let i = 0; i < mib; i++) await fh.write(randomBytes(MiB), 0, MiB);
  await fh.sync();
  await fh.close();
}

export async function benchStream(o: StreamOptions): Promise<StreamResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-bench-');
  const s3 = await startS3rver(['bench']);
  const s3Port = Number(new URL(s3.endpoint).port);
  const storeWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: s3Port });
  const env = { LUCID_HOME: path.join(root.dir, 'home'), LUCID_PASSWORD: 'bench password', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const directStore = `s3://bench/fs?endpoint=${s3.endpoint}`;
  const mp = path.join(root.dir, 'mnt');
  await fs.mkdir(mp);
  let serve: ChildProcess | undefined;
  let noop: ChildProcess | undefined;
  let serviceWan: Awaited<ReturnType<typeof startWanProxy>> | undefined;
  const peerMounts: PeerMount[] = [];
  try {
    // The link's own ceiling for one stream, measured in this run.
    const raw = new S3Store({ bucket: 'bench', prefix: 'raw/', endpoint: s3.endpoint });
    await raw.put('probe', Buffer.alloc(64 * MiB, 7));
    const viaWan = new S3Store({ bucket: 'bench', prefix: 'raw/', endpoint: storeWan.url() });
    await viaWan.get('probe', { offset: 0, length: 1 });
    let t = performance.now();
    await viaWan.get('probe');
    const rawGetMBps = 64 * MiB / 1e6 / ((performance.now() - t) / 1000);
    await viaWan.close();

    await must(run(['init', '--store', directStore, '--kdf', 'interactive'], env), 'init');
    serve = spawn(process.execPath, [CLI, 'serve', '--store', directStore, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0'],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const serviceUrl = (await waitLine(serve, /listening on (\S+)/, 'lucid serve'))[1];
    serviceWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: Number(new URL(serviceUrl).port) });

    // ---- set-up, straight to the store and the service ----
    log(`writing ${o.fileMiB} MiB x2, ${o.frames} x ${o.frameMiB} MiB frames, ${o.listEntries} empty files…`);
    const local = path.join(root.dir, 'local');
    await fs.mkdir(local);
    await writeRandom(path.join(local, 'seq.bin'), o.fileMiB);
    await writeRandom(path.join(local, 'first.bin'), 16);
    await writeRandom(path.join(local, 'rand.bin'), o.fileMiB);
    await must(run(['mount', mp, '--store', directStore, '--service', serviceUrl, '--cache-dir', path.join(root.dir, 'cache-writer')], env), 'mount (writer)');
    await fs.copyFile(path.join(local, 'seq.bin'), path.join(mp, 'seq.bin'));
    await fs.copyFile(path.join(local, 'first.bin'), path.join(mp, 'first.bin'));
    await fs.copyFile(path.join(local, 'rand.bin'), path.join(mp, 'rand.bin'));
    await fs.mkdir(path.join(mp, 'frames'));
    for (let i = 0; i < o.frames; i++) await writeRandom(path.join(mp, 'frames', `frame_${String(i).padStart(6, '0')}.exr`), o.frameMiB);
    await fs.mkdir(path.join(mp, 'list'));
    for (let i = 0; i < o.listEntries; i += 64) {
      await Promise.all(Array.from({ length: Math.min(64, o.listEntries - i) }, (_, k) => fs.writeFile(path.join(mp, 'list', `entry-${i + k}`), '')));
    }
    await must(run(['unmount', mp], env), 'unmount (writer)');
    await raw.close();
    if (o.peers) {
      const plain = new S3Store({ bucket: 'bench', prefix: 'peer/', endpoint: s3.endpoint });
      for (const name of ['seq.bin', 'first.bin', 'rand.bin']) await plain.put(name, await fs.readFile(path.join(local, name)));
      await plain.close();
    }
    await fs.rm(local, { recursive: true });

    // ---- Lucid, through the link, empty cache ----
    const store = `s3://bench/fs?endpoint=${storeWan.url()}`;
    // BENCH_PROFILE=file writes a CPU profile of the reading agent (open it in Chrome DevTools).
    const readerEnv = process.env.BENCH_PROFILE ? { ...env, LUCID_CPU_PROFILE: path.resolve(process.env.BENCH_PROFILE) } : env;
    await must(run(['mount', mp, '--store', store, '--service', serviceWan.url(), '--cache-dir', path.join(root.dir, 'cache-reader')], readerEnv), 'mount (reader)');
    const status = JSON.parse(await must(run(['status', mp, '--json'], env), 'status')) as { pid: number };
    const rss = rssSampler();
    rss.watch(status.pid);
    log('lucid: first MiB, sequential, random…');
    rss.phase('first MiB');
    const firstMiBms = await timedRead(path.join(mp, 'first.bin'), 0, MiB);
    rss.phase('cold sequential');
    const coldSeqMBps = await seqMBps(path.join(mp, 'seq.bin'), o.fileMiB * MiB);
    rss.phase('random');
    const lat = await randomLatencies(path.join(mp, 'rand.bin'), o.fileMiB * MiB, o.randomReads);
    log('lucid: image sequence…');
    rss.phase('image sequence');
    const frameNames = (await fs.readdir(path.join(mp, 'frames'))).sort();
    t = performance.now();
    for (const f of frameNames) await timedRead(path.join(mp, 'frames', f), 0, o.frameMiB * MiB);
    const imageSeqMBps = frameNames.length * o.frameMiB * MiB / 1e6 / ((performance.now() - t) / 1000);
    log('lucid: ls -l…');
    rss.phase('ls -l');
    t = performance.now();
    const ls = await exec('ls', ['-l', path.join(mp, 'list')]);
    const lsMs = performance.now() - t;
    const lsEntries = ls.stdout.split('\n').filter((l) => l.includes('entry-')).length;
    log('lucid: warm…');
    rss.phase('warm (page cache)');
    const warmPageCacheMBps = await seqMBps(path.join(mp, 'seq.bin'), o.fileMiB * MiB);
    let agentPeakRssMiB = peakRssMiB(status.pid);
    const after = JSON.parse(await must(run(['status', mp, '--json'], env), 'status')) as { prefetch: Record<string, number>; cache: Record<string, number> };
    log(`lucid status: prefetch ${JSON.stringify(after.prefetch)}, cache hit ratio ${after.cache.hitRatio?.toFixed(3)}`);
    await must(run(['unmount', mp], env), 'unmount (reader)');
    // Warm from the agent's disk cache: a new mount on the same cache, so no kernel pages.
    await must(run(['mount', mp, '--store', store, '--service', serviceWan.url(), '--cache-dir', path.join(root.dir, 'cache-reader')], env), 'mount (warm)');
    const warmStatus = JSON.parse(await must(run(['status', mp, '--json'], env), 'status')) as { pid: number };
    rss.watch(warmStatus.pid);
    rss.phase('warm (disk cache)');
    const warmSeqMBps = await seqMBps(path.join(mp, 'seq.bin'), o.fileMiB * MiB);
    rss.phase('fio');
    const warmIops = await fioIops(path.join(mp, 'seq.bin'), o.fileMiB * MiB);
    const agentRssByPhaseMiB = rss.stop();
    log(`agent RSS peaks by phase (MiB): ${JSON.stringify(agentRssByPhaseMiB)}`);
    agentPeakRssMiB = Math.max(agentPeakRssMiB, peakRssMiB(warmStatus.pid));
    await must(run(['unmount', mp], env), 'unmount (warm)');

    // ---- the no-op ceiling on the same binding ----
    log('no-op file system…');
    const noopMp = path.join(root.dir, 'noop');
    await fs.mkdir(noopMp);
    noop = spawn(process.execPath, [path.join(ROOT, 'dist', 'bench', 'noop-fs.js'), noopMp, String(o.fileMiB * MiB)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitLine(noop, /ready/, 'no-op file system');
    await new Promise((r) => setTimeout(r, 300));
    const noopSeqMBps = await seqMBps(path.join(noopMp, 'zero.bin'), o.fileMiB * MiB);
    const noopIops = await fioIops(path.join(noopMp, 'zero.bin'), o.fileMiB * MiB);
    noop.kill('SIGTERM');

    // ---- the peers, same link, same bytes ----
    const peers: PeerResult[] = [];
    if (o.peers) {
      const kinds = [['rclone', hasTool('rclone')], ['s3fs', hasTool('s3fs')]] as const;
      for (const [kind, present] of kinds) {
        if (!present) {
          log(`${kind} is not installed (apt-get install ${kind}): skipped`);
          continue;
        }
        log(`${kind}…`);
        const pm = path.join(root.dir, `peer-${kind}`);
        await fs.mkdir(pm);
        const common = { mountpoint: pm, endpoint: storeWan.url(), bucket: 'bench', prefix: 'peer', keyId: 'S3RVER', secret: 'S3RVER' };
        const m = kind === 'rclone'
          ? await mountRclone({ ...common, cacheDir: path.join(root.dir, 'rclone-cache') })
          : await mountS3fs({ ...common, workDir: root.dir });
        peerMounts.push(m);
        const first = await timedRead(path.join(pm, 'first.bin'), 0, MiB);
        const seq = await seqMBps(path.join(pm, 'seq.bin'), o.fileMiB * MiB);
        const plat = await randomLatencies(path.join(pm, 'rand.bin'), o.fileMiB * MiB, o.randomReads);
        peers.push({ name: m.name, firstMiBms: first, coldSeqMBps: seq, randomMedianMs: median(plat) });
        await m.unmount();
      }
    }
    return {
      rttMs: o.rttMs, linkMBps: o.bytesPerSecond / 1e6, rawGetMBps, firstMiBms, coldSeqMBps,
      randomMedianMs: median(lat), randomP90Ms: lat[Math.floor(lat.length * 0.9)],
      imageSeqMBps, imageSeqFrames: frameNames.length, lsMs, lsEntries,
      warmSeqMBps, warmPageCacheMBps, warmIops, noopSeqMBps, noopIops, agentPeakRssMiB, agentRssByPhaseMiB, peers,
    };
  } finally {
    await run(['unmount', mp, '--force'], env);
    // BENCH_KEEP_LOGS=dir keeps the agents' logs (with LUCID_TRACE=1: every read and GET timed).
    if (process.env.BENCH_KEEP_LOGS) await fs.cp(path.join(root.dir, 'home', 'logs'), process.env.BENCH_KEEP_LOGS, { recursive: true }).catch(() => {});
    for (const m of peerMounts) await m.unmount().catch(() => {});
    noop?.kill('SIGTERM');
    serve?.kill('SIGTERM');
    await serviceWan?.close();
    await storeWan.close();
    await s3.close();
    root.remove();
  }
}
