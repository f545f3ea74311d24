/**
 * Benchmark runner: `npm run bench -- NAME [--seconds N]`. Prints a table and writes JSON
 * under bench/results/. Benchmarks: aead.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchAead } from './aead.js';

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
} else {
  console.error(`unknown benchmark "${name}": available: aead`);
  process.exit(2);
}
