/**
 * Benchmark runner: `npm run bench -- NAME [--seconds N]`. Prints a table and writes JSON
 * under bench/results/. Benchmarks: aead, stream (`--size MiB --rtt ms --mbps Mbit --random N
 * --frames N --frame-mib MiB --entries N --warm-rounds N --no-peers`), warm (`--size MiB --rounds N --threads
 * 0,1`: warm reads from the disk cache against the no-op ceiling), load (`--clients N --seconds S`),
 * smallfiles (`--files N --git-files N --rtt ms --mbps Mbit --no-peers`), write (`--size MiB --rtt ms
 * --mbps Mbit --no-peers --no-wan`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchAead } from './aead.js';
import { benchStream } from './stream.js';
import { benchWarm } from './warm.js';
import { runLoad } from './load.js';
import { benchSmallFiles } from './smallfiles.js';
import { benchWrite } from './write.js';
import { benchMeta, type MetaEngineSetup } from './meta.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const name = args.find((a) => !a.startsWith('--')) ?? 'aead';
/** The comma-separated list after `flag` on the command line, or `dflt`. */
const list = (flag: string, dflt: string) => { const i = args.indexOf(flag); return (i >= 0 ? args[i + 1] : dflt).split(',').filter(Boolean); };
/** The number after `flag` on the command line, or `dflt`. */
const num = (flag: string, dflt: number) => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : dflt; };
const seconds = num('--seconds', 2);

function save(result: unknown): string {
  const dir = path.join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

if (name === 'aead') {
  const r = await benchAead(seconds);
  const f = (x: number) => x.toFixed(2).padStart(6);
  console.log(`Block AEAD, one core, ${r.blockBytes / 1048576} MiB blocks, ${seconds} s per figure`);
  console.log('                                        seal GB/s  open GB/s');
  console.log(`lucid block codec (native AES-256-GCM)     ${f(r.sealGBps)}     ${f(r.openGBps)}`);
  console.log(`libsodium WASM XChaCha20-Poly1305          ${f(r.wasmSealGBps)}     ${f(r.wasmOpenGBps)}`);
  console.log(`ratio native / WASM                        ${f(r.sealGBps / r.wasmSealGBps)}x    ${f(r.openGBps / r.wasmOpenGBps)}x`);
  console.log(`target ≥ 1.5 GB/s: seal ${r.sealGBps >= 1.5 ? 'met' : 'MISSED'}, open ${r.openGBps >= 1.5 ? 'met' : 'MISSED'}`);
  console.log(`results: ${save(r)}`);
} else if (name === 'stream') {
  const r = await benchStream({
    rttMs: num('--rtt', 50), bytesPerSecond: num('--mbps', 1000) * 1e6 / 8 * 0.976, fileMiB: num('--size', 512), randomReads: num('--random', 40),
    frames: num('--frames', 200), frameMiB: num('--frame-mib', 8), listEntries: num('--entries', 10_000), warmRounds: num('--warm-rounds', 3), peers: !args.includes('--no-peers'),
    log: (l) => console.error(l),
  });
  const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d)).padStart(9);
  const pct = (x: number, of: number) => `${(100 * x / of).toFixed(0)}%`;
  const link = r.linkMBps;
  console.log(`Streaming over an emulated link: RTT ${r.rttMs} ms, ${link.toFixed(0)} MB/s usable; one raw 64 MiB GET through it: ${r.rawGetMBps.toFixed(1)} MB/s;`);
  console.log(`  block-sized GETs, 16 in flight, another process: ${r.blockGetMBps.toFixed(1)} MB/s (${pct(r.blockGetMBps, link)} of link): the ceiling for a client of such objects`);
  console.log('                                          lucid   target');
  console.log(`  time to first MiB (cold)            ${f(r.firstMiBms, 0)} ms  ≤ 120 ms   ${r.firstMiBms <= 120 ? 'met' : 'MISSED'}`);
  console.log(`  cold sequential read                ${f(r.coldSeqMBps)} MB/s (${pct(r.coldSeqMBps, link)} of link, ${pct(r.coldSeqMBps, r.blockGetMBps)} of block GETs) ≥ 95%   ${r.coldSeqMBps >= 0.95 * link ? 'met' : 'MISSED'}`);
  console.log(`  cold random 1 MiB, median / p90     ${Number.isFinite(r.randomMedianMs)
    ? `${f(r.randomMedianMs, 0)} / ${f(r.randomP90Ms, 0).trim()} ms  ≤ 90 ms   ${r.randomMedianMs <= 90 ? 'met' : 'MISSED'}`
    : '      n/a (--random 0: none read)'}`);
  console.log(`  image sequence ${r.imageSeqFrames} frames          ${f(r.imageSeqMBps)} MB/s (${pct(r.imageSeqMBps, link)} of link, ${pct(r.imageSeqMBps, r.blockGetMBps)} of block GETs) ≥ 90%   ${r.imageSeqMBps >= 0.9 * link ? 'met' : 'MISSED'}`);
  console.log(`  ls -l of ${r.lsEntries} entries, cold       ${f(r.lsMs, 0)} ms`);
  console.log(`  warm sequential (agent disk cache)  ${f(r.warmSeqMBps)} MB/s (${pct(r.warmOfNoop, 1)} of the no-op ceiling in the same round) ≥ 90%   ${r.warmOfNoop >= 0.9 ? 'met' : 'MISSED'}`);
  console.log(`    median of ${r.warmRounds.length} rounds, lucid / no-op MB/s   ${r.warmRounds.map((x, i) => `${x.toFixed(0)} / ${r.noopRounds[i].toFixed(0)}`).join(', ')}`);
  console.log(`  warm sequential (page cache kept)   ${f(r.warmPageCacheMBps)} MB/s`);
  console.log(`  warm 4 KiB random reads (fio)       ${f(r.warmIops, 0)} IOPS (no-op ceiling ${f(r.noopIops, 0).trim()})`);
  console.log(`  agent peak RSS                      ${f(r.agentPeakRssMiB, 0)} MiB  ≤ 256 MiB  ${r.agentPeakRssMiB <= 256 ? 'met' : 'MISSED'}`);
  console.log(`    by phase (MiB)                    ${Object.entries(r.agentRssByPhaseMiB).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.peers.length) {
    console.log('Peers, same link, same bytes, same run:        first MiB   cold seq MB/s   random 1 MiB median');
    console.log(`  lucid                                         ${f(r.firstMiBms, 0)} ms  ${f(r.coldSeqMBps)}       ${f(r.randomMedianMs, 0)} ms`);
    for (const p of r.peers) {
      console.log(`  ${p.name.padEnd(44)}${f(p.firstMiBms, 0)} ms  ${f(p.coldSeqMBps)}       ${f(p.randomMedianMs, 0)} ms   lucid/peer seq ${(r.coldSeqMBps / p.coldSeqMBps).toFixed(2)}x`);
    }
    const s3fs = r.peers.find((p) => p.name.startsWith('s3fs'));
    if (s3fs) console.log(`  target cold sequential ≥ 1.2 x s3fs: ${(r.coldSeqMBps / s3fs.coldSeqMBps).toFixed(2)}x ${r.coldSeqMBps >= 1.2 * s3fs.coldSeqMBps ? 'met' : 'MISSED'}`);
  }
  console.log(`results: ${save(r)}`);
} else if (name === 'smallfiles') {
  const r = await benchSmallFiles({
    files: num('--files', 10_000), gitFiles: num('--git-files', 2000), rttMs: num('--rtt', 50), bytesPerSecond: num('--mbps', 1000) * 1e6 / 8 * 0.976,
    peers: !args.includes('--no-peers'), log: (l) => console.error(l),
  });
  const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? 'n/a' : Number.isFinite(x) ? x.toFixed(d) : 'never').padStart(9);
  console.log(`Small files over an emulated link: RTT ${r.rttMs} ms; ${r.files} files of 4 KiB in 20 folders; git clone of ${r.gitFiles} files`);
  console.log('                                         untar files/s  visible after s  ls -lR s  cold read files/s  rm -rf files/s  git clone s');
  for (const x of r.runs) {
    console.log(`  ${x.name.padEnd(38)}${f(x.untarFilesPerSec, 0)}      ${f(x.visibleAfterSec, 2)}    ${f(x.lsLRSec, 2)}     ${f(x.coldReadFilesPerSec, 0)}        ${f(x.rmFilesPerSec, 0)}    ${f(x.gitCloneSec, 1)}`);
  }
  const lucidWan = r.runs[0];
  const rclone = r.runs.find((x) => x.name.startsWith('rclone'));
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log('Targets (10 000 files, 50 ms):');
  console.log(`  untar ≥ 1 000 files/s: ${met(lucidWan.untarFilesPerSec >= 1000)}${rclone ? `; ≥ 5 x rclone: ${(lucidWan.untarFilesPerSec / rclone.untarFilesPerSec).toFixed(1)}x ${met(lucidWan.untarFilesPerSec >= 5 * rclone.untarFilesPerSec)}` : ''}`);
  console.log(`  visible on a second mount ≤ 3 s after tar: ${met((lucidWan.visibleAfterSec ?? Infinity) <= 3)}`);
  console.log(`  rm -rf ≥ 1 000 files/s: ${met(lucidWan.rmFilesPerSec >= 1000)}; cold read ≥ 300 files/s: ${met((lucidWan.coldReadFilesPerSec ?? 0) >= 300)}; cold ls -lR ≤ 2 s: ${met((lucidWan.lsLRSec ?? Infinity) <= 2)}`);
  console.log(`results: ${save(r)}`);
} else if (name === 'write') {
  const r = await benchWrite({
    fileMiB: num('--size', 1024), rttMs: num('--rtt', 50), bytesPerSecond: num('--mbps', 1000) * 1e6 / 8 * 0.976,
    peers: !args.includes('--no-peers'), wan: !args.includes('--no-wan'), log: (l) => console.error(l),
  });
  const f = (x: number | undefined, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d)).padStart(9);
  console.log(`Writing into the mount (MB/s when the command returns; dd 4k in writes/s); cp of ${r.fileMiB} MiB, dd from /dev/zero, 16 writers of 64 MiB`);
  console.log('                                        cp   dd 4k w/s   dd 32k  dd 128k    dd 1M  16 writers');
  for (const x of r.runs) console.log(`  ${x.name.padEnd(34)}${f(x.cpMBps)}  ${f(x.dd4kWritesPerSec)}  ${f(x.dd32kMBps)}${f(x.dd128kMBps)}${f(x.dd1mMBps)}  ${f(x.parallel16MBps)}`);
  const [lucid] = r.runs;
  const rclone = r.runs.find((x) => x.name.startsWith('rclone'));
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(`  agent peak RSS while ingesting: ${r.agentPeakRssMiB ?? 'n/a'} MiB (target ≤ 256: ${met((r.agentPeakRssMiB ?? Infinity) <= 256)})`);
  console.log(`Targets: cp ≥ 300 MB/s ${met(lucid.cpMBps >= 300)}${rclone ? `, ≥ rclone (${(lucid.cpMBps / rclone.cpMBps).toFixed(2)}x) ${met(lucid.cpMBps >= rclone.cpMBps)}` : ''}; ` +
    `dd 4k ≥ rclone's writes/s${rclone ? ` (${(lucid.dd4kWritesPerSec / rclone.dd4kWritesPerSec).toFixed(2)}x) ${met(lucid.dd4kWritesPerSec >= rclone.dd4kWritesPerSec)}` : ' n/a'}; dd 128k ≥ 250 MB/s ${met(lucid.dd128kMBps >= 250)}`);
  if (r.wan) {
    const w = r.wan;
    console.log(`Upload over an emulated link (RTT ${r.rttMs} ms): ${r.fileMiB} MiB from the start of cp until nothing remains`);
    console.log(`  lucid ${f(w.lucidUploadMBps)} MB/s   raw PUT ceiling ${f(w.putCeilingMBps)} MB/s (${(100 * w.lucidUploadMBps / w.putCeilingMBps).toFixed(0)}%)   rclone copyto ${f(w.rcloneCopytoMBps)} MB/s`);
    console.log(`  targets: ≥ 90% of the ceiling ${met(w.lucidUploadMBps >= 0.9 * w.putCeilingMBps)}; ≥ 1.5 x rclone copyto ${w.rcloneCopytoMBps ? `(${(w.lucidUploadMBps / w.rcloneCopytoMBps).toFixed(2)}x) ${met(w.lucidUploadMBps >= 1.5 * w.rcloneCopytoMBps)}` : 'n/a'}`);
  }
  console.log(`results: ${save(r)}`);
} else if (name === 'warm') {
  const t = args.indexOf('--threads');
  const variants = t >= 0 ? args[t + 1].split(',') : ['0', '1'];
  const r = await benchWarm({ fileMiB: num('--size', 512), rounds: num('--rounds', 3), variants, log: (l) => console.error(l) });
  console.log(`Warm sequential reads of ${r.fileMiB} MiB from the agent's disk cache (a fresh mount each time), ${r.rounds['no-op'].length} rounds`);
  console.log('                MB/s, median   of the no-op ceiling in the same round, median   rounds (MB/s)');
  for (const [k, v] of Object.entries(r.medians)) {
    console.log(`  ${k.padEnd(12)} ${v.toFixed(0).padStart(9)}      ${(100 * r.ratios[k]).toFixed(0).padStart(10)}%                                    ${r.rounds[k].map((x) => x.toFixed(0)).join(', ')}`);
  }
  console.log(`  target ≥ 90% of the no-op ceiling: ${Object.entries(r.ratios).filter(([k]) => k !== 'no-op').map(([k, x]) => `${k} ${x >= 0.9 ? 'met' : 'MISSED'}`).join(', ')}`);
  console.log(`results: ${save(r)}`);
} else if (name === 'load') {
  const r = await runLoad({ clients: num('--clients', 16), seconds: num('--seconds', 300), log: (l) => console.error(l) });
  console.log(`Load: ${r.clients} client processes, ${r.seconds} s, one lucid serve (SQLite)`);
  console.log(`  operations            ${r.ops} (${r.opsPerSecond.toFixed(0)}/s)`);
  console.log(`  metadata operations   ${r.metadataOps} (${r.metadataOpsPerSecond.toFixed(0)}/s), median ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`);
  console.log(`  errors                ${r.errors.length}${r.errors.length ? `: ${r.errors.slice(0, 5).join('; ')}` : ''}`);
  console.log(`  lost writes           ${r.lostWrites.length} of ${r.filesChecked} files checked${r.lostWrites.length ? `: ${r.lostWrites.slice(0, 5).join('; ')}` : ''}`);
  console.log(`  service RSS           ${r.serviceRssMiB.first.toFixed(0)} MiB at start, peak ${r.serviceRssMiB.peak.toFixed(0)}, ${r.serviceRssMiB.last.toFixed(0)} at the end`);
  console.log(`results: ${save(r)}`);
} else if (name === 'meta') {
  const r = await benchMeta({
    engines: list('--engines', 'sqlite,postgres,postgres-2') as MetaEngineSetup[], clients: list('--clients', '1,8,64').map(Number),
    items: num('--items', 1000), list: num('--list', 100_000), populate: num('--populate', 0),
    rttMs: num('--rtt', 50), bytesPerSecond: num('--mbps', 1000) * 1e6 / 8 * 0.976, log: (l) => console.error(l),
  });
  const f = (x: number | undefined, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(d)).padStart(8);
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  if (r.mdtest.length) {
    console.log('Metadata operations per second (p50 / p99 ms), one call each unless batched; every client at once');
    console.log('  engine       clients   create      stat    lookup   listed/s   rename    remove   batched create   service RSS MiB, CPU s');
    for (const m of r.mdtest) {
      const p = m.phases;
      const c = (k: keyof typeof p) => f(p[k]?.opsPerSec);
      console.log(`  ${m.engine.padEnd(12)} ${String(m.clients).padStart(5)}  ${c('create')}  ${c('stat')}  ${c('lookup')}  ${c('list')} ${c('rename')}  ${c('remove')}  ${c('batch-create')}         ${f(m.serviceRssMiB)}, ${m.serviceCpuSec.toFixed(1)}`);
      console.log(`  ${'p50/p99 ms'.padEnd(18)}${(['create', 'stat', 'lookup', 'list', 'rename', 'remove', 'batch-create'] as const).map((k) => ` ${(p[k]?.p50Ms ?? NaN).toFixed(1)}/${(p[k]?.p99Ms ?? NaN).toFixed(1)}`.padStart(14)).join('')}`);
      if (m.errors.length) console.log(`    errors: ${m.errors.length}: ${m.errors.slice(0, 3).join('; ')}`);
    }
    const sqlite1 = r.mdtest.filter((m) => m.engine === 'sqlite');
    const best = (k: 'batch-create' | 'stat') => Math.max(0, ...sqlite1.map((m) => m.phases[k]?.opsPerSec ?? 0));
    // Latency of single operations (a listing page or a batch of 100 is not one).
    const p99 = r.mdtest.filter((m) => m.clients >= 64).map((m) => Math.max(...(['create', 'stat', 'lookup', 'rename', 'remove'] as const).map((k) => m.phases[k]?.p99Ms ?? 0)));
    console.log(`Targets: SQLite ≥ 10 000 batched creates/s ${met(best('batch-create') >= 10_000)}, ≥ 20 000 stats/s ${met(best('stat') >= 20_000)}` +
      `${p99.length ? `; 64 clients p99 ≤ 50 ms ${met(p99.every((x) => x <= 50))} (${p99.map((x) => x.toFixed(0)).join(', ')} ms)` : ''}`);
  }
  if (r.listing) {
    const l = r.listing;
    console.log(`Listing ${l.entries} entries, service ${l.rttMs} ms away:`);
    console.log(`  cold:           ls -f first name ${l.firstNameSec.toFixed(2)} s, last ${l.coldListSec.toFixed(2)} s; ls -l ${l.coldLsSec.toFixed(2)} s (target ≤ 3 s ${met(l.coldLsSec <= 3)})`);
    console.log(`  after remount:  ls -f ${l.remountListSec.toFixed(2)} s; ls -l ${l.remountLsSec.toFixed(2)} s (target ≤ 1 s ${met(l.remountLsSec <= 1)})`);
  }
  for (const p of r.populate) {
    console.log(`Populated (${p.engine}): ${p.files} files in ${p.folders} folders in ${p.populateSec.toFixed(0)} s (${(p.files / p.populateSec).toFixed(0)} files/s)`);
    for (const s of p.steps) console.log(`  ${s.step.padEnd(26)} ${s.sec.toFixed(2).padStart(9)} s   agent RSS ${f(s.agentRssMiB)} MiB   service RSS ${f(s.serviceRssMiB)} MiB   ${s.note ?? ''}`);
  }
  console.log(`results: ${save(r)}`);
} else {
  console.error(`unknown benchmark "${name}": available: aead, stream, warm, load, smallfiles, write, meta`);
  process.exit(2);
}
