/**
 * When a change to names or attributes is decided by the mount and when by the service: the
 * rule every change in changes.ts and xattrs.ts goes through.
 *
 * Promises: a change decided locally (write-back, the default, unless the inode is locked
 * somewhere) is applied and journaled with no round trip; one that cannot be (the mount
 * knows too little: `UndecidedLocally`) first lets what the journal holds reach the
 * service, in order, then goes there itself; while the service cannot be reached, every
 * change is decided locally from what was last known, or refused with ServiceUnavailable.
 */
import { ServiceUnavailableError } from '../../errors.js';
import type { Attr } from '../../meta/types.js';
import type { MetaJournal } from './journal.js';
import type { NamespaceView } from './view.js';

export interface ChangesOptions {
  /** Changes decided locally return before the service has them (default true). */
  writeBack?: boolean;
  /** Whether a file is locked anywhere: its changes then go to the service synchronously. */
  strong?: (ino: number) => boolean;
  /** Told of every change made (background work steps back while callers are busy). */
  activity?: { note(): void };
}

/** A local decision lacks what it needs (a folder's listing, an inode's attributes): the service decides. */
class UndecidedLocally extends ServiceUnavailableError {}

export class ChangeGate {
  readonly writeBack: boolean;

  constructor(private readonly view: NamespaceView, private readonly journal: MetaJournal, private readonly options: ChangesOptions = {}) {
    this.writeBack = options.writeBack ?? true;
  }

  /**
   * Makes a change to names or attributes. `local(strict)` applies it to what this mount
   * knows and journals it, or throws UndecidedLocally when it knows too little (`strict`:
   * only what is current counts, not what was last known before an outage). Write-back
   * tries that first (unless `ino` is locked somewhere); otherwise, or undecided, what the
   * journal holds goes first and then `online`; while the service cannot be reached, `local`.
   */
  async change<T>(online: () => Promise<T>, local: (strict: boolean) => T | Promise<T>, ino?: number): Promise<T> {
    this.options.activity?.note();
    const strong = ino !== undefined && (this.options.strong?.(ino) ?? false);
    if (this.writeBack && !strong) {
      try {
        return await local(this.view.lastKnown.offlineSinceMs === 0);
      } catch (e) {
        if (!(e instanceof UndecidedLocally)) throw e;
      }
    } else if (!this.writeBack && this.journal.size > 0) {
      void this.journal.replay();
      return local(false);
    }
    if (this.journal.size > 0) {
      // Changes made before this one reach the service before it.
      try {
        await this.journal.flush();
      } catch (e) {
        if (!(e instanceof ServiceUnavailableError)) throw e;
        return local(false);
      }
    }
    return this.view.lastKnown.whenUnreachable(online, () => local(false));
  }

  unknownOffline(what: string): ServiceUnavailableError {
    return new UndecidedLocally(this.view.lastKnown.offlineSinceMs === 0
      ? `this mount does not know ${what} well enough to decide locally`
      : `the metadata service cannot be reached and this mount has not seen ${what}`);
  }

  /** An inode's attributes as this mount knows them well enough to decide a change locally (`strict`: current). */
  knownAttr(ino: number, strict: boolean): Attr {
    const view = this.view;
    const a = strict ? view.cachedAttr(ino) ?? (this.journal.affects(ino) ? view.lastKnown.attr(ino) : undefined) : view.lastKnown.attr(ino) ?? view.cachedAttr(ino);
    if (!a) throw this.unknownOffline(`inode ${ino}`);
    return a;
  }
}
