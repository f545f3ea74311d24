/**
 * Loads Lucid's own N-API binding over libfuse3's low-level API (native/lucid_fuse.c, built
 * by `npm run build:native` against Debian's libfuse3-dev) and types what it offers.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InternalError } from '../../errors.js';

export type NativeReq = { readonly __brand: 'fuse_req' };
export type NativeSession = { readonly __brand: 'fuse_session' };

/** One request as the binding hands it over; which fields are set depends on `op`. */
export interface FuseRequest {
  op: string;
  req: NativeReq;
  uid: number;
  gid: number;
  pid: number;
  umask: number;
  ino: number;
  ino2?: number;
  name?: string;
  name2?: string;
  fh?: number;
  off: number;
  size: number;
  mode: number;
  rdev: number;
  flags: number;
  datasync: number;
  exitCode: number;
  toSet?: number;
  attrMode?: number;
  attrUid?: number;
  attrGid?: number;
  attrSize?: number;
  atimeMs?: number;
  mtimeMs?: number;
  data?: Buffer;
  forgets?: number[];
  /** The lock owner of the request's file (hex), set whenever a file handle is. */
  lockOwner?: string;
  flockRelease?: number;
  lockType?: 'read' | 'write' | 'unlock';
  lockStart?: number;
  /** Inclusive; -1 means to the end of the file. */
  lockEnd?: number;
  lockPid?: number;
  sleep?: number;
  /** setlk/flock: this request's id; interrupt: the id of the request it cancels. */
  unique?: string;
  /**
   * The session's xattr epoch when the request came: handed back with attributes that say
   * the inode has no extended attributes, so the binding answers getxattr of it itself.
   */
  xepoch: number;
}

export interface FuseBinding {
  mount(mountpoint: string, options: string, handler: (r: FuseRequest) => void, maxWrite: number, maxReadahead: number): NativeSession;
  destroy(session: NativeSession): void;
  umount(path: string, lazy: boolean): number;
  replyErr(req: NativeReq, errno: number): void;
  /** ENODATA for a getxattr of `ino`, which has none: the binding answers its next ones itself for `timeoutSec` (request epoch `xepoch`). */
  replyNoXattr(req: NativeReq, ino: number, timeoutSec: number, xepoch: number): void;
  replyNone(req: NativeReq): void;
  replyEntry(req: NativeReq, entry: Float64Array): void;
  replyCreate(req: NativeReq, entry: Float64Array, fh: number, flags: number): void;
  replyAttr(req: NativeReq, attr: Float64Array): void;
  replyOpen(req: NativeReq, fh: number, flags: number): void;
  replyBuf(req: NativeReq, data: Buffer): void;
  replyWrite(req: NativeReq, count: number): void;
  /**
   * Frees a request's data (a write's bytes) now rather than when a collection finds it dead:
   * every view of it reads as empty from then on. Only once nothing holds the bytes. Never
   * throws (memory it cannot free is left to a collection).
   */
  releaseData(data: Buffer): void;
  replyXattr(req: NativeReq, size: number): void;
  replyReadlink(req: NativeReq, target: string): void;
  replyStatfs(req: NativeReq, st: Float64Array): void;
  replyReaddir(req: NativeReq, size: number, names: string[], inos: Float64Array, modes: Float64Array, offs: Float64Array): number;
  /** `noXattrs` (1 per entry, 1: it has none) and `xepoch` as in FuseRequest; both optional. */
  replyReaddirplus(req: NativeReq, size: number, names: string[], entries: Float64Array, offs: Float64Array, noXattrs?: Float64Array, xepoch?: number): number;
  replyLock(req: NativeReq, type: 'read' | 'write' | 'unlock', start: number, end: number, pid: number): void;
  notifyInvalInode(session: NativeSession, ino: number, off: number, len: number): number;
  notifyInvalEntry(session: NativeSession, parent: number, name: string): number;
  /** A setxattr or removexattr of `ino` is finished (done or refused). */
  xattrsChanged(session: NativeSession, ino: number): void;
}

/** What the native module's mount takes: a request as numbers in a shared array, plus what is not a number. */
type NativeHandler = (nums: Float64Array, req: NativeReq | undefined, name: string | undefined, name2: string | undefined,
  data: Buffer | undefined, forgets: number[] | undefined, lockOwner: string | undefined, unique: string | undefined) => void;

/** Operations by number, in the order of the enum in native/lucid_fuse.c. */
const OP_NAMES = [
  'lookup', 'forget', 'getattr', 'setattr', 'readlink', 'mknod', 'mkdir', 'unlink',
  'rmdir', 'symlink', 'rename', 'link', 'open', 'read', 'write', 'flush', 'release',
  'fsync', 'opendir', 'readdir', 'releasedir', 'fsyncdir', 'statfs', 'setxattr',
  'getxattr', 'listxattr', 'removexattr', 'create', 'forgetMulti', 'init', 'exit',
  'readdirplus', 'getlk', 'setlk', 'flock', 'interrupt',
];
const LOCK_TYPES = ['unlock', 'read', 'write'] as const;

// Indexes into the numbers the binding hands over (REQ_* in native/lucid_fuse.c).
const enum N {
  Op, Uid, Gid, Pid, Umask, Ino, Ino2, Fh, Off, Size, Mode, Rdev, Flags, Datasync, ExitCode, FlockRelease,
  LockType, LockStart, LockEnd, LockPid, Sleep, Xepoch, ToSet, AttrMode, AttrUid, AttrGid, AttrSize, AtimeMs, MtimeMs,
}

/** A request as the handler takes it, from what the binding handed over (read before it returns: the array is reused). */
function toRequest(n: Float64Array, req: NativeReq | undefined, name: string | undefined, name2: string | undefined,
  data: Buffer | undefined, forgets: number[] | undefined, lockOwner: string | undefined, unique: string | undefined): FuseRequest {
  const r: FuseRequest = {
    op: OP_NAMES[n[N.Op]], req: req as NativeReq, uid: n[N.Uid], gid: n[N.Gid], pid: n[N.Pid], umask: n[N.Umask], ino: n[N.Ino],
    off: n[N.Off], size: n[N.Size], mode: n[N.Mode], rdev: n[N.Rdev], flags: n[N.Flags], datasync: n[N.Datasync],
    exitCode: n[N.ExitCode], xepoch: n[N.Xepoch],
  };
  if (!Number.isNaN(n[N.Ino2])) r.ino2 = n[N.Ino2];
  if (name !== undefined) r.name = name;
  if (name2 !== undefined) r.name2 = name2;
  if (!Number.isNaN(n[N.Fh])) r.fh = n[N.Fh];
  if (data !== undefined) r.data = data;
  if (forgets !== undefined) r.forgets = forgets;
  if (lockOwner !== undefined) {
    r.lockOwner = lockOwner;
    if (n[N.FlockRelease]) r.flockRelease = 1;
  }
  if (!Number.isNaN(n[N.LockType])) {
    r.lockType = LOCK_TYPES[n[N.LockType]];
    r.lockStart = n[N.LockStart];
    r.lockEnd = n[N.LockEnd];
    r.lockPid = n[N.LockPid];
    r.sleep = n[N.Sleep];
  }
  if (unique !== undefined) r.unique = unique;
  if (!Number.isNaN(n[N.ToSet])) {
    r.toSet = n[N.ToSet];
    r.attrMode = n[N.AttrMode];
    r.attrUid = n[N.AttrUid];
    r.attrGid = n[N.AttrGid];
    r.attrSize = n[N.AttrSize];
    r.atimeMs = n[N.AtimeMs];
    r.mtimeMs = n[N.MtimeMs];
  }
  return r;
}

let cached: FuseBinding | undefined;

export function loadBinding(): FuseBinding {
  if (cached) return cached;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
  const file = path.join(root, 'build', 'Release', 'lucid_fuse.node');
  try {
    const native = createRequire(import.meta.url)(file) as Omit<FuseBinding, 'mount'> & {
      mount(mountpoint: string, options: string, handler: NativeHandler, maxWrite: number, maxReadahead: number): NativeSession;
    };
    // The module's functions are not enumerable: the rest is reached through the prototype.
    const mount: FuseBinding['mount'] = (mountpoint, options, handler, maxWrite, maxReadahead) =>
      native.mount(mountpoint, options, (...args) => handler(toRequest(...args)), maxWrite, maxReadahead);
    cached = Object.create(native, { mount: { value: mount } }) as FuseBinding;
  } catch (e) {
    throw new InternalError(`the FUSE binding is not built (${file}): run "bash scripts/setup" (needs libfuse3-dev)`, { cause: e });
  }
  return cached;
}
