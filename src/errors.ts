/**
 * Every failure Lucid can report, one class per failure with a stable `code`.
 *
 * Promises: callers branch on `code` (or `instanceof`), never on message text. `exitCode`
 * tells the CLI whether the fault is the user's input (2) or the run time (1). Messages are
 * one line, written for a person, and name what to fix. Only `src/fs` turns these into errno.
 */
export type ErrorCode =
  | 'Usage' | 'BadStoreUrl' | 'NotFound' | 'NoSuchBucket' | 'AccessDenied' | 'Transient'
  | 'AlreadyExists' | 'NoSpace' | 'Integrity' | 'WrongPassword' | 'NotInitialized'
  | 'AlreadyInitialized' | 'VersionConflict' | 'NoEntry' | 'EntryExists' | 'NotDirectory'
  | 'IsDirectory' | 'NotEmpty' | 'InvalidArgument' | 'NameTooLong' | 'NoAttribute'
  | 'NotPermitted' | 'NotSupported' | 'OutOfRange' | 'TooBig' | 'Unauthorized' | 'ServiceUnavailable' | 'Internal'
  | 'LockConflict' | 'Interrupted' | 'ReadOnly';

export class LucidError extends Error {
  readonly code: ErrorCode;
  /** 2 when the input (arguments, password, URL, bucket) is what must change; 1 otherwise. */
  readonly exitCode: 1 | 2;
  constructor(code: ErrorCode, message: string, exitCode: 1 | 2 = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.exitCode = exitCode;
    this.name = new.target.name;
  }
}

/**
 * One class per failure. `traced: false` is for failures that are everyday answers rather than
 * faults (the name is not there): made without a stack trace, which cost ~20 us each, once per
 * file in a `tar x` (its lookup of each new name).
 */
const define = (code: ErrorCode, exitCode: 1 | 2, traced = true) =>
  class extends LucidError {
    constructor(message: string, options?: { cause?: unknown }) {
      const limit = Error.stackTraceLimit;
      if (!traced) Error.stackTraceLimit = 0;
      try {
        super(code, message, exitCode, options);
      } finally {
        Error.stackTraceLimit = limit;
      }
    }
  };

export class UsageError extends define('Usage', 2) {}
export class BadStoreUrlError extends define('BadStoreUrl', 2) {}
/** An object or key is absent from the store. */
export class NotFoundError extends define('NotFound', 1) {}
/** The bucket, container or store directory itself does not exist. */
export class NoSuchBucketError extends define('NoSuchBucket', 2) {}
export class AccessDeniedError extends define('AccessDenied', 2) {}
/** A failure that may succeed if tried again: network, throttling, 5xx. */
export class TransientError extends define('Transient', 1) {}
export class AlreadyExistsError extends define('AlreadyExists', 1) {}
export class NoSpaceError extends define('NoSpace', 1) {}
/** Ciphertext, a descriptor or a metadata blob failed authentication: never returned as data. */
export class IntegrityError extends define('Integrity', 1) {}
export class WrongPasswordError extends define('WrongPassword', 2) {}
export class NotInitializedError extends define('NotInitialized', 2) {}
export class AlreadyInitializedError extends define('AlreadyInitialized', 2) {}
/** An optimistic version check failed: someone else changed the inode first. */
export class VersionConflictError extends define('VersionConflict', 1) {}
export class NoEntryError extends define('NoEntry', 1, false) {}
export class EntryExistsError extends define('EntryExists', 1) {}
export class NotDirectoryError extends define('NotDirectory', 1) {}
export class IsDirectoryError extends define('IsDirectory', 1) {}
export class NotEmptyError extends define('NotEmpty', 1) {}
export class InvalidArgumentError extends define('InvalidArgument', 1) {}
export class NameTooLongError extends define('NameTooLong', 1) {}
export class NoAttributeError extends define('NoAttribute', 1, false) {}
/** The operation is not allowed on this kind of object (EPERM), e.g. a hard link to a directory. */
export class NotPermittedError extends define('NotPermitted', 1) {}
/** The operation or attribute namespace is not supported (EOPNOTSUPP). */
export class NotSupportedError extends define('NotSupported', 1) {}
/** A caller's buffer is too small for the answer (ERANGE). */
export class OutOfRangeError extends define('OutOfRange', 1) {}
/** A value is larger than the system allows (E2BIG). */
export class TooBigError extends define('TooBig', 1) {}
export class UnauthorizedError extends define('Unauthorized', 2) {}
export class ServiceUnavailableError extends define('ServiceUnavailable', 1) {}
export class InternalError extends define('Internal', 1) {}
/** A lock request meets a lock another owner holds (and was told not to wait). */
export class LockConflictError extends define('LockConflict', 1) {}
/** A wait (for a lock) was given up by the caller. */
export class InterruptedError extends define('Interrupted', 1) {}
/** A change to something read-only (a snapshot). */
export class ReadOnlyError extends define('ReadOnly', 1) {}

const byCode: Record<ErrorCode, new (message: string) => LucidError> = {
  Usage: UsageError, BadStoreUrl: BadStoreUrlError, NotFound: NotFoundError,
  NoSuchBucket: NoSuchBucketError, AccessDenied: AccessDeniedError, Transient: TransientError,
  AlreadyExists: AlreadyExistsError, NoSpace: NoSpaceError, Integrity: IntegrityError,
  WrongPassword: WrongPasswordError, NotInitialized: NotInitializedError,
  AlreadyInitialized: AlreadyInitializedError, VersionConflict: VersionConflictError,
  NoEntry: NoEntryError, EntryExists: EntryExistsError, NotDirectory: NotDirectoryError,
  IsDirectory: IsDirectoryError, NotEmpty: NotEmptyError, InvalidArgument: InvalidArgumentError,
  NameTooLong: NameTooLongError, NoAttribute: NoAttributeError, NotPermitted: NotPermittedError,
  NotSupported: NotSupportedError, OutOfRange: OutOfRangeError, TooBig: TooBigError, Unauthorized: UnauthorizedError,
  ServiceUnavailable: ServiceUnavailableError, Internal: InternalError,
  LockConflict: LockConflictError, Interrupted: InterruptedError, ReadOnly: ReadOnlyError,
};

/** Rebuilds an error that crossed a process boundary (the service's wire format). */
export function errorFromCode(code: string, message: string): LucidError {
  const Ctor = byCode[code as ErrorCode] ?? InternalError;
  return new Ctor(message);
}

export function isLucidError(e: unknown, code?: ErrorCode): e is LucidError {
  return e instanceof LucidError && (code === undefined || e.code === code);
}
