/**
 * Populating a filespace's metadata fast, through the batch call: folders and empty-block
 * files (a size, no block refs: they read as zeros) created 1 000 operations to a request with
 * inode numbers reserved beforehand, so a folder and its contents travel in the same batch,
 * and several batches in flight. What `npm run bench -- meta --populate N` and the listing
 * figures build their trees with.
 *
 * The tree of `--populate N`: about a fifth of the files in folders of each size 10, 100,
 * 1 000, 10 000 and 100 000 entries (fewer large ones when N is small), the folders of one
 * size grouped 100 to a parent folder, under `/pop/s{SIZE}/g{GROUP}/d{FOLDER}/f{FILE}`.
 */
import type { NameCipher } from '../src/crypto/names.js';
import { S_IFDIR, S_IFREG, type BatchOp, type MetaEngine } from '../src/meta/types.js';

export interface PopulateProgress {
  folders: number;
  files: number;
  batches: number;
}

/** One folder to make: its name under `parent` (a path of the plan) and how many files go in it. */
export interface PlannedFolder {
  path: string;
  files: number;
}

/** The folders of `--populate N` (see the module comment), parents before children. */
export function planTree(total: number): PlannedFolder[] {
  const sizes = [10, 100, 1_000, 10_000, 100_000];
  const out: PlannedFolder[] = [{ path: 'pop', files: 0 }];
  let left = total;
  sizes.forEach((size) => {
    // A fifth each (none of a size larger than a fifth); what is left goes to `pop/rest`.
    const folders = Math.floor(total / 5 / size);
    if (folders === 0) return;
    out.push({ path: `pop/s${size}`, files: 0 });
    for (let f = 0; f < folders; f++) {
      if (f % 100 === 0) out.push({ path: `pop/s${size}/g${f / 100}`, files: 0 });
      out.push({ path: `pop/s${size}/g${Math.floor(f / 100)}/d${f}`, files: size });
      left -= size;
    }
  });
  if (left > 0) {
    out.push({ path: 'pop/rest', files: 0 });
    for (let f = 0; left > 0; f++) {
      const n = Math.min(10, left);
      out.push({ path: `pop/rest/d${f}`, files: n });
      left -= n;
    }
  }
  return out;
}

/**
 * Makes the planned folders under `top` (level by level: a level's batches in flight
 * together, each level after the one above has landed), then their files (every batch in
 * flight together, `inFlight` at a time), in batches of up to 1 000. File `i` of a folder is
 * `f{i}` (4 KiB, no blocks). Returns the inode of each folder by path.
 */
export async function populate(meta: MetaEngine, names: NameCipher, top: number, plan: PlannedFolder[],
  options: { inFlight?: number; uid?: number; gid?: number; onProgress?: (p: PopulateProgress) => void } = {}): Promise<Map<string, number>> {
  const uid = options.uid ?? 0;
  const gid = options.gid ?? 0;
  const now = Date.now();
  const inos = new Map<string, number>([['', top]]);
  const progress: PopulateProgress = { folders: 0, files: 0, batches: 0 };
  let reserved = { first: 0, count: 0 };
  let used = 0;
  const nextIno = async () => {
    if (used === reserved.count) {
      reserved = await meta.reserveInodes(1000);
      used = 0;
    }
    return reserved.first + used++;
  };
  /** Sends `ops` in batches, `inFlight` at a time, and resolves once all have landed. */
  const sendAll = async (ops: AsyncIterable<BatchOp>) => {
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let batch: BatchOp[] = [];
    const send = async () => {
      const b = batch;
      batch = [];
      const p: Promise<void> = meta.applyBatch(b).then((r) => {
        if (r.failed) throw new Error(`populate: operation ${r.failed.index} of a batch was refused: ${r.failed.code} ${r.failed.message}`);
        progress.batches++;
        options.onProgress?.(progress);
      }).catch((e) => { failure ??= e; }).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= (options.inFlight ?? 4)) await Promise.race(inFlight);
    };
    for await (const op of ops) {
      if (failure) break;
      batch.push(op);
      if (batch.length === 1000) await send();
    }
    if (batch.length > 0 && !failure) await send();
    await Promise.all(inFlight);
    if (failure) throw failure;
  };
  const depth = (p: string) => p.split('/').length;
  const levels = [...new Set(plan.map((f) => depth(f.path)))].sort((a, b) => a - b);
  for (const level of levels) {
    await sendAll((async function* () {
      for (const folder of plan) {
        if (depth(folder.path) !== level) continue;
        const slash = folder.path.lastIndexOf('/');
        const parent = inos.get(folder.path.slice(0, Math.max(0, slash)))!;
        const ino = await nextIno();
        inos.set(folder.path, ino);
        progress.folders++;
        yield { op: 'create', parent, name: names.seal(parent, folder.path.slice(slash + 1)), node: { mode: S_IFDIR | 0o755, uid, gid, ino, timeMs: now } } as BatchOp;
      }
    })());
  }
  await sendAll((async function* () {
    for (const folder of plan) {
      const dir = inos.get(folder.path)!;
      for (let i = 0; i < folder.files; i++) {
        progress.files++;
        yield { op: 'create', parent: dir, name: names.seal(dir, `f${i}`), node: { mode: S_IFREG | 0o644, uid, gid, ino: await nextIno(), size: 4096, timeMs: now } } as BatchOp;
      }
    }
  })());
  return inos;
}
