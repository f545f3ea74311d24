/**
 * The one place where Lucid's errors become errno values for the kernel. The mapping is
 * exhaustive over ErrorCode (the compiler checks it); anything that is not a LucidError is
 * an internal fault and becomes EIO.
 */
import { constants } from 'node:os';
import { LucidError, type ErrorCode } from '../errors.js';

const E = constants.errno;

const ERRNO: Record<ErrorCode, number> = {
  NoEntry: E.ENOENT,
  EntryExists: E.EEXIST,
  NotDirectory: E.ENOTDIR,
  IsDirectory: E.EISDIR,
  NotEmpty: E.ENOTEMPTY,
  InvalidArgument: E.EINVAL,
  NameTooLong: E.ENAMETOOLONG,
  NoAttribute: E.ENODATA,
  NotPermitted: E.EPERM,
  NotSupported: E.EOPNOTSUPP,
  OutOfRange: E.ERANGE,
  TooBig: E.E2BIG,
  AccessDenied: E.EACCES,
  Unauthorized: E.EACCES,
  NoSpace: E.ENOSPC,
  VersionConflict: E.EAGAIN,
  Integrity: E.EIO,
  Transient: E.EIO,
  ServiceUnavailable: E.EIO,
  NotFound: E.EIO,
  NoSuchBucket: E.EIO,
  Internal: E.EIO,
  Usage: E.EINVAL,
  BadStoreUrl: E.EINVAL,
  WrongPassword: E.EACCES,
  NotInitialized: E.EIO,
  AlreadyInitialized: E.EEXIST,
  AlreadyExists: E.EEXIST,
  LockConflict: E.EAGAIN,
  Interrupted: E.EINTR,
  ReadOnly: E.EROFS,
};

export function errnoOf(e: unknown): number {
  if (e instanceof LucidError) return ERRNO[e.code] ?? E.EIO;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return E.ENOSPC;
  return E.EIO;
}
