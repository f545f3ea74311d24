/**
 * Reading a response body into one buffer of the size the server announced: each chunk is
 * copied in as it arrives and dropped, so a 1 MiB block costs 1 MiB, not the chunks plus a
 * joined copy (the SDKs' own collectors keep both until the end), and one copy less. With
 * no size announced, the chunks are joined.
 *
 * Promises: the result is exactly `expected` bytes, or a TransientError says how many came
 * (a body cut short, or longer than announced: the caller retries).
 */
import { TransientError } from '../errors.js';

/** A buffer of exactly `size` bytes for a body: the caller's (GetOptions.buffer) when it gives one long enough. */
export function bodyBuffer(size: number, buffer?: (size: number) => Buffer): Buffer {
  const given = buffer?.(size);
  return given && given.length >= size ? given.subarray(0, size) : Buffer.allocUnsafe(size);
}

export async function readBody(body: AsyncIterable<Uint8Array>, expected: number | undefined, what: string, buffer?: (size: number) => Buffer): Promise<Buffer> {
  if (expected === undefined) {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks);
  }
  const out = bodyBuffer(expected, buffer);
  let at = 0;
  for await (const chunk of body) {
    if (at + chunk.byteLength > expected) throw new TransientError(`${what}: body longer than the ${expected} bytes announced`);
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  if (at !== expected) throw new TransientError(`${what}: body ended after ${at} of ${expected} bytes`);
  return out;
}
