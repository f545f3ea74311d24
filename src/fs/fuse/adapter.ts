/**
 * The FUSE adapter: requests from the kernel (through the binding) become VFS calls, and
 * their results or errors become replies. Thin by design: no file-system logic here, and
 * errno comes only from src/fs/errno.ts.
 */
import { spawn } from 'node:child_process';
import { NotSupportedError, OutOfRangeError } from '../../errors.js';
import type { Attr } from '../../meta/types.js';
import type { LockRange } from '../../locks/types.js';
import { traced } from '../../util/trace.js';
import { errnoOf } from '../errno.js';
import type { Vfs, SetAttrRequest } from '../vfs.js';
import { loadBinding, type FuseBinding, type FuseRequest, type NativeSession } from './binding.js';
import { DEFAULT_READAHEAD_KB, raiseReadahead } from './readahead.js';

export interface FuseOptions {
  /** Seconds the kernel may cache attributes and names. */
  attrTimeout?: number;
  entryTimeout?: number;
  allowOther?: boolean;
  fsname?: string;
  maxWrite?: number;
  log?: (line: string) => void;
  /** Mount read-only (a snapshot): the kernel refuses every change with EROFS. */
  readOnly?: boolean;
  /** Kernel read-ahead for the mount in KiB (default 2048: an unaligned 1 MiB read spans 257 pages; needs root, else the kernel's 128). */
  readaheadKb?: number;
  /** When set (LUCID_TRACE=1), every request is logged with its timing. */
  trace?: (line: string) => void;
}

/** Numbers per inode's attributes in the binding's layout (native/lucid_fuse.c). */
const ATTR_FIELDS = 15;
/** The smallest entry readdirplus can give the kernel: fuse_entry_out (128 bytes), the dirent's
 * header (24) and a name of up to 8 bytes, 8-aligned. */
const DIRENTPLUS_MIN = 160;
const SET_MODE = 1 << 0, SET_UID = 1 << 1, SET_GID = 1 << 2, SET_SIZE = 1 << 3, SET_ATIME = 1 << 4, SET_MTIME = 1 << 5,
  SET_ATIME_NOW = 1 << 7, SET_MTIME_NOW = 1 << 8;
const RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
const EIO = errnoOf(new Error('internal'));
const OPEN_KEEP_CACHE = 2;

export class FuseMount {
  private readonly b: FuseBinding;
  private session?: NativeSession;
  private exited!: Promise<number>;
  private readonly attrTimeout: number;
  private readonly entryTimeout: number;
  maxWrite = 0;
  /**
   * Settles once the mount's read-ahead is raised (or given up on, with a log line): the
   * agent says it is mounted only then, so every read, the first too, sees the same 2 MiB.
   */
  readaheadRaised: Promise<void> = Promise.resolve();

  private constructor(private readonly vfs: Vfs, readonly mountpoint: string, private readonly options: FuseOptions) {
    this.b = loadBinding();
    this.attrTimeout = options.attrTimeout ?? 1;
    this.entryTimeout = options.entryTimeout ?? 1;
  }

  static mount(vfs: Vfs, mountpoint: string, options: FuseOptions = {}): FuseMount {
    const m = new FuseMount(vfs, mountpoint, options);
    const opts = ['default_permissions', `fsname=${options.fsname ?? 'lucid'}`, 'subtype=lucid', 'noatime'];
    if (options.allowOther) opts.push('allow_other');
    if (options.readOnly) opts.push('ro');
    let onExit!: (code: number) => void;
    m.exited = new Promise((r) => { onExit = r; });
    // INIT may come before or after the BDI is raised: both get the same value.
    const readaheadKb = options.readaheadKb ?? DEFAULT_READAHEAD_KB;
    m.session = m.b.mount(mountpoint, opts.join(','), (r) => m.handle(r, onExit), options.maxWrite ?? 1 << 20, readaheadKb * 1024);
    m.readaheadRaised = raiseReadahead(mountpoint, readaheadKb, options.log);
    return m;
  }

  /** Resolves when the kernel connection ends (after an unmount, from here or outside). */
  get done(): Promise<number> {
    return this.exited;
  }

  /**
   * Unmounts from a child process (the kernel may need this process to answer requests
   * while it unmounts, so the event loop must stay free), then frees the session.
   */
  async unmount(lazy = false): Promise<void> {
    const args = process.getuid?.() === 0 ? (lazy ? ['-l', this.mountpoint] : [this.mountpoint]) : ['-u', ...(lazy ? ['-z'] : []), this.mountpoint];
    const cmd = process.getuid?.() === 0 ? 'umount' : 'fusermount3';
    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve('') : resolve(err.trim() || `${cmd} exited ${code}`)));
    });
    if (stderr) throw Object.assign(new Error(stderr), { code: /busy/i.test(stderr) ? 'EBUSY' : 'EUMOUNT' });
    await this.exited;
    this.destroy();
  }

  /** Frees the native session once the loop has ended. */
  destroy(): void {
    if (this.session) this.b.destroy(this.session);
    this.session = undefined;
  }

  invalidateInode(ino: number): void {
    if (this.session) this.b.notifyInvalInode(this.session, ino, 0, 0);
  }

  /** The kernel forgets an inode's attributes, keeping its pages. */
  invalidateAttrs(ino: number): void {
    if (this.session) this.b.notifyInvalInode(this.session, ino, -1, 0);
  }

  private xattrsChanged(ino: number): void {
    if (this.session) this.b.xattrsChanged(this.session, ino);
  }

  invalidateEntry(parent: number, name: string): void {
    if (this.session) this.b.notifyInvalEntry(this.session, parent, name);
  }

  /** Lock waits in progress by request id, so an interrupt (a signal) can end them. */
  private readonly waits = new Map<string, AbortController>();
  /** Interrupts that arrived before their request: libfuse may deliver them first. */
  private readonly interrupted = new Map<string, number>();

  private waitFor(unique: string): AbortController {
    const c = new AbortController();
    const early = this.interrupted.get(unique);
    this.interrupted.delete(unique);
    for (const [k, t] of this.interrupted) if (Date.now() - t > 10_000) this.interrupted.delete(k);
    if (early !== undefined) c.abort();
    this.waits.set(unique, c);
    return c;
  }

  private lockRange(r: FuseRequest, kind: 'posix' | 'flock'): LockRange {
    return { kind, type: r.lockType ?? 'unlock', start: r.lockStart ?? 0, end: r.lockEnd ?? -1, pid: r.lockPid ?? r.pid };
  }

  /**
   * The attribute layout the binding reads (native/lucid_fuse.c). With `r`, it also says
   * whether the inode has no extended attributes, and when the request came: the binding
   * then answers getxattr of it with ENODATA itself while these attributes may be cached.
   */
  private entry(a: Attr, r?: FuseRequest): Float64Array {
    const out = new Float64Array(r ? ATTR_FIELDS + 2 : ATTR_FIELDS);
    this.writeAttr(out, 0, a);
    if (r) {
      out[ATTR_FIELDS] = a.hasXattrs === false ? 1 : 0;
      out[ATTR_FIELDS + 1] = r.xepoch;
    }
    return out;
  }

  /** Writes `a` in the binding's attribute layout into `out` from `at` (ATTR_FIELDS numbers). */
  private writeAttr(out: Float64Array, at: number, a: Attr): void {
    const held = this.vfs.attrTimeoutSec();
    out[at] = a.ino; out[at + 1] = a.mode; out[at + 2] = a.nlink; out[at + 3] = a.uid; out[at + 4] = a.gid;
    out[at + 5] = a.rdev; out[at + 6] = a.size; out[at + 7] = Math.ceil(a.size / 512);
    out[at + 8] = a.atimeMs; out[at + 9] = a.mtimeMs; out[at + 10] = a.ctimeMs;
    out[at + 11] = Math.max(this.attrTimeout, held); out[at + 12] = Math.max(this.entryTimeout, held);
    out[at + 13] = 0; out[at + 14] = this.vfs.blockSize;
  }

  private handle(r: FuseRequest, onExit: (code: number) => void): void {
    if (r.op === 'exit') return onExit(r.exitCode);
    if (r.op === 'init') {
      this.maxWrite = r.size;
      return;
    }
    if (r.op === 'forget' || r.op === 'forgetMulti') return;
    if (r.op === 'interrupt') {
      void this.serve(r);
      return;
    }
    const what = () => `fuse ${r.op} ino ${r.ino}${r.name ? ` ${r.name}` : ''}${r.op === 'read' ? ` off ${r.off} size ${r.size}` : ''}`;
    traced(this.options.trace, what, () => this.serve(r)).catch((e) => {
      const errno = errnoOf(e);
      if (errno === EIO) this.options.log?.(`${r.op} on inode ${r.ino} failed: ${(e as Error)?.message ?? e}`);
      this.b.replyErr(r.req, errno);
    });
  }

  private async serve(r: FuseRequest): Promise<void> {
    const v = this.vfs;
    const b = this.b;
    const caller = { uid: r.uid, gid: r.gid, pid: r.pid };
    switch (r.op) {
      case 'lookup': return b.replyEntry(r.req, this.entry(await v.lookup(r.ino, r.name!), r));
      case 'getattr': return b.replyAttr(r.req, this.entry(await v.getattr(r.ino), r));
      case 'setattr': {
        const t = r.toSet ?? 0;
        const req: SetAttrRequest = {};
        if (t & SET_MODE) req.mode = r.attrMode;
        if (t & SET_UID) req.uid = r.attrUid;
        if (t & SET_GID) req.gid = r.attrGid;
        if (t & SET_SIZE) req.size = r.attrSize;
        if (t & SET_ATIME_NOW) req.atimeMs = 'now';
        else if (t & SET_ATIME) req.atimeMs = r.atimeMs;
        if (t & SET_MTIME_NOW) req.mtimeMs = 'now';
        else if (t & SET_MTIME) req.mtimeMs = r.mtimeMs;
        // The kernel leaves set-ID clearing to the file system (HANDLE_KILLPRIV): a chown, a
        // truncate by an unprivileged caller, and the empty setattr it sends for a write by one.
        if ((t & (SET_UID | SET_GID)) || t === 0 || ((t & SET_SIZE) && r.uid !== 0)) req.dropPrivileges = true;
        return b.replyAttr(r.req, this.entry(await v.setattr(r.ino, req), r));
      }
      case 'readlink': return b.replyReadlink(r.req, await v.readlink(r.ino));
      case 'mknod': return b.replyEntry(r.req, this.entry(await v.mknod(r.ino, r.name!, r.mode, r.rdev, caller), r));
      case 'mkdir': return b.replyEntry(r.req, this.entry(await v.mkdir(r.ino, r.name!, r.mode, caller), r));
      case 'unlink': await v.unlink(r.ino, r.name!); return b.replyErr(r.req, 0);
      case 'rmdir': await v.rmdir(r.ino, r.name!); return b.replyErr(r.req, 0);
      case 'symlink': return b.replyEntry(r.req, this.entry(await v.symlink(r.ino, r.name!, r.name2!, caller), r));
      case 'rename':
        await v.rename(r.ino, r.name!, r.ino2!, r.name2!, { noReplace: (r.flags & RENAME_NOREPLACE) !== 0, exchange: (r.flags & RENAME_EXCHANGE) !== 0 });
        return b.replyErr(r.req, 0);
      case 'link': return b.replyEntry(r.req, this.entry(await v.link(r.ino, r.ino2!, r.name!), r));
      case 'open': {
        const { fh, keepCache } = await v.openFile(r.ino, r.flags);
        return b.replyOpen(r.req, fh, keepCache ? OPEN_KEEP_CACHE : 0);
      }
      case 'create': {
        const { attr, fh } = await v.create(r.ino, r.name!, r.mode, r.flags, caller);
        return b.replyCreate(r.req, this.entry(attr, r), fh, 0);
      }
      case 'read': return v.readReply(r.fh!, r.off, r.size, (data) => b.replyBuf(r.req, data));
      case 'write':
        // The write's bytes are in the cache (copied, sealed or encrypted) once it returns:
        // freed at once, a stream of 1 MiB writes leaves no dead buffers waiting for a collection.
        try {
          return b.replyWrite(r.req, await v.write(r.fh!, r.off, r.data!));
        } finally {
          b.releaseData(r.data!);
        }
      case 'flush':
        v.flush(r.fh!);
        // close(): the closing process's fcntl locks on the file go (POSIX).
        if (r.lockOwner) await v.releaseLocks(r.ino, r.lockOwner, 'posix');
        return b.replyErr(r.req, 0);
      case 'release':
        if (r.flockRelease && r.lockOwner) await v.releaseLocks(r.ino, r.lockOwner, 'flock');
        await v.release(r.fh!);
        return b.replyErr(r.req, 0);
      case 'getlk': {
        const hit = await v.getlk(r.ino, r.lockOwner!, this.lockRange(r, 'posix'));
        return hit ? b.replyLock(r.req, hit.type, hit.start, hit.end, hit.pid) : b.replyLock(r.req, 'unlock', r.lockStart!, r.lockEnd!, 0);
      }
      case 'setlk':
      case 'flock': {
        const kind = r.op === 'flock' ? 'flock' : 'posix';
        const abort = r.sleep ? this.waitFor(r.unique!) : undefined;
        try {
          await v.setlk(r.ino, r.lockOwner!, this.lockRange(r, kind), { wait: r.sleep === 1, signal: abort?.signal });
        } finally {
          if (r.unique) this.waits.delete(r.unique);
        }
        return b.replyErr(r.req, 0);
      }
      case 'fsync': await v.fsync(r.fh!); return b.replyErr(r.req, 0);
      case 'opendir': return b.replyOpen(r.req, await v.opendir(r.ino), 0);
      case 'readdir': {
        const max = Math.max(1, Math.floor(r.size / 32));
        const entries = await v.readdir(r.fh!, r.off, max);
        b.replyReaddir(r.req, r.size, entries.map((e) => e.name), new Float64Array(entries.map((e) => e.ino)),
          new Float64Array(entries.map((e) => e.mode)), new Float64Array(entries.map((e) => e.next)));
        return;
      }
      case 'interrupt': {
        const w = this.waits.get(r.unique!);
        if (w) w.abort();
        else this.interrupted.set(r.unique!, Date.now());
        return;
      }
      case 'readdirplus': {
        // An entry takes at least DIRENTPLUS_MIN bytes of the kernel's buffer (1 MiB here): no
        // more are made than can fit (by size / 64, 16 384 a request, of which ~6 000 fit).
        const max = Math.max(1, Math.floor(r.size / DIRENTPLUS_MIN));
        const entries = await v.readdir(r.fh!, r.off, max);
        const n = entries.length;
        const attrs = new Float64Array(n * ATTR_FIELDS);
        const noXattrs = new Float64Array(n);
        const names = new Array<string>(n);
        const next = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const e = entries[i];
          names[i] = e.name;
          next[i] = e.next;
          if (e.attr) {
            this.writeAttr(attrs, i * ATTR_FIELDS, e.attr);
            noXattrs[i] = e.attr.hasXattrs === false ? 1 : 0;
          } else {
            attrs[i * ATTR_FIELDS] = e.ino; // "." and "..": no attributes, no lookup
            attrs[i * ATTR_FIELDS + 1] = e.mode;
          }
        }
        b.replyReaddirplus(r.req, r.size, names, attrs, next, noXattrs, r.xepoch);
        return;
      }
      case 'releasedir': v.releasedir(r.fh!); return b.replyErr(r.req, 0);
      case 'fsyncdir': await v.fsyncDir(r.ino); return b.replyErr(r.req, 0);
      case 'statfs': {
        const s = await v.statfs();
        return b.replyStatfs(r.req, new Float64Array([s.blockSize, s.blockSize, s.blocks, s.blocksFree, s.blocksFree, s.files, s.filesFree, s.filesFree, s.nameMax]));
      }
      case 'setxattr':
        try {
          await v.xattrs.setxattr(r.ino, r.name!, r.data!, r.flags);
        } finally {
          this.xattrsChanged(r.ino);
        }
        return b.replyErr(r.req, 0);
      case 'getxattr': {
        // The kernel asks security.capability before every write: when the inode has none,
        // the binding answers the next such questions itself for an attribute timeout.
        if (v.xattrs.knownAbsent(r.ino, r.name!)) return b.replyNoXattr(r.req, r.ino, Math.max(this.attrTimeout, v.attrTimeoutSec()), r.xepoch);
        const value = await v.xattrs.getxattr(r.ino, r.name!);
        if (r.size === 0) return b.replyXattr(r.req, value.length);
        if (value.length > r.size) throw new OutOfRangeError('xattr value larger than the buffer');
        return b.replyBuf(r.req, value);
      }
      case 'listxattr': {
        const names = await v.xattrs.listxattr(r.ino);
        const list = Buffer.from(names.map((n) => `${n}\0`).join(''), 'utf8');
        if (r.size === 0) return b.replyXattr(r.req, list.length);
        if (list.length > r.size) throw new OutOfRangeError('xattr list larger than the buffer');
        return b.replyBuf(r.req, list);
      }
      case 'removexattr':
        try {
          await v.xattrs.removexattr(r.ino, r.name!);
        } finally {
          this.xattrsChanged(r.ino);
        }
        return b.replyErr(r.req, 0);
      default: throw new NotSupportedError(`FUSE operation ${r.op} is not supported`);
    }
  }
}
