/**
 * `file:///abs/dir`: a local directory acts as a bucket. The embedded default store.
 *
 * Promises: a put is atomic and durable before it resolves (temp file in the target
 * directory, fsync, rename or link, fsync of the directory), so a reader sees the whole
 * object or none of it, even across a crash. Names starting with "." are never keys, so
 * temp files and the embedded metadata database (`.lucid/`) never appear in listings.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  AccessDeniedError, AlreadyExistsError, NoSpaceError, NoSuchBucketError, NotFoundError, TransientError,
} from '../errors.js';
import { bodyBuffer } from './body.js';
import { assertValidKey, compareKeys } from './keys.js';
import { DEFAULT_LIST_LIMIT, type ByteRange, type GetOptions, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

export class FileStore implements ObjectStore {
  readonly url: string;
  readonly local = true;
  /**
   * Folders this store made or found (a put into one needs no check of the root and no
   * mkdir: for small objects those two took as long as the write). A put that finds one gone
   * checks the root then (a removed store directory is NoSuchBucket, never made again).
   */
  private readonly dirsMade = new Set<string>();

  constructor(readonly root: string) {
    this.url = `file://${root}`;
  }

  async probe(): Promise<void> {
    let st;
    try {
      st = await fs.stat(this.root);
    } catch (e) {
      throw this.mapError(e, '');
    }
    if (!st.isDirectory()) throw new NoSuchBucketError(`store directory ${this.root} is not a directory: pick a directory for --store`);
    try {
      await fs.access(this.root, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
    } catch (e) {
      throw this.mapError(e, '');
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    const target = this.pathOf(key);
    const dir = path.dirname(target);
    const known = this.dirsMade.has(dir);
    if (!known) await this.ensureRoot();
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      if (!known) {
        await fs.mkdir(dir, { recursive: true });
        this.dirsMade.add(dir);
      }
      let fh;
      try {
        fh = await fs.open(tmp, 'wx', 0o600);
      } catch (e) {
        if (!known || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        // The folder went (the store directory removed, or pruned by hand): look again.
        this.dirsMade.delete(dir);
        return await this.put(key, body, options);
      }
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (options.ifAbsent) {
        try {
          await fs.link(tmp, target);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new AlreadyExistsError(`object ${key} already exists in ${this.url}`);
          throw e;
        }
        await fs.unlink(tmp);
      } else {
        await fs.rename(tmp, target);
      }
      await syncDir(dir);
    } catch (e) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      throw this.mapError(e, key);
    }
  }

  async get(key: string, range?: ByteRange, options: GetOptions = {}): Promise<Buffer> {
    assertValidKey(key);
    let fh;
    try {
      fh = await fs.open(this.pathOf(key), 'r');
    } catch (e) {
      await this.ensureRoot();
      throw this.mapError(e, key);
    }
    try {
      const { size } = await fh.stat();
      const offset = range?.offset ?? 0;
      const length = Math.max(0, Math.min(range?.length ?? size, size - offset));
      const buf = bodyBuffer(length, options.buffer);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    } catch (e) {
      throw this.mapError(e, key);
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const st = await fs.stat(this.pathOf(key));
      return st.isFile() ? { key, size: st.size, modifiedMs: st.mtimeMs } : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
        await this.ensureRoot();
        return undefined;
      }
      throw this.mapError(e, key);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    await this.ensureRoot();
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    const items: ObjectInfo[] = [];
    // Walk only the directory that can hold the prefix, in byte order, skipping whole
    // subtrees that sort before the cursor, and stop one past the page.
    const slash = prefix.lastIndexOf('/');
    const baseDir = slash >= 0 ? prefix.slice(0, slash) : '';
    const walk = async (relDir: string): Promise<boolean> => {
      let dirents;
      try {
        dirents = await fs.readdir(path.join(this.root, relDir), { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return true;
        throw this.mapError(e, relDir);
      }
      // A directory sorts as "name/", which is where its keys fall in byte order.
      const entries = dirents
        .filter((d) => !d.name.startsWith('.') && (d.isDirectory() || d.isFile()))
        .map((d) => ({ name: d.name, dir: d.isDirectory(), sortKey: d.isDirectory() ? `${d.name}/` : d.name }))
        .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
      for (const entry of entries) {
        const key = relDir ? `${relDir}/${entry.name}` : entry.name;
        if (entry.dir) {
          const dirKey = `${key}/`;
          if (!dirKey.startsWith(prefix) && !prefix.startsWith(dirKey)) continue;
          if (options.cursor !== undefined && compareKeys(dirKey, options.cursor) < 0 && !options.cursor.startsWith(dirKey)) continue;
          if (!(await walk(key))) return false;
        } else if (key.startsWith(prefix)) {
          if (options.cursor !== undefined && compareKeys(key, options.cursor) <= 0) continue;
          if (items.length === limit) return false;
          const st = await fs.stat(path.join(this.root, key)).catch(() => undefined);
          if (st) items.push({ key, size: st.size, modifiedMs: st.mtimeMs });
        }
      }
      return true;
    };
    const complete = await walk(baseDir);
    return { items, cursor: complete ? undefined : items[items.length - 1]?.key };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await fs.unlink(this.pathOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.ensureRoot();
        return;
      }
      throw this.mapError(e, key);
    }
  }

  async close(): Promise<void> {}

  private pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  private async ensureRoot(): Promise<void> {
    try {
      await fs.access(this.root);
    } catch (e) {
      throw this.mapError(e, '');
    }
  }

  private mapError(e: unknown, key: string): Error {
    const err = e as NodeJS.ErrnoException;
    if (!err || typeof err.code !== 'string') return e as Error;
    const what = key ? `object ${key} in ${this.url}` : `store directory ${this.root}`;
    switch (err.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return key
          ? new NotFoundError(`${what} not found`, { cause: e })
          : new NoSuchBucketError(`store directory ${this.root} does not exist: create it (mkdir -p ${this.root}) or pick another --store`, { cause: e });
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
        return new AccessDeniedError(`no permission for ${what} (${err.code})`, { cause: e });
      case 'ENOSPC':
      case 'EDQUOT':
        return new NoSpaceError(`no space left for ${what}`, { cause: e });
      case 'EMFILE':
      case 'ENFILE':
      case 'EAGAIN':
      case 'EBUSY':
      case 'EIO':
        return new TransientError(`${what}: ${err.code}`, { cause: e });
      default:
        return e as Error;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
