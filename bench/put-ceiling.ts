/**
 * The link's ceiling for a client that uploads: `totalMiB` of PUTs of `objectMiB` objects,
 * `parallel` in flight, with the S3 backend Lucid itself uses, in a process of its own (as the
 * agent is). The write benchmark's WAN upload is measured against it.
 *
 * Run as a child: `node dist/bench/put-ceiling.js ENDPOINT BUCKET PREFIX TOTAL_MIB OBJECT_MIB PARALLEL`;
 * prints one JSON line `{ "mbps": N }`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { S3Store } from '../src/store/s3.js';

/** Starts the probe in its own process and returns its MB/s. */
export async function putCeiling(endpoint: string, bucket: string, prefix: string, totalMiB: number, objectMiB: number, parallel: number): Promise<number> {
  const args = [endpoint, bucket, prefix, String(totalMiB), String(objectMiB), String(parallel)];
  const child = spawn(process.execPath, ['--no-deprecation', fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the PUT ceiling probe exited with code ${code}`);
  return (JSON.parse(out) as { mbps: number }).mbps;
}

async function probe(endpoint: string, bucket: string, prefix: string, totalMiB: number, objectMiB: number, parallel: number): Promise<void> {
  const store = new S3Store({ bucket, prefix, endpoint });
  try {
    const body = randomBytes(objectMiB * 1024 * 1024);
    await store.put('warm', body.subarray(0, 1)); // the connection is open before timing
    const count = Math.ceil(totalMiB / objectMiB);
    let next = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (next < count) await store.put(String(next++), body);
    }));
    process.stdout.write(`${JSON.stringify({ mbps: (count * body.length) / 1e6 / ((performance.now() - start) / 1000) })}\n`);
  } finally {
    await store.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [endpoint, bucket, prefix, total, object, parallel] = process.argv.slice(2);
  await probe(endpoint, bucket, prefix, Number(total), Number(object), Number(parallel));
}
