/**
 * Benchmark runner: `npm run bench -- NAME [--seconds N]`. Prints a table and writes JSON
 * under bench/results/. Benchmarks: aead.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchAead } from './aead.js';
import { benchStream } from './stream.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const name = args.find((a) => !a.startsWith('--')) ?? 'aead';
const secondsArg = args.indexOf('--seconds');
const seconds = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 2;

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
  const num = (flag: string, dflt: number) => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : dflt; };
  const r = await benchStream({
    rttMs: num('--rtt', 50), bytesPerSecond: num('--mbps', 1000) * 1e6 / 8 * 0.976, fileMiB: num('--size', 512), randomReads: num('--random', 40),
    log: (l) => console.error(l),
  });
  const f = (x: number, d = 1) => x.toFixed(d).padStart(9);
  console.log(`Streaming over an emulated link: RTT ${r.rttMs} ms, ${r.linkMBps.toFixed(0)} MB/s usable`);
  console.log(`  one raw 64 MiB GET through the link   ${f(r.rawGetMBps)} MB/s`);
  console.log(`  time to first MiB (cold)              ${f(r.firstMiBms, 0)} ms`);
  console.log(`  cold sequential read                  ${f(r.coldSeqMBps)} MB/s  (${(100 * r.coldSeqMBps / r.linkMBps).toFixed(0)}% of the link)`);
  console.log(`  cold random 1 MiB read, median / p90  ${f(r.randomMedianMs, 0)} / ${r.randomP90Ms.toFixed(0)} ms`);
  console.log(`  warm sequential read (disk cache)     ${f(r.warmSeqMBps)} MB/s`);
  console.log(`  agent peak RSS                        ${f(r.agentPeakRssMiB, 0)} MiB`);
  console.log(`results: ${save(r)}`);
} else {
  console.error(`unknown benchmark "${name}": available: aead, stream`);
  process.exit(2);
}
