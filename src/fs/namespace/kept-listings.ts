/**
 * Listings of large folders kept in the mount's cache directory across remounts, so that a
 * folder listed again after a remount (or a reboot) asks the service only for what changed
 * since (`listingChanges`): one round trip and the changes, not the whole folder again.
 *
 * Promises: a kept listing is sealed with the filespace's metadata key and bound to its
 * folder's inode (names and attributes are never on disk in the clear; a file moved onto
 * another folder fails to open and is ignored); it carries the commit it is current as of,
 * and is only ever used through the changes since that commit; a kept listing that cannot
 * be read is as if there were none. At most `maxFolders` are kept (the least recently
 * written go first), only of folders of at least `minEntries`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { NameCipher } from '../../crypto/names.js';
import type { Attr, BlockRef } from '../../meta/types.js';

/** A listed entry as kept: its name opened, its lookup hash (hex), what readdir plus gave. */
export interface KeptEntry {
  name: string;
  hash: string;
  ino: number;
  mode: number;
  attr?: Attr;
  first?: BlockRef;
}

export interface KeptListing {
  /** The commit the listing is current as of. */
  csn: number;
  entries: KeptEntry[];
}

export interface KeptListingsOptions {
  /** Folders with fewer entries are not kept (listing them is one request; default 1 000). */
  minEntries?: number;
  /** The most folders kept (default 64). */
  maxFolders?: number;
}

const PURPOSE = 'listing';

export class KeptListings {
  private readonly saving = new Set<number>();
  private made = false;

  constructor(private readonly dir: string, private readonly names: NameCipher, private readonly options: KeptListingsOptions = {}) {}

  get minEntries(): number {
    return this.options.minEntries ?? 1000;
  }

  private file(ino: number): string {
    return path.join(this.dir, `${ino}.listing`);
  }

  /** The kept listing of folder `ino`, if there is one that opens. */
  async load(ino: number): Promise<KeptListing | undefined> {
    let sealed: Buffer;
    try {
      sealed = await fs.readFile(this.file(ino));
    } catch {
      return undefined;
    }
    try {
      const kept = JSON.parse(this.names.openBlob(ino, PURPOSE, sealed).toString('utf8')) as KeptListing;
      return Number.isSafeInteger(kept.csn) && Array.isArray(kept.entries) ? kept : undefined;
    } catch {
      return undefined;
    }
  }

  /** Keeps folder `ino`'s listing, current as of commit `csn` (in the background; one write per folder at a time). */
  save(ino: number, csn: number, entries: KeptEntry[]): void {
    if (entries.length < this.minEntries || this.saving.has(ino)) return;
    this.saving.add(ino);
    void this.write(ino, csn, entries).catch(() => {}).finally(() => this.saving.delete(ino));
  }

  /** Forgets folder `ino`'s kept listing. */
  async drop(ino: number): Promise<void> {
    await fs.rm(this.file(ino), { force: true });
  }

  private async write(ino: number, csn: number, entries: KeptEntry[]): Promise<void> {
    if (!this.made) {
      await fs.mkdir(this.dir, { recursive: true });
      this.made = true;
    }
    const sealed = this.names.sealBlob(ino, PURPOSE, Buffer.from(JSON.stringify({ csn, entries } satisfies KeptListing)));
    const tmp = `${this.file(ino)}.${process.pid}.tmp`;
    await fs.writeFile(tmp, sealed);
    await fs.rename(tmp, this.file(ino));
    await this.trim();
  }

  /** Keeps at most `maxFolders` listings: the least recently written go. */
  private async trim(): Promise<void> {
    const max = this.options.maxFolders ?? 64;
    const names = (await fs.readdir(this.dir)).filter((n) => n.endsWith('.listing'));
    if (names.length <= max) return;
    const dated = await Promise.all(names.map(async (n) => ({ n, at: (await fs.stat(path.join(this.dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
    dated.sort((a, b) => a.at - b.at);
    for (const { n } of dated.slice(0, dated.length - max)) await fs.rm(path.join(this.dir, n), { force: true });
  }
}
