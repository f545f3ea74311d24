/**
 * JSON on the wire between the metadata client and service. Binary values (hashes, sealed
 * names and blobs) travel as {"$b": base64}; everything else is plain JSON. Errors travel
 * as {"error": {"code", "message"}} and come back as the same LucidError class.
 */
import { LucidError } from '../errors.js';

export function encodeWire(value: unknown): string {
  return JSON.stringify(withBinaryAsBase64(value));
}

export function decodeWire(text: string): unknown {
  return withBase64AsBinary(JSON.parse(text));
}

/**
 * `value` with every byte array as {"$b": base64}, for JSON.stringify to take as it is. A walk
 * before stringify, not a replacer: with one, JSON.stringify turned each Buffer into an array of
 * numbers (its toJSON) before the replacer swapped it, and lost its fast path (a journaled
 * create: 10.9 us to encode, 5.7 this way; a service answer 19 us to decode, 5.4).
 */
function withBinaryAsBase64(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $b: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map(withBinaryAsBase64);
  if (v === null || typeof v !== 'object' || typeof (v as { toJSON?: unknown }).toJSON === 'function') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = withBinaryAsBase64((v as Record<string, unknown>)[k]);
  return out;
}

/** Parsed JSON with each {"$b": base64} (and nothing else in it) as a Buffer, in place. */
function withBase64AsBinary(v: unknown): unknown {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = withBase64AsBinary(v[i]);
    return v;
  }
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$b' && typeof o.$b === 'string') return Buffer.from(o.$b, 'base64');
  for (const k of keys) {
    const x = o[k];
    const y = withBase64AsBinary(x);
    // Defined, not assigned: a key named "__proto__" stays a key.
    if (y !== x) Object.defineProperty(o, k, { value: y, writable: true, enumerable: true, configurable: true });
  }
  return o;
}

/** HTTP status for an error crossing the wire. */
export function statusOf(e: LucidError): number {
  switch (e.code) {
    case 'InvalidArgument': case 'NameTooLong': case 'Usage': return 400;
    case 'Unauthorized': return 401;
    case 'NoEntry': case 'NoAttribute': case 'NotFound': return 404;
    case 'Internal': return 500;
    case 'ServiceUnavailable': case 'Transient': return 503;
    default: return 409;
  }
}
