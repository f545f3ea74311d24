/**
 * The metadata service's RPC surface: which engine methods a client may call over HTTP, and
 * what each one's parameters must be. The service checks every call against these before
 * the engine runs (src/meta/service.ts); the client names its calls by them
 * (src/meta/client.ts). The data model itself is in src/meta/types.ts.
 */
import { InvalidArgumentError } from '../errors.js';
import type { BatchOp, MetaEngine } from './types.js';

/** Method names callable over the service's RPC endpoint (everything but close). */
export const META_METHODS = [
  'info', 'getAttr', 'lookup', 'readdir', 'listingChanges', 'namesOf', 'create', 'reserveInodes', 'link', 'unlink', 'rmdir', 'rename', 'setAttr',
  'readlink', 'getBlocks', 'commitBlocks', 'reclaim', 'getXattr', 'listXattr', 'setXattr', 'removeXattr', 'applyBatch',
  'changesSince', 'createSnapshot', 'listSnapshots', 'deleteSnapshot', 'restore',
  'createSchedule', 'listSchedules', 'deleteSchedule', 'runSchedules', 'pruneVersions', 'retainedObjects',
] as const satisfies readonly (keyof MetaEngine)[];

export type MetaMethod = (typeof META_METHODS)[number];

/**
 * What each remote method's parameters must be, checked by the service before the engine
 * runs (a wrong shape is a 400, never a TypeError deep inside): `int` a whole number ≥ 0,
 * `bytes` binary, `name` {hash, enc}, `object` a plain object, `array`, `string`; a `?`
 * marks an optional parameter (absent or null). More arguments than parameters is an error.
 */
export type ParamKind = 'int' | 'int?' | 'bytes' | 'name' | 'object' | 'object?' | 'array' | 'string' | 'string?' | 'bool?';
export const META_PARAMS: Record<MetaMethod, readonly ParamKind[]> = {
  info: [], getAttr: ['int', 'object?'], lookup: ['int', 'bytes', 'object?'], readdir: ['int', 'object?'], listingChanges: ['int', 'int'], namesOf: ['int', 'object?'],
  create: ['int', 'name', 'object'], reserveInodes: ['int'], link: ['int', 'int', 'name'], unlink: ['int', 'bytes'], rmdir: ['int', 'bytes'],
  rename: ['int', 'bytes', 'int', 'name', 'object?'], setAttr: ['int', 'object', 'object?'], readlink: ['int', 'object?'],
  getBlocks: ['int', 'int', 'int', 'object?'], commitBlocks: ['int', 'array', 'object?'], reclaim: ['int'],
  getXattr: ['int', 'bytes', 'object?'], listXattr: ['int', 'object?'], setXattr: ['int', 'object', 'object?'], removeXattr: ['int', 'bytes'], applyBatch: ['array'],
  changesSince: ['int', 'int?'], createSnapshot: ['string?'], listSnapshots: [], deleteSnapshot: ['int'], restore: ['int', 'int', 'bytes'],
  createSchedule: ['string', 'int', 'int'], listSchedules: [], deleteSchedule: ['string'], runSchedules: ['int'],
  pruneVersions: ['int', 'object?'], retainedObjects: ['array', 'int'],
};

/** Whether `v` has the shape `kind` asks for (see META_PARAMS). */
export function fitsParam(kind: ParamKind, v: unknown): boolean {
  if (kind.endsWith('?') && (v === undefined || v === null)) return true;
  const plain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x) && !Buffer.isBuffer(x);
  switch (kind.replace('?', '')) {
    case 'int': return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    case 'bytes': return Buffer.isBuffer(v);
    case 'name': return plain(v) && Buffer.isBuffer(v.hash) && Buffer.isBuffer(v.enc);
    case 'object': return plain(v);
    case 'array': return Array.isArray(v);
    case 'bool': return typeof v === 'boolean';
    default: return typeof v === 'string';
  }
}

/** What each batch operation's fields must be (as META_PARAMS, by field name; no other field is allowed but `op`). */
export const BATCH_OP_PARAMS: Record<BatchOp['op'], Record<string, ParamKind>> = {
  create: { parent: 'int', name: 'name', node: 'object' },
  link: { ino: 'int', parent: 'int', name: 'name' },
  unlink: { parent: 'int', hash: 'bytes', expectIno: 'int?' },
  rmdir: { parent: 'int', hash: 'bytes', expectIno: 'int?' },
  rename: { parent: 'int', hash: 'bytes', newParent: 'int', newName: 'name', noReplace: 'bool?', exchange: 'bool?', expectIno: 'int?', replaces: 'int?' },
  setAttr: { ino: 'int', changes: 'object', options: 'object?' },
  commitBlocks: { ino: 'int', blocks: 'array', options: 'object?' },
  reclaim: { ino: 'int' },
  setXattr: { ino: 'int', entry: 'object', flags: 'object?' },
  removeXattr: { ino: 'int', hash: 'bytes' },
};

/** Throws InvalidArgumentError unless `op` is a batch operation of a known kind with fields of the right shapes. */
export function checkBatchOp(op: unknown): BatchOp {
  if (typeof op !== 'object' || op === null || Array.isArray(op)) throw new InvalidArgumentError('a batch operation must be an object');
  const kind = (op as { op?: unknown }).op;
  const fields = typeof kind === 'string' && Object.hasOwn(BATCH_OP_PARAMS, kind) ? BATCH_OP_PARAMS[kind as BatchOp['op']] : undefined;
  if (!fields) throw new InvalidArgumentError(`unknown batch operation ${JSON.stringify(kind)}`);
  for (const [k, v] of Object.entries(op)) {
    if (k === 'op') continue;
    if (!Object.hasOwn(fields, k)) throw new InvalidArgumentError(`a ${kind} in a batch has no field ${JSON.stringify(k)}`);
    if (!fitsParam(fields[k], v)) throw new InvalidArgumentError(`field ${k} of a ${kind} in a batch has the wrong shape`);
  }
  for (const [k, want] of Object.entries(fields)) {
    if (!want.endsWith('?') && !fitsParam(want, (op as Record<string, unknown>)[k])) throw new InvalidArgumentError(`a ${kind} in a batch needs ${k}`);
  }
  return op as BatchOp;
}
