/**
 * The shape of the code, checked on every run so it cannot quietly decay (DESIGN.md, "Where
 * the code lives"): every import points down the layers, type imports included, and no
 * file imports itself back through others (madge's import graph of src/), and the files under
 * src/fs stay small (the facade at most 400 lines, the rest at most 500).
 */
import t from 'tap';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Each folder under src/, and the folders under src/ it must never import. */
const NEVER: Record<string, string[]> = {
  block: ['fs', 'cli', 'upload', 'cache', 'meta', 'locks', 'prefetch', 'gc'],
  upload: ['fs', 'cli', 'gc'],
  cache: ['fs', 'cli', 'upload', 'gc'],
  prefetch: ['fs', 'cli', 'upload', 'cache', 'meta', 'locks', 'store', 'gc'],
  meta: ['fs', 'cli', 'upload', 'cache', 'block', 'prefetch', 'gc'],
  locks: ['fs', 'cli', 'meta', 'upload', 'cache', 'block', 'prefetch', 'gc'],
  crypto: ['fs', 'cli', 'store', 'meta', 'locks', 'upload', 'cache', 'block', 'prefetch', 'gc'],
  store: ['fs', 'cli', 'meta', 'locks', 'crypto', 'upload', 'cache', 'block', 'prefetch', 'gc'],
  util: ['fs', 'cli', 'meta', 'locks', 'crypto', 'store', 'upload', 'cache', 'block', 'prefetch', 'gc'],
  gc: ['fs', 'cli'],
  fs: ['cli'],
};

/** Inside src/fs: the data side never reaches into the namespace side, and neither into the facade or the FUSE adapter. */
const FS_NEVER: Record<string, string[]> = {
  'fs/data': ['fs/namespace', 'fs/vfs.ts', 'fs/mount.ts', 'fs/fuse'],
  'fs/namespace': ['fs/vfs.ts', 'fs/mount.ts', 'fs/fuse'],
};

const graph = await madge(path.join(root, 'src'), { fileExtensions: ['ts'], tsConfig: path.join(root, 'tsconfig.json') });
const imports = graph.obj();

t.ok(Object.keys(imports).length > 50, `madge read the source tree (${Object.keys(imports).length} files)`);

t.test('every import points down the layers', async (t) => {
  const wrong: string[] = [];
  for (const [file, deps] of Object.entries(imports)) {
    const folder = file.split('/')[0];
    for (const dep of deps) {
      const target = dep.split('/')[0];
      if (NEVER[folder]?.includes(target)) wrong.push(`${file} imports ${dep}`);
      for (const [inner, banned] of Object.entries(FS_NEVER)) {
        if (file.startsWith(`${inner}/`) && banned.some((b) => dep === b || dep.startsWith(`${b}/`))) wrong.push(`${file} imports ${dep}`);
      }
    }
  }
  t.same(wrong, [], 'no import points up');
});

t.test('there is no import cycle', async (t) => {
  t.same(graph.circular(), [], 'madge finds no cycle');
});

t.test('the facade stays thin and every room under src/fs small: vfs.ts at most 400 lines, any other file at most 500', async (t) => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const over: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) { walk(p); continue; }
      if (!e.name.endsWith('.ts')) continue;
      const lines = readFileSync(p, 'utf8').split('\n').length - 1;
      const limit = e.name === 'vfs.ts' && dir.endsWith(path.join('src', 'fs')) ? 400 : 500;
      if (lines > limit) over.push(`${path.relative(root, p)}: ${lines} lines (at most ${limit})`);
    }
  };
  walk(path.join(root, 'src', 'fs'));
  t.same(over, [], 'no file over its bound');
});
