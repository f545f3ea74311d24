/**
 * Load: N client processes (bench/load-client.ts) run a mixed workload against one
 * `lucid serve` for a while. Reported: operations and metadata operations per second, the
 * median and p99 latency of metadata operations, the service's memory over the run, every
 * client error, and lost writes: at the end every file a client wrote is read back by a
 * fresh reader and checked against the SHA-256 the client recorded, and every client's
 * folder must hold exactly the names it left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createDescriptor, unlockDescriptor } from '../src/crypto/descriptor.js';
import { loadDescriptor, saveNewDescriptor } from '../src/fs/descriptor-store.js';
import { Filespace } from '../src/fs/filespace.js';
import { MetaClient } from '../src/meta/client.js';
import { FileStore } from '../src/store/file.js';
import { tempDir } from '../test/helpers/servers.js';
import { ROOT, serveLucid } from '../test/helpers/cli.js';

export interface LoadOptions {
  clients: number;
  seconds: number;
  log?: (line: string) => void;
}

export interface LoadResult {
  clients: number;
  seconds: number;
  ops: number;
  opsPerSecond: number;
  metadataOps: number;
  metadataOpsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: string[];
  filesChecked: number;
  lostWrites: string[];
  serviceRssMiB: { first: number; peak: number; last: number };
}

const PASSWORD = 'load test password';

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * A client's output once it exits. One still running `deadlineMs` after it started is killed
 * and its output ends with a report of that error: a client that hangs fails the run with
 * its name and leaves no process behind holding the test's output open.
 */
function collect(child: ChildProcess, client: number, deadlineMs: number): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    let killed = false;
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, deadlineMs);
    child.stdout!.on('data', (d) => { out += d; });
    child.on('close', () => {
      clearTimeout(timer);
      if (killed) out += `\n${JSON.stringify({ client, manifest: {}, counts: {}, latencies: [], errors: [`client ${client} was still running ${Math.round(deadlineMs / 1000)} s after it started: killed (its stderr above says what it waited on)`] })}\n`;
      resolve(out);
    });
  });
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-load-');
  const storeDir = path.join(root.dir, 'store');
  mkdirSync(storeDir);
  const store = new FileStore(storeDir);
  let serve: ChildProcess | undefined;
  try {
    const created = await createDescriptor({ password: PASSWORD, blockSize: 65536, kdf: 'interactive' });
    await saveNewDescriptor(store, created.descriptor);
    const started = await serveLucid(['--store', `file://${storeDir}`, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0', '--gc-every', 'off'],
      { LUCID_HOME: path.join(root.dir, 'home') }, 'inherit');
    serve = started.child;
    const url = started.url;
    const unlocked = await unlockDescriptor(await loadDescriptor(store), PASSWORD);
    const admin = new MetaClient(url, unlocked.keys.serviceToken.toString('hex'));
    const fs = new Filespace(unlocked, store, admin);
    await fs.mkdir('shared');

    log(`${o.clients} clients for ${o.seconds} s against ${url}…`);
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(rssMiB(serve!.pid!)), 1000);
    const client = path.join(ROOT, 'dist', 'bench', 'load-client.js');
    // Each client runs o.seconds, then lists its folder and reports: two minutes more is plenty.
    const deadlineMs = (o.seconds + 120) * 1000;
    const outputs = await Promise.all(Array.from({ length: o.clients }, (_, i) => collect(spawn(process.execPath,
      [client, storeDir, url, PASSWORD, String(i), String(o.seconds), String(1000 + i)], { stdio: ['ignore', 'pipe', 'inherit'] }), i, deadlineMs)));
    clearInterval(sampler);

    const reports = outputs.map((out, i) => {
      try {
        return JSON.parse(out.trim().split('\n').pop()!) as { client: number; manifest: Record<string, string>; counts: Record<string, number>; latencies: number[]; errors: string[] };
      } catch {
        return { client: i, manifest: {}, counts: {}, latencies: [], errors: [`client ${i} printed no report`] };
      }
    });
    // A fresh reader checks every file every client says it left.
    log('checking every file…');
    const lostWrites: string[] = [];
    let filesChecked = 0;
    for (const r of reports) {
      const names = new Set((await fs.readdir(`c${r.client}`).catch(() => [])).map((e) => `c${r.client}/${e.name}`));
      for (const [p, digest] of Object.entries(r.manifest)) {
        filesChecked++;
        if (!names.has(p)) lostWrites.push(`${p} is missing`);
        else if (createHash('sha256').update(await fs.readFile(p)).digest('hex') !== digest) lostWrites.push(`${p} holds other bytes`);
        names.delete(p);
      }
      for (const extra of names) lostWrites.push(`${extra} should be gone`);
    }
    await admin.close();
    const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const ops = reports.reduce((n, r) => n + Object.values(r.counts).reduce((a, b) => a + b, 0), 0);
    const q = (f: number) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))] : NaN;
    return {
      clients: o.clients, seconds: o.seconds, ops, opsPerSecond: ops / o.seconds,
      metadataOps: latencies.length, metadataOpsPerSecond: latencies.length / o.seconds, p50Ms: q(0.5), p99Ms: q(0.99),
      errors: reports.flatMap((r) => r.errors.map((e) => `client ${r.client}: ${e}`)),
      filesChecked, lostWrites,
      serviceRssMiB: { first: rss[0] ?? 0, peak: Math.max(0, ...rss), last: rss[rss.length - 1] ?? 0 },
    };
  } finally {
    serve?.kill('SIGTERM');
    await store.close();
    root.remove();
  }
}
