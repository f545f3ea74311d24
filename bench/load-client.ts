/**
 * One client of the load test (bench/load.ts), a process of its own: unlocks the filespace,
 * talks to the service over HTTP, and for `seconds` runs a mixed workload in its own folder
 * (writes, overwrites, partial writes, reads checked against what it wrote, renames,
 * deletes, listings, stat, chmod) and in a folder shared by every client (creates and
 * deletes under contention). Prints one JSON line: its manifest (path → SHA-256 of what
 * the file must hold), operation counts, metadata latencies and every error.
 *
 * Usage: node dist/bench/load-client.js STORE_DIR SERVICE_URL PASSWORD CLIENT_NUMBER SECONDS SEED
 */
import { createHash, randomBytes } from 'node:crypto';
import { unlockDescriptor } from '../src/crypto/descriptor.js';
import { loadDescriptor } from '../src/fs/descriptor-store.js';
import { NoEntryError } from '../src/errors.js';
import { Filespace } from '../src/fs/filespace.js';
import { MetaClient } from '../src/meta/client.js';
import { FileStore } from '../src/store/file.js';
import { seededRandom } from '../test/helpers/random.js';

const [storeDir, serviceUrl, password, clientArg, secondsArg, seedArg] = process.argv.slice(2);
const me = Number(clientArg);
const rand = seededRandom(Number(seedArg));
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
const bytes = (n: number) => randomBytes(n);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const store = new FileStore(storeDir);
const unlocked = await unlockDescriptor(await loadDescriptor(store), password);
const meta = new MetaClient(serviceUrl, unlocked.keys.serviceToken.toString('hex'), { timeoutMs: 30_000 });
const fs = new Filespace(unlocked, store, meta);

const home = `c${me}`;
const content = new Map<string, Buffer>();
const counts: Record<string, number> = {};
const latencies: number[] = [];
const errors: string[] = [];

/** Times a metadata operation (its latency goes into the p99). */
async function timed<T>(fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const v = await fn();
  latencies.push(performance.now() - t0);
  return v;
}

const ops: Record<string, () => Promise<void>> = {
  async write() {
    const p = `${home}/f${Math.floor(rand() * 40)}`;
    const data = bytes(Math.floor(rand() * 200_000));
    await fs.writeFile(p, data);
    content.set(p, data);
  },
  async patch() {
    if (content.size === 0) return;
    const p = pick([...content.keys()]);
    const old = content.get(p)!;
    const offset = Math.floor(rand() * (old.length + 1000));
    const data = bytes(1 + Math.floor(rand() * 70_000));
    await fs.write((await timed(() => fs.resolve(p))).ino, offset, data);
    const next = Buffer.alloc(Math.max(old.length, offset + data.length));
    old.copy(next);
    data.copy(next, offset);
    content.set(p, next);
  },
  async read() {
    if (content.size === 0) return;
    const p = pick([...content.keys()]);
    const got = await fs.readFile(p);
    if (!got.equals(content.get(p)!)) throw new Error(`${p} read back wrong (${got.length} bytes, expected ${content.get(p)!.length})`);
  },
  async rename() {
    if (content.size === 0) return;
    const from = pick([...content.keys()]);
    const to = `${home}/f${Math.floor(rand() * 40)}`;
    if (to === from) return;
    await timed(() => fs.rename(from, to));
    content.set(to, content.get(from)!);
    content.delete(from);
  },
  async unlink() {
    if (content.size === 0) return;
    const p = pick([...content.keys()]);
    await timed(() => fs.unlink(p));
    content.delete(p);
  },
  async list() {
    const names = (await timed(() => fs.readdir(home))).map((e) => `${home}/${e.name}`).sort();
    const want = [...content.keys()].sort();
    if (names.join() !== want.join()) throw new Error(`listing of ${home} is ${names.length} names, expected ${want.length}`);
  },
  async stat() {
    if (content.size === 0) return;
    const p = pick([...content.keys()]);
    const a = await timed(() => fs.resolve(p));
    if (a.size !== content.get(p)!.length) throw new Error(`${p} has size ${a.size}, expected ${content.get(p)!.length}`);
  },
  async chmod() {
    if (content.size === 0) return;
    const ino = (await timed(() => fs.resolve(pick([...content.keys()])))).ino;
    await timed(() => meta.setAttr(ino, { mode: pick([0o644, 0o600, 0o664]) }));
  },
  async shared() {
    // Contention: every client creates and removes names in one folder.
    const p = `shared/c${me}-${Math.floor(rand() * 20)}`;
    try {
      await timed(() => fs.writeFile(p, Buffer.from(p)));
      await timed(() => fs.unlink(p));
    } catch (e) {
      if (!(e instanceof NoEntryError)) throw e;
    }
  },
};
const weights: [string, number][] = [['write', 20], ['patch', 10], ['read', 25], ['rename', 8], ['unlink', 7], ['list', 10], ['stat', 10], ['chmod', 5], ['shared', 5]];
const total = weights.reduce((n, [, w]) => n + w, 0);

await fs.mkdir(home).catch(() => {});
const until = Date.now() + Number(secondsArg) * 1000;
// An operation pending for a minute is said on stderr once, with what the process waits on,
// so a client that hangs leaves a trace before the load test gives up on it.
let current: { name: string; since: number; said: boolean } | undefined;
setInterval(() => {
  if (!current || current.said || Date.now() - current.since < 60_000) return;
  current.said = true;
  process.stderr.write(`load client ${me}: ${current.name} pending for ${Math.round((Date.now() - current.since) / 1000)} s; waiting on ${process.getActiveResourcesInfo().join(', ')}\n`);
}, 5_000).unref();
while (Date.now() < until) {
  let r = rand() * total;
  const [name] = weights.find(([, w]) => (r -= w) < 0)!;
  current = { name, since: Date.now(), said: false };
  try {
    await ops[name]();
    counts[name] = (counts[name] ?? 0) + 1;
  } catch (e) {
    errors.push(`${name}: ${(e as Error).message}`);
  }
}
// The last word on every file: a listing that must match.
try {
  await ops.list();
} catch (e) {
  errors.push(`final list: ${(e as Error).message}`);
}
await meta.close();
process.stdout.write(`${JSON.stringify({ client: me, manifest: Object.fromEntries([...content].map(([p, b]) => [p, sha(b)])), counts, latencies, errors })}\n`);
