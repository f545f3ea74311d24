/**
 * JSON on the wire between the metadata client and service. Binary values (hashes, sealed
 * names and blobs) travel as {"$b": base64}; everything else is plain JSON. Errors travel
 * as {"error": {"code", "message"}} and come back as the same LucidError class.
 */
import { LucidError } from '../errors.js';

export function encodeWire(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v) {
    const raw = this[key];
    if (raw instanceof Uint8Array) return { $b: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
    return v;
  });
}

export function decodeWire(text: string): unknown {
  return JSON.parse(text, (_key, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof v.$b === 'string' && Object.keys(v).length === 1) {
      return Buffer.from(v.$b, 'base64');
    }
    return v;
  });
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
