/**
 * For VFS tests with several mounts: one descriptor, one in-memory store and one SQLite
 * engine in a temporary directory, shared by every VFS made on it (as machines share a
 * filespace), all removed when the test ends; `mountVfs` makes one such mount, `writeFile`
 * and `readPath` write and read a file through one,
 * `committedFile` a file of random bytes committed by a mount of its own, `watchingCalls`
 * and `countingCalls` an engine whose calls are seen or counted, and `Switch` one that can
 * be made unreachable.
 */
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MemoryStore } from '../../src/store/memory.js';
import { Filespace } from '../../src/fs/filespace.js';
import { BlockCache } from '../../src/cache/block-cache.js';
import type { CleanFileIo } from '../../src/cache/clean-files.js';
import type { Vfs } from '../../src/fs/vfs.js';
import { buildMount, type MountOptions } from '../../src/fs/mount.js';
import type { MetaEngine } from '../../src/meta/types.js';
import type { ObjectStore } from '../../src/store/types.js';
import { createDescriptor, type UnlockedFilespace } from '../../src/crypto/descriptor.js';
import { SqliteDriver } from '../../src/meta/sql/sqlite.js';
import { SqlMetaEngine } from '../../src/meta/sql/engine.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { BlockCodec } from '../../src/block/format.js';
import { tempDir } from './servers.js';

export interface SharedFilespace {
  dir: string;
  u: UnlockedFilespace;
  store: ObjectStore;
  engine: SqlMetaEngine;
}

export async function sharedFilespace(t: Test, blockSize = 65536): Promise<SharedFilespace> {
  const tmp = tempDir();
  t.teardown(() => tmp.remove());
  const u = await createDescriptor({ password: 'pw', blockSize, kdf: 'interactive' });
  const store = new MemoryStore();
  const engine = await SqlMetaEngine.open(await SqliteDriver.open(path.join(tmp.dir, 'm.sqlite')), { filespaceId: u.descriptor.filespaceId, blockSize });
  t.teardown(() => engine.close());
  return { dir: tmp.dir, u, store, engine };
}

/**
 * A VFS over the shared filespace with its own cache directory `name` (a "mount"), talking
 * to `meta` and `store` (the shared ones unless given), its clean cache files read and
 * written by `files` (on the event loop unless given); closed when the test ends.
 */
export async function mountVfs(t: Test, shared: SharedFilespace, name: string, options: MountOptions & { meta?: MetaEngine; store?: ObjectStore; idleMs?: number; files?: CleanFileIo } = {}): Promise<Vfs> {
  const { meta, store, idleMs, files, ...vfsOptions } = options;
  const fs = new Filespace(shared.u, store ?? shared.store, meta ?? shared.engine);
  const cache = await BlockCache.open({ dir: path.join(shared.dir, name), filespaceId: shared.u.descriptor.filespaceId, cacheKey: shared.u.keys.cache, limitBytes: 1 << 30, sealer: fs.codec, files, blockSize: fs.blockSize });
  const vfs = buildMount(fs, cache, { ...vfsOptions, upload: { idleMs: idleMs ?? 50, ...vfsOptions.upload } });
  t.teardown(async () => { vfs.uploader.close(); vfs.journal.close(); await cache.close(); });
  return vfs;
}

/** The block codec of the shared filespace (what its mounts seal and open blocks with). */
export function codecOf(shared: SharedFilespace): BlockCodec {
  return new BlockCodec(shared.u.keys, shared.u.descriptor.dataKeyId);
}

/** A file of `bytes` random bytes in the root, written and committed by a mount of its own ("writer"). */
export async function committedFile(t: Test, shared: SharedFilespace, name: string, bytes: number): Promise<{ ino: number; data: Buffer; block: (i: number) => Buffer }> {
  const writer = await mountVfs(t, shared, 'writer', { idleMs: 0 });
  const data = randomBytes(bytes);
  const { fh, attr } = await writer.create(1, name, 0o644, 2 /* O_RDWR */, { uid: 0, gid: 0 });
  await writer.write(fh, 0, data);
  await writer.fsync(fh);
  await writer.release(fh);
  const bs = shared.u.descriptor.blockSize;
  return { ino: attr.ino, data, block: (i) => data.subarray(i * bs, (i + 1) * bs) };
}

/** `engine` as a mount sees it; each call of a method named in `watched` is told to `onCall` before it is made. */
export function watchingCalls(engine: MetaEngine, watched: string[], onCall: (method: string, args: unknown[]) => void): MetaEngine {
  return new Proxy(engine, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (!watched.includes(String(prop))) return (v as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]) => { onCall(String(prop), args); return (v as (...a: unknown[]) => unknown).apply(target, args); };
    },
  }) as MetaEngine;
}

/** `engine` as a mount sees it, counting the calls of the methods named in `counted`. */
export function countingCalls(engine: MetaEngine, counted: string[]): { meta: MetaEngine; calls(): number } {
  let n = 0;
  return { meta: watchingCalls(engine, counted, () => { n++; }), calls: () => n };
}

/** The engine behind a switch: while `down`, every call fails as an unreachable service would. */
export class Switch {
  down = false;
  /** Calls of these methods are carried out, then their replies lost (once each). */
  readonly loseReply = new Set<string>();
  readonly meta: MetaEngine;
  constructor(engine: MetaEngine) {
    this.meta = new Proxy(engine, {
      get: (target, prop, recv) => {
        const v = Reflect.get(target, prop, recv) as unknown;
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          if (this.down) throw new ServiceUnavailableError('metadata service http://127.0.0.1:1: connection refused');
          const result = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (this.loseReply.delete(String(prop))) throw new ServiceUnavailableError('metadata service: connection reset');
          return result;
        };
      },
    });
  }
}

/** Makes `name` in `parent` through a mount, writes `data`, starts its upload and closes it; its inode number. */
export async function writeFile(vfs: Vfs, parent: number, name: string, data: Buffer): Promise<number> {
  const { attr, fh } = await vfs.create(parent, name, 0o644, 2 /* O_RDWR */, { uid: 0, gid: 0 });
  await vfs.write(fh, 0, data);
  vfs.flush(fh);
  await vfs.release(fh);
  return attr.ino;
}

/** A file's bytes as a mount reads them, by path. */
export async function readPath(vfs: Vfs, p: string): Promise<Buffer> {
  const a = await vfs.resolve(p);
  return vfs.readInode(a.ino, 0, a.size);
}
