/**
 * Filespace: an unlocked filespace — its keys, its object store and its metadata engine —
 * and the file-level operations built on them: names sealed before they reach the
 * metadata engine, contents split into blocks, each block sealed into a new immutable
 * object, uploaded, and only then committed to the block map.
 *
 * The path API (mkdir, writeFile, readFile, …) is the library's entry point for admin
 * commands, scripts and tests; the VFS serves the same operations to the kernel by inode.
 * Blocks go the mount's way: read through the same block loader (authenticated, one fetch
 * per object, with no disk cache here), written through the same file I/O and uploader
 * (over dirty blocks kept in memory, each write uploaded and committed before it returns).
 */
import { NoEntryError, NotDirectoryError } from '../errors.js';
import { NameCipher } from '../crypto/names.js';
import type { UnlockedFilespace } from '../crypto/descriptor.js';
import { BlockCodec } from '../block/format.js';
import { assembleRange, spans } from '../block/layout.js';
import { NoDiskCache } from '../cache/no-disk.js';
import { MemoryDirtyBlocks } from '../cache/memory-dirty.js';
import type { DirtyBlocks } from '../cache/types.js';
import { Uploader } from '../upload/uploader.js';
import { BlockLoader } from './data/block-loader.js';
import { BlockMap } from './data/block-map.js';
import { FileIo } from './data/file-io.js';
import { withPending, type InodeAttrs } from './data/types.js';
import type { ObjectStore } from '../store/types.js';
import { ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG, isDir, type Attr, type BlockRef, type MetaEngine } from '../meta/types.js';

export interface DirListing {
  name: string;
  attr: Attr;
}

export class Filespace {
  readonly names: NameCipher;
  readonly codec: BlockCodec;
  readonly blockSize: number;
  uploadConcurrency = 8;
  private loaderMade?: BlockLoader;
  private writerMade?: LibraryWriter;

  constructor(readonly unlocked: UnlockedFilespace, readonly store: ObjectStore, readonly meta: MetaEngine) {
    this.names = new NameCipher(unlocked.keys);
    this.codec = new BlockCodec(unlocked.keys, unlocked.descriptor.dataKeyId);
    this.blockSize = unlocked.descriptor.blockSize;
  }

  /** The block loader reads go through: made at the first read (a mount never reads here). */
  private get loader(): BlockLoader {
    this.loaderMade ??= new BlockLoader(this.store, this.codec, new NoDiskCache(), this.blockSize, { memoryCacheBytes: 4 * this.blockSize });
    return this.loaderMade;
  }

  // ---- block level -------------------------------------------------------------------

  /** A copy of a committed block's bytes (exactly `ref.length`). */
  async fetchBlock(ref: BlockRef, ino = 0): Promise<Buffer> {
    return this.loader.use(ref, ino, (plain) => Buffer.from(plain.subarray(0, Math.min(ref.length, plain.length))));
  }

  /** Reads [offset, offset+length) of inode `ino` (as of a CSN if given). */
  async read(ino: number, offset: number, length: number, asOf?: number): Promise<Buffer> {
    const attr = await this.meta.getAttr(ino, { asOf });
    const parts = spans(this.blockSize, offset, length, attr.size);
    if (parts.length === 0) return Buffer.alloc(0);
    const refs = await this.meta.getBlocks(ino, parts[0].index, parts.length, { asOf });
    const byIndex = new Map(refs.map((r) => [r.index, r]));
    return assembleRange(this.blockSize, attr.size, offset, length, async (i) => {
      const ref = byIndex.get(i);
      return ref ? this.fetchBlock(ref, ino) : undefined;
    });
  }

  /**
   * Writes `data` at `offset` the mount's way (file I/O into dirty blocks, the uploader to
   * the store and the block map) and returns once it is committed, with the inode's
   * attributes then. A write that cannot be committed throws and leaves nothing to land later.
   */
  async write(ino: number, offset: number, data: Buffer): Promise<Attr> {
    if (data.length === 0) return this.meta.getAttr(ino);
    const w = this.writer;
    // Asked afresh once per write (a restore can bring an older version back): what the
    // last write knew was forgotten when it ended.
    w.attrs.takeCommitted(ino);
    w.blockMap.drop(ino);
    try {
      await w.io.write(ino, offset, data, false);
      await w.uploader.flush(ino);
    } catch (e) {
      await w.io.discard(ino, async () => {});
      throw e;
    } finally {
      w.attrs.forget(ino);
    }
    // No commit means the uploader found the inode gone: getAttr says so.
    return w.attrs.takeCommitted(ino) ?? this.meta.getAttr(ino);
  }

  /** The write path, made at the first write (admin commands that only read never make it). */
  private get writer(): LibraryWriter {
    if (!this.writerMade) {
      const dirty = new MemoryDirtyBlocks();
      const attrs = new LibraryAttrs(this.meta, dirty);
      const blockMap = new BlockMap(this.meta, this.blockSize);
      const uploader = new Uploader({ store: this.store, codec: this.codec, meta: this.meta, cache: dirty, blockSize: this.blockSize }, {
        slots: this.uploadConcurrency,
        committed: (ino, refs, attr) => {
          attrs.committed(attr);
          blockMap.committed(ino, refs, attr.version);
        },
      });
      this.writerMade = { attrs, blockMap, uploader, io: new FileIo(this.loader, blockMap, dirty, uploader, attrs, this.blockSize) };
    }
    return this.writerMade;
  }

  // ---- path level --------------------------------------------------------------------

  async resolve(path: string): Promise<Attr> {
    let attr = await this.meta.getAttr(ROOT_INO);
    for (const name of split(path)) {
      if (!isDir(attr.mode)) throw new NotDirectoryError(`${path}: a component is not a directory`);
      attr = await this.meta.lookup(attr.ino, this.names.hash(attr.ino, name));
    }
    return attr;
  }

  async mkdir(path: string, mode = 0o755): Promise<Attr> {
    const { parent, name } = await this.parentOf(path);
    return this.meta.create(parent.ino, this.names.seal(parent.ino, name), { mode: S_IFDIR | mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  }

  async writeFile(path: string, data: Buffer, mode = 0o644): Promise<Attr> {
    const { parent, name } = await this.parentOf(path);
    let attr: Attr;
    try {
      attr = await this.meta.lookup(parent.ino, this.names.hash(parent.ino, name));
      attr = await this.meta.setAttr(attr.ino, { size: 0 });
    } catch (e) {
      if (!(e instanceof NoEntryError)) throw e;
      attr = await this.meta.create(parent.ino, this.names.seal(parent.ino, name), { mode: S_IFREG | mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    }
    return data.length ? this.write(attr.ino, 0, data) : attr;
  }

  async readFile(path: string, asOf?: number): Promise<Buffer> {
    const attr = await this.resolve(path);
    return this.read(attr.ino, 0, attr.size, asOf);
  }

  async readdir(path: string): Promise<DirListing[]> {
    const dir = await this.resolve(path);
    const out: DirListing[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.meta.readdir(dir.ino, { cursor, plus: true });
      for (const e of page.entries) out.push({ name: this.names.open(dir.ino, e.hash, e.enc), attr: e.attr! });
      cursor = page.cursor;
    } while (cursor);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async symlink(target: string, path: string): Promise<Attr> {
    const { parent, name } = await this.parentOf(path);
    // The service assigns the inode number inside `create`, so a target is bound to its
    // purpose (inode 0) rather than to an inode it does not have yet.
    return this.meta.create(parent.ino, this.names.seal(parent.ino, name), {
      mode: S_IFLNK | 0o777, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, size: Buffer.byteLength(target),
      target: this.names.sealBlob(0, 'symlink', Buffer.from(target, 'utf8')),
    });
  }

  async readlink(path: string): Promise<string> {
    const attr = await this.resolve(path);
    return this.names.openBlob(0, 'symlink', await this.meta.readlink(attr.ino)).toString('utf8');
  }

  async unlink(path: string): Promise<void> {
    const { parent, name } = await this.parentOf(path);
    const after = await this.meta.unlink(parent.ino, this.names.hash(parent.ino, name));
    if (after.nlink === 0) await this.meta.reclaim(after.ino);
  }

  async rename(from: string, to: string): Promise<void> {
    const a = await this.parentOf(from);
    const b = await this.parentOf(to);
    const replaced = await this.meta.rename(a.parent.ino, this.names.hash(a.parent.ino, a.name), b.parent.ino, this.names.seal(b.parent.ino, b.name));
    if (replaced && replaced.nlink === 0 && !isDir(replaced.mode)) await this.meta.reclaim(replaced.ino);
  }

  async setXattr(path: string, name: string, value: Buffer): Promise<void> {
    const attr = await this.resolve(path);
    await this.meta.setXattr(attr.ino, {
      hash: this.names.xattrHash(attr.ino, name),
      nameEnc: this.names.sealBlob(attr.ino, 'xattr-name', Buffer.from(name, 'utf8')),
      valueEnc: this.names.sealBlob(attr.ino, 'xattr-value', value),
    });
  }

  async getXattr(path: string, name: string): Promise<Buffer> {
    const attr = await this.resolve(path);
    const e = await this.meta.getXattr(attr.ino, this.names.xattrHash(attr.ino, name));
    return this.names.openBlob(attr.ino, 'xattr-value', e.valueEnc);
  }

  async listXattr(path: string): Promise<string[]> {
    const attr = await this.resolve(path);
    const entries = await this.meta.listXattr(attr.ino);
    return entries.map((e) => this.names.openBlob(attr.ino, 'xattr-name', e.nameEnc).toString('utf8')).sort();
  }

  private async parentOf(path: string): Promise<{ parent: Attr; name: string }> {
    const parts = split(path);
    const name = parts.pop();
    if (name === undefined) throw new NoEntryError('the root has no parent');
    const parent = await this.resolve(parts.join('/'));
    if (!isDir(parent.mode)) throw new NotDirectoryError(`${path}: parent is not a directory`);
    return { parent, name };
  }
}

interface LibraryWriter {
  attrs: LibraryAttrs;
  blockMap: BlockMap;
  uploader: Uploader;
  io: FileIo;
}

/** A file's attributes as the library's writes need them: asked of the engine once per write, then told by each commit. */
class LibraryAttrs implements InodeAttrs {
  private readonly known = new Map<number, Attr>();
  private readonly lastCommit = new Map<number, Attr>();

  constructor(private readonly meta: MetaEngine, private readonly dirty: DirtyBlocks) {}

  async committedAttr(ino: number, fresh = false): Promise<Attr> {
    const had = fresh ? undefined : this.known.get(ino);
    if (had) return had;
    const attr = await this.meta.getAttr(ino);
    this.known.set(ino, attr);
    return attr;
  }

  overlay(a: Attr): Attr {
    return withPending(a, this.dirty.pending(a.ino));
  }

  committed(attr: Attr): void {
    this.known.set(attr.ino, attr);
    this.lastCommit.set(attr.ino, attr);
  }

  /** The attributes of the inode's last commit since the last call, if any. */
  takeCommitted(ino: number): Attr | undefined {
    const a = this.lastCommit.get(ino);
    this.lastCommit.delete(ino);
    return a;
  }

  /** Drops what is known of the inode: the next write asks the engine again. */
  forget(ino: number): void {
    this.known.delete(ino);
  }
}

function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}
