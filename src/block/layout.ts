/**
 * File ↔ block arithmetic for a fixed block size, and assembly of any byte range from the
 * blocks that hold it. Blocks missing from the block map are holes and read as zeros; a
 * block shorter than the block size reads as zeros past its end (up to the file size).
 */
import { UsageError } from '../errors.js';

export const MIN_BLOCK_SIZE = 64 * 1024;
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024;
/** 1 MiB: see README "Block size". */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;

export function checkBlockSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_BLOCK_SIZE || size > MAX_BLOCK_SIZE || (size & (size - 1)) !== 0) {
    throw new UsageError(`block size ${size} is not a power of two from 64 KiB to 16 MiB`);
  }
  return size;
}

export interface BlockSpan {
  index: number;
  /** Offset inside the block where the span starts. */
  start: number;
  /** Bytes of this block inside the range. */
  length: number;
  /** Offset inside the assembled output. */
  outOffset: number;
}

/** The blocks that cover [offset, offset+length), clipped to nothing past `fileSize`. */
export function spans(blockSize: number, offset: number, length: number, fileSize = Infinity): BlockSpan[] {
  const end = Math.min(offset + length, fileSize);
  const result: BlockSpan[] = [];
  for (let pos = offset; pos < end;) {
    const index = Math.floor(pos / blockSize);
    const start = pos - index * blockSize;
    const take = Math.min(blockSize - start, end - pos);
    result.push({ index, start, length: take, outOffset: pos - offset });
    pos += take;
  }
  return result;
}

/**
 * Reads [offset, offset+length) of a file of `fileSize` bytes. `loadBlock` returns a block's
 * plaintext, or undefined for a hole; it is called for each covered block, in parallel.
 */
export async function assembleRange(
  blockSize: number, fileSize: number, offset: number, length: number,
  loadBlock: (index: number) => Promise<Buffer | undefined>,
): Promise<Buffer> {
  const parts = spans(blockSize, offset, length, fileSize);
  const total = parts.reduce((n, s) => n + s.length, 0);
  const out = Buffer.alloc(total);
  await Promise.all(parts.map(async (s) => {
    const block = await loadBlock(s.index);
    if (block && s.start < block.length) block.copy(out, s.outOffset, s.start, Math.min(block.length, s.start + s.length));
  }));
  return out;
}
