/**
 * A folder's listing fetched from the service in pipelined pages (readdir plus, hash order).
 *
 * The first page is asked for at once and handed on as soon as it comes. If the folder has
 * more, the rest of the hash space is cut into ranges sized from the first page (names hash
 * uniformly, so the share of the space it covered tells the folder's size), several ranges
 * are fetched at once, and their entries are handed on in hash order. A cold listing of a
 * large folder then waits about one round trip plus the service's time, not one round trip
 * per page.
 *
 * Promises: every entry of the folder once, in hash order, as of some moment during the
 * listing (as with one page after another: a name renamed meanwhile may show once in
 * either place or in both); a range that comes back larger than estimated is paged through;
 * a failed request fails the listing where its range would have come, never silently.
 */
import type { DirEntry, MetaEngine } from '../../meta/types.js';

export interface ListingPagesOptions {
  /** Entries per request (default 1 000). */
  pageSize?: number;
  /** Ranges in flight at once after the first page (default 8). */
  parallel?: number;
}

/** 2^256: one past the largest hash. */
const SPACE = 1n << 256n;
/** The most ranges a listing is cut into (a folder of ~4 M entries). */
const MAX_RANGES = 4096;

const hex = (n: bigint) => n.toString(16).padStart(64, '0');

export interface ListingPage {
  entries: DirEntry[];
  /** The final page. */
  last: boolean;
  /** How many entries the folder holds, as estimated from its first page (exact when it had one page). */
  estimate: number;
  /** The newest commit when the first page was read (the listing has every change up to it). */
  csn?: number;
}

/** Pages of `ino`'s listing in hash order. */
export async function* listingPages(meta: MetaEngine, ino: number, options: ListingPagesOptions = {}): AsyncGenerator<ListingPage> {
  const limit = options.pageSize ?? 1000;
  const ask = (cursor: string | undefined, until?: string) => meta.readdir(ino, { cursor, until, limit, plus: true, firstBlock: true });
  const first = await ask(undefined);
  if (first.cursor === undefined) {
    yield { entries: first.entries, last: true, estimate: first.entries.length, csn: first.csn };
    return;
  }
  const from = BigInt(`0x${first.cursor}`);
  // The first page covered [0, from] of the space: the folder holds about limit / share entries.
  const share = Number(from >> 192n) / 2 ** 64;
  const estimate = Math.max(first.entries.length + 1, Math.round(first.entries.length / Math.max(share, 1e-12)));
  const left = Math.max(limit, estimate - first.entries.length);
  const ranges = Math.min(MAX_RANGES, Math.max(1, Math.ceil(left / limit)));
  const bounds: string[] = [first.cursor];
  for (let k = 1; k < ranges; k++) bounds.push(hex(from + ((SPACE - 1n - from) * BigInt(k)) / BigInt(ranges)));
  /** Every entry of range k: (bounds[k], bounds[k + 1]], the last range to the end. */
  const fetchRange = async (k: number): Promise<DirEntry[]> => {
    const until = k + 1 < bounds.length ? bounds[k + 1] : undefined;
    const out: DirEntry[] = [];
    let cursor: string | undefined = bounds[k];
    do {
      const page = await ask(cursor, until);
      for (const e of page.entries) out.push(e);
      cursor = page.cursor;
    } while (cursor !== undefined);
    return out;
  };
  yield { entries: first.entries, last: false, estimate, csn: first.csn };
  const parallel = Math.max(1, options.parallel ?? 8);
  const inFlight: Promise<DirEntry[]>[] = [];
  let next = 0;
  const fill = () => {
    while (next < ranges && inFlight.length < parallel) {
      const p = fetchRange(next++);
      p.catch(() => {}); // awaited in order below; not an unhandled rejection meanwhile
      inFlight.push(p);
    }
  };
  fill();
  for (let k = 0; k < ranges; k++) {
    const entries = await inFlight.shift()!;
    fill();
    yield { entries, last: k === ranges - 1, estimate, csn: first.csn };
  }
}
