/**
 * Streaming over an emulated WAN, side by side with the peers in one run.
 *
 * s3rver is the store and `lucid serve` the metadata service, each behind a WanProxy (RTT
 * and a shared bandwidth cap). Test data is written by a mount that talks to both directly
 * (set-up is not measured); the same bytes are put as plain objects for rclone and s3fs.
 * Then, each with an empty cache and through the link: time to the first MiB, cold
 * sequential MB/s, cold random 1 MiB reads, an image sequence read in name order, `ls -l`
 * of a 10 000-entry folder, warm sequential MB/s (the kernel's pages kept across opens, and
 * the agent's disk cache after a remount) and warm 4 KiB random-read IOPS (fio, O_DIRECT),
 * the agent's peak RSS. A no-op file system on the same FUSE binding, mounted with the same
 * kernel read-ahead, is the ceiling for warm reads: it is read right after each of
 * `warmRounds` remounts, and the target is the median of the per-round ratios.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startWanProxy } from './wan-proxy.js';
import { hasTool, mountRclone, mountS3fs, type PeerMount } from './peers.js';
import { MiB, exec, lucidOk, fioIops, median, mountNoop, peakRssMiB, randomLatencies, rssSampler, seqMBps, timedRead, waitLine, writeRandom } from './reads.js';
import { startS3rver, tempDir } from '../test/helpers/servers.js';
import { CLI, lucid } from '../test/helpers/cli.js';
import { S3Store } from '../src/store/s3.js';
import { sealedSize } from '../src/block/format.js';
import { DEFAULT_BLOCK_SIZE } from '../src/block/layout.js';
import { blockGetCeiling } from './get-ceiling.js';

export interface StreamOptions {
  rttMs: number;
  bytesPerSecond: number;
  fileMiB: number;
  randomReads: number;
  frames: number;
  frameMiB: number;
  listEntries: number;
  /** Rounds of warm reads, each a fresh mount followed by the no-op. */
  warmRounds: number;
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
  /**
   * 512 GETs of 128 block-sized objects, 16 at a time (Lucid's prefetch window), by another
   * process through the link: what a client of such objects gets, Lucid's cold reads included.
   */
  blockGetMBps: number;
  firstMiBms: number;
  coldSeqMBps: number;
  randomMedianMs: number;
  randomP90Ms: number;
  imageSeqMBps: number;
  imageSeqFrames: number;
  lsMs: number;
  lsEntries: number;
  /** Warm reads from the agent's disk cache, MB/s: the median of the rounds, and each round. */
  warmSeqMBps: number;
  warmRounds: number[];
  /** The no-op ceiling read right after Lucid in each round: the median, and each round. */
  noopSeqMBps: number;
  noopRounds: number[];
  /** The median over rounds of Lucid's warm MB/s divided by the no-op's in the same round. */
  warmOfNoop: number;
  warmPageCacheMBps: number;
  warmIops?: number;
  noopIops?: number;
  agentPeakRssMiB: number;
  /** The agent's peak RSS in each phase (sampled every 50 ms): where the peak is. */
  agentRssByPhaseMiB: Record<string, number>;
  peers: PeerResult[];
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
  let noop: Awaited<ReturnType<typeof mountNoop>> | undefined;
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
    const block = Buffer.alloc(sealedSize(DEFAULT_BLOCK_SIZE), 5);
    for (let i = 0; i < 128; i++) await raw.put(`blocks/${i}`, block);
    const blockGetMBps = await blockGetCeiling(storeWan.url(), 'bench', 'raw/blocks/', 128, 512, 16);

    await lucidOk(['init', '--store', directStore, '--kdf', 'interactive'], env);
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
    await lucidOk(['mount', mp, '--store', directStore, '--service', serviceUrl, '--cache-dir', path.join(root.dir, 'cache-writer')], env);
    await fs.copyFile(path.join(local, 'seq.bin'), path.join(mp, 'seq.bin'));
    await fs.copyFile(path.join(local, 'first.bin'), path.join(mp, 'first.bin'));
    await fs.copyFile(path.join(local, 'rand.bin'), path.join(mp, 'rand.bin'));
    await fs.mkdir(path.join(mp, 'frames'));
    for (let i = 0; i < o.frames; i++) await writeRandom(path.join(mp, 'frames', `frame_${String(i).padStart(6, '0')}.exr`), o.frameMiB);
    await fs.mkdir(path.join(mp, 'list'));
    for (let i = 0; i < o.listEntries; i += 64) {
      await Promise.all(Array.from({ length: Math.min(64, o.listEntries - i) }, (_, k) => fs.writeFile(path.join(mp, 'list', `entry-${i + k}`), '')));
    }
    await lucidOk(['unmount', mp], env);
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
    await lucidOk(['mount', mp, '--store', store, '--service', serviceWan.url(), '--cache-dir', path.join(root.dir, 'cache-reader')], readerEnv);
    const status = JSON.parse(await lucidOk(['status', mp, '--json'], env)) as { pid: number };
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
    const after = JSON.parse(await lucidOk(['status', mp, '--json'], env)) as { prefetch: Record<string, number>; cache: Record<string, number> };
    log(`lucid status: prefetch ${JSON.stringify(after.prefetch)}, cache hit ratio ${after.cache.hitRatio?.toFixed(3)}`);
    await lucidOk(['unmount', mp], env);
    // Warm from the agent's disk cache: a new mount on the same cache each round (so no
    // kernel pages), and the no-op file system on the same binding read right after it in the
    // same round. These machines are noisy (the no-op alone has read 1 400 and 3 700 MB/s in
    // one day): only the ratio within a round means much, and its median over rounds.
    noop = await mountNoop(path.join(root.dir, 'noop'), o.fileMiB * MiB);
    const warmRounds: number[] = [];
    const noopRounds: number[] = [];
    let warmIops: number | undefined;
    for (let round = 1; round <= o.warmRounds; round++) {
      await lucidOk(['mount', mp, '--store', store, '--service', serviceWan.url(), '--cache-dir', path.join(root.dir, 'cache-reader')], env);
      const warmStatus = JSON.parse(await lucidOk(['status', mp, '--json'], env)) as { pid: number };
      rss.watch(warmStatus.pid);
      rss.phase('warm (disk cache)');
      warmRounds.push(await seqMBps(path.join(mp, 'seq.bin'), o.fileMiB * MiB));
      if (round === o.warmRounds) {
        rss.phase('fio');
        warmIops = await fioIops(path.join(mp, 'seq.bin'), o.fileMiB * MiB);
      }
      agentPeakRssMiB = Math.max(agentPeakRssMiB, peakRssMiB(warmStatus.pid));
      await lucidOk(['unmount', mp], env);
      noopRounds.push(await seqMBps(noop.file, o.fileMiB * MiB));
      log(`warm round ${round}: lucid ${warmRounds[round - 1].toFixed(0)} MB/s, no-op ${noopRounds[round - 1].toFixed(0)} MB/s`);
    }
    const agentRssByPhaseMiB = rss.stop();
    log(`agent RSS peaks by phase (MiB): ${JSON.stringify(agentRssByPhaseMiB)}`);
    const noopIops = await fioIops(noop.file, o.fileMiB * MiB);
    noop.stop();

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
      rttMs: o.rttMs, linkMBps: o.bytesPerSecond / 1e6, rawGetMBps, blockGetMBps, firstMiBms, coldSeqMBps,
      randomMedianMs: median(lat), randomP90Ms: lat[Math.floor(lat.length * 0.9)],
      imageSeqMBps, imageSeqFrames: frameNames.length, lsMs, lsEntries,
      warmSeqMBps: median(warmRounds), warmRounds, noopSeqMBps: median(noopRounds), noopRounds,
      warmOfNoop: median(warmRounds.map((x, i) => x / noopRounds[i])),
      warmPageCacheMBps, warmIops, noopIops, agentPeakRssMiB, agentRssByPhaseMiB, peers,
    };
  } finally {
    await lucid(['unmount', mp, '--force'], { env });
    // BENCH_KEEP_LOGS=dir keeps the agents' logs (with LUCID_TRACE=1: every read and GET timed).
    if (process.env.BENCH_KEEP_LOGS) await fs.cp(path.join(root.dir, 'home', 'logs'), process.env.BENCH_KEEP_LOGS, { recursive: true }).catch(() => {});
    for (const m of peerMounts) await m.unmount().catch(() => {});
    noop?.stop();
    serve?.kill('SIGTERM');
    await serviceWan?.close();
    await storeWan.close();
    await s3.close();
    root.remove();
  }
}
