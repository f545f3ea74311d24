/**
 * Streaming over an emulated WAN: s3rver as the store and `lucid serve` as the metadata
 * service, each behind a WanProxy (RTT and a shared bandwidth cap), and a Lucid mount that
 * reads through them with an empty cache. Figures: time to the first MiB of a cold file,
 * cold sequential MB/s, median cold random 1 MiB read, warm sequential MB/s (from the disk
 * cache), the agent's peak RSS, and the link's own ceiling measured in the same run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { startWanProxy } from './wan-proxy.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { CLI, lucid } from '../test/helpers/cli.js';
import { S3Store } from '../src/store/s3.js';

export interface StreamOptions {
  rttMs: number;
  bytesPerSecond: number;
  fileMiB: number;
  randomReads: number;
  log?: (line: string) => void;
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
  warmSeqMBps: number;
  agentPeakRssMiB: number;
}

const MiB = 1024 * 1024;

const run = (args: string[], env: Record<string, string>) => lucid(args, { env, timeoutMs: 600_000 });

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

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

export async function benchStream(o: StreamOptions): Promise<StreamResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-bench-');
  const s3 = await startS3rver(['bench']);
  const s3Port = Number(new URL(s3.endpoint).port);
  const storeWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: s3Port });
  const env = { LUCID_HOME: path.join(root.dir, 'home'), LUCID_PASSWORD: 'bench password', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const store = `s3://bench/fs?endpoint=${storeWan.url()}`;
  const mp = path.join(root.dir, 'mnt');
  await fs.mkdir(mp);
  let serve: ReturnType<typeof spawn> | undefined;
  let serviceWan: Awaited<ReturnType<typeof startWanProxy>> | undefined;
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
    await raw.close();

    await must(run(['init', '--store', `s3://bench/fs?endpoint=${s3.endpoint}`, '--kdf', 'interactive'], env), 'init');
    serve = spawn(process.execPath, [CLI, 'serve', '--store', `s3://bench/fs?endpoint=${s3.endpoint}`, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0'],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const serviceUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      serve!.stdout!.on('data', (d) => {
        out += d;
        const m = /listening on (\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      serve!.on('exit', () => reject(new Error(`lucid serve exited: ${out}`)));
    });
    serviceWan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: Number(new URL(serviceUrl).port) });
    const mountArgs = (cache: string) => ['mount', mp, '--store', store, '--service', serviceWan!.url(), '--cache-dir', path.join(root.dir, cache)];

    log(`writing ${o.fileMiB} MiB x2 and 16 MiB through the link…`);
    await must(run(mountArgs('cache-writer'), env), 'mount (writer)');
    const make = async (name: string, mib: number) => {
      const fh = await fs.open(path.join(mp, name), 'w');
      for (let i = 0; i < mib; i++) await fh.write(randomBytes(MiB), 0, MiB);
      await fh.sync();
      await fh.close();
    };
    await make('seq.bin', o.fileMiB);
    await make('rand.bin', o.fileMiB);
    await make('first.bin', 16);
    await must(run(['unmount', mp], env), 'unmount (writer)');

    await must(run(mountArgs('cache-reader'), env), 'mount (reader)');
    const status = JSON.parse(await must(run(['status', mp, '--json'], env), 'status')) as { pid: number };

    log('cold: first MiB…');
    const firstMiBms = await timedRead(path.join(mp, 'first.bin'), 0, MiB);
    log('cold: sequential…');
    t = performance.now();
    await timedRead(path.join(mp, 'seq.bin'), 0, o.fileMiB * MiB);
    const coldSeqMBps = o.fileMiB * MiB / 1e6 / ((performance.now() - t) / 1000);
    log('cold: random 1 MiB reads…');
    const lat: number[] = [];
    for (let i = 0; i < o.randomReads; i++) {
      const off = Math.floor(Math.random() * (o.fileMiB - 1) * MiB);
      lat.push(await timedRead(path.join(mp, 'rand.bin'), off, MiB));
    }
    lat.sort((a, b) => a - b);
    log('warm: sequential…');
    t = performance.now();
    await timedRead(path.join(mp, 'seq.bin'), 0, o.fileMiB * MiB);
    const warmSeqMBps = o.fileMiB * MiB / 1e6 / ((performance.now() - t) / 1000);
    const agentPeakRssMiB = peakRssMiB(status.pid);
    await must(run(['unmount', mp], env), 'unmount (reader)');
    return {
      rttMs: o.rttMs, linkMBps: o.bytesPerSecond / 1e6, rawGetMBps, firstMiBms, coldSeqMBps,
      randomMedianMs: lat[Math.floor(lat.length / 2)], randomP90Ms: lat[Math.floor(lat.length * 0.9)],
      warmSeqMBps, agentPeakRssMiB,
    };
  } finally {
    await run(['unmount', mp, '--force'], env);
    serve?.kill('SIGTERM');
    await serviceWan?.close();
    await storeWan.close();
    await s3.close();
    root.remove();
  }
}
