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

let cached: FuseBinding | undefined;

export function loadBinding(): FuseBinding {
  if (cached) return cached;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
  const file = path.join(root, 'build', 'Release', 'lucid_fuse.node');
  try {
    cached = createRequire(import.meta.url)(file) as FuseBinding;
  } catch (e) {
    throw new InternalError(`the FUSE binding is not built (${file}): run "bash scripts/setup" (needs libfuse3-dev)`, { cause: e });
  }
  return cached;
}
