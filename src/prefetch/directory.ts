/**
 * Per-directory prediction: files opened one after another in name order (frame sequences,
 * render outputs, numbered chunks) bring the next files in ahead of time.
 *
 * Promises: once two files of a directory were opened in a row in name order, each open
 * queues the files that follow it, up to `budgetBytes` ahead (and `maxFiles`), through the
 * prefetcher's shared in-flight budget; an open that breaks the order stops the prediction
 * and drops the queued guesses. The first open in a folder, of a numbered name
 * (frame_0001.exr) whose next name is numbered the same way (frame_0002.exr), already
 * queues that file whole and the next `firstGuessFiles` (2): the first frame comes at full
 * speed, and the second is on its way while the first is read. Only the first open: a
 * reader jumping between frames is not sent extra bytes. Files starting `memoryBytes` or more
 * ahead of the open are asked for on disk only.
 *
 * Small files are walked in any order (`cp -r`, `tar c`, `find | xargs cat`, `rsync` visit a
 * folder in listing or name order, not always the one this predicts): once `walkAfterOpens`
 * files of one block or less (the mount: 2; default 0, no walks) were opened in a folder, the folder's other small files are
 * brought in, `walkFiles` (256) on their way at a time and within `budgetBytes`, each one
 * whole block (to disk only past `memoryBytes`), round the folder once; a file brought in
 * (or opened) makes room for the next, whatever order the reader opens them in.
 *
 * Nothing a streak's next open needs waits on a round trip: the block maps of the
 * `mapsAheadFiles` files past the queued ones are loaded ahead (so the file the next open
 * adds is fetched at once), and a listing older than `listingTtlMs` is used while it is
 * re-read in the background. Only the first open of a folder, and a name the listing does
 * not have in that order, wait for a listing. The listing comes from the lister (which also
 * warms the attribute and name caches, so the next lookups need no round trip).
 */
import type { Prefetcher } from './prefetcher.js';

export interface ListedFile {
  name: string;
  ino: number;
  size: number;
  /** Regular file: only those are predicted. */
  regular: boolean;
}

export interface DirectoryLister {
  list(parent: number): Promise<ListedFile[]>;
  /** Loads what a fetch of the file's blocks needs first (its block map), outside the fetch budget. */
  prepare?(ino: number): Promise<void>;
}

export interface DirectoryPredictorOptions {
  blockSize: number;
  budgetBytes?: number;
  maxFiles?: number;
  /** Files queued on the first open of a numbered name. */
  firstGuessFiles?: number;
  /** Files past the queued ones whose block maps are loaded ahead (default `maxFiles`). */
  mapsAheadFiles?: number;
  listingTtlMs?: number;
  /** Predicted bytes brought into memory; files starting beyond them come to disk only. */
  memoryBytes?: number;
  /** Small files opened in a folder before its other small files are brought in (default 0: never). */
  walkAfterOpens?: number;
  /** Small files of a walk queued ahead of the opens at most (default 256). */
  walkFiles?: number;
}

/** A name's shape with its digit runs blanked: frame_0001.exr and frame_0002.exr share one. */
const shape = (name: string) => name.replace(/\d+/g, '#');

interface DirState {
  last?: string;
  streak: number;
  listing?: { at: number; files: ListedFile[]; index: Map<string, number> };
  loading?: Promise<void>;
  predicted: Set<number>;
  /** The last name whose block map was loaded ahead. */
  mappedThrough?: string;
  /**
   * A walk of the folder's small files: how many were opened; which are queued (size by
   * inode; `handed`: given to the prefetcher); which were brought in (or dropped) already.
   */
  walk?: { opened: number; queued: Map<number, number>; handed: Set<number>; done: Set<number> };
}

export class DirectoryPredictor {
  private readonly dirs = new Map<number, DirState>();
  private readonly budget: number;
  private readonly maxFiles: number;
  private readonly ttl: number;
  private readonly memoryBytes: number;
  predictedFiles = 0;
  /** Small files brought in by walks. */
  walkedFiles = 0;

  constructor(private readonly lister: DirectoryLister, private readonly prefetcher: Prefetcher, private readonly options: DirectoryPredictorOptions) {
    this.budget = options.budgetBytes ?? 128 * 1024 * 1024;
    this.maxFiles = options.maxFiles ?? 16;
    this.ttl = options.listingTtlMs ?? 1000;
    this.memoryBytes = options.memoryBytes ?? Infinity;
  }

  /** A file `name` (inode `ino`) of directory `parent` was opened for reading. */
  async onOpen(parent: number, name: string, ino: number): Promise<void> {
    let d = this.dirs.get(parent);
    if (!d) {
      if (this.dirs.size >= 1024) this.dirs.delete(this.dirs.keys().next().value!);
      d = { streak: 0, predicted: new Set() };
      this.dirs.set(parent, d);
    }
    const prev = d.last;
    d.last = name;
    d.predicted.delete(ino);
    if ((this.options.walkAfterOpens ?? 0) > 0) void this.walkSmall(parent, d, name, ino).catch(() => {});
    if (prev === undefined) return this.firstGuess(parent, d, name);
    if (name <= prev) return this.reset(d);
    await this.listing(parent, d);
    const l = d.listing!;
    const at = l.index.get(name);
    if (at === undefined || l.index.get(prev) !== at - 1) {
      // Not the next name: maybe the listing is old; one fresh look before giving up.
      if (Date.now() - l.at > 100) {
        d.listing = undefined;
        await this.listing(parent, d);
      }
      const fresh = d.listing!;
      const i = fresh.index.get(name);
      if (i === undefined || fresh.index.get(prev) !== i - 1) return this.reset(d);
    }
    d.streak++;
    this.predict(d, d.listing!.index.get(name)! + 1, this.maxFiles);
  }

  /** A small file was opened: past `walkAfterOpens` of them, the folder's other small files come in. */
  private async walkSmall(parent: number, d: DirState, name: string, ino: number): Promise<void> {
    const walk = (d.walk ??= { opened: 0, queued: new Map(), handed: new Set(), done: new Set() });
    walk.queued.delete(ino);
    // Files already brought in make room for more: the walk keeps `walkFiles` on their way,
    // not `walkFiles` ahead of a reader whose order may be another than the listing's.
    for (const f of walk.handed) {
      if (!this.prefetcher.settled(f)) continue;
      walk.handed.delete(f);
      walk.queued.delete(f);
      walk.done.add(f);
    }
    await this.listing(parent, d);
    const l = d.listing!;
    const at = l.index.get(name);
    if (at === undefined || !this.small(l.files[at])) return;
    walk.opened++;
    if (walk.opened < this.options.walkAfterOpens!) return;
    const most = this.options.walkFiles ?? 256;
    let bytes = [...walk.queued.values()].reduce((n, b) => n + b, 0);
    // In memory a block takes a whole block's buffer, however small the file: memory is
    // counted in blocks, the transfer budget in bytes.
    let inMemory = walk.queued.size * this.options.blockSize;
    // From the file opened on, round the folder: every small file once.
    for (let k = 1; k < l.files.length && walk.queued.size < most && bytes < this.budget; k++) {
      const f = l.files[(at + k) % l.files.length];
      if (!this.small(f) || f.ino === ino || walk.queued.has(f.ino) || walk.done.has(f.ino) || d.predicted.has(f.ino)) continue;
      walk.queued.set(f.ino, f.size);
      const toDisk = inMemory + this.options.blockSize > this.memoryBytes;
      bytes += f.size;
      if (!toDisk) inMemory += this.options.blockSize;
      const queue = () => {
        if (!walk.queued.has(f.ino)) return;
        walk.handed.add(f.ino);
        if (this.prefetcher.prefetchFile(f.ino, 1, toDisk, f.size) > 0) this.walkedFiles++;
      };
      if (this.lister.prepare) void this.lister.prepare(f.ino).then(queue, queue);
      else queue();
    }
  }

  /** A regular file of one block or less, not empty. */
  private small(f: ListedFile | undefined): boolean {
    return f !== undefined && f.regular && f.size > 0 && f.size <= this.options.blockSize;
  }

  /** A first open: a numbered name followed by one of the same shape queues it and the next few. */
  private async firstGuess(parent: number, d: DirState, name: string): Promise<void> {
    if (!/\d/.test(name)) return;
    await this.listing(parent, d);
    const at = d.listing!.index.get(name);
    const next = at === undefined ? undefined : d.listing!.files[at + 1];
    if (d.last !== name || !next || shape(next.name) !== shape(name)) return;
    // The opened file itself too: a frame is read whole, and it is the one waited for now.
    this.predict(d, at!, 1 + (this.options.firstGuessFiles ?? 2));
  }

  /** Queues the regular files of the listing from index `from`, within the budget and `maxFiles`. */
  private predict(d: DirState, from: number, maxFiles: number): void {
    const files = d.listing!.files;
    let bytes = 0;
    let i = from;
    for (let n = 0; i < files.length && n < maxFiles && bytes < this.budget; i++) {
      const f = files[i];
      if (!f.regular || f.size === 0 || d.walk?.queued.has(f.ino) || d.walk?.done.has(f.ino)) continue;
      n++;
      // Files that start further ahead than memory keeps plaintexts come to disk only.
      const toDisk = bytes >= this.memoryBytes;
      bytes += f.size;
      if (d.predicted.has(f.ino)) continue;
      d.predicted.add(f.ino);
      const blocks = Math.ceil(Math.min(f.size, this.budget) / this.options.blockSize);
      // The block map first (no fetch slot waits on metadata), then the blocks, unless the
      // guess was dropped meanwhile.
      const queue = () => {
        if (d.predicted.has(f.ino) && this.prefetcher.prefetchFile(f.ino, blocks, toDisk) > 0) this.predictedFiles++;
      };
      if (this.lister.prepare) void this.lister.prepare(f.ino).then(queue, queue);
      else queue();
    }
    this.mapAhead(d, i);
  }

  /**
   * Loads the block maps of the `mapsAheadFiles` regular files from listing index `from` (the
   * first one not queued): when the next open moves the prediction on by a file, that file's
   * blocks are asked for at once, not one metadata round trip later (the link would idle
   * meanwhile). Each map once per streak.
   */
  private mapAhead(d: DirState, from: number): void {
    if (!this.lister.prepare) return;
    const files = d.listing!.files;
    const ahead = this.options.mapsAheadFiles ?? this.maxFiles;
    for (let i = from, n = 0; i < files.length && n < ahead; i++) {
      const f = files[i];
      if (!f.regular || f.size === 0) continue;
      n++;
      if (d.mappedThrough !== undefined && f.name <= d.mappedThrough) continue;
      d.mappedThrough = f.name;
      void this.lister.prepare(f.ino).catch(() => {});
    }
  }

  private reset(d: DirState): void {
    d.streak = 0;
    d.mappedThrough = undefined;
    for (const ino of d.predicted) this.prefetcher.forgetFile(ino);
    d.predicted.clear();
  }

  /** Makes sure `d.listing` is there: waits only when there is none; an old one is re-read in the background. */
  private async listing(parent: number, d: DirState): Promise<void> {
    if (d.listing && Date.now() - d.listing.at < this.ttl) return;
    const stale = d.listing !== undefined;
    d.loading ??= (async () => {
      try {
        const files = (await this.lister.list(parent)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        d.listing = { at: Date.now(), files, index: new Map(files.map((f, i) => [f.name, i])) };
      } finally {
        d.loading = undefined;
      }
    })();
    if (stale) {
      d.loading.catch(() => {}); // the old listing stays; the next call tries again
      return;
    }
    await d.loading;
  }
}
