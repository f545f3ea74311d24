/**
 * One client process of the metadata benchmark (bench/meta.ts), mdtest-like: in a folder of
 * its own it creates `items` files one call each, stats them, looks them up by name, lists
 * the folder, renames each, removes each, then creates `items` more in batches of 100. Each
 * phase starts when the parent writes `go PHASE` on stdin (every client at once) and ends
 * with one JSON line on stdout: the phase, its operations, when it started and ended, and
 * each operation's latency in ms.
 *
 * Usage: node dist/bench/meta-client.js STORE_DIR SERVICE_URL PASSWORD CLIENT_NUMBER ITEMS TOP_INO
 */
import { createInterface } from 'node:readline';
import { unlockDescriptor } from '../src/crypto/descriptor.js';
import { loadDescriptor } from '../src/fs/descriptor-store.js';
import { NameCipher } from '../src/crypto/names.js';
import { MetaClient } from '../src/meta/client.js';
import { S_IFDIR, S_IFREG, type BatchOp } from '../src/meta/types.js';
import { FileStore } from '../src/store/file.js';
import type { MetaPhase, PhaseReport } from './meta.js';

const [storeDir, serviceUrl, password, clientArg, itemsArg, topArg] = process.argv.slice(2);
const me = Number(clientArg);
const items = Number(itemsArg);
const top = Number(topArg);

const store = new FileStore(storeDir);
const unlocked = await unlockDescriptor(await loadDescriptor(store), password);
const meta = new MetaClient(serviceUrl, unlocked.keys.serviceToken.toString('hex'), { timeoutMs: 120_000 });
const names = new NameCipher(unlocked.keys);
const dir = (await meta.create(top, names.seal(top, `c${me}`), { mode: S_IFDIR | 0o755, uid: 0, gid: 0 })).ino;
const node = { mode: S_IFREG | 0o644, uid: 0, gid: 0 };
const inos: number[] = [];

/** Runs `op` for each i < n, one at a time, timing each. */
async function each(n: number, op: (i: number) => Promise<unknown>, latencies: number[]): Promise<number> {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op(i);
    latencies.push(performance.now() - t);
  }
  return n;
}

const phases: Record<MetaPhase, (lat: number[]) => Promise<number>> = {
  create: (lat) => each(items, async (i) => { inos[i] = (await meta.create(dir, names.seal(dir, `f${i}`), node)).ino; }, lat),
  stat: (lat) => each(items, (i) => meta.getAttr(inos[i]), lat),
  lookup: (lat) => each(items, (i) => meta.lookup(dir, names.hash(dir, `f${i}`)), lat),
  async list(lat) {
    // Entries listed (with attributes), a page of 1 000 per call, the whole folder 5 times.
    let n = 0;
    for (let round = 0; round < 5; round++) {
      let cursor: string | undefined;
      do {
        const t = performance.now();
        const page = await meta.readdir(dir, { cursor, limit: 1000, plus: true });
        lat.push(performance.now() - t);
        n += page.entries.length;
        for (const e of page.entries) names.open(dir, e.hash, e.enc);
        cursor = page.cursor;
      } while (cursor);
    }
    return n;
  },
  rename: (lat) => each(items, (i) => meta.rename(dir, names.hash(dir, `f${i}`), dir, names.seal(dir, `r${i}`)), lat),
  remove: (lat) => each(items, (i) => meta.unlink(dir, names.hash(dir, `r${i}`)), lat),
  async 'batch-create'(lat) {
    for (let i = 0; i < items; i += 100) {
      const ops: BatchOp[] = [];
      for (let j = i; j < Math.min(items, i + 100); j++) ops.push({ op: 'create', parent: dir, name: names.seal(dir, `b${j}`), node });
      const t = performance.now();
      const r = await meta.applyBatch(ops);
      lat.push(performance.now() - t);
      if (r.failed) throw new Error(`batch refused at ${r.failed.index}: ${r.failed.code} ${r.failed.message}`);
    }
    return items;
  },
};

process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  const phase = line.replace(/^go /, '') as MetaPhase;
  if (line === 'quit') break;
  const latencies: number[] = [];
  const errors: string[] = [];
  const startMs = Date.now();
  let ops = 0;
  try {
    ops = await phases[phase](latencies);
  } catch (e) {
    errors.push(`${phase}: ${(e as Error).message}`);
  }
  const report: PhaseReport = { client: me, phase, ops, startMs, endMs: Date.now(), latencies, errors };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
await meta.close();
