/**
 * The link's ceiling for a client that fetches block-sized objects: `gets` GETs over `objects`
 * objects (`PREFIX0` … `PREFIX{objects-1}`, round and round), `parallel` in flight, with the
 * S3 backend Lucid itself uses, in a process of its own (as the agent is). Enough GETs that
 * the first round trip and the last few fetches, when fewer are in flight, weigh little: a
 * sequential read of 512 MiB is as long. Lucid's blocks are such objects, so its
 * cold sequential read can come close to this figure but not pass it; a single large GET (the
 * stream benchmark's raw figure) pays the per-request cost once instead of once per MiB.
 *
 * Run as a child: `node dist/bench/get-ceiling.js ENDPOINT BUCKET PREFIX OBJECTS GETS PARALLEL`;
 * prints one JSON line `{ "mbps": N }`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { S3Store } from '../src/store/s3.js';

/** Starts the probe in its own process and returns its MB/s. */
export async function blockGetCeiling(endpoint: string, bucket: string, prefix: string, objects: number, gets: number, parallel: number): Promise<number> {
  const args = [endpoint, bucket, prefix, String(objects), String(gets), String(parallel)];
  const child = spawn(process.execPath, ['--no-deprecation', fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the GET ceiling probe exited with code ${code}`);
  return (JSON.parse(out) as { mbps: number }).mbps;
}

async function probe(endpoint: string, bucket: string, prefix: string, objects: number, gets: number, parallel: number): Promise<void> {
  const store = new S3Store({ bucket, prefix, endpoint });
  try {
    await store.get('0', { offset: 0, length: 1 }); // the connection is open before timing
    let next = 0;
    let bytes = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (next < gets) {
        const body = await store.get(String(next++ % objects));
        bytes += body.length; // not `bytes += await …`: that reads `bytes` before the wait
      }
    }));
    process.stdout.write(`${JSON.stringify({ mbps: bytes / 1e6 / ((performance.now() - start) / 1000) })}\n`);
  } finally {
    await store.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [endpoint, bucket, prefix, objects, gets, parallel] = process.argv.slice(2);
  await probe(endpoint, bucket, prefix, Number(objects), Number(gets), Number(parallel));
}
