/** Human sizes ("256KiB", "1M", "10G") to bytes and back. Binary units throughout. */
import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`${what} "${text}" is not a size: use a number with an optional unit, e.g. 1MiB, 256K, 10G`);
  const bytes = Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what} "${text}" is too large`);
  return bytes;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${bytes} B` : `${v % 1 === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
