/**
 * Writing into the mount: the local write path, then an upload over an emulated WAN.
 *
 * Local (each beside `rclone mount --vfs-cache-mode full` over a local directory and plain
 * local disk, in the same run): Lucid's embedded default (a `file://` store, the service in
 * the agent); `cp` of a `fileMiB` file (made first on local disk, read once so it comes from
 * the page cache), `dd` from /dev/zero at 4 KiB, 32 KiB, 128 KiB and 1 MiB, and 16 parallel
 * writers of 64 MiB; MB/s when the command returns (and writes/s for 4 KiB). The agent's peak
 * RSS while ingesting is sampled.
 *
 * WAN: s3rver behind a WanProxy (`rttMs`, `bytesPerSecond`), `lucid serve` on loopback. The
 * same file is copied into a Lucid mount whose store is behind the proxy, timed from the
 * start of `cp` until `lucid sync` says nothing remains; beside it `rclone copyto` of the file
 * through the same proxy, and the raw PUT ceiling: 8 MiB PUTs, 16 in flight, from a process of
 * their own with Lucid's S3 backend (bench/put-ceiling.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startWanProxy, type WanProxy } from './wan-proxy.js';
import { hasTool, peerEnv, type PeerMount } from './peers.js';
import { lucidOk, rssSampler, sh, timedSh, waitLine } from './reads.js';
import { putCeiling } from './put-ceiling.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { CLI } from '../test/helpers/cli.js';

export interface WriteOptions {
  fileMiB: number;
  rttMs: number;
  bytesPerSecond: number;
  peers: boolean;
  wan: boolean;
  log?: (line: string) => void;
}

/** One target's local figures (MB/s; writes/s for 4 KiB). */
export interface WriteRun {
  name: string;
  cpMBps: number;
  dd4kWritesPerSec: number;
  dd32kMBps: number;
  dd128kMBps: number;
  dd1mMBps: number;
  parallel16MBps: number;
}

export interface WriteResult {
  fileMiB: number;
  rttMs: number;
  runs: WriteRun[];
  agentPeakRssMiB?: number;
  wan?: { lucidUploadMBps: number; rcloneCopytoMBps?: number; putCeilingMBps: number };
}

const MB = 1e6;
const MiB = 1024 * 1024;


/**
 * The local steps into `dir`, removing what each wrote before the next. Each starts once the
 * local disk has written back what the last one left in the page cache (`sync -f` of the
 * disk that holds the source and every cache directory, not of the mounts): without it, a
 * step ran beside the kernel writing back the step before (`bo` past 1 GB/s in vmstat while
 * `cp` ran), and the figures moved by a factor of two from run to run.
 */
async function localSteps(name: string, dir: string, source: string, fileMiB: number, log: (l: string) => void, phase: (step: string) => void = () => {}): Promise<WriteRun> {
  const settle = () => sh(`sync -f '${source}'`);
  const dd = async (bs: number, mib: number, file: string) => {
    await settle();
    phase(`dd ${bs}`);
    const s = await timedSh(`dd if=/dev/zero of='${file}' bs=${bs} count=${(mib * MiB) / bs} 2>/dev/null`);
    await fs.rm(file, { force: true });
    return s;
  };
  log(`${name}: cp of ${fileMiB} MiB…`);
  await settle();
  phase('cp');
  const cp = await timedSh(`cp '${source}' '${path.join(dir, 'copy.bin')}'`);
  await fs.rm(path.join(dir, 'copy.bin'), { force: true });
  log(`${name}: dd…`);
  const dd4k = await dd(4096, 64, path.join(dir, 'dd4k'));
  const dd32k = await dd(32 * 1024, 256, path.join(dir, 'dd32k'));
  const dd128k = await dd(128 * 1024, 512, path.join(dir, 'dd128k'));
  const dd1m = await dd(MiB, fileMiB, path.join(dir, 'dd1m'));
  log(`${name}: 16 writers of 64 MiB…`);
  await settle();
  phase('16 writers');
  const par = await timedSh(Array.from({ length: 16 }, (_, i) => `dd if=/dev/zero of='${path.join(dir, `p${i}`)}' bs=1M count=64 2>/dev/null &`).join(' ') + ' wait');
  for (let i = 0; i < 16; i++) await fs.rm(path.join(dir, `p${i}`), { force: true });
  const run: WriteRun = {
    name, cpMBps: (fileMiB * MiB) / MB / cp, dd4kWritesPerSec: (64 * MiB) / 4096 / dd4k, dd32kMBps: (256 * MiB) / MB / dd32k,
    dd128kMBps: (512 * MiB) / MB / dd128k, dd1mMBps: (fileMiB * MiB) / MB / dd1m, parallel16MBps: (16 * 64 * MiB) / MB / par,
  };
  log(`${name}: ${JSON.stringify(run)}`);
  return run;
}

/** rclone over a local directory, as Lucid's embedded default is over one. */
async function rcloneMount(mountpoint: string, remote: string, cacheDir: string): Promise<PeerMount> {
  const child = spawn('rclone', ['mount', remote, mountpoint, '--vfs-cache-mode', 'full', '--cache-dir', cacheDir, '--log-level', 'ERROR'], { stdio: ['ignore', 'ignore', 'inherit'], env: peerEnv() });
  for (let i = 0; i < 100; i++) {
    if ((await sh(`mount | grep -c ' ${mountpoint} ' || true`)).trim() !== '0') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'rclone mount --vfs-cache-mode full',
    mountpoint,
    unmount: async () => {
      await sh(`fusermount3 -u '${mountpoint}' || umount -l '${mountpoint}'`).catch(() => undefined);
      child.kill('SIGTERM');
    },
  };
}

export async function benchWrite(o: WriteOptions): Promise<WriteResult> {
  const log = o.log ?? (() => {});
  const root = tempDir('lucid-write-');
  const env = { LUCID_HOME: path.join(root.dir, 'home'), LUCID_PASSWORD: 'bench password', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const mounted: string[] = [];
  const peers: PeerMount[] = [];
  const children: ChildProcess[] = [];
  const proxies: WanProxy[] = [];
  let s3: Awaited<ReturnType<typeof startS3rver>> | undefined;
  const result: WriteResult = { fileMiB: o.fileMiB, rttMs: o.rttMs, runs: [] };
  try {
    const source = path.join(root.dir, 'source.bin');
    log(`making a ${o.fileMiB} MiB file on local disk…`);
    await sh(`head -c ${o.fileMiB * MiB} /dev/urandom > '${source}' && cat '${source}' > /dev/null`);

    // ---- Lucid on the embedded default: a file:// store, the service in the agent ----
    const store = `file://${path.join(root.dir, 'store')}`;
    await fs.mkdir(path.join(root.dir, 'store'));
    await lucidOk(['init', '--store', store, '--kdf', 'interactive'], env);
    const mp = path.join(root.dir, 'lucid');
    await fs.mkdir(mp);
    await lucidOk(['mount', mp, '--store', store, '--cache-dir', path.join(root.dir, 'cache')], env);
    mounted.push(mp);
    const rss = rssSampler();
    rss.watch((JSON.parse(await lucidOk(['status', mp, '--json'], env)) as { pid: number }).pid);
    result.runs.push(await localSteps('lucid (embedded default)', mp, source, o.fileMiB, log, (step) => rss.phase(step)));
    const peaks = rss.stop();
    log(`lucid: agent peak RSS by step (MiB): ${JSON.stringify(peaks)}`);
    result.agentPeakRssMiB = Math.max(...Object.values(peaks));
    await lucidOk(['unmount', mp], env);
    mounted.pop();

    if (o.peers && hasTool('rclone')) {
      const pm = path.join(root.dir, 'rclone');
      await fs.mkdir(pm);
      await fs.mkdir(path.join(root.dir, 'rclone-store'));
      const m = await rcloneMount(pm, path.join(root.dir, 'rclone-store'), path.join(root.dir, 'rclone-cache'));
      peers.push(m);
      result.runs.push(await localSteps(m.name, pm, source, o.fileMiB, log));
    } else if (o.peers) {
      log('rclone is not installed: its column is left out');
    }
    const disk = path.join(root.dir, 'disk');
    await fs.mkdir(disk);
    result.runs.push(await localSteps('local disk', disk, source, o.fileMiB, log));

    if (o.wan) {
      // ---- the upload over an emulated WAN ----
      s3 = await startS3rver(['bench']);
      const wan = await startWanProxy({ rttMs: o.rttMs, bytesPerSecond: o.bytesPerSecond, targetHost: '127.0.0.1', targetPort: Number(new URL(s3.endpoint).port) });
      proxies.push(wan);
      const direct = `s3://bench/fs?endpoint=${s3.endpoint}`;
      const home2 = { ...env, LUCID_HOME: path.join(root.dir, 'home2') };
      await lucidOk(['init', '--store', direct, '--kdf', 'interactive'], home2);
      const serve = spawn(process.execPath, [CLI, 'serve', '--store', direct, '--db', `sqlite:${root.dir}/meta.sqlite`, '--listen', '127.0.0.1:0'],
        { env: { ...process.env, ...home2 }, stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(serve);
      const serviceUrl = (await waitLine(serve, /listening on (\S+)/, 'lucid serve'))[1];
      // As the local steps: each of these starts once the disk has written back what came before.
      const settle = () => sh(`sync -f '${source}'`);
      await settle();
      log(`raw PUT ceiling through the link (8 MiB PUTs, 16 in flight, another process)…`);
      const putCeilingMBps = await putCeiling(wan.url(), 'bench', 'ceiling/', Math.max(64, o.fileMiB), 8, 16);
      const wmp = path.join(root.dir, 'lucid-wan');
      await fs.mkdir(wmp);
      await lucidOk(['mount', wmp, '--store', `s3://bench/fs?endpoint=${wan.url()}`, '--service', serviceUrl, '--cache-dir', path.join(root.dir, 'cache-wan')], home2);
      mounted.push(wmp);
      await settle();
      log(`lucid: cp of ${o.fileMiB} MiB through the link, until nothing remains…`);
      const t = performance.now();
      await sh(`cp '${source}' '${path.join(wmp, 'big.bin')}'`);
      const cpSec = (performance.now() - t) / 1000;
      await lucidOk(['sync', wmp], home2);
      log(`lucid: cp returned after ${cpSec.toFixed(1)} s, nothing remained after ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const lucidUploadMBps = (o.fileMiB * MiB) / MB / ((performance.now() - t) / 1000);
      await lucidOk(['unmount', wmp], home2);
      mounted.pop();
      result.wan = { lucidUploadMBps, putCeilingMBps };
      if (o.peers && hasTool('rclone')) {
        await settle();
        log('rclone copyto through the link…');
        const secs = await timedSh(`env -u AWS_CA_BUNDLE rclone copyto '${source}' ':s3:bench/rclone/big.bin' --s3-provider Other --s3-endpoint '${wan.url()}' ` +
          `--s3-access-key-id S3RVER --s3-secret-access-key S3RVER --s3-force-path-style --log-level ERROR`);
        result.wan.rcloneCopytoMBps = (o.fileMiB * MiB) / MB / secs;
      }
      log(`wan: ${JSON.stringify(result.wan)}`);
    }
    return result;
  } finally {
    for (const mp of mounted) await lucidOk(['unmount', mp], env).catch(() => sh(`umount -l '${mp}'`).catch(() => undefined));
    for (const p of peers) await p.unmount().catch(() => undefined);
    for (const c of children) c.kill('SIGINT');
    for (const p of proxies) await p.close();
    await s3?.close();
    root.remove();
  }
}
