/**
 * `lucid snapshot diff` reads only what the commits between two snapshots touched. Checked
 * against the whole-tree comparison it replaced (walk both trees, compare by path), on
 * random changes between two snapshots: files written, rewritten and removed, folders made,
 * moved (with what is in them) and removed, renames over existing names, chmod of files and
 * folders, hard links, symlinks; against a later snapshot and against the live tree; and it
 * asks for no listing of a folder nothing changed in.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { FilespaceAdmin, type DiffLine } from '../../src/cli/admin.js';
import { Filespace } from '../../src/fs/filespace.js';
import { AsOfMeta } from '../../src/meta/as-of.js';
import { S_IFDIR, S_IFREG, isDir, type Attr, type MetaEngine } from '../../src/meta/types.js';
import { MemoryStore } from '../../src/store/memory.js';
import { makeFilespace } from '../helpers/filespace.js';
import { seededRandom } from '../helpers/random.js';
import { tempDir } from '../helpers/servers.js';
import { watchingCalls } from '../helpers/shared.js';

/** The comparison the diff used to make: both trees walked whole, compared by path. */
async function wholeTreeDiff(fs: Filespace, from: number, to: number | undefined): Promise<DiffLine[]> {
  const tree = async (meta: MetaEngine) => {
    const view = new Filespace(fs.unlocked, fs.store, meta);
    const out = new Map<string, Attr>();
    const walk = async (p: string): Promise<void> => {
      for (const e of await view.readdir(p)) {
        const child = p ? `${p}/${e.name}` : e.name;
        out.set(child, e.attr);
        if (isDir(e.attr.mode)) await walk(child);
      }
    };
    await walk('');
    return out;
  };
  const a = await tree(new AsOfMeta(fs.meta, from));
  const b = await tree(to === undefined ? fs.meta : new AsOfMeta(fs.meta, to));
  const changes: DiffLine[] = [];
  for (const [p, x] of a) {
    const y = b.get(p);
    if (!y) changes.push({ change: '-', path: p });
    else if (y.ino !== x.ino || y.mode !== x.mode || (!isDir(x.mode) && (y.size !== x.size || y.mtimeMs !== x.mtimeMs || y.ctimeMs !== x.ctimeMs))) changes.push({ change: 'M', path: p });
  }
  for (const p of b.keys()) if (!a.has(p)) changes.push({ change: '+', path: p });
  return changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  t.test(`random changes between snapshots (seed ${seed}): the same lines as the whole-tree comparison`, async (t) => {
    const tmp = tempDir();
    t.teardown(() => tmp.remove());
    const fx = await makeFilespace(new MemoryStore(), path.join(tmp.dir, 'm.sqlite'));
    t.teardown(() => fx.close());
    const fs = fx.fs;
    const rand = seededRandom(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const dirs = [''];
    const files: string[] = [];
    const join = (d: string, n: string) => (d ? `${d}/${n}` : n);
    let n = 0;
    // A starting tree, untouched parts included.
    for (let i = 0; i < 6; i++) { const d = join(pick(dirs), `d${n++}`); await fs.mkdir(d); dirs.push(d); }
    for (let i = 0; i < 25; i++) { const f = join(pick(dirs), `f${n++}`); await fs.writeFile(f, randomBytes(10)); files.push(f); }
    const snapA = (await fs.meta.createSnapshot('a')).id;

    const step = async () => {
      const r = rand();
      try {
        if (r < 0.2) { const f = join(pick(dirs), `f${n++}`); await fs.writeFile(f, randomBytes(5)); files.push(f); }
        else if (r < 0.35 && files.length) await fs.writeFile(pick(files), randomBytes(1 + Math.floor(rand() * 30)));
        else if (r < 0.45 && files.length) { const f = pick(files); await fs.unlink(f); files.splice(files.indexOf(f), 1); }
        else if (r < 0.55) { const d = join(pick(dirs), `d${n++}`); await fs.mkdir(d); dirs.push(d); }
        else if (r < 0.65 && dirs.length > 1) {
          // A folder moved, with everything in it (not into itself).
          const d = pick(dirs.slice(1));
          const to = pick(dirs.filter((x) => x !== d && !x.startsWith(`${d}/`)));
          const dest = join(to, `m${n++}`);
          await fs.rename(d, dest);
          const moved = (p: string) => (p === d || p.startsWith(`${d}/`) ? dest + p.slice(d.length) : p);
          dirs.splice(0, dirs.length, ...dirs.map(moved));
          files.splice(0, files.length, ...files.map(moved));
        } else if (r < 0.72 && files.length > 1) {
          const [a, b] = [pick(files), pick(files)];
          if (a !== b) { await fs.rename(a, b); files.splice(files.indexOf(a), 1); }
        } else if (r < 0.8 && files.length) {
          const f = await fs.resolve(pick(files));
          await fs.meta.setAttr(f.ino, { mode: S_IFREG | (rand() < 0.5 ? 0o600 : 0o640) });
        } else if (r < 0.85 && dirs.length > 1) {
          const d = await fs.resolve(pick(dirs.slice(1)));
          await fs.meta.setAttr(d.ino, { mode: S_IFDIR | (rand() < 0.5 ? 0o700 : 0o750) });
        } else if (r < 0.9 && files.length) {
          const src = await fs.resolve(pick(files));
          const dir = await fs.resolve(pick(dirs));
          const name = `l${n++}`;
          await fs.meta.link(src.ino, dir.ino, fs.names.seal(dir.ino, name));
          files.push(join(await pathOf(fs, dir.ino), name));
        } else if (r < 0.94) { const s = join(pick(dirs), `s${n++}`); await fs.symlink(`target-${n}`, s); files.push(s); }
        else if (dirs.length > 1) {
          // An empty folder removed.
          const d = pick(dirs.slice(1));
          if ((await fs.readdir(d)).length === 0) {
            const slash = d.lastIndexOf('/');
            const parent = await fs.resolve(slash < 0 ? '' : d.slice(0, slash));
            await fs.meta.rmdir(parent.ino, fs.names.hash(parent.ino, d.slice(slash + 1)));
            dirs.splice(dirs.indexOf(d), 1);
          }
        }
      } catch {
        // A change the random walk made impossible (renaming over a folder…): skipped.
      }
    };
    for (let i = 0; i < 40; i++) await step();
    const snapB = (await fs.meta.createSnapshot('b')).id;
    for (let i = 0; i < 15; i++) await step();

    const admin = new FilespaceAdmin(fs);
    const csnOf = async (id: number) => (await fs.meta.listSnapshots()).find((s) => s.id === id)!.csn;
    const [a, b] = [await csnOf(snapA), await csnOf(snapB)];
    const ab = await admin.diff(snapA, snapB);
    t.same(ab, await wholeTreeDiff(fs, a, b), `snapshot to snapshot (${ab.length} lines)`);
    t.ok(ab.length > 0, 'something changed');
    t.same(await admin.diff(snapA), await wholeTreeDiff(fs, a, undefined), 'snapshot to the live tree');
    t.same(await admin.diff(snapB, snapA), await wholeTreeDiff(fs, b, a), 'newer to older');
  });
}

/** The path of folder `ino` (live). */
async function pathOf(fs: Filespace, ino: number): Promise<string> {
  const parts: string[] = [];
  for (let cur = ino; cur !== 1;) {
    const [n] = await fs.meta.namesOf(cur);
    parts.unshift(fs.names.open(n.parent, n.hash, n.enc));
    cur = n.parent;
  }
  return parts.join('/');
}

t.test('a folder nothing changed in is not listed', async (t) => {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const fx = await makeFilespace(new MemoryStore(), path.join(tmp.dir, 'm.sqlite'));
  t.teardown(() => fx.close());
  for (let d = 0; d < 20; d++) {
    await fx.fs.mkdir(`quiet${d}`);
    for (let f = 0; f < 5; f++) await fx.fs.writeFile(`quiet${d}/f${f}`, randomBytes(8));
  }
  await fx.fs.mkdir('busy');
  const snap = (await fx.fs.meta.createSnapshot('s')).id;
  await fx.fs.writeFile('busy/new', randomBytes(8));
  await fx.fs.writeFile('quiet3/f2', randomBytes(9));
  let listings = 0;
  const meta = watchingCalls(fx.fs.meta, ['readdir'], () => { listings++; });
  const admin = new FilespaceAdmin(new Filespace(fx.fs.unlocked, fx.fs.store, meta));
  t.same(await admin.diff(snap), [{ change: '+', path: 'busy/new' }, { change: 'M', path: 'quiet3/f2' }]);
  t.ok(listings <= 2, `listed only the folder whose entries changed, at both commits (${listings} listings of 21 folders)`);
});
